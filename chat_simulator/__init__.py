"""An independent, agent-based simulator of a production chat database (test worlds, demo)."""

"""shape-pipeline: production-shaped synthetic chat data from aggregate shapes only."""

__version__ = "0.1.0"

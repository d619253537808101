"""The one-command demo: an embedded fake production, then sample -> calibrate -> generate -> validate."""

"""User-facing errors: one clear line, a non-zero exit code, no traceback."""

from __future__ import annotations


class ShapePipelineError(Exception):
    """A problem with the user's input or environment (exit code 2 by default).

    The message is a single line that names the file, field, column or option at fault.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code


class MappingError(ShapePipelineError):
    """The schema mapping does not fit the database (missing tables or columns)."""


class PrivacyError(ShapePipelineError):
    """An export would break a privacy rule; nothing is written."""


class DatabaseError(ShapePipelineError):
    """A database cannot be reached or refused an operation."""

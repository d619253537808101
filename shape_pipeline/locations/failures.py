"""One way for every asset to report a user's error: a `ShapePipelineError` becomes a
`dg.Failure` whose description is the error's one-line message (no traceback in the UI)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from shape_pipeline.errors import ShapePipelineError


@contextmanager
def one_line_failure() -> Iterator[None]:
    """`with one_line_failure(): ...` raises `dg.Failure(description=<the message>)` for a
    `ShapePipelineError` raised inside; anything else passes through unchanged."""
    try:
        yield
    except ShapePipelineError as exc:
        raise dg.Failure(description=str(exc)) from None

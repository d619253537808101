"""Console output in the seed's style: `=== TITLE ===`, `[Tag] message`, `[Tag] ✓ done`.

The same reporter serves the CLI (print to stdout) and Dagster (pass `context.log.info`),
so both paths show the same lines.
"""

from __future__ import annotations

from collections.abc import Callable

Emit = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


class Reporter:
    """Writes tagged progress lines to one sink (stdout by default)."""

    def __init__(self, tag: str, emit: Emit | None = None) -> None:
        self.tag = tag
        self.emit: Emit = emit or _print

    def header(self, title: str) -> None:
        self.emit(f"=== {title} ===")
        self.emit("")

    def line(self, message: str = "", *, tag: str | None = None) -> None:
        self.emit(f"[{tag or self.tag}] {message}" if message else "")

    def detail(self, message: str, *, tag: str | None = None) -> None:
        self.line(f"  {message}", tag=tag)

    def ok(self, message: str, *, tag: str | None = None) -> None:
        self.line(f"✓ {message}", tag=tag)

    def warn(self, message: str, *, tag: str | None = None) -> None:
        self.line(f"⚠ {message}", tag=tag)

    def blank(self) -> None:
        self.emit("")

    def with_tag(self, tag: str) -> Reporter:
        return Reporter(tag, self.emit)


def silent(_: str) -> None:
    """A sink that drops every line (tests, library use)."""


def fmt_int(value: float | int) -> str:
    """1200000 -> '1,200,000' (the seed's totals style)."""
    return f"{int(round(value)):,}"


def fmt_pct(value: float, digits: int = 1) -> str:
    """0.121 -> '12.1%'."""
    return f"{value * 100:.{digits}f}%"

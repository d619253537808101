"""The extraction audit log: append-only JSON lines inside the production boundary.

At the bottom of the house (it needs only the standard library and the project's errors): the
sampler writes it, the export audit checks salt reuse against it, and the epsilon ledger
(`privacy/budget.py`) sums the privacy spent from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shape_pipeline.errors import ShapePipelineError


def _audit_log_lines(file: Path) -> list[bytes]:
    """The log's raw lines; a folder or an unreadable file is one error naming it."""
    if file.is_dir():
        raise ShapePipelineError(f"{file}: is a folder, not an audit log file (--audit-log)")
    try:
        return file.read_bytes().split(b"\n")
    except OSError as exc:
        raise ShapePipelineError(f"{file}: cannot read the audit log ({exc.strerror}) (--audit-log)") from None


def parse_audit_line(file: Path, number: int, raw: bytes) -> dict[str, Any] | None:
    """One entry (a JSON object), None for a blank line; anything else names the file and line."""
    where = f"{file}: line {number}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ShapePipelineError(f"{where} is not UTF-8 text (audit log, --audit-log)") from None
    if not line.strip():
        return None
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        raise ShapePipelineError(f"{where} is not valid JSON (audit log, --audit-log)") from None
    if not isinstance(entry, dict):
        raise ShapePipelineError(f"{where} is not a JSON object but {type(entry).__name__} (audit log, --audit-log)")
    return entry


def numbered_audit_entries(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, entry) of every entry of the audit log (empty when it does not exist yet),
    so that a reader can name the line an entry came from."""
    file = Path(path)
    if not file.exists() and not file.is_symlink():
        return []
    parsed = (
        (number, parse_audit_line(file, number, raw)) for number, raw in enumerate(_audit_log_lines(file), start=1)
    )
    return [(number, entry) for number, entry in parsed if entry is not None]


def read_audit_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry of the audit log (empty when the log does not exist yet)."""
    return [entry for _, entry in numbered_audit_entries(path)]


def append_audit_entry(path: str | os.PathLike[str], entry: Mapping[str, Any]) -> Path:
    """Append one JSON line (O_APPEND, fsync): earlier entries are never rewritten."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return file

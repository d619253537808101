"""Files that cross steps: atomic writes and contract-checked reads with one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shape_pipeline.errors import ShapePipelineError

M = TypeVar("M", bound=BaseModel)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write to a temporary name in the same folder, fsync, then rename over `path`.

    A reader never sees a half-written file, and a failure leaves the old file as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def model_json(model: BaseModel) -> str:
    """The canonical JSON text of a contract model (stable key order, no nulls)."""
    return model.model_dump_json(indent=2, exclude_none=True) + "\n"


def write_model_atomic(path: str | os.PathLike[str], model: BaseModel) -> Path:
    return write_text_atomic(path, model_json(model))


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as `field.path: message`."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ())) or "(top level)"
    if first.get("type") == "extra_forbidden":
        extras = [
            ".".join(str(p) for p in e.get("loc", ()))
            for e in error.errors()
            if e.get("type") == "extra_forbidden"
        ]
        return f"unknown key(s): {', '.join(extras)}"
    message = first.get("msg", "invalid value")
    return f"{location}: {message}"


def load_json_model(path: str | os.PathLike[str], model: type[M], *, what: str) -> M:
    """Read `path` as JSON and validate it against `model`.

    Every failure is a `ShapePipelineError` naming the file and the field at fault.
    """
    file = Path(path)
    if not file.is_file():
        raise ShapePipelineError(f"No such file or directory: {file} ({what})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShapePipelineError(f"{file}: not a valid JSON {what} file ({exc})") from None
    if not isinstance(data, dict):
        raise ShapePipelineError(f"{file}: a {what} file must hold a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ShapePipelineError(f"{file}: {describe_validation_error(exc)}") from None


def newest_file(folder: str | os.PathLike[str], pattern: str) -> Path | None:
    """The most recently modified file in `folder` matching `pattern` (None if there is none)."""
    base = Path(folder)
    if not base.is_dir():
        return None
    candidates = [p for p in base.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name), default=None)

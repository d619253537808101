"""Files that cross steps: atomic writes and contract-checked reads with one-line errors."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shape_pipeline.errors import ShapePipelineError

M = TypeVar("M", bound=BaseModel)
PathLike = str | os.PathLike[str]


def nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists (the folder a new path would go into)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be (or become) a folder: a part of it is a file (None if it can)."""
    existing = nearest_existing(folder)
    return None if existing.is_dir() else f"{existing} is not a directory"


def _reason(target: Path, exc: OSError) -> str:
    """The one-line reason an OSError gives for `target`, in the user's terms."""
    problem = folder_problem(target.parent)
    if problem:
        return problem
    if target.is_dir():
        return "it is a directory"
    if exc.errno == errno.ENOENT:  # e.g. /proc: the folder exists but refuses new entries
        return f"{nearest_existing(target.parent)} does not accept new files"
    return exc.strerror or str(exc)


def cannot_write(target: Path, reason: OSError | str, option: str | None = None) -> ShapePipelineError:
    """`[option: ]cannot write PATH: REASON` (an OSError's reason in the user's terms)."""
    prefix = f"{option}: " if option else ""
    text = _reason(target, reason) if isinstance(reason, OSError) else reason
    return ShapePipelineError(f"{prefix}cannot write {target}: {text}")


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns the ones created, outermost first."""
    made: list[Path] = []
    try:
        for missing in [p for p in (folder, *folder.parents) if not p.exists()][::-1]:
            try:
                missing.mkdir()
            except FileExistsError:
                if not missing.is_dir():
                    raise
                continue
            made.append(missing)
    except BaseException:
        remove_folders(made)
        raise
    return made


def remove_folders(created: list[Path]) -> None:
    """Undo `make_folders`: remove the folders it created, innermost first, if they are empty."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def check_writable(path: PathLike, *, option: str | None = None, folder: bool = False) -> Path:
    """Fail before any work if a file (or, with `folder`, a folder) cannot be created at `path`.

    Creates nothing: a probe file in the nearest existing folder is removed at once.
    """
    target = Path(path)
    if not folder and target.is_dir():
        raise cannot_write(target, "it is a directory", option)
    problem = folder_problem(target if folder else target.parent)
    if problem:
        raise cannot_write(target, problem, option)
    existing = nearest_existing(target if folder else target.parent)
    try:
        handle, probe = tempfile.mkstemp(prefix=".probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        refused = exc.errno == errno.ENOENT  # e.g. /proc: the folder exists but refuses new entries
        reason = f"{existing} does not accept new files" if refused else (exc.strerror or str(exc))
        raise cannot_write(target, reason, option) from None
    return target


def _stage(target: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `target`, flushed to disk."""
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _keep_old(target: Path) -> Path | None:
    """A second name (hard link) for the file about to be replaced, so it can be put back."""
    if not target.is_file():
        return None
    backup = target.with_name(f".{target.name}.{os.getpid()}.old")
    try:
        backup.unlink(missing_ok=True)
        os.link(target, backup)
    except OSError:
        return None
    return backup


def write_files_atomic(contents: Mapping[PathLike, bytes]) -> list[Path]:
    """Write several files as one: all of them or none.

    Each is written to a temporary name in its own folder and fsynced; only then are they
    renamed into place. On any failure (or interruption) temporary files are removed, files
    already renamed are put back as they were, and folders made for them are removed. An
    OSError becomes one `ShapePipelineError` line naming the path and the reason.
    """
    staged: list[tuple[Path, Path]] = []
    replaced: list[tuple[Path, Path | None]] = []
    created: list[Path] = []
    target = Path()
    try:
        for path, data in contents.items():
            target = Path(path)
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(target))
            created += make_folders(target.parent)
            staged.append((_stage(target, data), target))
        for tmp, target in staged:
            backup = _keep_old(target)
            os.replace(tmp, target)
            replaced.append((target, backup))
    except BaseException as exc:
        _undo(staged, replaced, created)
        if isinstance(exc, OSError):
            raise cannot_write(target, exc) from None
        raise
    for _, backup in replaced:
        if backup is not None:
            backup.unlink(missing_ok=True)
    return [target for _, target in staged]


def _undo(staged: list[tuple[Path, Path]], replaced: list[tuple[Path, Path | None]], created: list[Path]) -> None:
    for target, backup in reversed(replaced):
        with contextlib.suppress(OSError):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)
    remove_folders(created)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write to a temporary name in the same folder, fsync, then rename over `path`.

    A reader never sees a half-written file, and a failure leaves the old file as it was and
    no temporary file behind (one `ShapePipelineError` line naming the path).
    """
    return write_files_atomic({path: data})[0]


def write_text_atomic(path: PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_texts_atomic(texts: Mapping[PathLike, str]) -> list[Path]:
    """Several UTF-8 text files written all or none (e.g. a report's JSON and its HTML)."""
    return write_files_atomic({path: text.encode("utf-8") for path, text in texts.items()})


def model_json(model: BaseModel) -> str:
    """The canonical JSON text of a contract model (stable key order, no nulls)."""
    return model.model_dump_json(indent=2, exclude_none=True) + "\n"


def write_model_atomic(path: PathLike, model: BaseModel) -> Path:
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
            ".".join(str(p) for p in e.get("loc", ())) for e in error.errors() if e.get("type") == "extra_forbidden"
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
    return model_from(file, data, model, expected=f"a {what} file must hold a JSON object")


def model_from(
    file: Path,
    data: object,
    model: type[M],
    *,
    expected: str,
    describe: Callable[[ValidationError], str] = describe_validation_error,
) -> M:
    """`data` read from `file` validated against `model`; one line naming the file and the
    field at fault. `expected` says what the top level must be."""
    if not isinstance(data, dict):
        raise ShapePipelineError(f"{file}: {expected}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ShapePipelineError(f"{file}: {describe(exc)}") from None


def read_yaml(file: Path, what: str) -> object:
    """The parsed YAML of `file` (a schema mapping, a workload); one line naming the file when
    it is missing, unreadable, not UTF-8 or not YAML."""
    if not file.is_file():
        raise ShapePipelineError(f"No such file or directory: {file} ({what})")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ShapePipelineError(f"{file}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ShapePipelineError(f"{file}: cannot read the {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ShapePipelineError(f"{file}: not valid YAML ({' '.join(str(exc).split())})") from None


def load_yaml_model(
    file: Path,
    model: type[M],
    *,
    what: str,
    expected: str,
    describe: Callable[[ValidationError], str] = describe_validation_error,
) -> M:
    """Read `file` as YAML and validate it against `model` (a schema mapping, a workload)."""
    return model_from(file, read_yaml(file, what), model, expected=expected, describe=describe)


def newest_file(folder: str | os.PathLike[str], pattern: str) -> Path | None:
    """The most recently modified file in `folder` matching `pattern` (None if there is none)."""
    base = Path(folder)
    if not base.is_dir():
        return None
    candidates = [p for p in base.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name), default=None)

"""Export audit and the extraction audit log.

The audit is an allow-list, not a PII scanner: a shape file may only hold the contract's
keys, known category names, identifier-like profile field names, ISO timestamps and the
tool's own fixed phrases; in the Phase 2 blocks, workload query names and rank labels,
PostgreSQL's fixed plan vocabulary, relation and index names (identifiers), entity and
mapping field names, the physical names of unmapped columns (identifiers, as keys), and the workload's name and sha256. Anything else blocks the export; the error names the JSON path and
what the value looks like, never the value itself (it may be the very PII we stopped).

The audit log (JSON lines, append-only, inside the boundary; read and written by
`shape_pipeline.audit_log`) records every extraction with a keyed fingerprint of the salt, so
that an extraction reusing an earlier salt is refused here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from shape_pipeline.audit_log import read_audit_log
from shape_pipeline.contracts import (
    MAX_AS_QUANTILE,
    MAX_ROUNDED_UP,
    PRIVACY_LEVEL,
    IdAlphabet,
    IdKind,
    PrivacyMode,
    ShapeMetrics,
)
from shape_pipeline.errors import PrivacyError, ShapePipelineError
from shape_pipeline.files import describe_validation_error
from shape_pipeline.mapping import CONVERSATION_TYPES, MESSAGE_TYPES, OTHER, SchemaMapping
from shape_pipeline.privacy.dp import LIBRARY, MECHANISM
from shape_pipeline.sampling.dp_shape import family_specs
from shape_pipeline.sampling.physical import layout_fields
from shape_pipeline.sampling.plan_names import PLAN_VALUES
from shape_pipeline.sampling.privacy import ALLOWED_NOTES

CATEGORY_NAMES = frozenset((*CONVERSATION_TYPES, *MESSAGE_TYPES, OTHER))
CATEGORY_PARENTS = frozenset({"type_distribution", "members_per_conversation"})
FIELD_NAME_PARENTS = frozenset({"profile_completeness"})

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_VERSION = re.compile(r"^\d{1,4}\.\d{1,4}\.\d{1,4}([.+-]?[a-z]{1,8}\d{0,4})?$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TOKENISH = re.compile(r"[0-9a-fA-F]{16,}|\d{7,}")  # a column name never looks like a hash or a phone
_RELATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")  # a table or index name as EXPLAIN prints it
_WORKLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RANK_LABEL = re.compile(r"^(p(100|[1-9]?[0-9])|all)$")
_QUERY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")

ENTITY_NAMES = frozenset(SchemaMapping.model_fields) - {"schema_"}
LAYOUT_FIELDS = layout_fields()
ID_LITERALS = {"kind": frozenset(get_args(IdKind)), "alphabet": frozenset(get_args(IdAlphabet))}
QUERIES = ("query_plans", "queries")
TABLES = ("physical_layout", "tables")

# What a blocked string looks like (the order matters: most specific first).
_LOOKS_LIKE: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an e-mail address", re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")),
    ("a UUID", re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")),
    ("a long hex run (a token or hash)", re.compile(r"[0-9a-fA-F]{16,}")),
    ("an IP address", re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b|\b[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{0,4}){2,7}\b")),
    ("a phone number", re.compile(r"(\+?\d[\d ()./-]{6,}\d)")),
    ("a long base32/base64 run (a token)", re.compile(r"[A-Za-z0-9+/=_-]{20,}")),
)


def _known_keys(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every field name of the contract, recursively (the allow-list of keys)."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys.add(info.alias or name)
        for arg in _types_in(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= _known_keys(arg, seen)
    return keys


def _types_in(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _types_in(arg)


KNOWN_KEYS = frozenset(_known_keys(ShapeMetrics))


def describe_string(text: str) -> str:
    """What a disallowed string looks like (for the error; never the string itself)."""
    for label, pattern in _LOOKS_LIKE:
        if pattern.search(text):
            return label
    return "free text"


def _identifier(text: str, pattern: re.Pattern[str]) -> bool:
    return bool(pattern.match(text)) and not _TOKENISH.search(text)


def query_name_allowed(name: str) -> bool:
    """A workload query name the export may carry (letters, digits, _ . -; no token, no address)."""
    return _identifier(name, _QUERY_NAME) and not _IP_ADDRESS.search(name)


def workload_name_allowed(name: str) -> bool:
    """A workload name the export may carry (letters, digits, - and _)."""
    return _identifier(name, _WORKLOAD_NAME)


def _phase2_string_allowed(path: tuple[str, ...], text: str) -> bool:
    """Strings of the query_plans and physical_layout blocks (path[0] is one of them)."""
    leaf = path[-1]
    if path == ("query_plans", "workload"):
        return workload_name_allowed(text)
    if path == ("query_plans", "workload_sha256"):
        return bool(_SHA256.match(text))
    if path[:2] == QUERIES and len(path) > 4:  # inside a plan: queries.<query>.<rank>.plan...
        if leaf in PLAN_VALUES:
            return text in PLAN_VALUES[leaf]
        if leaf in {"relation", "index"}:
            return _identifier(text, _RELATION_NAME)
    if path[:2] == TABLES and len(path) == 5 and path[3] == "ids" and leaf in ID_LITERALS:
        return text in ID_LITERALS[leaf]
    return False


DP_FAMILIES = family_specs(1, 1, 0)
DP_STATISTICS = frozenset(path for spec in DP_FAMILIES.values() for path in spec.statistics)
DP_FIXED_STRINGS = {"mechanism": MECHANISM, "library": LIBRARY, "privacy_unit": "user"}


def _dp_string_allowed(path: tuple[str, ...], text: str) -> bool:
    """Strings of the privacy block: the mode, the mechanism's fixed words, statistic paths."""
    if path == ("privacy", "mode"):
        return text in get_args(PrivacyMode)
    if len(path) == 3 and path[:2] == ("privacy", "dp") and path[2] in DP_FIXED_STRINGS:
        return text == DP_FIXED_STRINGS[path[2]]
    if len(path) == 6 and path[:3] == ("privacy", "dp", "families") and path[4] == "statistics":
        return text in DP_STATISTICS
    return False


_TOTAL_BELOW = re.compile(r"< [0-9]+")  # a total below min_cell_count, written "< k" (fullmatch)
_TOTALS = frozenset({("totals", "users"), ("totals", "conversations"), ("totals", "messages")})


def _string_allowed(path: tuple[str, ...], text: str) -> bool:
    leaf = path[-1] if path else ""
    if path in _TOTALS:
        return bool(_TOTAL_BELOW.fullmatch(text))
    if path[:1] == ("privacy",) and (path[1:2] == ("dp",) or path == ("privacy", "mode")):
        return _dp_string_allowed(path, text)
    if path and path[0] in {"query_plans", "physical_layout"}:
        return _phase2_string_allowed(path, text)
    if leaf in {"extracted_at", "window_start", "window_end"}:
        return bool(_ISO_DATETIME.match(text))
    if leaf == "privacy_level":
        return text == PRIVACY_LEVEL
    if leaf == "tool_version":
        return bool(_VERSION.match(text))
    if leaf == "max_rounding":
        return text in {MAX_ROUNDED_UP, MAX_AS_QUANTILE}
    if len(path) >= 2 and path[-2] == "notes":
        return text in ALLOWED_NOTES
    return False


def _key_allowed(path: tuple[str, ...], key: str) -> bool:
    """Keys are the contract's, except where a block is keyed by names (decided by the path)."""
    parent = path[-1] if path else ""
    if path == QUERIES:
        return query_name_allowed(key)
    if len(path) == 3 and path[:2] == QUERIES:
        return bool(_RANK_LABEL.match(key))
    if path == TABLES:
        return key in ENTITY_NAMES
    if len(path) == 4 and path[:2] == TABLES and path[3] == "columns":
        return key in LAYOUT_FIELDS
    if len(path) == 4 and path[:2] == TABLES and path[3] == "unmapped_columns":
        return _identifier(key, _RELATION_NAME)  # a physical column name: schema metadata
    if path == ("privacy", "dp", "families"):
        return key in DP_FAMILIES
    if path[:3] == ("privacy", "dp", "families"):  # a family's own fields (its name may be a parent's)
        return key in KNOWN_KEYS
    if parent in CATEGORY_PARENTS:
        return key in CATEGORY_NAMES
    if parent in FIELD_NAME_PARENTS:
        return _identifier(key, _FIELD_NAME)
    return key in KNOWN_KEYS


def scan_allow_list(data: Any, path: tuple[str, ...] = ()) -> None:
    """Raise PrivacyError at the first key or string that the allow-list does not know."""
    where = ".".join(path) or "(top level)"
    if isinstance(data, Mapping):
        for key, value in data.items():
            if not isinstance(key, str) or not _key_allowed(path, key):
                looks = describe_string(str(key))
                raise PrivacyError(
                    f"export audit failed: {where} has a key that is not allowed ({looks}); nothing was written"
                )
            scan_allow_list(value, (*path, key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            scan_allow_list(item, (*path, str(i)))
    elif isinstance(data, str):
        # list items are addressed as (..., "notes", "0"): check against the list's name
        if not _string_allowed(path, data):
            raise PrivacyError(
                f"export audit failed: {where} holds a string that is not allowed "
                f"(looks like {describe_string(data)}); nothing was written"
            )
    elif data is not None and not isinstance(data, bool | int | float):
        raise PrivacyError(f"export audit failed: {where} holds an unexpected {type(data).__name__}")


def audit_export(data: Mapping[str, Any] | str | bytes) -> ShapeMetrics:
    """Validate a shape (parsed JSON or its text) against the contract, then the allow-list.

    Also requires the `privacy` block: an exported shape must say which rules it passed.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise PrivacyError(f"export audit failed: not valid JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise PrivacyError("export audit failed: a shape file must hold a JSON object")
    try:
        shape = ShapeMetrics.model_validate(dict(data))
    except ValidationError as exc:
        raise PrivacyError(f"export audit failed: {describe_validation_error(exc)}") from None
    if shape.privacy is None:
        raise PrivacyError("export audit failed: privacy: the block is missing (min_cell_count not applied)")
    scan_allow_list(data)
    return shape


def audit_file(path: str | os.PathLike[str]) -> ShapeMetrics:
    """Re-run the export audit on a written shape file (the Dagster asset check)."""
    file = Path(path)
    if not file.is_file():
        raise ShapePipelineError(f"No such file or directory: {file} (shape metrics)")
    try:
        return audit_export(file.read_bytes())
    except PrivacyError as exc:
        raise PrivacyError(f"{file}: {exc}") from None


# ------------------------------------------------------------------------------ audit log


def check_salt_reuse(path: str | os.PathLike[str], fingerprint: str, *, allow_reuse: bool) -> bool:
    """True when any earlier extraction in the log used the same salt (A-B-A is reuse too: the
    first and third extraction could be linked); refuse unless `allow_reuse`."""
    reused = any(entry.get("salt_fingerprint") == fingerprint for entry in read_audit_log(path))
    if reused and not allow_reuse:
        raise PrivacyError(
            f"ANONYMIZATION_SALT was already used by an earlier extraction (audit log {path}); "
            "rotate the salt, or pass --allow-salt-reuse"
        )
    return reused

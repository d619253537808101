"""Export audit (contract + allow-list) and the append-only audit log."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from shape_pipeline.audit_log import append_audit_entry, read_audit_log
from shape_pipeline.errors import PrivacyError, ShapePipelineError
from shape_pipeline.files import model_json
from shape_pipeline.sampling.audit import audit_export, audit_file, check_salt_reuse
from shape_pipeline.sampling.shape import shape_from_frequencies
from shape_pipeline_tests.sampling.test_shape import known_tables


@pytest.fixture
def good() -> dict:
    s = shape_from_frequencies(
        known_tables(),
        window_start=datetime(2025, 1, 1, tzinfo=UTC),
        window_end=datetime(2025, 1, 31, tzinfo=UTC),
        extracted_at=datetime(2025, 1, 31, 2, tzinfo=UTC),
        min_cell_count=2,
    )
    return json.loads(model_json(s))


def test_a_real_shape_passes(good: dict) -> None:
    assert audit_export(json.dumps(good)).totals.messages == 10


@pytest.mark.parametrize(
    ("where", "value", "looks"),
    [
        (("tool_version",), "alice.canary@example.com", "an e-mail address"),
        (("privacy", "notes", 0), "call 555-0142 or +1 (555) 010-0199", "a phone number"),
        (("tool_version",), "10.1.2.33", "an IP address"),
        (("privacy", "notes", 0), "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "a UUID"),
        (("privacy", "notes", 0), "deadbeefcafebabe0123456789abcdef", "a long hex run"),
        (("privacy", "notes", 0), "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U", "a long base32/base64 run"),
        (("privacy", "notes", 0), "Alice Canaryperson said hi", "free text"),
        (("privacy", "notes", 0), "yesterday at noon", "free text"),
    ],
)
def test_disallowed_strings_block_the_export_without_echoing_them(good: dict, where, value: str, looks: str) -> None:
    bad = copy.deepcopy(good)
    target = bad
    for part in where[:-1]:
        target = target.setdefault(part, [] if part == "notes" else {})
    if isinstance(target, list):
        target.append(value)
    else:
        target[where[-1]] = value
    with pytest.raises(PrivacyError) as err:
        audit_export(bad)
    message = str(err.value)
    assert looks in message and value not in message
    assert "nothing was written" in message or "export audit failed" in message


def test_unknown_keys_and_category_names_are_refused(good: dict) -> None:
    bad = copy.deepcopy(good)
    bad["messages"]["type_distribution"]["secret-alice-room"] = 12
    with pytest.raises(PrivacyError, match=r"messages\.type_distribution has a key that is not allowed"):
        audit_export(bad)
    bad = copy.deepcopy(good)
    bad["conversations"]["top_rooms"] = {"x": 1}
    with pytest.raises(PrivacyError, match="unknown key"):  # the contract names it
        audit_export(bad)
    bad = copy.deepcopy(good)
    bad["users"]["profile_completeness"]["deadbeefcafebabe0123"] = 0.5
    with pytest.raises(PrivacyError, match="profile_completeness has a key"):
        audit_export(bad)


def test_a_shape_without_its_privacy_block_is_not_exportable(good: dict) -> None:
    del good["privacy"]
    with pytest.raises(PrivacyError, match="privacy"):
        audit_export(good)


def test_audit_file_names_the_file(tmp_path, good: dict) -> None:
    path = tmp_path / "shape.json"
    good["tool_version"] = "bob@example.org"
    path.write_text(json.dumps(good), encoding="utf-8")
    with pytest.raises(PrivacyError, match=str(path)):
        audit_file(path)
    with pytest.raises(ShapePipelineError, match="No such file"):
        audit_file(tmp_path / "missing.json")


def test_audit_log_appends_and_detects_reuse_of_any_earlier_salt(tmp_path) -> None:
    log = tmp_path / "audit" / "extractions.jsonl"
    assert check_salt_reuse(log, "fp-a", allow_reuse=False) is False  # no log yet
    append_audit_entry(log, {"salt_fingerprint": "fp-a", "sha256": "1"})
    with pytest.raises(PrivacyError, match="--allow-salt-reuse"):
        check_salt_reuse(log, "fp-a", allow_reuse=False)
    assert check_salt_reuse(log, "fp-a", allow_reuse=True) is True
    append_audit_entry(log, {"salt_fingerprint": "fp-b", "sha256": "2"})
    with pytest.raises(PrivacyError, match="an earlier extraction"):  # A-B-A: the first and third link
        check_salt_reuse(log, "fp-a", allow_reuse=False)
    assert check_salt_reuse(log, "fp-c", allow_reuse=False) is False
    assert [e["sha256"] for e in read_audit_log(log)] == ["1", "2"]  # earlier lines untouched
    log.write_text(log.read_text() + "{broken\n")
    with pytest.raises(ShapePipelineError, match="line 3 is not valid JSON"):
        read_audit_log(log)

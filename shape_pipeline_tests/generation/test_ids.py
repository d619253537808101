"""Ids in the app's own format (generation/ids.py, id_formats.py): formats, uniqueness, determinism."""

from __future__ import annotations

import re
import uuid

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from shape_pipeline.contracts import IdFormat
from shape_pipeline.generation import id_formats
from shape_pipeline.generation.ids import (
    IdEncoding,
    encode_ids,
    entity_salt,
    permute,
    random_text,
)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MATTERMOST = re.compile(r"^[ybndrfg8ejkmcpqxot1uwisza345h769]{26}$")
T0 = 1_760_000_000_000_000  # µs


def logical(n: int, start: int = 1) -> pa.Array:
    return pa.array(np.arange(start, start + n, dtype=np.int64))


def test_permute_is_a_bijection_at_any_width():
    for bits in (1, 2, 5, 13, 40, 62):
        n = min(1 << bits, 1 << 16)
        values = np.arange(n, dtype=np.uint64)
        mixed = permute(values, bits, salt=12345)
        assert np.unique(mixed).size == n, bits
        assert int(mixed.max()) < (1 << bits)
    wide = permute(np.arange(1 << 16, dtype=np.uint64), 64, salt=7)
    assert np.unique(wide).size == 1 << 16


def test_sequential_ids_are_the_logical_ids_as_integers_or_decimal_text():
    ids = logical(5, start=9)
    assert encode_ids(IdEncoding("sequential"), 1, ids).to_pylist() == [9, 10, 11, 12, 13]
    assert encode_ids(IdEncoding("sequential"), 1, ids, as_text=True).to_pylist() == ["9", "10", "11", "12", "13"]


def test_uuid4_has_version_and_variant_bits_and_random_looking_digits():
    values = encode_ids(IdEncoding("uuid4"), entity_salt("seed", "users"), logical(200_000)).to_pylist()
    assert all(UUID4.match(v) for v in values[:1000])
    assert all(uuid.UUID(v).version == 4 and uuid.UUID(v).variant == uuid.RFC_4122 for v in values[:1000])
    digits = np.frombuffer("".join(v.replace("-", "") for v in values).encode(), dtype=np.uint8).reshape(-1, 32)
    for position in range(32):
        if position in (12, 16):  # the version digit, and the variant digit (8, 9, a or b)
            continue
        counts = np.unique(digits[:, position], return_counts=True)[1]
        assert counts.size == 16 and counts.min() > 0.9 * len(values) / 16, position  # every digit, evenly
    neighbours = [
        bin(int(a.replace("-", ""), 16) ^ int(b.replace("-", ""), 16)).count("1")
        for a, b in zip(values[:1000], values[1:1001], strict=True)
    ]
    assert 50 < np.mean(neighbours) < 70  # ids 1 and 2 differ in about half their bits
    assert "00000001-0000-4000-8000" not in values[0]


def test_uuid7_is_time_ordered_and_valid():
    times = T0 + np.sort(np.random.default_rng(3).integers(0, 10**11, 5000))
    values = encode_ids(IdEncoding("uuid7"), entity_salt("seed", "messages"), logical(5000), times).to_pylist()
    assert all(UUID7.match(v) for v in values)
    assert all(uuid.UUID(v).version == 7 for v in values[:100])
    ms = [int(v.replace("-", "")[:12], 16) for v in values]
    assert ms == (times // 1000).tolist()
    later = np.flatnonzero(np.diff(times // 1000) > 0)
    assert all(values[i] < values[i + 1] for i in later.tolist())  # text order follows time order


def test_random_text_ids_are_mattermost_like_and_unique_for_a_million_rows():
    encoding = random_text(26)
    values = encode_ids(encoding, entity_salt("seed", "messages"), logical(1_000_000))
    assert pa.compute.all(pa.compute.match_substring_regex(values, MATTERMOST.pattern)).as_py()
    assert pa.compute.count_distinct(values).as_py() == 1_000_000
    uuids = encode_ids(IdEncoding("uuid4"), entity_salt("seed", "messages"), logical(1_000_000))
    assert pa.compute.count_distinct(uuids).as_py() == 1_000_000


def test_ids_are_a_pure_function_of_seed_entity_and_logical_id():
    encoding = random_text(26)
    whole = encode_ids(encoding, entity_salt("s", "users"), logical(1000)).to_pylist()
    part = encode_ids(encoding, entity_salt("s", "users"), pa.array([500, 3, 1000])).to_pylist()
    assert part == [whole[499], whole[2], whole[999]]  # any shard, any table, same value
    assert encode_ids(encoding, entity_salt("other", "users"), logical(3)).to_pylist() != whole[:3]
    assert encode_ids(encoding, entity_salt("s", "conversations"), logical(3)).to_pylist() != whole[:3]


def test_time_ordered_text_ids_sort_by_creation():
    times = T0 + np.arange(3000, dtype=np.int64) * 1500
    values = encode_ids(random_text(26, time_ordered=True), 99, logical(3000), times).to_pylist()
    assert values == sorted(values) and len(set(values)) == 3000
    assert all(len(v) == 26 and v.isalnum() and v.islower() for v in values)
    hex_ids = encode_ids(random_text(24, "hex", time_ordered=True), 99, logical(3000), times).to_pylist()
    assert hex_ids == sorted(hex_ids) and all(re.fullmatch(r"[0-9a-f]{24}", v) for v in hex_ids)


def test_other_alphabets_and_lengths():
    for name, pattern in (("hex", r"[0-9a-f]{32}"), ("digits", r"[0-9]{20}"), ("alphanumeric", r"[0-9A-Za-z]{22}")):
        length = int(pattern.rsplit("{", 1)[1].rstrip("}"))
        values = encode_ids(random_text(length, name), 5, logical(50_000)).to_pylist()
        assert all(re.fullmatch(pattern, v) for v in values), name
        assert len(set(values)) == 50_000, name
    short = random_text(4)  # 20 bits: a bijection of up to a million ids
    assert len(set(encode_ids(short, 5, logical(1 << 20, start=0)).to_pylist())) == 1 << 20
    assert short.fits(1_000_000) and not short.fits(2_000_000) and not short.fits(1000, sparse=True)


def column(kind: sa.types.TypeEngine, name: str = "id") -> sa.Column:
    table = sa.Table("t", sa.MetaData(), sa.Column(name, kind))
    return table.c[name]


def test_column_types_decide_when_nothing_else_does():
    assert id_formats.by_column_type([column(sa.BigInteger())], 10**6).kind == "sequential"
    assert id_formats.by_column_type([column(sa.Uuid())], 10**6).kind == "uuid4"
    wide = id_formats.by_column_type([column(sa.String(26)), column(sa.String(26), "ref")], 10**6)
    assert (wide.kind, wide.length, wide.alphabet) == ("random", 26, b"ybndrfg8ejkmcpqxot1uwisza345h769")
    assert id_formats.by_column_type([column(sa.Text())], 10**6).length == 26
    assert id_formats.by_column_type([column(sa.String(12))], 10**6).length == 12
    assert id_formats.by_column_type([column(sa.String(6))], 10**6).kind == "sequential"  # too short to look random
    assert id_formats.by_column_type([column(sa.String(26)), column(sa.Integer(), "ref")], 10).kind == "sequential"


def test_production_format_wins_over_the_column_type_where_it_fits():
    text26 = [column(sa.String(26))]
    found = IdFormat(kind="text", length=26, alphabet="base32", time_ordered=True)
    chosen, note = id_formats.choose("messages", text26, 1000, mapped=None, production=found)
    assert chosen.time_ordered and chosen.length == 26 and note is None
    v7, _ = id_formats.choose(
        "users", [column(sa.Uuid())], 1000, mapped=None, production=IdFormat(kind="uuid", uuid_version=7)
    )
    assert v7.kind == "uuid7"
    fallback, note = id_formats.choose(
        "users", [column(sa.String(26))], 1000, mapped=None, production=IdFormat(kind="uuid", uuid_version=4)
    )
    assert fallback.kind == "random" and note is not None and "users ids" in note and "t.id" in note
    mapped, _ = id_formats.choose("users", text26, 1000, mapped=("sequential", None), production=found)
    assert mapped.kind == "sequential"  # the mapping decides first


@pytest.mark.parametrize(
    ("encoding", "kind", "problem"),
    [
        (IdEncoding("uuid4"), sa.String(26), "needs a uuid column or text of at least 36 characters"),
        (random_text(26), sa.Integer(), "needs a text column of at least 26 characters"),
        (IdEncoding("sequential"), sa.SmallInteger(), "cannot hold ids up to 40,000"),
        (IdEncoding("sequential"), sa.String(3), "too short for ids up to 40,000"),
    ],
)
def test_columns_that_cannot_hold_a_format_are_named(encoding, kind, problem):
    found = id_formats.column_problem(encoding, column(kind), 40_000)
    assert found is not None and problem in found and found.startswith("t.id")

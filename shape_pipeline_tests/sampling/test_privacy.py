"""Privacy rules: salt checks, keyed tokens, rounding, small-cell merging."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import numpy as np
import pytest

from shape_pipeline.errors import PrivacyError
from shape_pipeline.sampling.privacy import (
    merge_small_buckets,
    merge_small_categories,
    random_salt,
    require_salt,
    round_up_2sig,
    salt_bits,
    salt_fingerprint,
    token,
    zero_small_cells,
)

SALT = "x" * 32


def test_missing_salt_stops_with_the_seed_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANONYMIZATION_SALT", raising=False)
    with pytest.raises(PrivacyError, match="^ANONYMIZATION_SALT environment variable required$"):
        require_salt()


def test_short_salt_says_it_is_too_short_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANONYMIZATION_SALT", "short-secret-value")
    with pytest.raises(PrivacyError) as err:
        require_salt()
    assert "too short" in str(err.value) and "32" in str(err.value)
    assert "short-secret-value" not in str(err.value)
    good = "k3J9-q8Lm2Zx7Vb4Nc6Wd1Ft5Gh0Rs9Ta"
    assert require_salt(good) == good


@pytest.mark.parametrize(
    ("salt", "says"),
    [
        (" " * 40, "only whitespace"),  # long enough, and no secret at all
        ("\t\n " * 12, "only whitespace"),
        ("y" * 40, "guessable: 1 distinct"),
        ("ab" * 20, "guessable: 2 distinct"),
        ("passwordpasswordpasswordpassword", "guessable: 7 distinct"),
    ],
)
def test_blank_or_guessable_salts_are_refused_without_echoing_them(salt: str, says: str) -> None:
    with pytest.raises(PrivacyError) as err:
        require_salt(salt)
    assert says in str(err.value) and "openssl rand" in str(err.value)
    assert salt.strip() == "" or salt[:8] not in str(err.value)


def test_random_salts_pass_the_strength_rule() -> None:
    for _ in range(200):  # what `openssl rand -hex 16` or the demo's token_urlsafe give
        require_salt(secrets.token_hex(16))
        require_salt(secrets.token_urlsafe(32))
    assert salt_bits("x" * 40) == 0.0 and salt_bits("0123456789abcdef" * 2) == pytest.approx(128.0)


def test_tokens_are_domain_separated_hmac_sha256() -> None:
    expected = hmac.new(SALT.encode(), b"user:7", hashlib.sha256).hexdigest()
    assert token(SALT, "user", 7) == expected
    assert token(SALT, "user", 7) != token(SALT, "conversation", 7)
    assert token(SALT, "user", 7) != token("z" * 32, "user", 7)


def test_salt_fingerprint_is_stable_keyed_and_reveals_nothing() -> None:
    assert salt_fingerprint(SALT) == salt_fingerprint(SALT) != salt_fingerprint("y" * 32)
    assert SALT not in salt_fingerprint(SALT)
    assert hashlib.sha256(SALT.encode()).hexdigest()[:32] != salt_fingerprint(SALT)  # keyed, not a plain hash
    assert len({random_salt() for _ in range(3)}) == 3 and len(random_salt()) >= 32


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (14_213, 15_000),
        (15_000, 15_000),
        (123, 130),
        (7, 7),
        (99, 99),
        (101, 110),
        (561_599, 570_000),
        (0, 0),
        (370_000_000_001, 380_000_000_000),
        (1.05, 1.1),
        (0.123, 0.13),
    ],
)
def test_round_up_to_two_significant_digits(value: float, rounded: float) -> None:
    assert round_up_2sig(value) == rounded


def test_small_buckets_merge_into_a_neighbour_and_keep_every_entity() -> None:
    edges, counts, merged, suppressed = merge_small_buckets(np.arange(8), np.array([3, 20, 0, 0, 5, 30, 2]), 10)
    # [0,1)=3 joins [1,2)=20; [2,3) and [3,4) stay empty; 5 joins 30; the tail 2 folds back in
    assert edges.tolist() == [0, 2, 3, 4, 7] and counts.tolist() == [23, 0, 0, 37]
    assert (merged, suppressed) == (3, 0)


def test_a_histogram_smaller_than_the_threshold_is_suppressed() -> None:
    edges, counts, merged, suppressed = merge_small_buckets(np.arange(4), np.array([3, 2, 1]), 10)
    assert len(counts) == 0 and (merged, suppressed) == (0, 3)


def test_small_categories_go_to_other_until_other_is_not_small() -> None:
    out, names, merged, suppressed = merge_small_categories(
        {"TEXT": 100, "IMAGE": 5, "FILE": 0, "AUDIO": 12, "OTHER": 1}, 10
    )
    # IMAGE (5) + OTHER (1) = 6 < 10, so the next smallest (AUDIO 12) joins too: 18
    assert out == {"TEXT": 100, "FILE": 0, "OTHER": 18}
    assert names == ["IMAGE", "AUDIO"] and (merged, suppressed) == (2, 0)
    out, _, merged, suppressed = merge_small_categories({"TEXT": 3, "IMAGE": 2}, 10)
    assert out == {} and suppressed == 3


def test_fixed_length_cells_are_zeroed() -> None:
    arr, n = zero_small_cells(np.array([0, 3, 10, 9, 50]), 10)
    assert arr.tolist() == [0, 0, 10, 0, 50] and n == 2

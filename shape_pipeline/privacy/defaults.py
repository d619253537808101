"""The privacy modes and DP defaults, written once (the CLI, the Dagster config, the sampler
and the ledger read them here; the README's privacy section documents the same numbers)."""

from __future__ import annotations

from typing import Literal, get_args

PrivacyMode = Literal["dp", "suppression"]
PRIVACY_MODES: tuple[PrivacyMode, ...] = get_args(PrivacyMode)
DEFAULT_PRIVACY: PrivacyMode = "dp"
# The one-command demo samples its fake production (nobody in it) in suppression mode, whose
# verdict is PASS at 300k messages; at that size DP costs fidelity (README, "What it costs").
DEMO_PRIVACY: PrivacyMode = "suppression"

DEFAULT_EPSILON_PER_EXTRACTION = 2.0  # one quarterly extraction
DEFAULT_YEARLY_EPSILON = 4 * DEFAULT_EPSILON_PER_EXTRACTION  # four quarterly extractions in any 365 days
DEFAULT_MAX_MESSAGES_PER_USER = 20  # L: message-level statistics
# C (conversation-level statistics): by default the smallest bound that keeps this share of all
# memberships, read from the noisy memberships-per-user histogram (post-processing), within limits.
CONVERSATIONS_KEPT = 0.95
MIN_CONVERSATIONS_PER_USER = 4
MAX_CONVERSATIONS_PER_USER = 64

"""`shape-pipeline sample`: extract an exportable shape file from a production database."""

from __future__ import annotations

import argparse
import os

from shape_pipeline import settings
from shape_pipeline.argtypes import positive_float, positive_int
from shape_pipeline.conventions import (
    DEFAULT_MIN_CELL_COUNT,
    DEFAULT_STATEMENT_TIMEOUT_MS,
    DEFAULT_WINDOW_DAYS,
    SHAPE_PREFIX,
)
from shape_pipeline.privacy.defaults import (
    CONVERSATIONS_KEPT,
    DEFAULT_EPSILON_PER_EXTRACTION,
    DEFAULT_MAX_MESSAGES_PER_USER,
    DEFAULT_PRIVACY,
    DEFAULT_YEARLY_EPSILON,
    MAX_CONVERSATIONS_PER_USER,
    MIN_CONVERSATIONS_PER_USER,
    PRIVACY_MODES,
)
from shape_pipeline.workload.spec import DEFAULT_RUNS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="extract aggregate shape metrics from the production database (inside the boundary)",
        description=(
            "Aggregates only: counts, lengths, percentiles and histograms. Default privacy: "
            "differential privacy (OpenDP noise on user-bounded counts, epsilon checked against a "
            f"yearly budget kept in the audit log). Requires {settings.SALT} (at least 32 characters)."
        ),
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(settings.PROD_DATABASE_URL),
        help=f"production database (postgresql://user@host:5432/db or sqlite:///file.db; default ${settings.PROD_DATABASE_URL})",
    )
    parser.add_argument(
        "--mapping",
        default=os.environ.get(settings.PROD_MAPPING),
        help="schema mapping YAML (default: canonical schema)",
    )
    parser.add_argument(
        "--window-days",
        type=positive_int,
        default=DEFAULT_WINDOW_DAYS,
        help=f"days in the window (default {DEFAULT_WINDOW_DAYS})",
    )
    parser.add_argument("--as-of", help="the window ends at 00:00 UTC of this date, YYYY-MM-DD (default: now)")
    parser.add_argument(
        "--privacy",
        choices=PRIVACY_MODES,
        default=DEFAULT_PRIVACY,
        help="dp: differential privacy, a formal guarantee per user (default); suppression: small cells "
        "merged and maxima rounded (no protection against differencing two extractions)",
    )
    parser.add_argument(
        "--epsilon",
        type=positive_float,
        default=DEFAULT_EPSILON_PER_EXTRACTION,
        help=f"DP: the privacy loss this extraction spends (default {DEFAULT_EPSILON_PER_EXTRACTION:g})",
    )
    parser.add_argument(
        "--epsilon-budget",
        type=positive_float,
        default=DEFAULT_YEARLY_EPSILON,
        help=f"DP: epsilon allowed over any 365 days, summed from the audit log (default {DEFAULT_YEARLY_EPSILON:g}: "
        "four quarterly extractions)",
    )
    parser.add_argument("--override-budget", action="store_true", help="DP: extract beyond the yearly budget (logged)")
    parser.add_argument(
        "--max-messages-per-user",
        type=positive_int,
        default=DEFAULT_MAX_MESSAGES_PER_USER,
        help=f"DP: messages of one user read by each message-level statistic (default {DEFAULT_MAX_MESSAGES_PER_USER})",
    )
    parser.add_argument(
        "--max-conversations-per-user",
        type=positive_int,
        default=None,
        help="DP: conversations of one user read by the conversation-level statistics (default: the "
        f"smallest number keeping {CONVERSATIONS_KEPT * 100:.0f}%% of all memberships, read from the noisy "
        f"memberships per user, from {MIN_CONVERSATIONS_PER_USER} to {MAX_CONVERSATIONS_PER_USER})",
    )
    parser.add_argument(
        "--min-cell-count",
        type=positive_int,
        default=DEFAULT_MIN_CELL_COUNT,
        help=f"suppression: smallest count exported as its own cell (default {DEFAULT_MIN_CELL_COUNT})",
    )
    parser.add_argument(
        "--output",
        help=f"shape file, or a folder for the default name {SHAPE_PREFIX}YYYYMMDD.json "
        f"(default: ${settings.EXPORT_DIR} or the current folder)",
    )
    parser.add_argument(
        "--audit-log", default=os.environ.get(settings.AUDIT_LOG), help="append-only audit log (JSON lines)"
    )
    parser.add_argument("--allow-salt-reuse", action="store_true", help="allow a salt an earlier extraction used")
    parser.add_argument(
        "--force-min-cell-count", action="store_true", help="accept a --min-cell-count below 5 (not recommended)"
    )
    parser.add_argument(
        "--statement-timeout-ms",
        type=positive_int,
        default=int(os.environ.get(settings.STATEMENT_TIMEOUT_MS) or DEFAULT_STATEMENT_TIMEOUT_MS),
        help=f"PostgreSQL statement_timeout per query (default {DEFAULT_STATEMENT_TIMEOUT_MS})",
    )
    parser.add_argument(
        "--workload",
        help="workload YAML whose query plans are exported (plan shapes only; PostgreSQL); "
        "'default' for the packaged workload of the canonical chat queries",
    )
    parser.add_argument(
        "--workload-runs",
        type=positive_int,
        default=DEFAULT_RUNS,
        help=f"EXPLAIN ANALYZE runs per (query, rank); the median time is exported (default {DEFAULT_RUNS})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shape_pipeline.sampling.export import DpSettings, sample_to_file

    sample_to_file(
        args.database_url or "",
        output=args.output,
        output_dir=os.environ.get(settings.EXPORT_DIR) or None,
        mapping_path=args.mapping,
        window_days=args.window_days,
        as_of=args.as_of,
        privacy=args.privacy,
        dp=DpSettings(
            epsilon=args.epsilon,
            yearly_budget=args.epsilon_budget,
            override_budget=args.override_budget,
            max_messages_per_user=args.max_messages_per_user,
            max_conversations_per_user=args.max_conversations_per_user,
        ),
        min_cell_count=args.min_cell_count,
        audit_log=args.audit_log,
        allow_salt_reuse=args.allow_salt_reuse,
        force_min_cell_count=args.force_min_cell_count,
        statement_timeout_ms=args.statement_timeout_ms,
        workload_path=args.workload,
        workload_runs=args.workload_runs,
    )
    return 0

"""`shape-pipeline generate`: a calibrated config -> a synthetic dataset in a database and/or Parquet."""

from __future__ import annotations

import argparse
import os
from typing import Any

from shape_pipeline import settings
from shape_pipeline.argtypes import positive_int
from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.conventions import CONFIG_PREFIX
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import check_writable, load_json_model
from shape_pipeline.generation.bands import BAND_NAMES, BANDS_HELP, DEFAULT_BAND, band_messages
from shape_pipeline.generation.partitions import PARTITION_KEYS
from shape_pipeline.generation.seeds import DEFAULT_SEED


def target_messages(target: int | None, band: str | None) -> int:
    """--target-messages wins; else the band's size (default band: dev)."""
    if target is not None:
        if target < 1:
            raise ShapePipelineError("--target-messages: must be at least 1")
        return target
    return band_messages(band or DEFAULT_BAND)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate a production-shaped synthetic dataset from a calibrated config",
        description="Generate users, conversations, members and messages from a calibrated config "
        "into a database (one transaction, COPY for PostgreSQL) and/or a Parquet folder.",
    )
    parser.add_argument("--config", required=True, help=f"{CONFIG_PREFIX}YYYYMMDD.json")
    parser.add_argument("--database-url", help="target database (PostgreSQL or SQLite URL)")
    parser.add_argument("--mapping", help="YAML schema mapping of the target (default: canonical schema)")
    parser.add_argument("--replace", action="store_true", help="empty target tables that hold rows (same transaction)")
    parser.add_argument("--parquet-dir", help="write DIR/users, DIR/conversations, DIR/members, DIR/messages")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--target-messages", type=positive_int, help="number of messages (exact)")
    size.add_argument(
        "--band",
        choices=BAND_NAMES,
        help=f"{BANDS_HELP} (default: {DEFAULT_BAND})",
    )
    parser.add_argument(
        "--seed", default=DEFAULT_SEED, help=f"any text; same seed, same rows (default: {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes that generate shards in parallel; the rows are the same for any number (default 1)",
    )
    parser.add_argument(
        "--partition",
        action="append",
        choices=PARTITION_KEYS,
        metavar="KEY",
        help="stage only this generation partition (repeatable; one of "
        f"{PARTITION_KEYS[0]}, {PARTITION_KEYS[1]} ... {PARTITION_KEYS[-1]}), e.g. one per machine with the "
        "same config, size and seed; whichever run stages the last one publishes all of them in one "
        "transaction (default: everything in this process)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check every input that can be checked cheaply (options, the Parquet folder, the size
    against this machine's memory) before anything is planned, connected or created."""
    from shape_pipeline.generation.capacity import check_plannable
    from shape_pipeline.generation.generate import generate_dataset

    if not args.database_url and not args.parquet_dir:
        raise ShapePipelineError("generate: give --database-url and/or --parquet-dir")
    if args.mapping and not args.database_url:
        raise ShapePipelineError("--mapping: only applies with --database-url")
    if args.parquet_dir:
        check_writable(args.parquet_dir, option="--parquet-dir", folder=True)
    config = load_json_model(args.config, CalibratedConfig, what="calibrated config")
    size = target_messages(args.target_messages, args.band)
    check_plannable(
        size, "--target-messages" if args.target_messages else "--band", config=config, workers=args.workers
    )
    options = generation_options(args, config, size)
    if args.partition:
        return stage_partitions(options, list(dict.fromkeys(args.partition)), args.workers)
    generate_dataset(**options, workers=args.workers, progress=True)
    return 0


def generation_options(args: argparse.Namespace, config: CalibratedConfig, size: int) -> dict[str, Any]:
    """What `generate_dataset` and `PartitionedGeneration` both take, from the command line."""
    return {
        "config": config,
        "target_messages": size,
        "seed": args.seed,
        "database_url": args.database_url,
        "mapping_path": args.mapping,
        "replace": args.replace,
        "parquet_dir": args.parquet_dir,
        "production_url": os.environ.get(settings.PROD_DATABASE_URL) or None,
    }


def stage_partitions(options: dict[str, Any], keys: list[str], workers: int) -> int:
    """Stage partitions `keys`; publish if every partition of this plan is now staged."""
    from shape_pipeline.generation.generate import PartitionedGeneration

    with PartitionedGeneration(**options) as generation:
        generation.stage(keys, workers=workers)
        missing = generation.missing()
        if missing:
            generation.report.line(f"Not published yet: waiting for partition(s) {', '.join(missing)}")
            return 0
        generation.publish()
    return 0

"""What differential privacy costs in fidelity: epsilon against the validator's verdicts.

For each size, a simulated production (`chat_simulator`, canonical schema: not the generator)
is loaded into a throw-away PostgreSQL database (created and dropped here). For suppression
mode (the baseline, measured in the same run) and for each epsilon: sample the last 30 days,
calibrate, generate a Parquet dataset as large as the shape's message total, and validate it
against the shape at the given tolerance. Prints one row per run: verdict counts, the worst
percentile error over all tests, and the failing tests.

    .venv/bin/python benchmarks/bench_dp_fidelity.py [--messages 100000 500000] [--epsilon 1 2 4 8 16]

One run per cell: the noise is fresh each time, so single verdicts move between runs. The
server comes from SHAPE_PIPELINE_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), as in the test suite.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

import common  # noqa: E402 - puts the repository on the import path

from chat_simulator import build_world  # noqa: E402
from shape_pipeline.calibration.calibrate import calibrate_file  # noqa: E402
from shape_pipeline.contracts import FidelityReport  # noqa: E402
from shape_pipeline.fidelity.validate import validate_to_files  # noqa: E402
from shape_pipeline.generation.generate import generate_dataset  # noqa: E402
from shape_pipeline.sampling.export import DpSettings, sample_to_file  # noqa: E402

END = datetime(2025, 6, 2, tzinfo=UTC)
VERDICTS = ("PASS", "WARNING", "FAIL", "SKIPPED")


def silent(_: str) -> None:
    return None


def one_run(url: str, folder: Path, privacy: str, epsilon: float, tolerance: float) -> FidelityReport:
    """sample -> calibrate -> generate (Parquet, production's size) -> validate."""
    folder.mkdir(parents=True)
    sampled = sample_to_file(
        url,
        output=folder / "shape.json",
        as_of=END.date(),
        salt=secrets.token_hex(32),
        privacy=privacy,
        dp=DpSettings(epsilon=epsilon, override_budget=True),
        audit_log=folder / "audit.jsonl",
        emit=silent,
    )
    config = calibrate_file(sampled.path, folder / "config.json", emit=silent)
    messages = sampled.shape.totals.count("messages") if sampled.shape.totals else None
    generate_dataset(config, target_messages=max(messages or 0, 1_000), parquet_dir=folder / "pq", emit=silent)
    return validate_to_files(
        sampled.path,
        folder / "report.json",
        parquet_dir=folder / "pq",
        config_path=folder / "config.json",
        tolerance=tolerance,
        emit=silent,
    )


def row(size: int, label: str, report: FidelityReport) -> str:
    tests = report.tests
    counts = " / ".join(str(sum(t.verdict == v for t in tests.values())) for v in VERDICTS)
    worst = max((t.max_percentile_error or 0.0 for t in tests.values() if t.verdict != "SKIPPED"), default=0.0)
    failing = ", ".join(k for k, t in tests.items() if t.verdict == "FAIL") or "none"
    return f"| {size:,} | {label} | {report.overall_verdict} | {counts} | {worst:.3g} | {failing} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[100_000, 500_000])
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0, 16.0])
    parser.add_argument("--tolerance", type=float, default=0.15)
    args = parser.parse_args(argv)
    server = common.scratch_server()
    print(f"| messages | privacy | overall | {' / '.join(VERDICTS)} | worst percentile error | failing tests |")
    print("|---|---|---|---|---|---|")
    try:
        for size in args.messages:
            with server.database("sp_bench_dp") as url:
                build_world("canonical", size, f"bench-dp-{size}", END).load(url)
                with tempfile.TemporaryDirectory() as tmp:
                    runs = [("suppression", "suppression, k = 10", 1.0)]
                    runs += [("dp", f"DP epsilon {e:g}", e) for e in args.epsilon]
                    for i, (privacy, label, epsilon) in enumerate(runs):
                        report = one_run(url, Path(tmp) / str(i), privacy, epsilon, args.tolerance)
                        print(row(size, label, report), flush=True)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`shape-pipeline generate` through its parser and handler."""

from __future__ import annotations

import argparse
import os
import tracemalloc

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from shape_pipeline import settings
from shape_pipeline.contracts import CalibratedConfig, QuantileSplineModel
from shape_pipeline.db import create_engine
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import write_model_atomic
from shape_pipeline.generation import capacity, command
from shape_pipeline.generation.bands import band_messages
from shape_pipeline.generation.plan import make_plan


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shape-pipeline")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["generate", *argv])


@pytest.fixture
def config_file(config, tmp_path):
    return write_model_atomic(tmp_path / "calibrated-config-20251022.json", config)


def test_generate_parquet_with_target_and_seed(config_file, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(settings.PROD_DATABASE_URL, raising=False)
    args = parse(
        [
            "--config",
            str(config_file),
            "--parquet-dir",
            str(tmp_path / "out"),
            "--target-messages",
            "3000",
            "--seed",
            "dev_calibrated_20251022",
        ]
    )
    assert args.handler(args) == 0
    assert ds.dataset(tmp_path / "out" / "messages").count_rows() == 3000
    out = capsys.readouterr().out
    assert "=== SYNTHETIC DATA GENERATION ===" in out and "[Generator] Seed: dev_calibrated_20251022" in out
    assert "[Generator] ✓ Generated" in out


def test_band_and_default_seed(config_file):
    args = parse(["--config", str(config_file), "--parquet-dir", "x", "--band", "pilot"])
    assert command.target_messages(args.target_messages, args.band) == 5_000_000
    assert command.target_messages(None, None) == 500_000
    assert args.seed == "shape-pipeline"
    with pytest.raises(SystemExit):
        parse(["--config", str(config_file), "--band", "dev", "--target-messages", "5"])


def test_bad_inputs_are_one_line_errors(config_file, tmp_path):
    args = parse(["--config", str(config_file)])
    with pytest.raises(ShapePipelineError, match="--database-url and/or --parquet-dir"):
        args.handler(args)
    missing = parse(["--config", str(tmp_path / "nope.json"), "--parquet-dir", str(tmp_path)])
    with pytest.raises(ShapePipelineError, match="No such file or directory: .*nope.json"):
        missing.handler(missing)
    broken = tmp_path / "broken.json"
    broken.write_text(config_file.read_text().replace('"alpha"', '"alfa"'))
    bad = parse(["--config", str(broken), "--parquet-dir", str(tmp_path / "p")])
    with pytest.raises(ShapePipelineError, match="broken.json: .*alpha"):
        bad.handler(bad)
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_production_url_from_the_environment_is_refused(config_file, monkeypatch, make_pg_database):
    url = make_pg_database("cli_prod")
    monkeypatch.setenv(settings.PROD_DATABASE_URL, url)
    args = parse(["--config", str(config_file), "--database-url", url, "--target-messages", "100"])
    with pytest.raises(ShapePipelineError, match="production database"):
        args.handler(args)


def short_conversations_many_users(config: CalibratedConfig) -> CalibratedConfig:
    """The plan's worst case per message: every conversation 1-3 messages, a user per message."""
    heavy = config.model_copy(deep=True)
    heavy.totals.users = heavy.totals.messages
    heavy.conversation_generation.messages_per_conversation = QuantileSplineModel(
        knots=[(0.5, 1.0), (0.9, 2.0), (0.99, 3.0)], min=1, max=3
    )
    return heavy


@pytest.mark.parametrize("heavy", [False, True])
def test_plan_bytes_bound_the_measured_plan(config, heavy):
    """The estimate is at least what make_plan allocates at its peak, and not wildly more."""
    chosen = short_conversations_many_users(config) if heavy else config
    for messages in (400_000, 1_000_000):
        tracemalloc.start()
        try:
            make_plan(chosen, target_messages=messages, seed="capacity")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        estimate = capacity.plan_bytes(messages, chosen)
        assert peak <= estimate <= 2 * peak, (messages, peak, estimate)
    assert capacity.plan_bytes(400_000, chosen, workers=4) > capacity.plan_bytes(400_000, chosen)


def test_check_plannable_refuses_beyond_this_machine(config):
    memory = capacity.machine_memory()
    assert memory is not None and 0 < memory <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    largest = capacity.largest_plannable_messages(config)
    assert capacity.plan_bytes(largest, config) <= memory * capacity.MEMORY_SHARE
    assert band_messages("perf") < largest  # the documented bands fit on this machine
    capacity.check_plannable(largest, config=config)
    with pytest.raises(ShapePipelineError) as info:
        capacity.check_plannable(largest + largest // 10 + 1, "--band", config=config)
    text = str(info.value)
    assert text.startswith(f"--band: {largest + largest // 10 + 1:,} messages cannot be planned on this machine")
    assert f"at most about {capacity.about(largest)} with {capacity.gib(memory)} of memory" in text
    assert capacity.largest_plannable_messages(config, workers=4) < largest
    assert capacity.largest_plannable_messages(None) < largest  # no config: the conservative bound
    assert capacity.about(1_234_567_890) == "1,230,000,000" and capacity.about(42) == "42"


def test_impossible_size_is_refused_before_anything_is_opened(config_file, tmp_path, make_pg_database):
    url = make_pg_database("capacity")
    args = parse(
        [
            "--config",
            str(config_file),
            "--database-url",
            url,
            "--parquet-dir",
            str(tmp_path / "p"),
            "--target-messages",
            str(10**13),
        ]
    )
    with pytest.raises(ShapePipelineError, match=r"^--target-messages: 10,000,000,000,000 messages cannot be planned"):
        args.handler(args)
    assert not (tmp_path / "p").exists()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()

"""`shape-pipeline generate` through its parser and handler."""

from __future__ import annotations

import argparse

import pyarrow.dataset as ds
import pytest

from shape_pipeline import settings
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import write_model_atomic
from shape_pipeline.generation import command


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shape-pipeline")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["generate", *argv])


@pytest.fixture
def config_file(config, tmp_path):
    return write_model_atomic(tmp_path / "calibrated-config-20251022.json", config)


def test_generate_parquet_with_target_and_seed(config_file, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(settings.PROD_DATABASE_URL, raising=False)
    args = parse(["--config", str(config_file), "--parquet-dir", str(tmp_path / "out"),
                  "--target-messages", "3000", "--seed", "dev_calibrated_20251022"])
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

"""The command line as installed: every subcommand is there, errors are one line with exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shape_pipeline.cli import main

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SHAPE_PIPELINE_", "ANONYMIZATION_SALT"))}


def test_every_subcommand_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in ("sample", "calibrate", "generate", "validate", "demo"):
        assert command in text


def test_console_script_and_module_agree(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "shape-pipeline"
    for command in ([str(script)], [sys.executable, "-m", "shape_pipeline"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, env=ENV, check=False)
        assert done.returncode == 0 and done.stdout.startswith("shape-pipeline ")


def test_user_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "shape-metrics-prod.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shape_pipeline",
            "calibrate",
            "--shape",
            str(missing),
            "--output",
            str(tmp_path / "c.json"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: No such file or directory: {missing} (shape metrics)"
    assert not (tmp_path / "c.json").exists()


def test_missing_salt_is_the_seed_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shape_pipeline",
            "sample",
            "--database-url",
            "sqlite:///x.db",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: ANONYMIZATION_SALT environment variable required"
    assert list(tmp_path.iterdir()) == []


def test_building_the_parser_loads_no_step_library() -> None:
    """Each step imports its heavy libraries only when it runs (keeps `calibrate` under a second)."""
    code = (
        "import sys; from shape_pipeline.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('matplotlib', 'pyarrow', 'apprise', 'scipy.stats', "
        "'shape_pipeline.generation.generate', 'shape_pipeline.fidelity.validate', "
        "'shape_pipeline.sampling.extract', 'shape_pipeline.calibration.calibrate') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert done.stdout.strip() == "[]"


def test_sigterm_runs_the_clean_ups_and_a_second_one_cannot_cut_them_short() -> None:
    code = (
        "import os, signal, time\n"
        "from shape_pipeline.cli import Terminated, sigterm_raises\n"
        "try:\n"
        "    with sigterm_raises():\n"
        "        try:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "            time.sleep(5)\n"
        "            print('not interrupted')\n"
        "        finally:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "            time.sleep(0.1)\n"
        "            print('cleaned up')\n"
        "except Terminated as exc:\n"
        "    print('terminated', isinstance(exc, KeyboardInterrupt))\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["cleaned up", "terminated True", "True", ""]


def test_main_puts_the_previous_sigterm_handler_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    missing = tmp_path / "missing.json"
    assert main(["calibrate", "--shape", str(missing), "--output", str(tmp_path / "c.json")]) == 2
    assert capsys.readouterr().err == f"error: No such file or directory: {missing} (shape metrics)\n"
    assert signal.getsignal(signal.SIGTERM) is before

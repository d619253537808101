"""Atomic writes: one `cannot write PATH: reason` line, no temporary file, no new folder, and
several files written all or none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shape_pipeline import files
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.files import (
    check_writable,
    write_bytes_atomic,
    write_text_atomic,
    write_texts_atomic,
)


def listing(folder: Path) -> set[str]:
    """Every entry under `folder`, hidden ones included (what a failed write must not change)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def place(tmp_path: Path) -> Path:
    (tmp_path / "file.txt").write_text("a file, not a folder")
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("file.txt/out.json", "{place}/file.txt is not a directory"),
        ("file.txt/deeper/out.json", "{place}/file.txt is not a directory"),
        ("folder", "it is a directory"),
    ],
)
def test_a_path_that_cannot_be_a_file_is_one_line(place: Path, relative: str, reason: str) -> None:
    before = listing(place)
    target = place / relative
    with pytest.raises(ShapePipelineError) as info:
        write_text_atomic(target, "{}")
    assert str(info.value) == f"cannot write {target}: {reason.format(place=place)}"
    assert listing(place) == before


@pytest.mark.parametrize("target", ["/proc/r.json", "/proc/x/y.json"])
def test_a_folder_that_refuses_files_is_one_line(target: str) -> None:
    """Tests run as root, so chmod cannot make a folder unwritable; /proc refuses new files."""
    with pytest.raises(ShapePipelineError, match=rf"^cannot write {target}: /proc does not accept new files$"):
        write_bytes_atomic(target, b"{}")
    assert not Path(target).exists()


def test_check_writable_names_the_option_and_creates_nothing(place: Path) -> None:
    before = listing(place)
    assert (
        check_writable(place / "new" / "deeper" / "out.json", option="--output")
        == place / "new" / "deeper" / "out.json"
    )
    assert check_writable(place / "new-folder", option="--parquet-dir", folder=True) == place / "new-folder"
    for path, option, folder, reason in [
        (place / "file.txt" / "out.json", "--output", False, f"{place / 'file.txt'} is not a directory"),
        (place / "folder", "--output", False, "it is a directory"),
        (place / "file.txt", "--parquet-dir", True, f"{place / 'file.txt'} is not a directory"),
        (Path("/proc/r.json"), "--html", False, "/proc does not accept new files"),
        (Path("/proc/new-folder"), "--parquet-dir", True, "/proc does not accept new files"),
    ]:
        with pytest.raises(ShapePipelineError) as info:
            check_writable(path, option=option, folder=folder)
        assert str(info.value) == f"{option}: cannot write {path}: {reason}"
    assert listing(place) == before


def test_a_failed_write_keeps_the_old_file(place: Path) -> None:
    target = place / "folder" / "report.json"
    target.write_text("old")
    with pytest.raises(ShapePipelineError, match="/proc does not accept new files"):
        write_texts_atomic({target: "new", "/proc/r.html": "<html>"})
    assert target.read_text() == "old"
    assert listing(place / "folder") == {"report.json"}


def test_two_files_are_written_both_or_neither(place: Path) -> None:
    before = listing(place)
    json_path, html_path = place / "new" / "r.json", place / "file.txt" / "r.html"
    with pytest.raises(ShapePipelineError, match=f"cannot write {html_path}: .*file.txt is not a directory"):
        write_texts_atomic({json_path: "{}", html_path: "<html>"})
    assert listing(place) == before  # neither the JSON nor its new folder
    written = write_texts_atomic({json_path: "{}", place / "r.html": "<html>"})
    assert written == [json_path, place / "r.html"]
    assert json_path.read_text() == "{}" and (place / "r.html").read_text() == "<html>"
    assert not [p for p in listing(place) if p.split("/")[-1].startswith(".")]


def test_an_interruption_between_renames_puts_the_first_file_back(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (raised as an exception by the CLI) can arrive between the two renames."""
    first, second = place / "folder" / "r.json", place / "folder" / "r.html"
    first.write_text("old json")
    real_replace = os.replace
    calls: list[str] = []

    def replace_then_interrupt(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(str(dst))
        if Path(dst) == second:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_texts_atomic({first: "new json", second: "new html"})
    monkeypatch.undo()
    assert calls[:2] == [str(first), str(second)]
    assert first.read_text() == "old json"
    assert listing(place / "folder") == {"r.json"}

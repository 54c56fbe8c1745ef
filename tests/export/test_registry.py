"""The export seam: a format defined in the tests folder is registered and written, no package file edited."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers.fake_runs import row, write_run
from w2v2bench.cli import export as export_cli
from w2v2bench.export import ExportError, ExportRun, Format, export, formats, register
from w2v2bench.export.base import REGISTRY


def toy_files(run: ExportRun) -> tuple[dict[str, str], dict]:
    """One line per scored utterance: `<id> <hypothesis>`, as a toy consumer would read it."""
    text = "".join(f"{s.id} {s.pred_text}\n" for s in run.scored)
    return {f"{run.stem}.toy.txt": text}, {"toy_lines": len(run.scored)}


def toy_combined(runs: list[ExportRun]) -> tuple[dict[str, str], dict]:
    return {"toy-index.json": json.dumps([r.stem for r in runs])}, {"toy_runs": len(runs)}


@pytest.fixture
def toy():
    fmt = register(Format("toy", toy_files, toy_combined))
    yield fmt
    del REGISTRY["toy"]


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run", [row("1-1-0000", "A B C", "A B X"), row("1-1-0001", "D E", None, "bad audio")])


def test_a_registered_format_is_written_and_recorded(toy, run, tmp_path):
    assert formats()[-1] == "toy"
    record = export([run], tmp_path / "out", formats=["toy"])
    (stem_file,) = [f for f in record["files"] if f.endswith(".toy.txt")]
    assert (tmp_path / "out" / stem_file).read_text() == "1-1-0000 A B X\n"  # the failed utterance left out
    assert json.loads((tmp_path / "out" / "toy-index.json").read_text()) == [stem_file.removesuffix(".toy.txt")]
    written = json.loads((tmp_path / "out" / "export.json").read_text())
    assert written["runs"][0]["toy_lines"] == 1 and written["toy_runs"] == 1
    assert written["files"] == [stem_file, "toy-index.json"]


def test_the_command_line_takes_a_registered_format(toy, run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        sys, "argv", ["w2v2bench export", f"run={run}", f"out={tmp_path / 'out'}", "formats=[toy,nemo]"]
    )
    export_cli.main()
    assert "toy-index.json" in capsys.readouterr().out
    assert sorted(p.suffixes[-2] for p in (tmp_path / "out").glob("*.*.*")) == [".nemo", ".toy"]


def test_an_unregistered_format_names_the_registered_ones(run, tmp_path):
    with pytest.raises(ExportError, match=r"formats=\['toy'\]: expected a non-empty list of \['leaderboard', "):
        export([run], tmp_path / "out", formats=["toy"])


def test_a_name_is_registered_once(toy):
    with pytest.raises(ValueError, match="'toy' is registered already"):
        register(Format("toy", toy_files))
    assert register(toy) is toy  # the same format again is harmless


@pytest.mark.parametrize("name", ["../escape.txt", "sub/dir.txt", "..", "", "nul\0.txt"])
def test_a_format_whose_file_name_is_not_plain_writes_nothing(run, tmp_path, name):
    fmt = register(Format("bad", lambda r: ({name: "x"}, {})))
    try:
        with pytest.raises(ExportError, match="not a plain file name"):
            export([run], tmp_path / "out", formats=["nemo", "bad"])
    finally:
        del REGISTRY[fmt.name]
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


def test_export_never_replaces_files_it_did_not_write(tmp_path):
    # a user's own model-index.yaml (no export.json beside it) stays; a re-export rewrites only its own files
    run = write_run(tmp_path / "run", [row("1-2-3", "A B", "A B")])
    out = tmp_path / "out"
    out.mkdir()
    (out / "model-index.yaml").write_text("mine: true\n")
    with pytest.raises(ExportError, match=r"holds model-index\.yaml, which export did not write: nothing there is"):
        export([run], out)
    assert (out / "model-index.yaml").read_text() == "mine: true\n" and len(list(out.iterdir())) == 1
    fresh = tmp_path / "fresh"
    first = export([run], fresh)
    second = export([run], fresh)  # its own files, named in its export.json: rewritten
    assert first["files"] == second["files"]
    with pytest.raises(ExportError, match="which export did not write"):
        export([run], run)  # a run folder

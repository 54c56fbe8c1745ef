"""bench/ and tools/ follow the package: every name they import from it exists, and the benchmark runs."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("bench/*.py"), *ROOT.glob("tools/*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_a_script_imports_from_the_package_exists(script):
    # most of their imports sit inside functions that run only in a benchmark worker: read them all
    found = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "w2v2bench":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")  # a submodule
            found.append(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "w2v2bench":
                    importlib.import_module(alias.name)
                    found.append(alias.name)
    assert found, f"{script} imports nothing from w2v2bench: is this test still reading the right files?"


@pytest.mark.slow  # a dozen worker processes and one ONNX export (of the tiny architecture)
def test_bench_runs_on_two_utterances(tmp_path):
    done = subprocess.run(
        [sys.executable, ROOT / "bench" / "bench.py", "--limit", "2", "--repeat", "2", "--model", "tiny",
         "--fixed-passes", "1"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "W2V2BENCH_BENCH_OUT": str(tmp_path / "bench"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 real LibriSpeech test-other utterances" in done.stdout
    exact = [line for line in done.stdout.splitlines() if line.startswith("| harness bs 1 vs harness exact bs 32")]
    assert exact and exact[0].endswith("| 100 % |"), exact
    assert (tmp_path / "bench" / "bench.md").is_file()
    fixed = [line for line in done.stdout.splitlines() if line.startswith("| fixed cost: ")]
    assert [line.split(",")[0] for line in fixed] == [
        "| fixed cost: process start to first batch",
        "| fixed cost: one utterance",
    ], fixed
    assert all("(median of 1, interleaved)" in line for line in fixed), fixed

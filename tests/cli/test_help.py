"""--help is answered at once: neither torch nor transformers is imported for it (the time is printed, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from w2v2bench.__main__ import tools

PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = ["w2v2bench", *json.loads(sys.argv[1]), "--help"]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module("w2v2bench", run_name="__main__")
    except SystemExit:
        pass
print(json.dumps({"heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules), "help": out.getvalue()}))
"""


@pytest.mark.parametrize("tool", ["", *tools()])
def test_help_imports_neither_torch_nor_transformers(tool):
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([tool] if tool else [])], capture_output=True, text=True, timeout=120
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    print(f"python -m w2v2bench {tool} --help: {seconds:.2f} s")  # reported, not asserted (pytest -s shows it)
    assert found["help"].strip(), "no help printed"
    assert found["heavy"] == [], f"--help of {tool or 'the harness'} imported {found['heavy']}"


def test_the_help_lists_every_tool():
    done = subprocess.run([sys.executable, "-m", "w2v2bench", "--help"], capture_output=True, text=True, timeout=120)
    listed = done.stdout.split("Tools:", 1)[1].split()
    assert [t for t in tools() if t in listed] == tools() and len(tools()) == 8, (tools(), listed)


OLD_SPELLINGS = {**{t: t for t in tools()}, "rescore": "score", "random_model": None}


@pytest.mark.parametrize("module,tool", OLD_SPELLINGS.items(), ids=list(OLD_SPELLINGS))
def test_the_old_spellings_still_run_their_tool(module, tool):
    # python -m w2v2bench.<tool> (the spelling before cli/): the same help as python -m w2v2bench <tool>, never a
    # module that runs nothing and exits 0
    old = subprocess.run([sys.executable, "-m", f"w2v2bench.{module}", "--help"], capture_output=True, text=True)
    assert old.returncode == 0 and old.stdout.strip(), old.stderr[-2000:]
    if tool is not None:
        new = subprocess.run([sys.executable, "-m", "w2v2bench", tool, "--help"], capture_output=True, text=True)
        assert new.stdout == old.stdout
    else:
        assert "Usage: python -m w2v2bench.random_model out=<folder>" in old.stdout

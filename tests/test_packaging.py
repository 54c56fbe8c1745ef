"""The distribution: a wheel built from the tree, installed (not editable) in a fresh venv, runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole harness processes: make test-slow

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_runs_from_a_fresh_venv(tmp_path):
    # the package list is found (setup.py), not kept by hand: a subpackage left out would be missing here only
    # from a copy of the files git would commit: a build/ folder left in the checkout can hide a missing file
    tree = tmp_path / "tree"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", tree],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("w2v2bench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    # the dependencies from this interpreter's site-packages (a path in a .pth file: the editable install's own
    # .pth files there are not read), w2v2bench itself only from the wheel
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)

    where = run("-c", "import w2v2bench; print(w2v2bench.__file__)")
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    helped = run("-m", "w2v2bench", "--help")
    assert helped.returncode == 0 and "Tools:" in helped.stdout, helped.stderr[-2000:]
    demo = run("-m", "w2v2bench", "model=demo", "data=demo", "split=clean", "limit=1", "output_dir=run")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file()
    table = subprocess.run(
        [venv / "bin" / "w2v2bench", "table", "root=run"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert table.returncode == 0 and "demo" in table.stdout, table.stderr[-2000:]

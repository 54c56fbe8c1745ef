"""What the command line sets for its own process (issue #31): glibc keeps freed host memory for reuse, and the
interpreter's exit skips the cyclic collector's last walk. The library never touches either."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

FAULTS = """
import resource, sys
import torch
import w2v2bench.harness, w2v2bench.pipeline  # the library: it leaves glibc as it is
if sys.argv[1] == "tuned":
    from w2v2bench.cli import reuse_freed_host_memory
    assert reuse_freed_host_memory()
faults = []
for _ in range(5):  # 400 MB, written, freed: as a CPU forward's activations, batch after batch
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(100_000_000).sum()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


GLIBC = platform.libc_ver()


@pytest.mark.skipif(
    GLIBC[0] != "glibc" or tuple(map(int, GLIBC[1].split(".")[:2])) < (2, 35),
    reason="glibc 2.35 or later (before it the mmap threshold stops at 32 MiB)",
)
def test_freed_host_memory_is_reused_rather_than_faulted_in_again():
    faults = {}
    for mode in ("default", "tuned"):
        done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        faults[mode] = [int(n) for n in done.stdout.split()]
    pages = 400_000_000 // 4096
    assert all(n > pages * 0.9 for n in faults["default"]), faults  # glibc maps each buffer afresh
    assert sum(faults["tuned"][-3:]) < pages / 10, faults  # where it is reused once the heap has grown


def test_the_command_line_sets_up_its_own_process(monkeypatch):
    from w2v2bench.cli import bench

    called = []
    monkeypatch.setattr(bench, "reuse_freed_host_memory", lambda: called.append("mallopt"))
    monkeypatch.setattr(bench, "skip_the_last_collections", lambda: called.append("freeze"))
    monkeypatch.setattr(sys, "argv", ["w2v2bench", "model=nope"])
    with pytest.raises(SystemExit):
        bench.main()
    assert called == ["freeze", "mallopt"]


REGISTERED = """
import atexit, gc, sys
registered = []
atexit.register = lambda f, *a, **k: registered.append(f)
import w2v2bench, w2v2bench.harness, w2v2bench.pipeline, w2v2bench.api
library = registered.count(gc.freeze)
from w2v2bench.cli import skip_the_last_collections
skip_the_last_collections(); skip_the_last_collections()
print(library, registered.count(gc.freeze))
"""


def test_the_exit_skips_the_last_collections_once_and_only_for_a_command():
    done = subprocess.run([sys.executable, "-c", REGISTERED], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "1"]

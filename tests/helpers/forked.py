"""Many runs of `python -m w2v2bench` from one interpreter: each a forked child (a real process, which a test
may have killed with SIGKILL at a chosen step), without paying torch's and transformers' imports each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A job: {"args": [...], "kill_at": n, "log": path}. With kill_at > 0 the child counts the file-system commits
# (os.replace, os.unlink) made once the last batch is done and kills itself with SIGKILL just before the n-th.
DRIVER = """
import json, os, signal, sys
import w2v2bench.__main__ as cli
import w2v2bench.harness  # the run's modules, imported once before any fork (cli imports them only to run)
from w2v2bench import resume
from transformers import Wav2Vec2ForCTC  # imported once, before any fork

def child(job):
    armed, count = [False], [0]
    finish = resume.Journal.finish
    def arming_finish(self, *args, **kwargs):
        armed[0] = True
        return finish(self, *args, **kwargs)
    resume.Journal.finish = arming_finish
    def guarded(call):
        def step(*args, **kwargs):
            if armed[0]:
                count[0] += 1
                if count[0] == job["kill_at"]:
                    os.kill(os.getpid(), signal.SIGKILL)
            return call(*args, **kwargs)
        return step
    os.replace, os.unlink = guarded(os.replace), guarded(os.unlink)
    log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.argv = ["w2v2bench", *job["args"]]
    code = 1
    try:
        cli.main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        print(json.dumps({"finish_steps": count[0]}), file=sys.stderr, flush=True)
        os._exit(code)

results = []
for job in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        child(job)
    _, status = os.waitpid(pid, 0)
    results.append({"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                    "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None})
print(json.dumps(results))
"""


def run_forked(jobs: list[dict], logs: Path, timeout: int = 600, env: dict[str, str] | None = None) -> list[dict]:
    """Run each job's `python -m w2v2bench <args>` in turn; per job: signal, code, output (stdout and stderr
    together) and finish_steps (how many finish steps it passed, when it was not killed)."""
    logs.mkdir(parents=True, exist_ok=True)
    jobs = [{"kill_at": 0, **job, "log": str(logs / f"job-{n}.log")} for n, job in enumerate(jobs)]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    for job, result in zip(jobs, results, strict=True):
        output = Path(job["log"]).read_text()
        last = output.rstrip("\n").rsplit("\n", 1)[-1]
        steps = json.loads(last)["finish_steps"] if last.startswith('{"finish_steps"') else None
        result.update(output=output.removesuffix(last + "\n") if steps is not None else output, finish_steps=steps)
    return results

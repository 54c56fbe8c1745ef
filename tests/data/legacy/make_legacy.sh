#!/usr/bin/env bash
# Regenerates tests/data/legacy/ (README.md there says what each part is) with the code of THIS checkout.
#
#   PYTHON=.venv/bin/python tests/data/legacy/make_legacy.sh
#
# Only ever run it to pin a new behaviour on purpose: tests/test_legacy.py checks later code against what it
# writes. It runs this checkout's src/ (PYTHONPATH), offline, from a fresh temporary work folder holding
# ./model and ./corpus (symlinks to the shipped demo model and demo corpus), so that every path stored in
# the runs' configs is relative and a resume or re-score works from any clone.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PY=${PYTHON:-python}
case $PY in /*) ;; */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac
OUT=$REPO/tests/data/legacy
export HF_HUB_OFFLINE=1
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}

# the package and its Hydra configs must be this checkout's (an editable install of another checkout maps
# w2v2bench.conf to that checkout's conf/)
PKG=$("$PY" -c 'import importlib.util as u; print(u.find_spec("w2v2bench").submodule_search_locations[0])')
CONF=$("$PY" -c 'import importlib.util as u; print(u.find_spec("w2v2bench.conf").submodule_search_locations[0])')
[ "$PKG" = "$REPO/src/w2v2bench" ] || { echo "w2v2bench is imported from $PKG, not $REPO/src" >&2; exit 1; }
diff -r -x __pycache__ "$CONF" "$REPO/conf" >/dev/null \
  || { echo "w2v2bench.conf ($CONF) differs from $REPO/conf" >&2; exit 1; }
echo "code: $(git -C "$REPO" rev-parse HEAD) ($(git -C "$REPO" status --porcelain --untracked-files=no | wc -l) changed files)"

WORK=$(mktemp -d)
WORK2=$(mktemp -d)
trap 'rm -rf "$WORK" "$WORK2"' EXIT
cd "$WORK"
ln -s "$PKG/assets/demo-model" model
ln -s "$PKG/assets/demo-corpus" corpus
# device=cpu: the same run on a machine with a GPU (device=auto would pick it, and batch_size 256 with it)
RUN=(model=demo model.checkpoint=./model data=demo data.root=./corpus split=other limit=6 device=cpu)

# 1. complete: a whole run (exit 0: limit=6 skips the reference check)
"$PY" -m w2v2bench "${RUN[@]}" output_dir=./complete

# 2. interrupted: the same run in another folder, killed with SIGKILL by itself right after its second batch
# (batch_size=1 on the CPU: one utterance each) was written and flushed to the journal; that is, a real process
# dying with summary.json at status "running" and transcripts.partial.jsonl holding a header and two rows
status=0
"$PY" - "${RUN[@]}" output_dir=./interrupted <<'EOF' || status=$?
import os, signal, sys
from w2v2bench import __main__ as cli, report

write, calls = report.Journal.write, [0]
def write_then_die(self, results):
    write(self, results)
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
report.Journal.write = write_then_die
sys.argv = ["w2v2bench", *sys.argv[1:]]
cli.main()
EOF
[ "$status" = 137 ] || { echo "the interrupted run was not killed (status $status)" >&2; exit 1; }
[ "$(wc -l < interrupted/transcripts.partial.jsonl)" = 3 ] || { echo "expected a journal of 3 lines" >&2; exit 1; }

# 3. rescore: the complete run re-scored with normalizer=basic
"$PY" -m w2v2bench.score run=./complete out=./rescore normalizer=basic

# 4. history.sqlite: the complete run recorded by a nightly (report in ./nightly, not in the run folder)
"$PY" -m w2v2bench.nightly runs=./complete history=./history.sqlite out=./nightly

# 5. compare: the complete run against a copy of the interrupted one resumed (resume=true; only its two journal
# rows are kept, the other four are transcribed again): compare.json and compare.md (the resumed run is not kept)
cp -a interrupted resumed
"$PY" -m w2v2bench "${RUN[@]}" output_dir=./resumed resume=true
"$PY" -m w2v2bench.compare a=./complete b=./resumed out=./compare

rm -rf "${OUT:?}"/{complete,interrupted,rescore,export,nightly,compare,history.sqlite}
cp -a complete interrupted rescore nightly compare history.sqlite "$OUT"/

# 6. export: of a copy of the committed complete run, made once the work folder is gone, as the tests make it
# (transcripts.jsonl's audio_filepath values are absolute paths into that folder: lhotse's recordings need the
# audio files, so they are left out and listed in export.json, as they will be wherever the tests run)
cd "$WORK2"
rm -rf "$WORK"
cp -a "$OUT/complete" complete
"$PY" -m w2v2bench.export run=./complete out=./export
cp -a export "$OUT"/
echo "written: $OUT"

#!/usr/bin/env bash
# The whole GPU check in one command (issue #18): installs the carried wheels and the project, runs the CUDA tests,
# the harness end to end on CUDA (and bf16 with its fp32 re-check), then the GPU benchmark, writing every figure
# and log into one folder.
#
#   on a GPU machine (the device tool: carry .whl, made by bench/gpu_wheels.sh):
#       bash bench/gpu_check.sh "$OUT"
#   rehearsal here, on the CPU (small corpus and model, same steps):
#       W2V2BENCH_REHEARSE=1 bash bench/gpu_check.sh /tmp/gpu-rehearsal
#
# Budget: 8 minutes on one H100 (the benchmark is stopped at BENCH_LIMIT_S and its table so far kept).
set -uo pipefail
out=${1:?usage: bash bench/gpu_check.sh <output folder>}
mkdir -p "$out"
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "[gpu_check +$(( $(date +%s) - start )) s] $*" | tee -a "$out/steps.log"; }
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if [ -z "${W2V2BENCH_REHEARSE:-}" ]; then
    step "install the carried wheels and the project into /tmp/site"
    [ -d .whl ] || { step "no .whl folder: make it with bench/gpu_wheels.sh and carry it"; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >>"$out/steps.log" 2>&1 || { step "wheel install failed"; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site . \
        >>"$out/steps.log" 2>&1 || { step "project install failed"; exit 1; }
    export PYTHONPATH=/tmp/site
    device=cuda; model=base; repeat=${SPEED_REPEAT:-28}; sizes=16,32,64,128; precisions=fp32,tf32,bf16; limit=""
    BENCH_LIMIT_S=${BENCH_LIMIT_S:-360}
else
    step "rehearsal on the CPU: tiny model, the shipped audio once, batch sizes 2 and 4"
    device=cpu; model=tiny; repeat=1; sizes=2,4; precisions=fp32,bf16; limit="--limit 12"
    BENCH_LIMIT_S=${BENCH_LIMIT_S:-600}
fi

step "environment"
"$PY" - >"$out/environment.txt" 2>&1 <<'PYEOF'
import platform, sys
import torch, transformers
print("python", sys.version.split()[0], platform.machine())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("transformers", transformers.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.1f} GiB", p.multi_processor_count, "SMs")
import w2v2bench, datasets, jiwer, soundfile, soxr, hydra
print("w2v2bench", w2v2bench.__file__)
PYEOF
cat "$out/environment.txt" | tee -a "$out/steps.log"

step "CUDA tests (pytest -m cuda)"
"$PY" -m pytest -q -m cuda -p no:cacheprovider tests/model/test_model.py >"$out/cuda-tests.log" 2>&1
step "CUDA tests: exit $? ($(tail -1 "$out/cuda-tests.log"))"

step "the harness end to end on $device: the demo, fp32, then bf16 with recheck_margin and check_precision"
{
    "$PY" -m w2v2bench model=demo data=demo split=other device=$device output_dir=/tmp/gpu-check/fp32
    echo "exit $?"
    "$PY" -m w2v2bench model=demo data=demo split=other device=$device precision=bf16 check_precision=true \
        recheck_margin=1.0 output_dir=/tmp/gpu-check/bf16
    echo "exit $?"
    "$PY" -m w2v2bench compare a=/tmp/gpu-check/fp32 b=/tmp/gpu-check/bf16 out=/tmp/gpu-check/compare
    echo "exit $?"
    "$PY" -c "import json; s=json.load(open('/tmp/gpu-check/bf16/summary.json')); print('precision_check', s['precision_check'], 'differs', s['precision_differs_from_fp32'])"
} >"$out/cli.log" 2>&1
step "harness runs: $(grep -c '^exit 0' "$out/cli.log") of 3 commands exit 0"

step "benchmark (stopped after ${BENCH_LIMIT_S} s, its table so far kept)"
timeout "$BENCH_LIMIT_S" "$PY" bench/bench.py --only gpu --device $device --model $model --speed-repeat $repeat \
    --gpu-batch-sizes $sizes --precisions $precisions $limit >"$out/bench-gpu.log" 2>&1
step "benchmark: exit $?"
# at most 8 files come back from a GPU machine: the partial table only where the benchmark did not finish
if [ -f results/bench/bench-gpu.md ]; then
    cp results/bench/bench-gpu.md results/bench/bench-gpu.json "$out/"
elif [ -f results/bench/bench-gpu.partial.md ]; then
    cp results/bench/bench-gpu.partial.md "$out/"
fi
step "done"

#!/usr/bin/env bash
# The wheels a bare GPU machine lacks (it has torch, transformers, numpy, pandas, pyarrow, pytest, ...; no network),
# for its Python 3.12 on x86-64, at the versions installed here, into .whl/ (git-ignored): bench/gpu_check.sh installs
# them there. Run here, where PyPI is reachable:   bash bench/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
# what the harness and its tests import that the device image does not hold (see the device's package list)
packages=(datasets dill multiprocess jiwer rapidfuzz soundfile cffi pycparser soxr hydra-core omegaconf
          hydra-submitit-launcher submitit pydantic pydantic-core annotated-types typing-inspection
          flashlight-text kaldialign)
specs=()
for name in "${packages[@]}"; do
    version=$("$PYTHON" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    specs+=("$name${version:+==$version}")
done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${specs[@]}"
# omegaconf's parser runtime is published as a source archive only: built here into a pure-Python wheel
antlr=$("$PYTHON" -m pip show antlr4-python3-runtime | sed -n 's/^Version: //p')
"$PYTHON" -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==${antlr}"
ls .whl | sed 's/^/  /'
du -sh .whl

#!/usr/bin/env bash
# Make (or reuse) .venv and install nearline into it with the versions we test against.
# llama-cpp-python compiles llama.cpp the first time (~8 minutes on 2 cores); pip's wheel cache
# serves it after that.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extras="${1:-}"
.venv/bin/python -m pip install --quiet --upgrade pip
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
  .venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".${extras}"

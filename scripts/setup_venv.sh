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
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "setup: installing nearline; pip compiles llama.cpp (llama-cpp-python) from source the" \
    "first time, about 8 minutes on 2 cores (its wheel is cached for the next time)" >&2
fi
# A heartbeat while pip works quietly (a first install says nothing for minutes otherwise).
start=$SECONDS
( while sleep 30; do
    echo "setup: pip is still installing ($(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s)" >&2
  done ) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true' EXIT
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
  .venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".${extras}"
kill "$heartbeat" 2>/dev/null || true

#!/usr/bin/env bash
# Set up nearline with its test dependencies and run the whole test suite (real model, real
# server over stdio). Exits non-zero when pytest fails or collects no test.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup_venv.sh" "[test]" || exit 1
cd "$root"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; failing" >&2
  exit 1
fi
exit "$rc"

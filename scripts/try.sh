#!/usr/bin/env bash
# Set up nearline on a fresh machine and complete a line of a sample file with the embedded
# default model (no network needed after install).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup_venv.sh"
sample="$root/tests/test_data/demo.py"
line=$(wc -l < "$sample")
col=$(( $(tail -n 1 "$sample" | wc -m) ))   # the end of the last line (1-based)
echo "+ nearline complete $sample:$line:$col" >&2
exec "$root/.venv/bin/nearline" complete "$sample:$line:$col"

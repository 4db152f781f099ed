#!/usr/bin/env bash
# Long fuzzing run: each harness for SECONDS seconds on one core, one after the other.
# Usage: fuzz/long_run.sh [SECONDS] [OUTDIR] [HARNESS...]   (results in bench/RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-150}
OUT=${2:-$(mktemp -d)}
PY=${PYTHON:-.venv/bin/python}
shift 2 2>/dev/null || shift $#
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(rtp rtcp stun dtls sdp signal)
export PYTHONPATH="src:.${PYTHONPATH:+:$PYTHONPATH}"
for name in "${NAMES[@]}"; do
  mkdir -p "$OUT/$name"
  rc=0
  "$PY" "fuzz/fuzz_$name.py" "$OUT/$name" "fuzz/corpus/$name" -max_total_time="$SECONDS_EACH" \
    -artifact_prefix="$OUT/$name-" -print_final_stats=1 >"$OUT/$name.log" 2>&1 || rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$name.log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$OUT/$name.log" | tail -1 || true)
  corpus=$(ls "$OUT/$name" | wc -l)
  echo "$name: exit $rc, ${runs:-?} runs, $cov, $corpus new corpus entries, crashes: $(ls "$OUT" | grep -c "^$name-crash" || true)"
done

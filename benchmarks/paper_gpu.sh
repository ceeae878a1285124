#!/usr/bin/env bash
# The paper preset end to end on one GPU, each configuration into a fresh run folder, one
# after the other on the same machine, then where the time went (benchmarks/run_summary.py:
# study seconds, seconds by phase, training images/s, compile line, Table 1 averages):
#   eager     one stack for every model, train.compile = off
#   default   the preset as it ships: one stack, train.compile = auto (on for CUDA)
#   seeds3    the default with --seeds 3 (every seed's models in the same stack)
# Usage: bash benchmarks/paper_gpu.sh DATA_DIR [OUT_PREFIX] [CONFIGS] [PRESET]
#        (PRESET defaults to paper; smoke checks the script on a CPU in seconds)
#        appends JSON lines to benchmarks/results/paper_gpu.jsonl
set -euo pipefail
DATA="${1:?usage: bash benchmarks/paper_gpu.sh DATA_DIR [OUT_PREFIX] [CONFIGS] [PRESET]}"
OUT="${2:-runs/bench-paper}"
CONFIGS="${3:-eager default seeds3}"
PRESET="${4:-paper}"
mkdir -p benchmarks/results "$(dirname "$OUT")"
for conf in $CONFIGS; do
    case "$conf" in
        eager) sets=(--set "train.compile='off'") ;;
        default) sets=() ;;
        seeds3) sets=(--seeds 3) ;;
        *) echo "unknown configuration $conf (eager, default, seeds3)" >&2; exit 2 ;;
    esac
    rm -rf "$OUT-$conf"
    data=(--data-dir "$DATA")
    [ "$PRESET" = smoke ] && data=()
    start=$(date +%s.%N)
    advimb run --preset "$PRESET" "${data[@]}" --out "$OUT-$conf" --no-progress "${sets[@]}" \
        > "$OUT-$conf.log" 2>&1 || { tail -5 "$OUT-$conf.log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$conf: $(python -c "print(round($end - $start, 1))") s for the process" >&2
    python benchmarks/run_summary.py "$OUT-$conf" --label "$conf" --log "$OUT-$conf.log" \
        --json benchmarks/results/paper_gpu.jsonl
done

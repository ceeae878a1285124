#!/usr/bin/env bash
# Wall time of the quick preset end to end (train 21 models, 50 combinations, tables,
# report), float32 (the preset) and with bf16 autocast, each into a fresh run folder.
# Usage: bash benchmarks/quick_preset.sh [DATA_DIR] [OUT_PREFIX]   (writes results/quick_<host>.jsonl)
set -euo pipefail
DATA="${1:-../shared/data}"
OUT="${2:-runs/bench-quick}"
mkdir -p benchmarks/results
for prec in fp32 bf16; do
    rm -rf "$OUT-$prec"
    start=$(date +%s.%N)
    advimb run --preset quick --data-dir "$DATA" --out "$OUT-$prec" --no-progress \
        --set "train.precision='$prec'" > "$OUT-$prec.log" 2>&1
    end=$(date +%s.%N)
    python - "$prec" "$start" "$end" "$OUT-$prec" <<'PY'
import json, sys, platform, torch
prec, start, end, run = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
t1 = open(f"{run}/tables/table1.csv").read().splitlines()[-1]
res = {"preset": "quick", "precision": prec, "wall_seconds": round(end - start, 1), "host": platform.node(),
       "torch": torch.__version__, "threads": torch.get_num_threads(), "table1_average": t1,
       "balanced_clean_accuracy": json.load(open(f"{run}/tables/summary.json"))["balanced_clean_accuracy"]}
print(json.dumps(res))
with open("benchmarks/results/quick.jsonl", "a") as f:
    f.write(json.dumps(res) + "\n")
PY
done

#!/usr/bin/env bash
# Wall time of the quick preset end to end (train 21 models, 50 combinations, tables,
# report), each configuration into a fresh run folder, one after the other:
#   before   the settings before the speed work: float32, attack jobs run one by one
#            (--set train.precision='fp32' --set eval.group_attacks='off')
#   default  the preset as it ships (precision auto: bf16 where the CPU runs it natively;
#            attack jobs grouped)
# Usage: bash benchmarks/quick_preset.sh [DATA_DIR] [OUT_PREFIX] [CONFIGS]
#        (appends JSON lines to benchmarks/results/quick.jsonl)
set -euo pipefail
DATA="${1:-../shared/data}"
OUT="${2:-runs/bench-quick}"
CONFIGS="${3:-before default}"
mkdir -p benchmarks/results "$(dirname "$OUT")"
for conf in $CONFIGS; do
    case "$conf" in
        before) sets=(--set "train.precision='fp32'" --set "eval.group_attacks='off'") ;;
        default) sets=() ;;
        fp32) sets=(--set "train.precision='fp32'") ;;
        *) echo "unknown configuration $conf (before, default, fp32)" >&2; exit 2 ;;
    esac
    rm -rf "$OUT-$conf"
    start=$(date +%s.%N)
    advimb run --preset quick --data-dir "$DATA" --out "$OUT-$conf" --no-progress "${sets[@]}" \
        > "$OUT-$conf.log" 2>&1
    end=$(date +%s.%N)
    python - "$conf" "$start" "$end" "$OUT-$conf" <<'PY'
import json, sys, platform, torch
from advimb.config import load_toml
conf, start, end, run = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
cfg = load_toml(f"{run}/config.toml")
inv = json.load(open(f"{run}/manifest.json"))["invocations"][-1]
phase = {}
for name, sec in inv["job_seconds"].items():
    phase[name.split()[0]] = phase.get(name.split()[0], 0) + sec
t1 = open(f"{run}/tables/table1.csv").read().splitlines()[-1]
res = {"preset": "quick", "configuration": conf, "precision": cfg["train"]["precision"],
       "group_attacks": cfg["eval"]["group_attacks"], "wall_seconds": round(end - start, 1),
       "seconds_by_phase": {k: round(v, 1) for k, v in phase.items()}, "host": platform.node(),
       "torch": torch.__version__, "threads": torch.get_num_threads(), "table1_average": t1,
       "balanced_clean_accuracy": json.load(open(f"{run}/tables/summary.json"))["balanced_clean_accuracy"]}
print(json.dumps(res))
with open("benchmarks/results/quick.jsonl", "a") as f:
    f.write(json.dumps(res) + "\n")
PY
done

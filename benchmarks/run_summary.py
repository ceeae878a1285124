"""Where a finished run's time went, from its own artifacts: study wall time, seconds by
phase (training, clean evaluation, attacks, from the manifest's per-job seconds), the training
images/s (every model's training images times its epochs, over the training seconds), the
compile line of the log if any, and the Table 1 averages and balanced clean accuracy (to
compare a faster configuration's results with the default's).

    python benchmarks/run_summary.py runs/paper [--label default] [--log runs/paper.log] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import emit, trained_models  # benchmarks/ is on sys.path when a script runs

from advimb.config import load_toml

PHASES = {"train": "train", "clean": "clean_eval", "attack": "attack"}


def summary(run: Path) -> dict:
    cfg = load_toml(run / "config.toml")
    inv = json.loads((run / "manifest.json").read_text())["invocations"][-1]
    phase: dict[str, float] = {}
    for name, sec in inv["job_seconds"].items():
        key = PHASES.get(name.split()[0], "other")
        phase[key] = phase.get(key, 0.0) + sec
    images = sum(n * e for n, e in trained_models(list(run.glob("**/models/*/meta.json"))))
    head, avg = ((run / "tables" / "table1.csv").read_text().splitlines()[i].split(",") for i in (0, -1))
    return {
        "run": str(run),
        "preset": cfg.get("preset", ""),
        "device": cfg["train"]["device"],
        "precision": cfg["train"]["precision"],
        "stack": cfg["train"]["stack"],
        "compile": cfg["train"]["compile"],
        "seeds": cfg.get("experiments", {}).get("seeds", 1),
        "study_seconds": inv["wall_seconds"],
        "seconds_by_phase": {k: round(v, 1) for k, v in phase.items()},
        "training_images": images,
        "training_images_per_s": images / max(phase.get("train", 0.0), 1e-9),
        "table1_average": {h: float(v) for h, v in zip(head[1:], avg[1:]) if not h.endswith(("_lo", "_hi"))},
        "balanced_clean_accuracy": json.loads((run / "tables" / "summary.json").read_text()).get(
            "balanced_clean_accuracy"
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--label", default="")
    p.add_argument("--log", type=Path, help="the run's stderr, for the compile line")
    p.add_argument("--json", help="append the result as a JSON line to this file")
    a = p.parse_args()
    res = {"label": a.label, **summary(a.run)}
    if a.log and a.log.exists():
        res["compile_log"] = [ln.strip() for ln in a.log.read_text().splitlines() if "compile" in ln]
    emit(res, a.json, digits=1)


if __name__ == "__main__":
    main()

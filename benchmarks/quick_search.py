"""What buys accuracy per second on this CPU: candidate settings for the quick preset, each run
as a user would run it (``advimb run --preset quick --set ...``, fresh run folder, report
included unless ``--no-report``), recording its wall time, training seconds and the numbers
the quick preset must reach (balanced clean accuracy, the under-sampled models' clean accuracy
on their own class, the claims' verdicts), read from the run's own tables and results.

    python benchmarks/quick_search.py --data ../shared/data --out ~/runs/search \\
        --variant base --variant "lr3=train.lr=1e-3" --variant "lr3-flip=train.lr=1e-3;train.augment='hflip'"

A variant is ``name`` (no overrides) or ``name=KEY=VALUE;KEY=VALUE...`` (``--set`` syntax).
``--classes cat,dog`` studies only those classes (a cheaper probe; the full preset studies
what it names). JSON lines go to ``benchmarks/results/quick_search.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

from _common import emit, trained_models  # benchmarks/ is on sys.path when a script runs
from run_summary import summary as summary_of_run


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, sets = text.partition("=")
    return name, [s for s in sets.split(";") if s]


def read_run(run: Path) -> dict:
    """The quick preset's targets, from the run's tables (and its report's results, if built)."""
    summary = json.loads((run / "tables" / "summary.json").read_text())
    rows = list(csv.DictReader((run / "tables" / "clean_target_accuracy.csv").open()))
    times = summary_of_run(run)
    res = {
        "balanced_clean_accuracy": summary["balanced_clean_accuracy"],
        "under_own_class": {r["class"]: float(r["under"]) for r in rows},
        "over_own_class": {r["class"]: float(r["over"]) for r in rows},
        "under_own_class_mean": sum(float(r["under"]) for r in rows) / len(rows),
        "study_seconds": times["study_seconds"],
        "train_seconds": times["seconds_by_phase"].get("train", 0.0),
        "epochs": sorted(e for _, e in trained_models(list(run.glob("models/*/meta.json")))),
    }
    results = run / "report" / "results.json"
    if results.exists():
        claims = json.loads(results.read_text())["claims"]["claims"]
        res["claims"] = {c["id"]: c["shown_as"] for c in claims}
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="runs/search", help="prefix of the run folders (one per variant)")
    p.add_argument("--variant", action="append", required=True)
    p.add_argument("--classes", default="", help="comma-separated classes to study (default: the preset's)")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--json", default="benchmarks/results/quick_search.jsonl")
    a = p.parse_args()
    for text in a.variant:
        name, sets = parse_variant(text)
        if a.classes:
            sets.append("imbalance.classes=[" + ",".join(f"'{c}'" for c in a.classes.split(",")) + "]")
        run = Path(f"{a.out}-{name}").expanduser()
        shutil.rmtree(run, ignore_errors=True)
        cmd = ["advimb", "run", "--preset", "quick", "--data-dir", a.data, "--out", str(run), "--no-progress"]
        cmd += [x for s in sets for x in ("--set", s)] + (["--no-report"] if a.no_report else [])
        t0 = time.perf_counter()
        with open(f"{run}.log", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        wall = time.perf_counter() - t0
        res = {
            "variant": name,
            "sets": sets,
            "rc": rc,
            "wall_seconds": round(wall, 1),
            "cpu": cpu_model(),
            "host": platform.node(),
            "command": " ".join(cmd),
        }
        if rc == 0:
            res.update(read_run(run))
        emit(res, a.json)


if __name__ == "__main__":
    main()

"""What training a finished run's models in one fixed-shape stack costs in wasted work,
computed from the run's own artifacts (no timing, no GPU): each model's training-set size
(``scenarios/<model>.json``) and the epochs it trained (``models/<model>/meta.json``).

    python benchmarks/stack_waste.py docs/reproduction/paper-h200

Prints, as one JSON line: the models, the steps the one stack takes (the longest-running
model's), the share of the stack's samples that train a model (``useful``), pad an
epoch's last batch (``padding``) or belong to a model that has already stopped
(``stopped``); and, for comparison, the steps the same models need when trained one by one
(the sum of their steps) and in per-size groups (the balanced model alone, then one stack per
training-set size: advimb before the one stack).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from _common import emit, trained_models  # benchmarks/ is on sys.path when a script runs

from advimb.config import load_toml
from advimb.training.waste import wasted_work


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished run folder")
    p.add_argument("--json", help="append the result as a JSON line to this file")
    a = p.parse_args()
    batch = int(load_toml(a.run / "config.toml")["train"]["batch_size"])
    sizes, epochs = map(list, zip(*trained_models(list((a.run / "models").glob("*/meta.json")))))
    steps = [math.ceil(n / batch) * e for n, e in zip(sizes, epochs)]
    groups: dict[int, int] = {}
    for n, s in zip(sizes, steps):
        groups[n] = max(groups.get(n, 0), s)
    res = {
        "run": str(a.run),
        "models": len(sizes),
        "batch": batch,
        **wasted_work(sizes, epochs, batch),
        "one_by_one_steps": sum(steps),
        "per_size_group_steps": sum(groups.values()),
    }
    emit(res, a.json, digits=4)


if __name__ == "__main__":
    main()

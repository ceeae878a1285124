"""How one scenario's model learns its minority class, epoch by epoch, under a setting: the
quick preset over the given ``--set`` overrides, one model trained as the study trains it
(``TrainJob.prepare`` and ``fit``), and after every epoch its accuracy on the first 300 test
images of every class (overall and of the scenario's target class), its validation loss and
its training accuracy. Used to choose the quick preset (BENCHMARKS.md (h)): the under:cat
model is the one that sits on the floor longest.

    python benchmarks/minority_epochs.py under:cat --label d2500 --data ../shared/data \\
        --set imbalance.majority_count=2500 --set imbalance.minority_count=500 --set train.lr=1e-3

One JSON line per epoch, then a summary line with the epoch early stopping would restore;
all appended to ``benchmarks/results/minority_epochs.jsonl``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import emit  # benchmarks/ is on sys.path when a script runs

from advimb.config.io import parse_assignment
from advimb.config.presets import resolve_config
from advimb.data.imbalance import parse_scenario
from advimb.data.sources import load_dataset
from advimb.devices import autocast_dtype, resolve_precision, to_float
from advimb.study.jobs.base import device_arrays
from advimb.study.jobs.train import TrainJob
from advimb.training.fit import fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", help="e.g. under:cat")
    p.add_argument("--label", required=True)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--set", action="append", default=[], dest="sets")
    p.add_argument("--json", default="benchmarks/results/minority_epochs.jsonl")
    a = p.parse_args()
    cfg = resolve_config("quick", overrides=[{"data": {"dir": a.data}}] + [parse_assignment(s) for s in a.sets], env={})
    ds = load_dataset(cfg.data)
    job = TrainJob(
        config=cfg, scenario=parse_scenario(a.scenario, ds.classes), classes=ds.classes, fingerprint=ds.fingerprint
    )
    dev = torch.device("cpu")
    prep = job.prepare(Path(tempfile.mkdtemp()), ds, dev)
    arr = device_arrays(ds, dev)
    x_tr, y_tr = arr["x_train"][prep.train_idx], arr["y_train"][prep.train_idx]
    keep = torch.cat([torch.nonzero(arr["y_test"] == c)[:300, 0] for c in range(ds.num_classes)])
    xt, yt = arr["x_test"][keep], arr["y_test"][keep]
    model, target, amp = prep.model, job.scenario.target, autocast_dtype(cfg.train.precision, dev)
    rows: list[dict] = []
    t0 = time.perf_counter()

    def after_epoch(state: dict) -> None:
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            pred = torch.cat([model(to_float(xt[i : i + 1000], True)).argmax(1) for i in range(0, len(xt), 1000)])
        model.train()
        h = state["history"][-1]
        row = {
            "label": a.label,
            "scenario": a.scenario,
            "epoch": state["epoch"],
            "seconds": time.perf_counter() - t0,
            "test_accuracy": (pred == yt).float().mean().item() * 100,
            "val_loss": h["val_loss"],
            "val_accuracy": h["val_accuracy"] * 100,
            "train_accuracy": h["accuracy"] * 100,
        }
        if target is not None:
            row["target_accuracy"] = (pred[yt == target] == target).float().mean().item() * 100
        rows.append(row)
        emit(row, a.json, 1)

    res = fit(
        model,
        (x_tr, y_tr),
        prep.val,
        cfg.train,
        seed=job.seeds()["train"],
        augment=prep.augment,
        regime=prep.regime,
        on_epoch_end=after_epoch,
        progress=False,
    )
    emit(
        {
            "label": a.label,
            "scenario": a.scenario,
            "sets": a.sets,
            "precision": resolve_precision(cfg.train.precision, dev),
            "n_train": len(x_tr),
            "best_epoch": res.best_epoch,
            "restored": rows[res.best_epoch - 1] if res.best_epoch > 0 else None,
        },
        a.json,
        1,
    )


if __name__ == "__main__":
    main()

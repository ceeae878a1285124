"""RoBal's published tables (Wu et al., CVPR 2021: Table 2 at rho = 50, Table 4 at rho = 100;
``reference/wu_robal.json``) beside a run's long-tailed robustness, cell by cell with the
differences, only when the run is in RoBal's setting (:func:`robal_setting`, the ``robal``
preset's; the way Table 1 of the seed paper is shown). A run out of that setting gets the
reasons, and no published number beside it.

Two of the published rows are shown without a difference, each with its reason: TRADES
(RoBal's repository holds no TRADES config, so its beta and step are not known; advimb's TRADES
takes steps of 2.5 eps / steps, beta 6) and Table 4's "RoBal" (the table does not say which
variant).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from advimb.config.sections import ExperimentConfig
from advimb.results.longtail import METHODS
from advimb.results.reference import data_differences, describe_attack
from advimb.results.stats import Estimate
from advimb.scenario import Gradient

#: RoBal's setting, in words (shown when a run is not in it)
ROBAL_SETTING = (
    "CIFAR-10-LT by LDAM's split of the whole CIFAR-10 (rho = 50: Table 2; rho = 100: Table 4), WRN-34-10 on "
    "unnormalised images, SGD lr 0.1, momentum 0.9, weight decay 2e-4, batch 64, 80 epochs with the lr divided by "
    "10 at 60 and 75, random crops (padding 4) and flips, fp32, the last epoch kept; PGD-5 training images at eps "
    "0.031 (step 0.0078); PGD-20, MIM-20 and CW-20 at eps 0.031, step 0.0078, every test image"
)

#: published rows shown without a difference, and why
UNPAIRED = {
    "trades": "RoBal's repository holds no TRADES config (its beta and step are not stated there; advimb's TRADES "
    "takes steps of 2.5 eps / steps with beta 6), so this row is shown, not compared",
    "robal": "the table does not say which RoBal variant this row is, so it is shown, not compared",
}


def robal_reference() -> dict[str, Any]:
    """RoBal's published tables, shipped as package data."""
    return json.loads(resources.files("advimb").joinpath("reference/wu_robal.json").read_text())


def robal_setting(cfg: ExperimentConfig | None, dataset: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(RoBal's tables this run can be set beside, the reasons it cannot be): empty reasons when
    the run is in RoBal's setting."""
    if cfg is None or not dataset:
        return [], ["the run folder has no readable config.toml or manifest.json, so its setting cannot be checked"]
    profiles = {t["profile"]: k for k, t in robal_reference()["tables"].items()}
    tables = [profiles[p] for p in cfg.experiments.long_tail if p in profiles]
    why = data_differences(cfg, dataset)
    if not tables:
        why.append(
            f"the long-tailed profiles are {', '.join(cfg.experiments.long_tail) or 'none'} (RoBal's tables: "
            "ldam:50, Table 2; ldam:100, Table 4)"
        )
    if cfg.imbalance.long_tail_max != 5000:
        why.append(f"the head class keeps {cfg.imbalance.long_tail_max:,} images (RoBal's: 5,000)")
    mo, t, e, a = cfg.model, cfg.train, cfg.experiments, cfg.attack
    if (mo.name, mo.normalize) != ("wrn_34_10", "none"):
        why.append(
            f"the model is {mo.name} with normalize = {mo.normalize!r} (RoBal's: wrn_34_10 on unnormalised images)"
        )
    recipe = (t.optimizer, t.lr, t.momentum, t.nesterov, t.weight_decay, t.batch_size, t.max_epochs)
    if recipe != ("sgd", 0.1, 0.9, False, 2e-4, 64, 80):
        why.append(
            f"the training is {t.optimizer}, lr {t.lr:g}, momentum {t.momentum:g}, weight decay {t.weight_decay:g}, "
            f"batch {t.batch_size}, {t.max_epochs} epochs (RoBal's: SGD 0.1, 0.9, 2e-4, batch 64, 80 epochs)"
        )
    if (t.schedule, tuple(t.milestones), t.gamma) != ("piecewise", (60, 75), 0.1):
        why.append(
            f"the learning rate follows {t.schedule} with milestones {list(t.milestones)} and gamma {t.gamma:g} "
            "(RoBal's paper: divided by 10 at 60 and 75; its code's compounding decay is not what it describes)"
        )
    if (t.augment, t.crop_padding) != ("crop_hflip", 4):
        why.append(f"the augmentation is {t.augment!r} (RoBal's: random crops with padding 4 and flips)")
    if t.restore_best or t.patience < t.max_epochs:
        why.append("an earlier epoch's weights can be kept (RoBal's: the last epoch, no early stopping)")
    if t.precision != "fp32":
        why.append(f"the models train in {t.precision} (RoBal's code: fp32)")
    if (e.adv_eps, e.adv_steps) != (0.031, 5):
        why.append(f"the training attack is eps {e.adv_eps:g} with {e.adv_steps} steps (RoBal's: 0.031, PGD-5)")
    if (a.name, a.eps, a.steps, a.step_size, a.random_start) != ("pgd", 0.031, 20, 0.0078, True):
        why.append(f"the attack is {describe_attack(a)} (RoBal's: PGD-20 at eps 0.031, step 0.0078, random start)")
    if cfg.eval.test_per_class:
        why.append(f"the first {cfg.eval.test_per_class} test images of each class are attacked (RoBal: all)")
    return tables, why


def _defences(rows: list[dict[str, Any]]) -> list[str | None]:
    """Each row's advimb defence, from the method name it is shown with (:data:`METHODS`)."""
    names = {v: k for k, v in METHODS.items()}
    return [names.get(r["method"]) for r in rows]


def has_robal_models(rows: list[dict[str, Any]]) -> bool:
    """Does the run hold a RoBal model (then the report says why RoBal's tables are or are not beside it)?"""
    return any(d in ("robal_n", "robal_r") for d in _defences(rows))


def beside_robal(rows: list[dict[str, Any]], cfg: ExperimentConfig | None, dataset: dict[str, Any]) -> dict[str, Any]:
    """RoBal's tables beside the run's long-tailed robustness summary ``rows`` (own gradient), or
    the reasons why not: ``{"citation", "setting", "why_not", "tables"}``. Each table's rows: the
    published row, the run's cell (value and interval, % on the balanced test set) and the
    difference in points, or the reason a row is not compared."""
    ref = robal_reference()
    tables, why = robal_setting(cfg, dataset)
    out: dict[str, Any] = {"citation": ref["citation"], "setting": ROBAL_SETTING, "why_not": why, "tables": []}
    if why:
        return out
    for key in tables:
        profile, table = ref["tables"][key]["profile"], ref["tables"][key]
        ours = _run_cells(rows, profile.replace(":", ""))
        out_rows = []
        for name, published in table["rows"].items():
            run = ours.get(name, {})
            cells = []
            for col, paper in zip(table["columns"], published, strict=True):
                est = run.get(col if col == "clean" else ref["column_attacks"][col])
                diff = None if est is None or name in UNPAIRED or not math.isfinite(est.value) else est.value - paper
                inside = None if diff is None or est is None else est.lo <= paper <= est.hi
                cells.append(
                    {"paper": paper, "run": None if est is None else est.exact(), "diff": diff, "inside": inside}
                )
            note = UNPAIRED.get(name, "" if run else "this run has no such model")
            out_rows.append({"method": ref["row_names"][name], "cells": cells, "note": note})
        out["tables"].append({"id": key, "profile": profile, "columns": table["columns"], "rows": out_rows})
    return out


def _run_cells(rows: list[dict[str, Any]], profile: str) -> dict[str, dict[str, Estimate]]:
    """Per defence of ``profile``'s models (``ldam50``), each attack's robust accuracy and the clean
    accuracy (all test images, from the main attack's row), own gradient."""
    out: dict[str, dict[str, Estimate]] = {}
    for r, d in zip(rows, _defences(rows), strict=True):
        if r["gradient"] != Gradient.SAME.longtail_label or profile not in r["model"] or d is None:
            continue
        cells = out.setdefault(d, {})
        cells[r["attack"]] = Estimate.from_columns(r, "robust")
        cells.setdefault("clean", Estimate.from_columns(r, "clean"))
    return out

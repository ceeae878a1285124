"""An estimate, not a measurement, of the ``robal`` preset's arithmetic: WRN-34-10's FLOPs per
32x32 image counted by ``torch.utils.flop_counter.FlopCounterMode`` (a forward; a training pass:
forward and backward with the weights' gradients; an attack step: forward and the input's
gradient), times the passes the preset makes (training, validation, evaluation, attacks).
AutoAttack's APGD-T is counted as if no image were fooled before its last target (an upper
bound: it attacks only what APGD-CE and the earlier targets left). No GPU time is implied:
the preset's cost stays unmeasured until a GPU is lent.

    python benchmarks/robal_flops.py            # prints the breakdown and the total in PFLOP
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from advimb.config.presets import resolve_config
from advimb.data.imbalance import long_tail_counts
from advimb.models import build_model

BATCH = 2


def counted(fn) -> float:
    with FlopCounterMode(display=False) as m:
        fn()
    return m.get_total_flops() / BATCH


def per_image(model: torch.nn.Module) -> dict[str, float]:
    x = torch.rand(BATCH, 3, 32, 32)
    y = torch.zeros(BATCH, dtype=torch.long)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def train() -> None:
        F.cross_entropy(model(x), y).backward()

    def attack_step() -> None:  # the input's gradient only, as the attacks take it
        xr = x.clone().requires_grad_(True)
        F.cross_entropy(model(xr), y).backward()

    out = {"forward": counted(forward), "train": counted(train)}
    for p in model.parameters():
        p.requires_grad_(False)
    out["attack_step"] = counted(attack_step)
    return out


def main() -> int:
    cfg = resolve_config("robal", env={})
    im, t, e = cfg.imbalance, cfg.train, cfg.experiments
    model = build_model(cfg.model, 10, (3, 32, 32), seed=0).eval()
    f = per_image(model)
    profile, _, rho = e.long_tail[0].partition(":")
    lt = sum(long_tail_counts(profile, float(rho), im.long_tail_max, 10))
    grid = {"balanced": 10 * im.majority_count, "under": 9 * im.majority_count + im.minority_count}
    grid["over"] = im.majority_count + 9 * im.minority_count
    val = 10 * t.val_per_class * t.max_epochs * f["forward"]
    steps = e.adv_steps
    epoch_cost = {  # per training image and epoch
        "": f["train"],
        "pgd_at_robal": steps * f["attack_step"] + f["train"],
        "trades": f["forward"] + steps * f["attack_step"] + 2 * f["train"],
        "robal_n": 5 * f["attack_step"] + 2 * f["train"],
        "robal_r": 5 * f["attack_step"] + 2 * f["train"],
    }
    training = {k: n * t.max_epochs * f["train"] + val for k, n in grid.items()}
    training |= {f"longtail{'+' + d if d else ''}": lt * t.max_epochs * c + val for d, c in epoch_cost.items()}
    n_test, models_lt = 10_000, 1 + len(e.long_tail_defences)
    attack_steps = {"pgd-20": cfg.attack.steps, "fgsm": 1, "mim-20": cfg.attack.steps, "cw-20": cfg.attack.steps}
    attack_steps["aa (apgd-ce + apgd-t, upper bound)"] = 100 + 9 * 100
    # each long-tailed model's own gradient, and the balanced model's (transfer) once per attack
    attacks = {a: (models_lt + 1) * n_test * s * f["attack_step"] for a, s in attack_steps.items()}
    evaluation = (3 + models_lt) * n_test * f["forward"] * (1 + len(attack_steps))
    total = sum(training.values()) + sum(attacks.values()) + evaluation
    out = {
        "flops_per_image": f,
        "training_pflop": {k: round(v / 1e15, 1) for k, v in training.items()},
        "attacks_pflop": {k: round(v / 1e15, 1) for k, v in attacks.items()},
        "evaluation_pflop": round(evaluation / 1e15, 2),
        "total_pflop": round(total / 1e15),
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Long-tailed robustness as today's papers report it (``../shared/LONGTAIL.md``), from stored
artifacts only: per long-tailed model (a profile, plain or with a defence) and per attack,
clean and robust accuracy per class, overall (the mean per-class recall on the balanced test
set), on the worst class, on the tail (the rarest ``tail_fraction`` of the classes by training
count) and the head (the most frequent as many), each with its 95% interval, for the attack
with the model's own gradient and for the transfer from the balanced model.

Every number comes from :class:`advimb.results.metrics.Metrics` (one definition each); the
worst class's interval is the bootstrap of the minimum (each replicate's minimum over
classes), so it is wider than any one class's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from advimb.results.metrics import Metrics, Quantity
from advimb.scenario import BALANCED, Gradient, Scenario

#: the names these papers give their methods, by advimb defence: the papers' words for a table's
#: rows, kept here beside the tables (the defences import torch and the results do not); a test
#: holds it against every registered defence and every preset's composition
METHODS = {
    "": "plain (cross-entropy)",
    "class_weight": "class-weighted cross-entropy",
    "resample": "class-balanced re-sampling",
    "fgsm_at": "FGSM-AT",
    "fgsm_rs_at": "FGSM-RS AT (fast AT, Wong et al. 2020)",
    "pgd_at": "PGD-AT (Madry et al. 2018)",
    "trades": "TRADES (Zhang et al. 2019)",
    "logit_adjust": "balanced softmax (Ren et al. 2020)",
    "pgd_at+logit_adjust": "AT-BSL (Yue et al. 2024)",
    "fgsm_rs_at+logit_adjust": "AT-BSL with FGSM-RS training images",
    "trades+logit_adjust": "TRADES with balanced softmax",
    "pgd_at_robal": "PGD-AT as RoBal's code trains it",
    "robal_n": "RoBal-N (Wu et al. 2021)",
    "robal_r": "RoBal-R (Wu et al. 2021)",
}


def method_name(defence: str) -> str:
    return METHODS.get(defence, defence)


def attack_label(name: str, steps: int) -> str:
    """An attack's column in the papers' tables: ``FGSM``, ``PGD-20``, ``CW-20``, ``MIM-20``,
    ``AA`` (AutoAttack, standard) and RoBal's two-part AA."""
    labels = {
        "fgsm": "FGSM",
        "pgd": f"PGD-{steps}",
        "bim": f"BIM-{steps}",
        "cw": f"CW-{steps}",
        "mim": f"MIM-{steps}",
        "torchattacks:AutoAttack": "AA",
        "torchattacks:APGD+APGDT": "AA (APGD-CE + APGD-T)",
    }
    # a test holds these against every registered attack and every long-tail attack
    return labels.get(name, name)


def split_classes(counts: list[int], fraction: float) -> tuple[list[int], list[int]]:
    """(tail, head): the rarest and the most frequent ``round(fraction * C)`` classes (at
    least one each) by training count, ties in label order."""
    k = max(1, min(len(counts) // 2, round(fraction * len(counts))))
    order = sorted(range(len(counts)), key=lambda c: (counts[c], c))
    return sorted(order[:k]), sorted(order[-k:])


def worst(per: list[Quantity]) -> tuple[Quantity, int]:
    """The minimum over classes and the class that attains it (its point estimate): the
    bootstrap of the minimum (every replicate's minimum over the classes)."""
    points = np.array([p for p, _ in per], dtype=float)
    if not np.isfinite(points).all():
        return (float("nan"), np.full(len(per[0][1]), np.nan)), -1
    reps = np.min(np.stack([r for _, r in per]), axis=0)
    return (float(points.min()), reps), int(points.argmin())


class LongTailRobustness:
    """The tables of one run's long-tailed models: ``attacks`` maps a column label (``PGD-20``)
    to the :class:`Metrics` of that attack's artifacts."""

    def __init__(self, attacks: dict[str, Metrics], models: list[Scenario], tail_fraction: float) -> None:
        self.attacks, self.models, self.fraction = attacks, models, tail_fraction
        self.first = next(iter(attacks.values()))
        self.classes = self.first.classes

    def _per_class(self, m: Metrics, model: Scenario, gradient: Scenario, which: str) -> list[Quantity]:
        return [m.accuracy(model, gradient, c, which) for c in self.classes]

    def rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(per class, summary): one row per model, attack, gradient and class; one per model,
        attack and gradient, with the clean accuracy of the same images beside it."""
        per_class, summary = [], []
        for model in self.models:
            counts = self.first.counts(model)
            if counts is None:
                continue
            tail, head = split_classes(counts, self.fraction)
            for label, m in self.attacks.items():
                for gradient, grad_name in (
                    (model, Gradient.SAME.longtail_label),
                    (BALANCED, Gradient.BALANCED.longtail_label),
                ):
                    adv = self._per_class(m, model, gradient, "adv")
                    if not any(math.isfinite(p) for p, _ in adv):
                        continue
                    clean = self._per_class(m, model, gradient, "clean")
                    base = {"model": self.first.outcomes.name(model), "method": method_name(model.defence)}
                    for c, name in enumerate(self.classes):
                        per_class.append(
                            {
                                **base,
                                "attack": label,
                                "gradient": grad_name,
                                "class": name,
                                "train_count": counts[c],
                                "group": "tail" if c in tail else "head" if c in head else "middle",
                                **m.cols("clean_accuracy", clean[c]),
                                **m.cols("robust_accuracy", adv[c]),
                            }
                        )
                    summary.append(
                        {**base, "attack": label, "gradient": grad_name, **self._summary(m, clean, adv, tail, head)}
                    )
        return per_class, summary

    def _summary(
        self, m: Metrics, clean: list[Quantity], adv: list[Quantity], tail: list[int], head: list[int]
    ) -> dict[str, Any]:
        (w, wc), (cw, cwc) = worst(adv), worst(clean)
        return {
            **m.cols("clean", m.mean_over(clean)),
            **m.cols("robust", m.mean_over(adv)),
            **m.cols("worst_class_robust", w),
            "worst_class": self.classes[wc] if wc >= 0 else "",
            **m.cols("worst_class_clean", cw),
            "worst_clean_class": self.classes[cwc] if cwc >= 0 else "",
            **m.cols("tail_robust", m.mean_over([adv[c] for c in tail])),
            **m.cols("head_robust", m.mean_over([adv[c] for c in head])),
            **m.cols("tail_clean", m.mean_over([clean[c] for c in tail])),
            "tail_classes": ",".join(self.classes[c] for c in tail),
            "head_classes": ",".join(self.classes[c] for c in head),
        }

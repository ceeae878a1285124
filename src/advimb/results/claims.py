"""The paper's claims (docs/PROTOCOL.md C1-C4), measured with intervals and given a verdict.

Every quantity is a mean over the studied classes of a per-class mean over attacked test
images (:mod:`advimb.results.metrics`, one definition each), with its 95% interval from the
bootstrap of :mod:`advimb.results.stats` (paired where two quantities share images). A claim is a
list of differences the paper says are positive, and its verdict is a **sign test** of
their intervals (:func:`advimb.results.stats.verdict`): it says whether the direction holds, not
whether the size matches. The size is reported beside it as *magnitude agreement* - this
run's value, the paper's, and whether the paper's lies inside this run's interval - only
when the run is in the paper's setting (:mod:`advimb.results.reference`).

- C1 under-sampled models are the most vulnerable, over-sampled the least: same-model
  accuracy under attack, balanced - under > 0 and over - balanced > 0.
- C2 the relative drop (clean - perturbed) / clean is largest for under-sampled models
  and smallest for over-sampled: under - balanced > 0 and balanced - over > 0.
- C3 the different-model (transfer) attack is weaker than the same-model attack:
  different - same > 0 for the under- and the over-sampled models.
- C4 similar classes absorb the perturbed images (pair a, b; the paper's cat, dog), tested
  twice on the under:a model's perturbed a images: C4a *absorption*, b is their most
  frequent wrong label (its share minus the largest other wrong label's > 0); C4b
  *intensification*, the attack sends more of them to b than the clean images went there
  (perturbed minus clean share > 0, paired on the same images).

A comparison that involves under-sampled models which hardly ever predict their minority
class on clean images (below ``FLOOR_PERCENT``) rests on a floor effect: the accuracy
under attack is bounded by the class prior, not measuring a gradient effect. Such a claim
is shown as ``floor effect`` whatever its sign test says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advimb.results.metrics import GridMetrics, Quantity, difference
from advimb.results.pairs import default_pair
from advimb.results.reader import KINDS, GridResults
from advimb.results.stats import (
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    Bootstrap,
    Estimate,
    interval_method,
    verdict,
)
from advimb.scenario import BALANCED, Gradient, Kind

#: below this clean accuracy (%) of the under-sampled models on their own class's attacked
#: images, their comparisons are a floor effect
FLOOR_PERCENT = 5.0
#: how a verdict is shown (the verdict itself is a sign test)
SHOWN_AS = {
    REPRODUCED: "direction reproduced",
    NOT_REPRODUCED: "direction not reproduced",
    "inconclusive": "inconclusive",
    NOT_MEASURABLE: "not measurable",
}
FLOOR = "floor effect"


def _paper_means(reference: dict[str, Any], classes: list[str]) -> dict[str, float]:
    """The paper's Table 1 column means over ``classes``."""
    cols = reference["table1_columns"]
    rows = [reference["table1_percent"][c] for c in classes if c in reference["table1_percent"]]
    if not rows:
        return {}
    return {col: round(float(np.mean([r[i] for r in rows])), 2) for i, col in enumerate(cols)}


class _Claims:
    """Builds the claims of one run (or one seed of it)."""

    def __init__(self, m: GridMetrics, reference: dict[str, Any] | None, pair: tuple[str, str]) -> None:
        self.m, self.ref, self.pair = m, reference, pair
        self.paper = _paper_means(reference, m.res.targets) if reference else {}
        self.text = (reference or {}).get("text", {})
        self.ci = interval_method(m.boot.n_boot, m.res.seeds) + ", paired where two quantities share images"

    def est(self, q: Quantity) -> Estimate:
        return self.m.estimate(q)

    def mean(self, fn) -> Quantity:
        return self.m.mean_over_targets(fn)

    def claim(
        self,
        cid: str,
        statement: str,
        measured: dict[str, Quantity],
        paper: dict[str, Any],
        comparisons: list[tuple[str, Quantity, bool]],
        notes: list[str],
        floor: str | None = None,
        magnitude_note: str = "",
    ) -> dict[str, Any]:
        """A claim's JSON: ``comparisons`` are (label, difference, rests on the floor?)."""
        ests = [self.est(q) for _, q, _ in comparisons]
        v = verdict(ests)
        floor_hit = floor if floor and any(f for _, _, f in comparisons) else None
        meas = {k: self.est(q).to_dict() for k, q in measured.items()}
        magnitude = []
        for k, p in paper.items():
            if isinstance(p, (int, float)) and k in meas:
                e = meas[k]
                inside = None if e["lo"] != e["lo"] else bool(e["lo"] <= p <= e["hi"])
                magnitude.append({"quantity": k, "this_run": e, "paper": p, "inside": inside})
        if self.ref is None:
            magnitude_note = "no comparison with the paper: this run is not in the paper's setting"
        return {
            "id": cid,
            "statement": statement,
            "measured": meas,
            "paper": paper,
            "comparisons": [
                {"label": lab, **e.to_dict(), "floor_effect": bool(f and floor_hit)}
                for (lab, _, f), e in zip(comparisons, ests)
            ],
            "verdict": v,
            "test": "sign of each difference (every 95% interval above 0: reproduced; any below 0: "
            "not reproduced; else inconclusive)",
            "shown_as": FLOOR if floor_hit else SHOWN_AS[v],
            "floor_effect": floor_hit,
            "magnitude": magnitude,
            "magnitude_note": magnitude_note,
            "paper_value_in_interval": {x["quantity"]: x["inside"] for x in magnitude},
            "interval": self.ci,
            "notes": notes,
        }

    def floor_under(self) -> str | None:
        """The floor-effect text when the under-sampled models hardly predict their class."""
        clean = self.est(self.mean(lambda c: self.m.accuracy(c, Kind.UNDER, Gradient.SAME, "clean")))
        if np.isfinite(clean.value) and clean.value < FLOOR_PERCENT:
            return (
                f"Floor effect: the under-sampled models predict their own class for only {clean.value:.1f}% "
                "of its clean test images, so their accuracy under attack is bounded by the class prior rather "
                "than measuring a gradient effect; the sign test of the comparisons with them says little."
            )
        return None

    def build(self) -> dict[str, Any]:
        m = self.m
        acc = {k: self.mean(lambda c, k=k: m.accuracy(c, k, Gradient.SAME)) for k in KINDS}
        floor = self.floor_under()
        claims = [self.c1(acc, floor), self.c2(floor), self.c3(acc, floor)]
        claims += self.c4()
        return {
            "claims": claims,
            "n_boot": m.boot.n_boot,
            "level": m.boot.level,
            "bootstrap_seed": m.boot.seed,
            "seeds": m.res.seeds,
            "interval_method": interval_method(m.boot.n_boot, m.res.seeds),
            "classes": m.res.targets,
            "sources": m.res.attack_sources(),
            "pair": list(self.pair),
            "clean_target_accuracy_percent": {
                k: self.est(self.mean(lambda c, k=k: m.accuracy(c, k, Gradient.SAME, "clean"))).to_dict() for k in KINDS
            },
        }

    def c1(self, acc: dict[Kind, Quantity], floor: str | None) -> dict[str, Any]:
        paper = self.paper
        return self.claim(
            "C1",
            "Under-sampled models are the most vulnerable to the attack, over-sampled models the least "
            "(same-model accuracy under attack).",
            {f"same_model_{k}_accuracy_percent": acc[k] for k in KINDS},
            {f"same_model_{k}_accuracy_percent": paper.get(f"same_model_{k}") for k in KINDS},
            [
                ("balanced - under (pp)", difference(acc[Kind.BALANCED], acc[Kind.UNDER]), True),
                ("over - balanced (pp)", difference(acc[Kind.OVER], acc[Kind.BALANCED]), False),
            ],
            [],
            floor,
        )

    def c2(self, floor: str | None) -> dict[str, Any]:
        m = self.m
        rd = {k: self.mean(lambda c, k=k: m.relative_difference(c, k)) for k in KINDS}
        notes2 = []
        undefined = [c for c in m.res.targets if not np.isfinite(m.relative_difference(c, Kind.UNDER)[0])]
        if undefined:
            notes2.append(
                f"The relative difference of the under-sampled models is undefined for {', '.join(undefined)}"
                " (their clean accuracy on the attacked images is 0), so its mean over classes is too."
            )
        return self.claim(
            "C2",
            "The relative accuracy drop (clean - perturbed) / clean, both on the attacked images, is largest "
            "for under-sampled models and smallest for over-sampled ones.",
            {f"relative_difference_{k}_percent": rd[k] for k in KINDS},
            {"order": "under > balanced > over (Fig. 4; values only shown graphically)"},
            [
                ("under - balanced (pp)", difference(rd[Kind.UNDER], rd[Kind.BALANCED]), True),
                ("balanced - over (pp)", difference(rd[Kind.BALANCED], rd[Kind.OVER]), False),
            ],
            notes2,
            floor,
            magnitude_note="the paper gives Fig. 4 only, no numbers",
        )

    def c3(self, acc: dict[Kind, Quantity], floor: str | None) -> dict[str, Any]:
        m, paper = self.m, self.paper
        transfer = {k: self.mean(lambda c, k=k: m.accuracy(c, k, Gradient.BALANCED)) for k in (Kind.UNDER, Kind.OVER)}
        notes3 = []
        every_class = self.ref is not None and set(m.res.targets) == set(self.ref["table1_percent"])
        if "same_model_under_average_percent_as_stated" in self.text and paper and every_class:  # a 10-class figure
            stated = self.text["same_model_under_average_percent_as_stated"]
            notes3.append(
                f"The paper's text gives the same-model average for under-sampled models as {stated}%, but its "
                f"Table 1 column averages {paper.get('same_model_under')}%; {stated}% is the balanced column's "
                f"average ({paper.get('same_model_balanced')}%). We compare with Table 1."
            )
        return self.claim(
            "C3",
            "The different-model (transfer) attack, using the balanced model's gradient, is weaker than the "
            "same-model attack.",
            {
                "different_model_under_accuracy_percent": transfer[Kind.UNDER],
                "same_model_under_accuracy_percent": acc[Kind.UNDER],
                "different_model_over_accuracy_percent": transfer[Kind.OVER],
                "same_model_over_accuracy_percent": acc[Kind.OVER],
            },
            {
                "different_model_under_accuracy_percent": paper.get("different_model_under"),
                "same_model_under_accuracy_percent": paper.get("same_model_under"),
                "different_model_over_accuracy_percent": paper.get("different_model_over"),
                "same_model_over_accuracy_percent": paper.get("same_model_over"),
            },
            [
                ("different - same, under-sampled (pp)", difference(transfer[Kind.UNDER], acc[Kind.UNDER]), True),
                ("different - same, over-sampled (pp)", difference(transfer[Kind.OVER], acc[Kind.OVER]), False),
            ],
            notes3,
            floor,
        )

    def c4(self) -> list[dict[str, Any]]:
        """C4a (absorption) and C4b (intensification) on the under:a model's perturbed a images."""
        m, (a, b) = self.m, self.pair
        pts, reps = m.shares(a, Kind.UNDER, Gradient.SAME)
        others = [j for j in range(len(m.res.classes)) if j not in (m.label(a), m.label(b))]
        to_b_adv = m.accuracy(a, Kind.UNDER, Gradient.SAME, "adv", label=b)
        to_b_clean = m.accuracy(a, Kind.UNDER, Gradient.SAME, "clean", label=b)
        floor = self.floor_pair()
        key_adv = f"under_{a}_perturbed_{a}_predicted_{b}_percent"
        measured = {key_adv: to_b_adv}
        for kind in (Kind.UNDER, Kind.OVER):  # the reverse direction, both readings of the paper's 39%
            if b in m.res.targets:
                measured[f"{kind}_{b}_perturbed_{b}_predicted_{a}_percent"] = m.accuracy(
                    b, kind, Gradient.SAME, "adv", label=a
                )
        paper, notes = self.c4_paper(key_adv)
        absorption = self.claim(
            "C4a",
            f"Similar classes absorb the perturbed images: under {a} under-sampling, perturbed {a} images go "
            f"to {b} more than to any other wrong label.",
            measured,
            paper,
            [
                (
                    f"share {a}->{b} - largest other wrong-label share (pp)",
                    difference(to_b_adv, (max(pts[j] for j in others), np.max(reps[:, others], 1))),
                    True,
                )
            ]
            if others
            else [],
            notes
            if others
            else [
                *notes,
                f"With two classes {b} is the only wrong label: absorption cannot be told from misclassification.",
            ],
            floor,
        )
        absorption["pair"] = [a, b]
        return [absorption, self.c4b(key_adv, to_b_adv, to_b_clean, floor)]

    def floor_pair(self) -> str | None:
        """The floor-effect text when the under:a model hardly predicts a on clean images."""
        m, a = self.m, self.pair[0]
        clean_a = self.est(m.accuracy(a, Kind.UNDER, Gradient.SAME, "clean"))
        floor = None
        if np.isfinite(clean_a.value) and clean_a.value < FLOOR_PERCENT:
            floor = (
                f"Floor effect: the under:{a} model predicts {a} for only {clean_a.value:.1f}% of the clean "
                f"{a} images, so where they go reflects its clean confusion more than the attack."
            )
        return floor

    def c4_paper(self, key_adv: str) -> tuple[dict[str, Any], list[str]]:
        """The paper's two figures for C4 (only for its pair, cat and dog) and the note on them."""
        b = self.pair[1]
        paper: dict[str, Any] = {}
        notes = []
        if self.pair == ("cat", "dog") and self.ref is not None:
            paper = {
                key_adv: self.text.get("cat_under_perturbed_predicted_dog_percent"),
                f"over_{b}_perturbed_{b}_predicted_cat_percent": self.text.get(
                    "dog_predicted_cat_over_sampling_percent"
                ),
            }
            notes.append(
                "The paper's second figure (39% of dogs predicted cat 'on the over-sampling one') does not say "
                "which model; we set it beside the over:dog model and also show the under:dog model. "
                "The verdict uses only the first quantity."
            )
        return paper, notes

    def c4b(self, key_adv: str, to_b_adv: Quantity, to_b_clean: Quantity, floor: str | None) -> dict[str, Any]:
        m, (a, b) = self.m, self.pair
        intens = self.claim(
            "C4b",
            f"The attack intensifies the confusion: under {a} under-sampling, more of the {a} images are "
            f"predicted {b} after the attack than before it.",
            {
                f"under_{a}_clean_{a}_predicted_{b}_percent": to_b_clean,
                key_adv: to_b_adv,
                f"balanced_perturbed_{a}_predicted_{b}_percent": m.accuracy(
                    a, Kind.BALANCED, Gradient.SAME, "adv", label=b
                ),
            },
            {},
            [
                (
                    f"perturbed - clean share {a}->{b} (pp, paired on the same images)",
                    difference(to_b_adv, to_b_clean),
                    True,
                )
            ],
            [
                "The paper says cats are 'increasingly misclassified as dogs' under attack but gives no clean share; "
                "this tests that reading on the same images before and after the attack. The balanced model's share "
                "is shown for context."
            ],
            floor,
            magnitude_note="the paper gives no clean share to compare with",
        )
        intens["pair"] = [a, b]
        return intens


def check_claims(
    m: GridMetrics, reference: dict[str, Any] | None = None, pair: tuple[str, str] | None = None
) -> dict[str, Any]:
    """All claims as a JSON-ready dict: measured values with intervals, the differences
    tested with their sign-test verdict, floor effects, magnitude agreement with the paper
    (``reference`` given only in the paper's setting) and notes. With several seeds every
    comparison also gets a paired t-test over seeds (:func:`seed_tests`)."""
    bal = m.res.outcomes.clean(BALANCED)
    pair = pair or default_pair(m.res.classes, m.res.targets, bal[0].confusion if bal else None)
    res = _Claims(m, reference, pair).build()
    if m.res.seeds > 1:
        seed_tests(m.res, res, reference, pair)
    return res


def seed_tests(grid: GridResults, res: dict[str, Any], reference, pair) -> None:
    """Add to every comparison a paired t-test over seeds: the comparison's difference
    (e.g. balanced - under, both measured on the same classes' images in the same seed) is
    computed per seed and tested against 0 (``scipy.stats.ttest_1samp``, two-sided)."""
    from scipy import stats

    per_seed = [
        _Claims(GridMetrics(grid.seed(s), Bootstrap(n_boot=100)), reference, pair).build() for s in range(grid.seeds)
    ]
    for i, claim in enumerate(res["claims"]):
        for j, comp in enumerate(claim["comparisons"]):
            vals = np.array([p["claims"][i]["comparisons"][j]["value"] for p in per_seed], dtype=float)
            vals = vals[np.isfinite(vals)]
            t, p = stats.ttest_1samp(vals, 0.0) if len(vals) > 1 and np.ptp(vals) > 0 else (float("nan"),) * 2
            comp["seed_test"] = {
                "test": "paired t-test over seeds (difference per seed vs 0, two-sided)",
                "seeds": len(vals),
                "per_seed": [round(float(v), 2) for v in vals],
                "t": round(float(t), 3),
                "p": float(p),
                "df": int(len(vals) - 1),
            }
        weak = [c["label"] for c in claim["comparisons"] if not c["seed_test"]["p"] < 0.05]
        if weak and claim["verdict"] == REPRODUCED:
            claim["notes"].append(
                f"The paired t-test over the {grid.seeds} seeds does not reject 0 at the 5% level for "
                f"{'; '.join(weak)}: the bootstrap interval resamples {grid.seeds} seeds with replacement and "
                "understates the seed-to-seed spread when there are few; more seeds would settle it."
            )

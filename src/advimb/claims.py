"""The paper's claims (PROTOCOL.md C1-C4), measured with intervals and given a verdict.

Input is the per-image outcome of every combination (``eval/attack/*.npz``: the labels
each evaluated model predicts for the target class's test images, clean and perturbed).
Every quantity is a mean over target classes of a per-class mean over test images, so
its interval comes from :class:`advimb.stats.Bootstrap` (paired where two quantities share
images). A claim is a list of differences the paper says are positive; the verdict is
:func:`advimb.stats.verdict` of their intervals.

- C1 under-sampled models are the most vulnerable, over-sampled the least: same-model
  accuracy under attack, balanced - under > 0 and over - balanced > 0.
- C2 the relative drop (clean - perturbed) / clean is largest for under-sampled models
  and smallest for over-sampled: under - balanced > 0 and balanced - over > 0.
- C3 the different-model (transfer) attack is weaker than the same-model attack:
  different - same > 0 for the under- and the over-sampled models.
- C4 similar classes absorb the perturbed images: for the pair (cat, dog), the share of
  perturbed cats that an under:cat model calls dog exceeds the share of every other wrong
  label (the paper: about 40%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.imbalance import parse_scenario
from advimb.stats import REPRODUCED, Bootstrap, Estimate, mean_over_groups, verdict

#: the (model kind, gradient) pairs of Table 1
KINDS = ("balanced", "under", "over")
#: below this mean clean target accuracy (%) the under-sampled comparisons are a floor effect
FLOOR_PERCENT = 5.0


@dataclass
class Outcomes:
    """Per-image predictions of every combination, per seed.

    ``cells[(class, model_kind, gradient)]`` is a list (one entry per seed) of dicts with
    ``clean`` and ``adv`` (predicted label of each attacked test image, int arrays) and
    ``source`` (the artifact they were read from).
    """

    classes: tuple[str, ...]
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def get(self, c: str, kind: str, grad: str) -> list[dict[str, Any]] | None:
        return self.cells.get((c, kind, grad))

    @property
    def targets(self) -> list[str]:
        present = {k[0] for k in self.cells}
        return [c for c in self.classes if c in present]

    def sources(self) -> list[str]:
        return sorted({e["source"] for v in self.cells.values() for e in v})

    @property
    def n_seeds(self) -> int:
        return min((len(v) for v in self.cells.values()), default=0)

    def seed(self, s: int) -> "Outcomes":
        """The outcomes of replicate ``s`` alone."""
        return Outcomes(self.classes, {k: [v[s]] for k, v in self.cells.items()})


def load_outcomes(run_dir: Path) -> Outcomes:
    """Read every attack artifact of the paper's grid in a run folder and its replicates
    (``experiments.seeds``): one entry per seed in every cell, in seed order."""
    from advimb.tables import replicate_roots

    run_dir = Path(run_dir)
    out: Outcomes | None = None
    for root in replicate_roots(run_dir):
        for f in sorted((root / "eval" / "attack").glob("*.json")):
            d = artifacts.read_json(f)
            classes = tuple(d["classes"])
            out = out or Outcomes(classes)
            npz_path = f.with_suffix(".npz")
            with np.load(npz_path) as z:
                for c in d["combinations"]:
                    slug = parse_scenario(c["evaluated_model"], classes).slug(classes)
                    out.cells.setdefault((c["class"], c["model_kind"], c["gradient"]), []).append({
                        "clean": z[f"pred_clean__{slug}"].astype(np.int64),
                        "adv": z[f"pred_adv__{slug}"].astype(np.int64),
                        "source": str(npz_path.relative_to(run_dir)),
                    })
    if out is None:
        from advimb.errors import UserError
        raise UserError(f"{run_dir} holds no attack results yet; run `advimb run` into it first")
    return out


# ----------------------------------------------------------------------------- quantities


class _Measure:
    """Class-averaged quantities with paired bootstrap replicates (all in percent)."""

    def __init__(self, oc: Outcomes, boot: Bootstrap):
        self.oc, self.boot = oc, boot

    def _acc(self, c: str, kind: str, grad: str, which: str, label: int | None = None):
        cell = self.oc.get(c, kind, grad)
        if not cell:
            return float("nan"), np.full(self.boot.n_boot, np.nan)
        lab = self.oc.classes.index(c) if label is None else label
        # key = the images: same class -> same resample, whichever model or label
        return self.boot.mean([100.0 * (e[which] == lab) for e in cell], key=("class", c))

    def accuracy(self, kind: str, grad: str, which: str = "adv"):
        """Mean over classes of the target-class accuracy (clean or under attack)."""
        per = [self._acc(c, kind, grad, which) for c in self.oc.targets]
        return mean_over_groups([p for p, _ in per], [r for _, r in per])

    def relative_difference(self, kind: str, grad: str = "same_model"):
        """Mean over classes of 100 * (clean - perturbed) / clean (paper Fig. 4)."""
        pts, reps = [], []
        for c in self.oc.targets:
            pc, rc = self._acc(c, kind, grad, "clean")
            pa, ra = self._acc(c, kind, grad, "adv")
            with np.errstate(divide="ignore", invalid="ignore"):
                pts.append(100 * (pc - pa) / pc if pc > 0 else float("nan"))
                reps.append(np.where(rc > 0, 100 * (rc - ra) / rc, np.nan))
        return mean_over_groups(pts, reps)

    def share(self, c: str, kind: str, grad: str, label: int):
        """Share (%) of class ``c``'s perturbed images predicted as ``label``."""
        return self._acc(c, kind, grad, "adv", label)


def _diff(boot: Bootstrap, a, b) -> Estimate:
    return boot.interval(a[0] - b[0], a[1] - b[1])


def _est(boot: Bootstrap, a) -> dict[str, float]:
    return boot.interval(*a).to_dict()


def _comparison(label: str, est: Estimate) -> dict[str, Any]:
    return {"label": label, **est.to_dict()}


def _paper_means(reference: dict[str, Any], classes: list[str]) -> dict[str, float]:
    cols = reference["table1_columns"]
    rows = [reference["table1_percent"][c] for c in classes if c in reference["table1_percent"]]
    if not rows:
        return {}
    return {col: round(float(np.mean([r[i] for r in rows])), 2) for i, col in enumerate(cols)}


def default_pair(classes: tuple[str, ...], targets: list[str] | None = None,
                 confusion: np.ndarray | None = None) -> tuple[str, str]:
    """The pair for Fig. 6 and C4, chosen among the studied classes ``targets`` (default:
    all): (cat, dog) when both are studied; else the pair of studied classes the balanced
    model confuses most (row-normalised clean confusion); with one studied class, that
    class and the class it is most often taken for."""
    targets = list(targets or classes)
    if "cat" in targets and "dog" in targets:
        return "cat", "dog"
    if confusion is None:
        return targets[0], (targets[1] if len(targets) > 1 else next(c for c in classes if c != targets[0]))
    cm = np.asarray(confusion, dtype=np.float64)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    np.fill_diagonal(cm, -1)
    rows = [classes.index(c) for c in targets]
    cols = rows if len(rows) > 1 else list(range(len(classes)))
    sub = cm[np.ix_(rows, cols)]
    i, j = np.unravel_index(np.argmax(sub), sub.shape)
    return classes[rows[i]], classes[cols[j]]


def parse_pair(pair: str | tuple[str, str], classes: tuple[str, ...], targets: list[str]) -> tuple[str, str]:
    """``--pair A,B`` checked: two different classes of the dataset, A a studied class (C4
    and Fig. 6 use the model trained with A under-sampled). Raises :class:`UserError`."""
    from advimb.errors import UserError

    parts = [p.strip() for p in (pair.split(",") if isinstance(pair, str) else pair)]
    if len(parts) != 2:
        raise UserError(f"--pair {pair!r} must name two classes, e.g. --pair cat,dog")
    a, b = parts
    for c in (a, b):
        if c not in classes:
            raise UserError(f"unknown class {c!r} in --pair; choose from {', '.join(classes)}")
    if a == b:
        raise UserError("--pair needs two different classes, e.g. --pair cat,dog")
    if a not in targets:
        raise UserError(f"--pair {a},{b}: {a!r} is not a studied class (imbalance.classes), so there is no "
                        f"under:{a} model; put one of {', '.join(targets)} first")
    return a, b


def check_claims(oc: Outcomes, reference: dict[str, Any] | None = None,
                 pair: tuple[str, str] | None = None, boot: Bootstrap | None = None,
                 n_seeds: int | None = None) -> dict[str, Any]:
    """All four claims as a JSON-ready dict: measured values with intervals, the paper's
    values, the differences tested, the verdict and notes. With several seeds every
    comparison also gets a paired t-test over seeds (:func:`seed_tests`)."""
    n_seeds = oc.n_seeds if n_seeds is None else n_seeds
    res = _check_claims(oc, reference, pair, boot or Bootstrap(), n_seeds)
    if n_seeds > 1:
        seed_tests(oc, res, reference, pair)
    return res


def seed_tests(oc: Outcomes, res: dict[str, Any], reference, pair) -> None:
    """Add to every comparison a paired t-test over seeds: the comparison's difference
    (e.g. balanced - under, both measured on the same classes' images in the same seed) is
    computed per seed and tested against 0 (``scipy.stats.ttest_1samp``, two-sided)."""
    from scipy import stats

    per_seed = [_check_claims(oc.seed(s), reference, pair, Bootstrap(n_boot=100), 1) for s in range(oc.n_seeds)]
    for i, claim in enumerate(res["claims"]):
        for j, comp in enumerate(claim["comparisons"]):
            vals = np.array([p["claims"][i]["comparisons"][j]["value"] for p in per_seed], dtype=float)
            vals = vals[np.isfinite(vals)]
            t, p = stats.ttest_1samp(vals, 0.0) if len(vals) > 1 and np.ptp(vals) > 0 else (float("nan"),) * 2
            comp["seed_test"] = {"test": "paired t-test over seeds (difference per seed vs 0, two-sided)",
                                 "seeds": int(len(vals)), "per_seed": [round(float(v), 2) for v in vals],
                                 "t": round(float(t), 3), "p": float(p), "df": int(len(vals) - 1)}
        weak = [c["label"] for c in claim["comparisons"] if not c["seed_test"]["p"] < 0.05]
        if weak and claim["verdict"] == REPRODUCED:
            claim["notes"].append(
                f"The paired t-test over the {oc.n_seeds} seeds does not reject 0 at the 5% level for "
                f"{'; '.join(weak)}: the bootstrap interval resamples {oc.n_seeds} seeds with replacement and "
                "understates the seed-to-seed spread when there are few; more seeds would settle it.")


def _check_claims(oc: Outcomes, reference: dict[str, Any] | None, pair: tuple[str, str] | None,
                  boot: Bootstrap, n_seeds: int) -> dict[str, Any]:
    m = _Measure(oc, boot)
    ref = reference or {}
    paper = _paper_means(ref, oc.targets) if ref else {}
    acc = {k: m.accuracy(k, "same_model") for k in KINDS}
    transfer = {k: m.accuracy(k, "different_model") for k in ("under", "over")}
    clean_target = {k: m.accuracy(k, "same_model", "clean") for k in KINDS}
    ci = (f"95% paired two-level bootstrap ({n_seeds} seeds, then test images within each class)"
          if n_seeds > 1 else "95% paired bootstrap over test images")
    notes_floor = []
    if np.isfinite(clean_target["under"][0]) and clean_target["under"][0] < FLOOR_PERCENT:
        notes_floor.append(
            f"Floor effect: the under-sampled models predict their minority class for only "
            f"{clean_target['under'][0]:.1f}% of its clean test images, so their accuracy under attack "
            "is bounded by the class prior rather than measuring a gradient effect.")
    claims = []

    # C1
    d1 = [_diff(boot, acc["balanced"], acc["under"]), _diff(boot, acc["over"], acc["balanced"])]
    claims.append({
        "id": "C1", "statement": "Under-sampled models are the most vulnerable to the attack, "
                                 "over-sampled models the least (same-model accuracy under attack).",
        "measured": {f"same_model_{k}_accuracy_percent": _est(boot, acc[k]) for k in KINDS},
        "paper": {f"same_model_{k}_accuracy_percent": paper.get(f"same_model_{k}") for k in KINDS},
        "comparisons": [_comparison("balanced - under (pp)", d1[0]), _comparison("over - balanced (pp)", d1[1])],
        "verdict": verdict(d1), "interval": ci, "notes": list(notes_floor),
    })

    # C2
    rd = {k: m.relative_difference(k) for k in KINDS}
    d2 = [_diff(boot, rd["under"], rd["balanced"]), _diff(boot, rd["balanced"], rd["over"])]
    claims.append({
        "id": "C2", "statement": "The relative accuracy drop (clean - perturbed) / clean is largest "
                                 "for under-sampled models and smallest for over-sampled ones.",
        "measured": {f"relative_difference_{k}_percent": _est(boot, rd[k]) for k in KINDS},
        "paper": {"order": "under > balanced > over (Fig. 4; values only shown graphically)"},
        "comparisons": [_comparison("under - balanced (pp)", d2[0]), _comparison("balanced - over (pp)", d2[1])],
        "verdict": verdict(d2), "interval": ci, "notes": list(notes_floor),
    })

    # C3
    d3 = [_diff(boot, transfer["under"], acc["under"]), _diff(boot, transfer["over"], acc["over"])]
    notes3 = list(notes_floor)
    text = ref.get("text", {})
    if "same_model_under_average_percent_as_stated" in text and paper:
        notes3.append(
            f"The paper's text gives the same-model average for under-sampled models as "
            f"{text['same_model_under_average_percent_as_stated']}%, but its Table 1 column averages "
            f"{paper.get('same_model_under')}%; {text['same_model_under_average_percent_as_stated']}% is the "
            f"balanced column's average ({paper.get('same_model_balanced')}%). We compare with Table 1.")
    claims.append({
        "id": "C3", "statement": "The different-model (transfer) attack, using the balanced model's "
                                 "gradient, is weaker than the same-model attack.",
        "measured": {
            "different_model_under_accuracy_percent": _est(boot, transfer["under"]),
            "same_model_under_accuracy_percent": _est(boot, acc["under"]),
            "different_model_over_accuracy_percent": _est(boot, transfer["over"]),
            "same_model_over_accuracy_percent": _est(boot, acc["over"]),
        },
        "paper": {"different_model_under_accuracy_percent": paper.get("different_model_under"),
                  "same_model_under_accuracy_percent": paper.get("same_model_under"),
                  "different_model_over_accuracy_percent": paper.get("different_model_over"),
                  "same_model_over_accuracy_percent": paper.get("same_model_over")},
        "comparisons": [_comparison("different - same, under-sampled (pp)", d3[0]),
                        _comparison("different - same, over-sampled (pp)", d3[1])],
        "verdict": verdict(d3), "interval": ci, "notes": notes3,
    })

    claims.append(_claim_c4(oc, m, boot, pair or default_pair(oc.classes, oc.targets), text, ci))
    for c in claims:
        c["paper_value_in_interval"] = {
            k: (None if not isinstance(c["paper"].get(k), (int, float)) or not np.isfinite(v["lo"])
                else bool(v["lo"] <= c["paper"][k] <= v["hi"]))
            for k, v in c["measured"].items()}
    return {"claims": claims, "n_boot": boot.n_boot, "level": boot.level, "bootstrap_seed": boot.seed,
            "seeds": n_seeds,
            "classes": oc.targets, "sources": oc.sources(),
            "clean_target_accuracy_percent": {k: _est(boot, clean_target[k]) for k in KINDS}}


def _claim_c4(oc: Outcomes, m: _Measure, boot: Bootstrap, pair: tuple[str, str],
              text: dict[str, Any], ci: str) -> dict[str, Any]:
    a, b = pair
    statement = (f"Similar classes absorb the perturbed images: under {a} under-sampling, perturbed "
                 f"{a} images go to {b} more than to any other wrong label.")
    if a not in oc.classes or b not in oc.classes or not oc.get(a, "under", "same_model"):
        return {"id": "C4", "statement": statement, "measured": {}, "paper": {}, "comparisons": [],
                "verdict": verdict([]), "interval": ci,
                "notes": [f"no under:{a} same-model result in this run"]}
    ia, ib = oc.classes.index(a), oc.classes.index(b)
    shares = {k: m.share(a, "under", "same_model", k) for k in range(len(oc.classes)) if k != ia}
    others = [shares[k] for k in shares if k != ib]
    if others:
        best_other = (max(p for p, _ in others), np.max(np.stack([r for _, r in others]), 0))
        d = [_diff(boot, shares[ib], best_other)]
    else:
        d = []
    measured = {f"under_{a}_perturbed_{a}_predicted_{b}_percent": _est(boot, shares[ib])}
    for kind in ("under", "over"):  # the reverse direction, both readings of the paper's 39%
        if oc.get(b, kind, "same_model"):
            measured[f"{kind}_{b}_perturbed_{b}_predicted_{a}_percent"] = _est(
                boot, m.share(b, kind, "same_model", ia))
    paper: dict[str, Any] = {}
    if pair == ("cat", "dog"):
        paper = {f"under_{a}_perturbed_{a}_predicted_{b}_percent": text.get("cat_under_perturbed_predicted_dog_percent"),
                 f"over_{b}_perturbed_{b}_predicted_{a}_percent": text.get("dog_predicted_cat_over_sampling_percent")}
    notes = ["The paper's second figure (39% of dogs predicted cat 'on the over-sampling one') does not say "
             "which model; we set it beside the over:dog model and also show the under:dog model. "
             "The verdict uses only the first quantity."] if pair == ("cat", "dog") else []
    return {"id": "C4", "statement": statement, "measured": measured, "paper": paper,
            "comparisons": [_comparison(f"share {a}->{b} - largest other wrong-label share (pp)", x) for x in d],
            "verdict": verdict(d), "interval": ci, "notes": notes, "pair": [a, b]}

"""Tables of the experiments beyond the paper (imbalance sweep, long-tailed profiles,
defences), from stored artifacts only.

Every quantity is a mean of per-image outcomes of the attacked test images of a class,
with a 95% interval from the paired two-level bootstrap of ``advimb.results.stats`` (seeds, then
test images within each class); quantities measured on the same images (a defended and an
undefended model on the cat images) share their resamples, so their differences are
paired. Writes ``tables/imbalance_sweep.csv``, ``tables/long_tail.csv``,
``tables/long_tail_summary.csv``, ``tables/defences.csv`` and ``tables/defences_summary.csv``
(each only when its experiment ran) and returns their summaries for ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.config.additive import LONG_TAIL_ATTACKS
from advimb.data.imbalance import BALANCED, Scenario
from advimb.layout import RunLayout
from advimb.results.longtail import LongTailRobustness, attack_label
from advimb.results.metrics import Metrics, difference
from advimb.results.reader import Outcomes
from advimb.results.stats import N_BOOT, Bootstrap, Estimate, mean_over_groups
from advimb.scenario import Kind


def _est(boot: Bootstrap, est, digits: int = 2) -> dict[str, float]:
    return boot.interval(*est).to_dict(digits=digits)


# ----------------------------------------------------------------------------- the experiments


def imbalance_sweep(m: Metrics) -> list[dict[str, Any]]:
    """Per swept class and training count: clean and adversarial target accuracy (same
    model and transfer from the balanced model) and relative difference, against the
    imbalance ratio (target count / count of every other class)."""
    s = m.outcomes
    swept = s.models("counts")
    rows = []
    for i, cls in enumerate(s.classes):
        mine = [x for x in swept if x.target == i]
        if not mine:
            continue
        for model in [BALANCED, Scenario(Kind.UNDER, i), Scenario(Kind.OVER, i), *mine]:
            counts = m.counts(model)
            if counts is None:
                continue
            others = [n for j, n in enumerate(counts) if j != i]
            row = {
                "class": cls,
                "model": model.name(s.classes),
                "branch": model.kind,
                "target_count": counts[i],
                "other_count": others[0],
                "ratio": counts[i] / others[0],
            }
            row.update(m.cols("clean_accuracy_attacked_images", m.accuracy(model, model, cls, "clean")))
            row.update(m.cols("adversarial_accuracy_same", m.accuracy(model, model, cls)))
            # for the balanced model the balanced model's gradient is its own
            row.update(m.cols("adversarial_accuracy_transfer", m.accuracy(model, BALANCED, cls)))
            row.update(m.cols("relative_difference", m.relative_difference(model, model, cls)))
            rows.append(row)
    return sorted(rows, key=lambda r: (s.classes.index(r["class"]), r["ratio"]))


def long_tail(m: Metrics) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per profile and class: training count and share, clean and adversarial accuracy;
    and per profile the Spearman correlation between class count and accuracy under
    attack, and the tail-minus-head difference (rarer half of the classes minus the rest)."""
    from scipy import stats

    s = m.outcomes
    rows, summary = [], []
    for model in s.models("long_tail"):
        counts = m.counts(model)
        if counts is None:
            continue
        per = []
        for i, cls in enumerate(s.classes):
            same, transfer = m.accuracy(model, model, cls), m.accuracy(model, BALANCED, cls)
            per.append((cls, counts[i], same))
            rows.append(
                {
                    "profile": model.name(s.classes),
                    "class": cls,
                    "train_count": counts[i],
                    "train_share": counts[i] / sum(counts),
                    **m.cols("clean_accuracy_attacked_images", m.accuracy(model, model, cls, "clean")),
                    **m.cols("adversarial_accuracy_same", same),
                    **m.cols("adversarial_accuracy_transfer", transfer),
                    **m.cols("relative_difference", m.relative_difference(model, model, cls)),
                }
            )
        n = np.array([c for _, c, _ in per], dtype=float)
        acc = np.array([e[0] for _, _, e in per], dtype=float)
        rho, p = stats.spearmanr(n, acc) if np.ptp(n) > 0 and np.ptp(acc) > 0 else (float("nan"), float("nan"))
        order = np.argsort(n, kind="stable")
        tail, head = order[: len(order) // 2], order[len(order) // 2 :]
        tail_m = mean_over_groups([per[j][2][0] for j in tail], [per[j][2][1] for j in tail])
        head_m = mean_over_groups([per[j][2][0] for j in head], [per[j][2][1] for j in head])
        summary.append(
            {
                "profile": model.name(s.classes),
                "spearman_rho_count_vs_adversarial_accuracy": float(rho),
                "spearman_p": float(p),
                "tail_classes": ",".join(per[j][0] for j in tail),
                **m.cols("tail_minus_head_adversarial_accuracy", difference(tail_m, head_m)),
                "test": "Spearman rank correlation over classes; tail - head: two-level bootstrap "
                "(seeds, then images), 95% percentile",
            }
        )
    return rows, summary


def defences(m: Metrics, order_of: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per defence and class: accuracy under attack (same model) of the plain and the
    defended under-sampled model and of the balanced model; the gap balanced - under
    before and after; how much of it the defence closes; the cost in clean accuracy."""
    s = m.outcomes
    by_def: dict[str, list[Scenario]] = {}
    for x in s.models("defences"):
        if x.defence and x.kind != Kind.BALANCED:
            by_def.setdefault(x.defence, []).append(x)
    rows, summary = [], []
    order = list(order_of)  # the config's order (experiments.defences)
    for d, models in sorted(
        by_def.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])
    ):
        ests: dict[str, list] = {
            k: [] for k in ("under", "defended", "balanced", "gap_plain", "gap_defended", "closed", "defended_balanced")
        }
        for model in models:
            e, row = _defence_row(m, d, model)
            rows.append(row)
            for k, values in ests.items():
                values.append(e[k])
        summary.append(_defence_summary(m, d, len(models), ests, rows))
    return rows, summary


def _defence_row(m: Metrics, d: str, model: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """One defended under-sampled model: its estimates and its row of the defences table."""
    s = m.outcomes
    if model.target is None:  # the defences table lists only models with an under-sampled class
        raise ValueError(f"defences table: model {model} has no target class")
    cls, plain, defended_bal = (
        s.classes[model.target],
        Scenario(Kind.UNDER, model.target),
        Scenario(Kind.BALANCED, defence=d),
    )
    e = {
        "under": m.accuracy(plain, plain, cls),
        "defended": m.accuracy(model, model, cls),
        "balanced": m.accuracy(BALANCED, BALANCED, cls),
        "defended_balanced": m.accuracy(defended_bal, defended_bal, cls),
    }
    e["gap_plain"], e["gap_defended"] = difference(e["balanced"], e["under"]), difference(e["balanced"], e["defended"])
    e["closed"] = difference(e["defended"], e["under"])
    row = {
        "defence": d,
        "class": cls,
        "model": model.name(s.classes),
        **m.cols("under_adversarial_accuracy", e["under"]),
        **m.cols("defended_adversarial_accuracy", e["defended"]),
        **m.cols("balanced_adversarial_accuracy", e["balanced"]),
        **m.cols("defended_balanced_adversarial_accuracy", e["defended_balanced"]),
        **m.cols("gap_plain", e["gap_plain"]),
        **m.cols("gap_defended", e["gap_defended"]),
        **m.cols("gap_closed", e["closed"]),
        **m.cols("defended_transfer_accuracy", m.accuracy(model, BALANCED, cls)),
        **m.cols("under_clean_accuracy_attacked_images", m.accuracy(plain, plain, cls, "clean")),
        **m.cols("defended_clean_accuracy_attacked_images", m.accuracy(model, model, cls, "clean")),
        "under_clean_accuracy_full_test_set": m.clean_accuracy(plain),
        "defended_clean_accuracy_full_test_set": m.clean_accuracy(model),
        "clean_accuracy_cost": m.clean_accuracy(plain) - m.clean_accuracy(model),
    }
    return e, row


def _defence_summary(
    m: Metrics, d: str, n_models: int, ests: dict[str, list], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """One defence's summary over the classes it was applied to."""
    mean = {k: m.mean_over(v) for k, v in ests.items()}
    closed, gap_def = m.estimate(mean["closed"]), m.estimate(mean["gap_defended"])
    gap_plain = mean["gap_plain"][0]
    return {
        "defence": d,
        "classes": n_models,
        **{
            f"{k}_adversarial_accuracy": _est(m.boot, mean[k])
            for k in ("under", "defended", "balanced", "defended_balanced")
        },
        "gap_plain_pp": _est(m.boot, mean["gap_plain"]),
        "gap_defended_pp": _est(m.boot, mean["gap_defended"]),
        "gap_closed_pp": _est(m.boot, mean["closed"]),
        "gap_closed_share_percent": 100 * mean["closed"][0] / gap_plain if gap_plain > 0 else float("nan"),
        # strict: a missing clean evaluation makes the mean undefined, not a mean over fewer classes
        "clean_accuracy_cost_pp": float(np.mean([r["clean_accuracy_cost"] for r in rows if r["defence"] == d])),
        "verdict": gap_verdict(closed, gap_def),
        "test": "differences paired on the same test images; two-level bootstrap (seeds, then images), 95% percentile",
    }


#: why a defences-summary number can be undefined
UNDEFINED = {
    "defended_balanced_adversarial_accuracy": "no defended balanced model (only adversarial training "
    "defends the balanced model)",
    "gap_closed_share_percent": "no gap to close (the plain under-sampled models are not below the balanced one)",
}


def _cell(key: str, v: Any) -> Any:
    """A defences-summary value for the CSV: ``value [lo, hi]`` for an estimate (``value (no
    interval)`` when too few replicates are defined), and ``n/a: reason`` for a number that is
    undefined, never ``nan``."""
    if isinstance(v, dict):
        ok = all(isinstance(v[k], float) and np.isfinite(v[k]) for k in ("lo", "hi"))
        v, text = v["value"], (f"{v['value']} [{v['lo']}, {v['hi']}]" if ok else f"{v['value']} (no interval)")
    else:
        text = v
    if isinstance(v, float) and not np.isfinite(v):
        return f"n/a: {UNDEFINED.get(key, 'not measurable in this run')}"
    return text


def gap_verdict(closed: Estimate, gap_defended: Estimate) -> str:
    """``closes the gap`` (the defended under-sampled model is no longer below the balanced
    one), ``narrows the gap``, ``no measurable effect`` or ``widens the gap``."""
    if not np.isfinite(closed.lo):
        return "not measurable"
    if closed.hi < 0:
        return "widens the gap"
    if closed.lo <= 0:
        return "no measurable effect"
    return "closes the gap" if gap_defended.lo <= 0 else "narrows the gap"


def long_tail_robustness(m: Metrics) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The long-tailed profiles' models (plain and defended) under the main attack and every
    further one (:mod:`advimb.results.longtail`); the artifacts read are added to ``m.used``."""
    store, cfg = m.outcomes, m.outcomes.config
    models = [s for s in store.models("long_tail") if s.kind == Kind.LONGTAIL]
    if not models or cfg is None:
        return [], []
    attacks = {attack_label(cfg.attack.name, cfg.attack.steps): m}
    for label in store.attacks():
        name = LONG_TAIL_ATTACKS[label]["name"] if label in LONG_TAIL_ATTACKS else label
        attacks[attack_label(name, cfg.attack.steps)] = Metrics(store, m.boot, attack=label)
    rows = LongTailRobustness(attacks, models, cfg.experiments.tail_fraction).rows()
    for a in attacks.values():
        m.used |= a.used
    return rows


def build_experiment_tables(
    run_dir: Path, sources: dict[str, list[str]], n_boot: int = N_BOOT, outcomes: Outcomes | None = None
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Write the experiments' tables (those that ran); return (their summaries for
    ``summary.json``, their rows by table name). ``outcomes``: the run's, when the caller has
    read them."""
    run_dir = Path(run_dir)
    if not any((lay.root / "experiments").is_dir() for lay in RunLayout(run_dir).replicates()):
        return {}, {}
    store = outcomes or Outcomes.read(run_dir)
    cfg = store.config
    m = Metrics(store, Bootstrap(n_boot=n_boot, seed=0))
    out = RunLayout(run_dir).tables
    summary: dict[str, Any] = {}
    tables = {}
    sweep = imbalance_sweep(m)
    if sweep:
        tables["imbalance_sweep"] = sweep
    lt_rows, lt_summary = long_tail(m)
    if lt_rows:
        tables["long_tail"], tables["long_tail_summary"] = lt_rows, lt_summary
    robust_classes, robust = long_tail_robustness(m)
    if robust:
        tables["long_tail_classes"], tables["long_tail_robustness"] = robust_classes, robust
        summary["long_tail_robustness"] = robust
        summary["long_tail"] = lt_summary
    def_rows, def_summary = defences(m, tuple(cfg.experiments.defences) if cfg else ())
    if def_rows:
        tables["defences"] = def_rows
        tables["defences_summary"] = [{k: _cell(k, v) for k, v in r.items()} for r in def_summary]
        summary["defences"] = def_summary
    for name, rows in tables.items():
        cols = list(dict.fromkeys(k for r in rows for k in r))
        artifacts.write_text(
            out / f"{name}.csv", artifacts.csv_text([{k: r.get(k, "") for k in cols} for r in rows], cols)
        )
        sources[name] = sorted(m.used)
    summary["experiments"] = {"tables": sorted(tables), "seeds": store.seeds, "n_boot": n_boot}
    return summary, tables

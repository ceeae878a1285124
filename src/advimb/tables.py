"""Results tables, derived only from the stored artifacts of a run folder.

Reads ``eval/clean/*.json`` and ``eval/attack/*.json`` (and nothing else); never trains or
attacks. Writes ``tables/``: ``table1.csv``/``table1.md`` (paper Table 1 layout),
``clean_target_accuracy.csv`` (Fig. 2 data), ``relative_difference.csv`` (Fig. 4 data),
``flip_rates.csv`` (Fig. 6 data), ``clean_accuracy.csv`` and ``summary.json`` with the
paper's orderings checked, plus ``sources.json`` naming the artifacts each table used.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.errors import UserError

#: Table 1's columns: (column name, model kind, gradient)
TABLE1_COLUMNS = (
    ("different_model_under", "under", "different_model"),
    ("different_model_over", "over", "different_model"),
    ("same_model_balanced", "balanced", "same_model"),
    ("same_model_under", "under", "same_model"),
    ("same_model_over", "over", "same_model"),
)


def _csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def replicate_roots(run_dir: Path) -> list[Path]:
    """The run folder and its replicates' folders (``experiments.seeds``), in seed order."""
    run_dir = Path(run_dir)
    reps = sorted((p for p in (run_dir / "replicates").glob("*") if p.name.isdigit() and (p / "eval").is_dir()),
                  key=lambda p: int(p.name))
    return [run_dir, *reps]


def load_results(run_dir: Path, base: Path | None = None) -> dict[str, Any]:
    """All combinations and clean evaluations stored in ``run_dir`` (one replicate's
    folder); sources are named relative to ``base`` (default ``run_dir``)."""
    run_dir = Path(run_dir)
    base = Path(base or run_dir)
    attack_files = sorted((run_dir / "eval" / "attack").glob("*.json"))
    clean_files = sorted((run_dir / "eval" / "clean").glob("*.json"))
    if not attack_files or not clean_files:
        raise UserError(f"{run_dir} holds no evaluation results yet; run `advimb run` into it first")
    combos, classes = [], None
    for f in attack_files:
        d = artifacts.read_json(f)
        classes = tuple(d["classes"])
        for c in d["combinations"]:
            combos.append({**c, "source": str(f.relative_to(base))})
    clean = {}
    for f in clean_files:
        d = artifacts.read_json(f)
        clean[d["model"]] = {**d, "source": str(f.relative_to(base))}
    return {"classes": classes, "combinations": combos, "clean": clean}


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of independent replicates (seeds)."""
    from scipy import stats

    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - h, m + h


def aggregate(tables: list[list[dict[str, Any]]], keys: list[str]) -> list[dict[str, Any]]:
    """Rows of one table from several replicates, matched on ``keys``: every numeric
    column becomes its mean over replicates with ``<col>_ci_lo`` / ``<col>_ci_hi`` (95%
    t-interval over seeds); a single replicate comes back unchanged."""
    if len(tables) == 1:
        return tables[0]
    index = [{tuple(r[k] for k in keys): r for r in t} for t in tables]
    out = []
    for row in tables[0]:
        key = tuple(row[k] for k in keys)
        rows = [ix.get(key) for ix in index]
        agg: dict[str, Any] = {}
        for col, v in row.items():
            if col in keys or isinstance(v, str) or isinstance(v, bool):
                agg[col] = v
                continue
            m, lo, hi = t_interval([float(r[col]) if r else float("nan") for r in rows])
            agg[col], agg[f"{col}_ci_lo"], agg[f"{col}_ci_hi"] = m, lo, hi
        agg["seeds"] = sum(r is not None for r in rows)
        out.append(agg)
    return out


def compute_tables(res: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """One replicate's tables (rows) from its results (:func:`load_results`)."""
    classes, combos, clean = res["classes"], res["combinations"], res["clean"]
    by_cell = {(c["class"], c["model_kind"], c["gradient"]): c for c in combos}
    targets = [c for c in classes if any(k[0] == c for k in by_cell)]
    rows = []
    for c in targets:
        row: dict[str, Any] = {"class": c}
        for col, kind, grad in TABLE1_COLUMNS:
            cell = by_cell.get((c, kind, grad))
            row[col] = 100 * cell["adversarial_accuracy"] if cell else float("nan")
        rows.append(row)
    avg = {"class": "average", **{col: _mean([r[col] for r in rows]) for col, _, _ in TABLE1_COLUMNS}}
    fig2 = []
    for c in targets:
        r: dict[str, Any] = {"class": c}
        for kind, model in (("balanced", "balanced"), ("under", f"under:{c}"), ("over", f"over:{c}")):
            m = clean.get(model)
            r[kind] = 100 * m["per_class_accuracy"][classes.index(c)] if m else float("nan")
        fig2.append(r)
    rows_clean = [{"model": name, "accuracy": 100 * m["accuracy"],
                   **{c: 100 * a for c, a in zip(classes, m["per_class_accuracy"])}}
                  for name, m in sorted(clean.items(), key=lambda kv: _model_order(kv[0], classes))]
    rel = []
    for c in targets:
        for _, kind, grad in TABLE1_COLUMNS[2:] + TABLE1_COLUMNS[:2]:  # same model first
            cell = by_cell.get((c, kind, grad))
            if not cell:
                continue
            ca, aa = cell["clean_accuracy"], cell["adversarial_accuracy"]
            rel.append({"class": c, "model_kind": kind, "gradient": grad,
                        "evaluated_model": cell["evaluated_model"],
                        "clean_accuracy": 100 * ca, "adversarial_accuracy": 100 * aa,
                        "relative_difference": 100 * (ca - aa) / ca if ca > 0 else float("nan")})
    flips = []
    for cell in sorted(combos, key=lambda c: (classes.index(c["class"]), c["model_kind"], c["gradient"])):
        n = cell["n"]
        for j, cnt in enumerate(cell["adversarial_histogram"]):
            flips.append({"class": cell["class"], "evaluated_model": cell["evaluated_model"],
                          "gradient_model": cell["gradient_model"], "gradient": cell["gradient"],
                          "predicted_class": classes[j], "count": cnt,
                          "clean_count": cell["clean_histogram"][j],
                          "share": cnt / n if n else float("nan")})
    return {"table1": rows + [avg], "clean_target_accuracy": fig2, "clean_accuracy": rows_clean,
            "relative_difference": rel, "flip_rates": flips}


#: the key columns that match a table's rows across replicates
TABLE_KEYS = {"table1": ["class"], "clean_target_accuracy": ["class"], "clean_accuracy": ["model"],
              "relative_difference": ["class", "model_kind", "gradient", "evaluated_model"],
              "flip_rates": ["class", "evaluated_model", "gradient_model", "gradient", "predicted_class"]}


def _ci_text(r: dict[str, Any], col: str) -> str:
    if f"{col}_ci_lo" in r and not math.isnan(r[f"{col}_ci_lo"]):
        return f"{r[col]:.1f}% [{r[f'{col}_ci_lo']:.1f}, {r[f'{col}_ci_hi']:.1f}]"
    return f"{r[col]:.1f}%"


def build_tables(run_dir: Path) -> dict[str, Any]:
    """Write every table into ``run_dir/tables`` and return the summary (as written to
    ``summary.json``) plus ``rows`` (Table 1 and the experiments' tables as rows) and
    ``results`` (the first seed's :func:`load_results`, for the report). With
    several replicates (``experiments.seeds``) every table holds means over seeds with 95%
    t-intervals (``<column>_ci_lo`` / ``_ci_hi``)."""
    run_dir = Path(run_dir)
    roots = replicate_roots(run_dir)
    results = [load_results(r, run_dir) for r in roots]
    per = [compute_tables(r) for r in results]
    t = {name: aggregate([p[name] for p in per], TABLE_KEYS[name]) for name in TABLE_KEYS}
    out = run_dir / "tables"
    combo_sources = sorted({c["source"] for r in results for c in r["combinations"]})
    clean_sources = sorted({m["source"] for r in results for m in r["clean"].values()})
    sources: dict[str, list[str]] = {"table1": combo_sources, "clean_target_accuracy": clean_sources,
                                     "clean_accuracy": clean_sources, "relative_difference": combo_sources,
                                     "flip_rates": combo_sources}
    for name in TABLE_KEYS:
        rows = t[name]
        artifacts.write_text(out / f"{name}.csv", _csv(rows, list(rows[0]) if rows else list(TABLE_KEYS[name])))
    cols = [c for c, _, _ in TABLE1_COLUMNS]
    head = "Table 1 - accuracy under attack, mean over seeds [95% t-interval]" if len(per) > 1 else ""
    md = ([head, ""] if head else []) + [
        "| Class | Different model: under | Different model: over | Same model: balanced "
        "| Same model: under | Same model: over |", "|---|---:|---:|---:|---:|---:|"]
    for r in t["table1"]:
        md.append(f"| {r['class']} | " + " | ".join(_ci_text(r, c) for c in cols) + " |")
    artifacts.write_text(out / "table1.md", "\n".join(md) + "\n")

    summary = summarise(t["table1"][:-1], t["relative_difference"], t["clean_target_accuracy"])
    summary["seeds"] = len(per)
    bal = [r["clean"]["balanced"]["accuracy"] for r in results if "balanced" in r["clean"]]
    summary["balanced_clean_accuracy"] = 100 * float(np.mean(bal)) if bal else None
    if len(per) > 1:
        summary["table1_average_ci_percent"] = {
            c: [t["table1"][-1][f"{c}_ci_lo"], t["table1"][-1][f"{c}_ci_hi"]] for c in cols}
    sweep_rows, sweep = build_sweep_tables(run_dir)
    if sweep:
        summary["sweep"] = sweep
        sources["sweep"] = sorted({r["source"] for r in sweep_rows})
    from advimb.experiment_tables import build_experiment_tables

    exp_summary, exp_rows = build_experiment_tables(run_dir, sources)
    summary.update(exp_summary)
    artifacts.write_json(out / "summary.json", summary)
    artifacts.write_json(out / "sources.json", sources)
    # for the report, not written: the rows it draws (means over seeds with intervals)
    return {**summary, "rows": {"table1": t["table1"], **exp_rows}, "results": results[0]}


def _model_order(name: str, classes: tuple[str, ...]) -> tuple[int, int]:
    kind, _, c = name.partition(":")
    return ({"balanced": 0, "under": 1, "over": 2}.get(kind, 3), classes.index(c) if c in classes else -1)


def summarise(table1: list[dict[str, Any]], rel: list[dict[str, Any]],
              fig2: list[dict[str, Any]]) -> dict[str, Any]:
    """Column averages and how many classes follow the paper's orderings."""
    avg = {col: _mean([r[col] for r in table1]) for col, _, _ in TABLE1_COLUMNS}
    n = len(table1)

    def count(pred) -> int:
        return sum(1 for r in table1 if pred(r))

    rd = {}
    for kind in ("balanced", "under", "over"):
        rd[kind] = _mean([r["relative_difference"] for r in rel
                          if r["model_kind"] == kind and r["gradient"] == "same_model"])
    return {
        "classes": n,
        "table1_average_percent": avg,
        "relative_difference_average_percent": rd,
        "clean_target_average_percent": {k: _mean([r[k] for r in fig2]) for k in ("balanced", "under", "over")},
        "orderings": {
            "same_model_under_lt_balanced": count(lambda r: r["same_model_under"] < r["same_model_balanced"]),
            "same_model_balanced_lt_over": count(lambda r: r["same_model_balanced"] < r["same_model_over"]),
            "transfer_weaker_under": count(lambda r: r["different_model_under"] > r["same_model_under"]),
            "transfer_weaker_over": count(lambda r: r["different_model_over"] > r["same_model_over"]),
            "of_classes": n,
        },
    }


def format_summary(run_dir: Path) -> str:
    """Table 1 and the orderings as text for the terminal."""
    run_dir = Path(run_dir)
    md = (run_dir / "tables" / "table1.md").read_text()
    s = artifacts.read_json(run_dir / "tables" / "summary.json")
    o = s["orderings"]
    lines = ["Table 1 - accuracy of the target class under attack (%):", md]
    if s.get("balanced_clean_accuracy") is not None:
        lines.append(f"balanced model, clean test accuracy: {s['balanced_clean_accuracy']:.1f}%")
    rd = s["relative_difference_average_percent"]
    lines.append("relative difference, same model (mean): balanced {balanced:.1f}%, "
                 "under {under:.1f}%, over {over:.1f}%".format(**rd))
    n = o["of_classes"]
    lines.append(f"classes with under < balanced (same model): {o['same_model_under_lt_balanced']}/{n}; "
                 f"balanced < over: {o['same_model_balanced_lt_over']}/{n}")
    lines.append(f"classes where transfer is weaker than same-model: under {o['transfer_weaker_under']}/{n}, "
                 f"over {o['transfer_weaker_over']}/{n}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- sweeps


def load_sweep(run_dir: Path) -> list[dict[str, Any]]:
    """Every combination of every sweep point (``sweep/<attack>-eps<eps>/*.json``)."""
    rows = []
    for f in sorted(Path(run_dir).glob("sweep/*/*.json")):
        d = artifacts.read_json(f)
        for c in d["combinations"]:
            rows.append({**c, "attack": d["attack"]["name"], "eps": d["attack"]["eps"],
                         "source": str(f.relative_to(run_dir))})
    return rows


def sweep_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per attack, eps and Table 1 column, over target classes: mean accuracy under attack
    (= balanced accuracy, every class has the same number of attacked images), worst-class
    accuracy and its class, mean success rate on initially-correct images, mean minimal
    FGSM eps; and per attack and eps how many classes follow the paper's orderings."""
    out = []
    points = sorted({(r["attack"], r["eps"]) for r in rows})
    for attack, eps in points:
        pr = [r for r in rows if r["attack"] == attack and r["eps"] == eps]
        cell = {(r["class"], r["model_kind"], r["gradient"]): r for r in pr}
        classes = list(dict.fromkeys(r["class"] for r in pr))
        for col, kind, grad in TABLE1_COLUMNS:
            cs = [cell[(c, kind, grad)] for c in classes if (c, kind, grad) in cell]
            if not cs:
                continue
            worst = min(cs, key=lambda r: r["adversarial_accuracy"])
            out.append({
                "attack": attack, "eps": eps, "column": col,
                "accuracy": 100 * _mean([r["adversarial_accuracy"] for r in cs]),
                "worst_class_accuracy": 100 * worst["adversarial_accuracy"], "worst_class": worst["class"],
                "success_rate": 100 * _mean([r.get("success_rate", float("nan")) for r in cs]),
                "min_eps_mean": _mean([r.get("min_eps_mean", float("nan")) for r in cs]),
                "classes": len(cs),
                **_orderings(cell, classes),
            })
    return out


def _orderings(cell: dict, classes: list[str]) -> dict[str, int]:
    def acc(c, kind, grad):
        r = cell.get((c, kind, grad))
        return r["adversarial_accuracy"] if r else float("nan")
    return {
        "under_lt_balanced": sum(acc(c, "under", "same_model") < acc(c, "balanced", "same_model") for c in classes),
        "balanced_lt_over": sum(acc(c, "balanced", "same_model") < acc(c, "over", "same_model") for c in classes),
        "transfer_weaker_under": sum(acc(c, "under", "different_model") > acc(c, "under", "same_model")
                                     for c in classes),
        "transfer_weaker_over": sum(acc(c, "over", "different_model") > acc(c, "over", "same_model")
                                    for c in classes),
    }


def build_sweep_tables(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``tables/sweep.csv`` (every combination of every sweep point) and
    ``tables/sweep_summary.csv``; returns (combinations, summary), empty without a sweep."""
    rows = load_sweep(run_dir)
    if not rows:
        return [], []
    out = Path(run_dir) / "tables"
    cols = ["attack", "eps", "class", "model_kind", "gradient", "evaluated_model", "gradient_model", "n",
            "clean_accuracy", "adversarial_accuracy", "n_clean_correct", "success_rate",
            "min_eps_mean", "min_eps_median", "min_eps_flippable_share", "source"]
    flat = [{k: r.get(k, "") for k in cols} for r in rows]
    artifacts.write_text(out / "sweep.csv", _csv(flat, cols))
    summary = sweep_summary(rows)
    artifacts.write_text(out / "sweep_summary.csv", _csv(summary, list(summary[0])))
    return rows, summary

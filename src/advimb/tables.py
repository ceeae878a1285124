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


def load_results(run_dir: Path) -> dict[str, Any]:
    """All combinations and clean evaluations stored in ``run_dir``."""
    run_dir = Path(run_dir)
    attack_files = sorted((run_dir / "eval" / "attack").glob("*.json"))
    clean_files = sorted((run_dir / "eval" / "clean").glob("*.json"))
    if not attack_files or not clean_files:
        raise UserError(f"{run_dir} holds no evaluation results yet; run `advimb run` into it first")
    combos, classes = [], None
    for f in attack_files:
        d = artifacts.read_json(f)
        classes = tuple(d["classes"])
        for c in d["combinations"]:
            combos.append({**c, "source": str(f.relative_to(run_dir))})
    clean = {}
    for f in clean_files:
        d = artifacts.read_json(f)
        clean[d["model"]] = {**d, "source": str(f.relative_to(run_dir))}
    return {"classes": classes, "combinations": combos, "clean": clean}


def build_tables(run_dir: Path) -> dict[str, Any]:
    """Write every table into ``run_dir/tables`` and return the summary."""
    run_dir = Path(run_dir)
    res = load_results(run_dir)
    classes, combos, clean = res["classes"], res["combinations"], res["clean"]
    out = run_dir / "tables"
    by_cell = {(c["class"], c["model_kind"], c["gradient"]): c for c in combos}
    targets = [c for c in classes if any(k[0] == c for k in by_cell)]
    sources: dict[str, list[str]] = {}

    # Table 1 (percent under attack)
    rows = []
    for c in targets:
        row: dict[str, Any] = {"class": c}
        for col, kind, grad in TABLE1_COLUMNS:
            cell = by_cell.get((c, kind, grad))
            row[col] = 100 * cell["adversarial_accuracy"] if cell else float("nan")
        rows.append(row)
    avg = {"class": "average", **{col: _mean([r[col] for r in rows]) for col, _, _ in TABLE1_COLUMNS}}
    cols = ["class"] + [c for c, _, _ in TABLE1_COLUMNS]
    artifacts.write_text(out / "table1.csv", _csv(rows + [avg], cols))
    md = ["| Class | Different model: under | Different model: over | Same model: balanced "
          "| Same model: under | Same model: over |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows + [avg]:
        md.append(f"| {r['class']} | " + " | ".join(f"{r[c]:.1f}%" for c in cols[1:]) + " |")
    artifacts.write_text(out / "table1.md", "\n".join(md) + "\n")
    sources["table1"] = sorted({c["source"] for c in combos})

    # Fig. 2 data: clean accuracy of the target class per model kind
    fig2 = []
    for c in targets:
        r: dict[str, Any] = {"class": c}
        for kind, model in (("balanced", "balanced"), ("under", f"under:{c}"), ("over", f"over:{c}")):
            m = clean.get(model)
            r[kind] = 100 * m["per_class_accuracy"][classes.index(c)] if m else float("nan")
        fig2.append(r)
    artifacts.write_text(out / "clean_target_accuracy.csv", _csv(fig2, ["class", "balanced", "under", "over"]))
    sources["clean_target_accuracy"] = sorted(m["source"] for m in clean.values())

    # every model's clean accuracy, overall and per class
    rows_clean = [{"model": name, "accuracy": 100 * m["accuracy"],
                   **{c: 100 * a for c, a in zip(classes, m["per_class_accuracy"])}}
                  for name, m in sorted(clean.items(), key=lambda kv: _model_order(kv[0], classes))]
    artifacts.write_text(out / "clean_accuracy.csv", _csv(rows_clean, ["model", "accuracy", *classes]))
    sources["clean_accuracy"] = sources["clean_target_accuracy"]

    # Fig. 4 data: relative difference (clean - perturbed) / clean, per class and model
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
    artifacts.write_text(out / "relative_difference.csv", _csv(rel, list(rel[0]) if rel else ["class"]))
    sources["relative_difference"] = sources["table1"]

    # Fig. 6 data: where the perturbed images of class c go
    flips = []
    for cell in sorted(combos, key=lambda c: (classes.index(c["class"]), c["model_kind"], c["gradient"])):
        n = cell["n"]
        for j, cnt in enumerate(cell["adversarial_histogram"]):
            flips.append({"class": cell["class"], "evaluated_model": cell["evaluated_model"],
                          "gradient_model": cell["gradient_model"], "gradient": cell["gradient"],
                          "predicted_class": classes[j], "count": cnt,
                          "clean_count": cell["clean_histogram"][j],
                          "share": cnt / n if n else float("nan")})
    artifacts.write_text(out / "flip_rates.csv", _csv(flips, list(flips[0]) if flips else ["class"]))
    sources["flip_rates"] = sources["table1"]

    summary = summarise(rows, rel, fig2)
    summary["balanced_clean_accuracy"] = 100 * clean["balanced"]["accuracy"] if "balanced" in clean else None
    sweep_rows, sweep = build_sweep_tables(run_dir)
    if sweep:
        summary["sweep"] = sweep
        sources["sweep"] = sorted({r["source"] for r in sweep_rows})
    artifacts.write_json(out / "summary.json", summary)
    artifacts.write_json(out / "sources.json", sources)
    return summary


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

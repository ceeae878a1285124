"""Results tables, derived only from the stored artifacts of a run folder.

Reads the paper grid's per-image results through :func:`advimb.results.reader.load_grid` (and
nothing else); never trains or attacks. Writes ``tables/``: ``table1.csv``/``table1.md``
(paper Table 1 layout), ``clean_target_accuracy.csv`` (Fig. 2 data),
``relative_difference.csv`` (Fig. 4 data), ``flip_rates.csv`` (Fig. 6 data),
``clean_accuracy.csv``, ``summary.json`` with the paper's orderings checked,
``sources.json`` naming the artifacts each table used and ``README.md`` saying what every
column means. Every number is in percent, with ``<column>_lo`` / ``<column>_hi``: its 95%
interval from one method for every table (:func:`advimb.results.stats.interval_method`: a percentile
bootstrap over test images within each class, after resampling seeds when the run has
several), so no interval leaves [0, 100]. Definitions: :mod:`advimb.results.metrics`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from advimb import artifacts
from advimb.data.imbalance import BALANCED
from advimb.layout import RunLayout
from advimb.results.experiment_tables import build_experiment_tables
from advimb.results.metrics import GridMetrics
from advimb.results.reader import KINDS, TABLE1_COLUMNS, GridResults, load_grid
from advimb.results.stats import N_BOOT, Bootstrap, interval_method
from advimb.results.sweep import build_sweep_tables
from advimb.results.tables_readme import tables_readme
from advimb.scenario import Gradient

#: the main tables, in the order they are written
TABLE_NAMES = ("table1", "clean_target_accuracy", "clean_accuracy", "relative_difference", "flip_rates")
#: bump when the tables' columns or definitions change (2: bootstrap intervals in every table,
#: relative difference on the attacked images stated in its columns, shares in percent)
TABLES_FORMAT = 2


def _put(row: dict[str, Any], name: str, m: GridMetrics, q) -> None:
    """``row[name]`` and its interval ``row[name_lo]``, ``row[name_hi]`` from quantity ``q``."""
    row.update(m.estimate(q).columns(name))


def compute_tables(m: GridMetrics) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows (means over seeds with intervals) from the grid's metrics."""
    return {
        "table1": _table1_rows(m),
        "clean_target_accuracy": _clean_target_rows(m),
        "clean_accuracy": _clean_rows(m),
        "relative_difference": _relative_rows(m),
        "flip_rates": _flip_rows(m),
    }


def _table1_rows(m: GridMetrics) -> list[dict[str, Any]]:
    """Table 1: the target class's accuracy under attack per column, and the columns' average."""
    targets = m.res.targets
    table1 = []
    for c in targets:
        row: dict[str, Any] = {"class": c}
        for col, kind, grad in TABLE1_COLUMNS:
            _put(row, col, m, m.accuracy(c, kind, grad))
        table1.append(row)
    avg: dict[str, Any] = {"class": "average"}
    for col, kind, grad in TABLE1_COLUMNS:
        _put(avg, col, m, m.mean_over_targets(lambda c, k=kind, g=grad: m.accuracy(c, k, g)))
    return [*table1, avg]


def _clean_target_rows(m: GridMetrics) -> list[dict[str, Any]]:
    """Fig. 2: each target class's clean accuracy under each kind of model."""
    fig2 = []
    for c in m.res.targets:
        row = {"class": c}
        for kind in KINDS:
            _put(row, kind, m, m.clean_class(m.res.model(kind, c), c))
        fig2.append(row)
    return fig2


def _clean_rows(m: GridMetrics) -> list[dict[str, Any]]:
    """Every model's clean accuracy, overall and per class."""
    res, classes = m.res, m.res.classes
    clean_rows = []
    for model in res.scenarios():
        row: dict[str, Any] = {"model": res.outcomes.name(model)}
        _put(row, "accuracy", m, m.clean_overall(model))
        for c in classes:
            _put(row, c, m, m.clean_class(model, c))
        clean_rows.append(row)
    return clean_rows


def _relative_rows(m: GridMetrics) -> list[dict[str, Any]]:
    """Fig. 4: clean and attacked accuracy on the attacked images and their relative difference."""
    res = m.res
    rel = []
    for c in res.targets:
        for _, kind, grad in TABLE1_COLUMNS[2:] + TABLE1_COLUMNS[:2]:  # same model first
            row: dict[str, Any] = {
                "class": c,
                "model_kind": kind,
                "gradient": grad,
                "evaluated_model": res.outcomes.name(res.model(kind, c)),
                "attacked_images": res.cell(c, kind, grad)[0].n,
            }
            _put(row, "clean_accuracy_attacked_images", m, m.accuracy(c, kind, grad, "clean"))
            _put(row, "adversarial_accuracy", m, m.accuracy(c, kind, grad))
            _put(row, "relative_difference", m, m.relative_difference(c, kind, grad))
            row["note"] = (
                ""
                if math.isfinite(row["relative_difference"])
                else f"undefined: {row['evaluated_model']} predicts {c} for none of these clean images"
            )
            rel.append(row)
    return rel


def _flip_rows(m: GridMetrics) -> list[dict[str, Any]]:
    """Fig. 6: where each target class's images go, clean and under attack."""
    res, classes = m.res, m.res.classes
    flips = []
    for c in res.targets:
        for _, kind, grad in TABLE1_COLUMNS[2:] + TABLE1_COLUMNS[:2]:
            first = res.cell(c, kind, grad)[0]
            (pc, rc), (pa, ra) = m.shares(c, kind, grad, "clean"), m.shares(c, kind, grad, "adv")
            for j, label in enumerate(classes):
                row = {
                    "class": c,
                    "evaluated_model": res.outcomes.name(first.evaluated),
                    "gradient_model": res.outcomes.name(first.gradient),
                    "gradient": grad,
                    "predicted_class": label,
                    "attacked_images": first.n,
                }
                _put(row, "clean_share", m, (pc[j], rc[:, j]))
                _put(row, "share", m, (pa[j], ra[:, j]))
                flips.append(row)
    return flips


def _ci_text(r: dict[str, Any], col: str) -> str:
    v, lo, hi = r[col], r.get(f"{col}_lo", float("nan")), r.get(f"{col}_hi", float("nan"))
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.1f}% [{lo:.1f}, {hi:.1f}]" if math.isfinite(lo) else f"{v:.1f}%"


def build_tables(run_dir: Path, grid: GridResults | None = None) -> dict[str, Any]:
    """Write every table into ``run_dir/tables`` and return the summary (as written to
    ``summary.json``) plus, not written: ``rows`` (every table's rows, the experiments'
    included), ``grid`` (the :class:`GridResults`) and ``metrics`` (the :class:`GridMetrics`
    whose bootstrap the claims reuse, so they share resamples with the tables). ``grid``: the
    run's results when the caller has read them already."""
    run_dir = Path(run_dir)
    res = grid or load_grid(run_dir)
    n_boot = N_BOOT  # fixed: the tables of a run never depend on who built them last
    m = GridMetrics(res, Bootstrap(n_boot=n_boot, seed=0))
    t = compute_tables(m)
    out = RunLayout(run_dir).tables
    method = interval_method(n_boot, res.seeds)
    attack_src, clean_src = res.attack_sources(), res.clean_sources()
    sources: dict[str, list[str]] = {
        "table1": attack_src,
        "clean_target_accuracy": clean_src,
        "clean_accuracy": clean_src,
        "relative_difference": attack_src,
        "flip_rates": attack_src,
    }
    for name, rows in t.items():
        artifacts.write_text(
            out / f"{name}.csv", artifacts.csv_text(rows, list(dict.fromkeys(k for r in rows for k in r)))
        )
    cols = [c for c, _, _ in TABLE1_COLUMNS]
    seeds = f", mean over {res.seeds} seeds" if res.seeds > 1 else ""
    md = [
        f"Table 1 - accuracy (%) of the target class's attacked test images{seeds}; [95% interval: {method}]",
        "",
        "| Class | Different model: under | Different model: over | Same model: balanced "
        "| Same model: under | Same model: over |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in t["table1"]:
        md.append(f"| {r['class']} | " + " | ".join(_ci_text(r, c) for c in cols) + " |")
    artifacts.write_text(out / "table1.md", "\n".join(md) + "\n")

    summary = summarise(m, t, method)
    sweep_rows, sweep = build_sweep_tables(run_dir, res.outcomes, n_boot)
    if sweep:
        summary["sweep"] = sweep
        sources["sweep"] = sorted({r["source"] for r in sweep_rows})
    exp_summary, exp_rows = build_experiment_tables(run_dir, sources, n_boot, res.outcomes)
    summary.update(exp_summary)
    summary = _rounded(summary)  # 4 decimals, as in the CSVs: the same file on every machine
    artifacts.write_json(out / "summary.json", summary)
    artifacts.write_json(out / "sources.json", sources)
    artifacts.write_text(
        out / "README.md",
        tables_readme(res, method, sorted([*t, *exp_rows, *(["sweep", "sweep_summary"] if sweep else [])])),
    )
    return {**summary, "rows": {**t, **exp_rows}, "grid": res, "metrics": m}


#: the tables' columns that hold names or text (every other column is a number)
TEXT_COLUMNS = {
    "class",
    "model",
    "model_kind",
    "gradient",
    "evaluated_model",
    "gradient_model",
    "predicted_class",
    "note",
    "branch",
    "profile",
    "defence",
    "tail_classes",
    "test",
    "verdict",
    "attack",
    "column",
    "worst_class",
    "source",
}


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """A stored table's rows, typed: text columns as written, numbers as floats (an empty
    cell is undefined: NaN)."""
    import csv

    def value(col: str, v: str) -> Any:
        if col in TEXT_COLUMNS:
            return v
        if v == "":
            return float("nan")
        try:
            return float(v)
        except ValueError:  # a formatted cell ("12.5 [10.1, 14.9]", "n/a: reason")
            return v

    with open(path, newline="") as f:
        return [{k: value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_tables(run_dir: Path, grid: GridResults) -> dict[str, Any] | None:
    """The stored tables, as :func:`build_tables` returns them (but ``grid`` and ``metrics``),
    when they are of this version's format and were built from exactly the artifacts the run
    folder holds now; None otherwise (then build them)."""
    tables = RunLayout(run_dir).tables
    try:
        summary = artifacts.read_json(tables / "summary.json")
        sources = artifacts.read_json(tables / "sources.json")
    except (OSError, ValueError):
        return None
    if (
        summary.get("format") != TABLES_FORMAT
        or set(sources.get("table1", [])) != set(grid.attack_sources())
        or set(sources.get("clean_accuracy", [])) != set(grid.clean_sources())
    ):
        return None
    names = [*TABLE_NAMES, *summary.get("experiments", {}).get("tables", [])]
    if not all((tables / f"{n}.csv").exists() for n in names):
        return None
    return {**summary, "rows": {n: _read_csv(tables / f"{n}.csv") for n in names}}


def summarise(m: GridMetrics, t: dict[str, list[dict[str, Any]]], method: str) -> dict[str, Any]:
    """Column averages with intervals and how many classes follow the paper's orderings."""
    res = m.res
    table1, avg = t["table1"][:-1], t["table1"][-1]
    cols = [c for c, _, _ in TABLE1_COLUMNS]

    def count(pred) -> int:
        return sum(1 for r in table1 if pred(r))

    rd, rd_ci, undefined = {}, {}, {}
    for kind in KINDS:
        e = m.estimate(m.mean_over_targets(lambda c, k=kind: m.relative_difference(c, k)))
        rd[kind], rd_ci[kind] = _finite(e.value), [_finite(x) for x in e.bounds]
        undefined[kind] = [
            r["class"]
            for r in t["relative_difference"]
            if r["model_kind"] == kind
            and r["gradient"] == Gradient.SAME
            and not math.isfinite(r["relative_difference"])
        ]
    clean_t = {k: m.estimate(m.mean_over_targets(lambda c, kk=k: m.clean_class(res.model(kk, c), c))) for k in KINDS}
    bal = m.estimate(m.clean_overall(BALANCED))
    return {
        "format": TABLES_FORMAT,
        "classes": len(table1),
        "seeds": res.seeds,
        "attacked_images_per_class": res.n_attacked,
        "interval": method,
        "table1_average_percent": {c: avg[c] for c in cols},
        "table1_average_interval": {c: [avg[f"{c}_lo"], avg[f"{c}_hi"]] for c in cols},
        "relative_difference_average_percent": rd,
        "relative_difference_average_interval": rd_ci,
        "relative_difference_undefined_classes": undefined,
        "clean_target_average_percent": {k: e.value for k, e in clean_t.items()},
        "clean_target_average_interval": {k: e.bounds for k, e in clean_t.items()},
        "balanced_clean_accuracy": bal.value,
        "balanced_clean_accuracy_interval": bal.bounds,
        "orderings": {
            "same_model_under_lt_balanced": count(lambda r: r["same_model_under"] < r["same_model_balanced"]),
            "same_model_balanced_lt_over": count(lambda r: r["same_model_balanced"] < r["same_model_over"]),
            "transfer_weaker_under": count(lambda r: r["different_model_under"] > r["same_model_under"]),
            "transfer_weaker_over": count(lambda r: r["different_model_over"] > r["same_model_over"]),
            "of_classes": len(table1),
        },
    }


def _rounded(o: Any, digits: int = 4) -> Any:
    if isinstance(o, float):
        return round(o, digits) if math.isfinite(o) else o
    if isinstance(o, dict):
        return {k: _rounded(v, digits) for k, v in o.items()}
    if isinstance(o, list):
        return [_rounded(v, digits) for v in o]
    return o


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def format_summary(run_dir: Path) -> str:
    """Table 1 and the orderings as text for the terminal."""
    run_dir = Path(run_dir)
    tables = RunLayout(run_dir).tables
    md = (tables / "table1.md").read_text()
    s = artifacts.read_json(tables / "summary.json")
    o = s["orderings"]
    lines = [md]
    if s.get("balanced_clean_accuracy") is not None:
        lo, hi = s["balanced_clean_accuracy_interval"]
        lines.append(f"balanced model, clean test accuracy: {s['balanced_clean_accuracy']:.1f}% [{lo:.1f}, {hi:.1f}]")
    rd = s["relative_difference_average_percent"]
    lines.append(
        "relative difference, same model (mean over classes, on the attacked images): "
        + ", ".join(
            f"{k} {rd[k]:.1f}%"
            if rd[k] is not None
            else f"{k} undefined (clean accuracy 0 for {', '.join(s['relative_difference_undefined_classes'][k])})"
            for k in KINDS
        )
    )
    n = o["of_classes"]
    lines.append(
        f"classes with under < balanced (same model): {o['same_model_under_lt_balanced']}/{n}; "
        f"balanced < over: {o['same_model_balanced_lt_over']}/{n}"
    )
    lines.append(
        f"classes where transfer is weaker than same-model: under {o['transfer_weaker_under']}/{n}, "
        f"over {o['transfer_weaker_over']}/{n}"
    )
    return "\n".join(lines)

"""The report of a run folder: figures, claims with intervals, ``results.json`` and a
self-contained ``report/index.html``, built only from stored artifacts.

    report/
      index.html        the page (figures beside it, no network access)
      results.json      every number the page shows, with the artifact it came from
      figures/*.png|svg|pdf
      tables/*.csv      copies of the run's tables (the page links to them)

It never trains or attacks: inputs are ``config.toml``, ``manifest.json``,
``models/balanced/history.csv``, ``eval/clean/*.json`` and ``eval/attack/*.json|npz``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts, figures
from advimb.claims import check_claims, default_pair, load_outcomes, parse_pair
from advimb.config import tomllib
from advimb.errors import UserError
from advimb.stats import Bootstrap
from advimb.tables import TABLE1_COLUMNS, build_tables

KINDS = ("balanced", "under", "over")


def reference() -> dict[str, Any]:
    """The paper's published numbers (Table 1 and the text), shipped as package data."""
    return json.loads(resources.files("advimb").joinpath("reference/possas_zhou.json").read_text())


def _read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _pct(x: float) -> float:
    return float("nan") if x is None or not np.isfinite(x) else round(100 * float(x), 2)


def _parse_pair(pair, classes: tuple[str, ...], targets: list[str], confusion) -> tuple[str, str]:
    return default_pair(classes, targets, confusion) if pair is None else parse_pair(pair, classes, targets)


def collect(run_dir: Path, pair=None, n_boot: int = 2000) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (no files written)."""
    run_dir = Path(run_dir)
    summary = build_tables(run_dir)  # the tables are derived too; rebuilding keeps them in step
    res = summary["results"]
    classes, combos, clean = res["classes"], res["combinations"], res["clean"]
    manifest = artifacts.read_json(run_dir / "manifest.json") if (run_dir / "manifest.json").exists() else {}
    config_text = (run_dir / "config.toml").read_text() if (run_dir / "config.toml").exists() else ""
    by_cell = {(c["class"], c["model_kind"], c["gradient"]): c for c in combos}
    targets = [c for c in classes if any(k[0] == c for k in by_cell)]
    ref = reference()
    paper_comparable = set(targets) <= set(ref["table1_percent"])
    bal_conf = clean["balanced"]["confusion"] if "balanced" in clean else None
    pair = _parse_pair(pair, classes, targets, bal_conf)

    # Table 1 (means over seeds, with t-intervals when there are several), the paper's, the difference
    seeds = summary.get("seeds", 1)
    agg = {r["class"]: r for r in summary["rows"]["table1"]}
    t1_rows = []
    for c in targets:
        row: dict[str, Any] = {"class": c, "measured": {}, "paper": {}, "difference": {}}
        if seeds > 1:
            row["ci"] = {col: [agg[c][f"{col}_ci_lo"], agg[c][f"{col}_ci_hi"]] for col, _, _ in TABLE1_COLUMNS}
        for j, (col, kind, grad) in enumerate(TABLE1_COLUMNS):
            row["measured"][col] = round(float(agg[c][col]), 2)
            if paper_comparable:
                p = float(ref["table1_percent"][c][j])
                row["paper"][col] = p
                row["difference"][col] = round(row["measured"][col] - p, 2)
        t1_rows.append(row)
    avg = {"class": "average", **{part: {col: round(float(np.nanmean([r[part][col] for r in t1_rows])), 2)
                                         for col, _, _ in TABLE1_COLUMNS}
                                   for part in (("measured", "paper", "difference") if paper_comparable
                                                else ("measured",))}}
    if seeds > 1:
        avg["ci"] = {col: [agg["average"][f"{col}_ci_lo"], agg["average"][f"{col}_ci_hi"]]
                     for col, _, _ in TABLE1_COLUMNS}
    table1 = {"columns": [c for c, _, _ in TABLE1_COLUMNS], "rows": t1_rows, "average": avg,
              "paper_comparable": paper_comparable,
              "sources": sorted({c["source"] for c in combos}) + ["advimb/reference/possas_zhou.json"]}

    # Fig. 2 / Fig. 4 / Fig. 6 data
    clean_target = []
    for c in targets:
        r = {"class": c}
        for kind, model in (("balanced", "balanced"), ("under", f"under:{c}"), ("over", f"over:{c}")):
            r[kind] = _pct(clean[model]["per_class_accuracy"][classes.index(c)]) if model in clean else float("nan")
        clean_target.append(r)
    rel = []
    for c in targets:
        r = {"class": c}
        for kind in KINDS:
            cell = by_cell.get((c, kind, "same_model"))
            ca = cell["clean_accuracy"] if cell else float("nan")
            r[kind] = round(100 * (ca - cell["adversarial_accuracy"]) / ca, 2) if cell and ca > 0 else float("nan")
        rel.append(r)
    rel_avg = {"class": "average", **{k: round(float(np.nanmean([r[k] for r in rel])), 2)
                                      if np.isfinite([r[k] for r in rel]).any() else float("nan") for k in KINDS}}
    flips = {kind: [[_share(by_cell.get((c, kind, "same_model")), j) for j in range(len(classes))] for c in targets]
             for kind in KINDS}
    panels = []
    for c in pair:
        for kind in ("under", "over"):
            cell = by_cell.get((c, kind, "same_model"))
            if cell:
                panels.append({"class": c, "kind": kind, "model": cell["evaluated_model"],
                               "clean": [100 * h / max(cell["n"], 1) for h in cell["clean_histogram"]],
                               "adversarial": [100 * h / max(cell["n"], 1) for h in cell["adversarial_histogram"]],
                               "n": cell["n"], "source": cell["source"]})

    claims = check_claims(load_outcomes(run_dir), ref if paper_comparable else None, pair,
                          Bootstrap(n_boot=n_boot, seed=0))
    hist_path = run_dir / "models" / "balanced" / "history.csv"
    cfg = tomllib.loads(config_text) if config_text else {}
    attack = cfg.get("attack", {})
    notes = []
    if paper_comparable and (attack.get("name", "fgsm") != "fgsm" or attack.get("eps") != ref["attack"]["eps"]
                             or attack.get("direction", "ascent") != "ascent"):
        notes.append(f"This run's attack ({attack.get('name')}, eps {attack.get('eps')}, "
                     f"{attack.get('direction')}) differs from the paper's (FGSM, eps 0.01, ascent); "
                     "the paper's numbers are shown for orientation only.")
    if not paper_comparable:
        notes.append("This run's classes are not CIFAR-10's, so the paper's numbers are not shown beside it.")
    return {
        "title": f"advimb report: {run_dir.resolve().name}",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": {"dir": str(run_dir.resolve()), "config_toml": config_text, "manifest": manifest,
                "preset": cfg.get("preset"), "seed": cfg.get("seed"), "attack": attack,
                "sources": ["config.toml", "manifest.json"]},
        "reference": {"citation": ref["citation"], "source": ref["source"], "text": ref["text"]},
        "balanced_clean_accuracy_percent": _pct(clean["balanced"]["accuracy"]) if "balanced" in clean else None,
        "balanced_clean_source": clean["balanced"]["source"] if "balanced" in clean else None,
        "table1": table1,
        "clean_target_accuracy": {"rows": clean_target, "sources": sorted(m["source"] for m in clean.values())},
        "relative_difference": {"rows": rel, "average": rel_avg, "gradient": "same_model",
                                "sources": table1["sources"][:-1]},
        "flip_rates": {"targets": targets, "classes": list(classes), "percent": flips,
                       "sources": table1["sources"][:-1]},
        "pair": {"classes": list(pair), "panels": panels},
        "history": {"rows": _read_history(hist_path) if hist_path.exists() else [],
                    "source": str(hist_path.relative_to(run_dir))},
        "confusion": {"balanced": bal_conf, "source": clean["balanced"]["source"] if "balanced" in clean else None},
        "claims": claims,
        "sweep": _sweep(run_dir, summary.get("sweep")),
        "experiments": {"seeds": seeds, "long_tail": summary.get("long_tail"), "defences": summary.get("defences"),
                        "rows": {k: v for k, v in summary["rows"].items() if k != "table1"},
                        "sources": {k: v for k, v in artifacts.read_json(run_dir / "tables" / "sources.json").items()
                                    if k in summary["rows"]}},
        "notes": notes,
    }


def _sweep(run_dir: Path, rows: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The sweep summary ``build_tables`` computed, with the artifacts it read."""
    if not rows:
        return None
    summary = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    return {"summary": summary, "sources": artifacts.read_json(run_dir / "tables" / "sources.json")["sweep"],
            "attacks": sorted({r["attack"] for r in rows}), "epsilons": sorted({r["eps"] for r in rows})}


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _share(cell: dict[str, Any] | None, j: int) -> float:
    return round(100 * cell["adversarial_histogram"][j] / cell["n"], 2) if cell and cell["n"] else float("nan")


def _examples(run_dir: Path, results: dict[str, Any], rows: int = 5) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to ``rows`` stored examples of the balanced model's attack, one per class, the
    pair's classes first, preferring images the attack flipped."""
    classes = results["flip_rates"]["classes"]
    order = list(dict.fromkeys([*results["pair"]["classes"], *results["flip_rates"]["targets"]]))
    items, sources = [], []
    for c in order:
        path = run_dir / "eval" / "attack" / f"balanced__{c}.npz"
        if len(items) >= rows or not path.exists():
            continue
        with np.load(path) as z:
            if "example_clean" not in z or len(z["example_clean"]) == 0:
                continue
            pc, pa = z["example_prob_clean__balanced"], z["example_prob_adv__balanced"]
            t = classes.index(c)
            ok = [i for i in range(len(pc)) if pc[i].argmax() == t and pa[i].argmax() != t]
            i = ok[0] if ok else 0
            items.append({"true": c, "clean": z["example_clean"][i], "adversarial": z["example_adversarial"][i],
                          "pred_clean": classes[int(pc[i].argmax())], "conf_clean": float(pc[i].max()),
                          "pred_adv": classes[int(pa[i].argmax())], "conf_adv": float(pa[i].max()),
                          "test_index": int(z["test_indices"][i])})
            sources.append(str(path.relative_to(run_dir)))
    return items, sources


def draw_figures(run_dir: Path, results: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """Draw every figure into ``out/figures``; returns their entries for ``results``."""
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    classes = results["flip_rates"]["classes"]
    targets = results["flip_rates"]["targets"]
    entries = []

    def add(fid: str, title: str, files: dict[str, str], sources: list[str], **data: Any) -> None:
        entries.append({"id": fid, "title": title, "files": {k: f"figures/{v}" for k, v in files.items()},
                        "sources": sources, "data": data})

    t1 = results["table1"]
    cols = t1["columns"]
    meas = np.array([[r["measured"][c] for c in cols] for r in t1["rows"]], dtype=float)
    paper = (np.array([[r["paper"][c] for c in cols] for r in t1["rows"]], dtype=float)
             if t1["paper_comparable"] else None)
    add("table1", "Table 1: accuracy of the target class under attack, this run beside the paper",
        figures.table1(meas, paper, targets, cols, fig_dir), t1["sources"])
    hist, conf = results["history"]["rows"], results["confusion"]["balanced"]
    if hist and conf is not None:
        best = min(hist, key=lambda h: h["val_loss"])
        add("fig1", "Fig. 1: the balanced model", figures.training(hist, np.array(conf), classes, fig_dir),
            [results["history"]["source"], results["confusion"]["source"]],
            epochs=len(hist), best_epoch=int(best["epoch"]), best_val_loss=round(best["val_loss"], 4),
            best_val_accuracy_percent=round(100 * best["val_accuracy"], 2))
    add("fig2", "Fig. 2: clean accuracy of the target class",
        figures.clean_target(results["clean_target_accuracy"]["rows"], fig_dir),
        results["clean_target_accuracy"]["sources"])
    items, src = _examples(run_dir, results)
    if items:
        eps = float(results["run"]["attack"].get("eps", 0.01)) or 0.01
        factor = round(0.5 / eps, 1)
        add("fig3", "Fig. 3: adversarial examples (balanced model, same-model attack)",
            figures.examples(items, eps, factor, fig_dir), src, amplification=factor, eps=eps,
            examples=[{k: v for k, v in it.items() if k not in ("clean", "adversarial")} for it in items])
    rd = results["relative_difference"]
    add("fig4", "Fig. 4: relative difference per class",
        figures.relative_difference(rd["rows"] + [rd["average"]], fig_dir), rd["sources"])
    if results["pair"]["panels"]:
        a, b = results["pair"]["classes"]
        add("fig6", f"Fig. 6: where perturbed {a} and {b} images go",
            figures.label_distributions(results["pair"]["panels"], classes, fig_dir),
            sorted({p["source"] for p in results["pair"]["panels"]}))
    if results.get("sweep"):
        sw = results["sweep"]
        add("fig7", "Fig. 7: accuracy under attack against eps, per attack",
            figures.sweep_curves(sw["summary"], fig_dir), sw["sources"])
    from advimb import experiment_report

    exp = results["experiments"]
    experiment_report.draw(exp["rows"], exp, fig_dir, add, exp["sources"])
    fr = results["flip_rates"]
    add("fig6b", "Fig. 6b: flip rates, true class x predicted class",
        figures.flip_heatmaps({k: np.array(v, dtype=float) for k, v in fr["percent"].items()}, targets, classes,
                              fig_dir), fr["sources"])
    return entries


def build_report(run_dir: str | Path, pair=None, n_boot: int = 2000) -> dict[str, Any]:
    """Build ``run_dir/report`` (page, figures, results.json, tables); returns the results."""
    from advimb.html import render

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; give the folder `advimb run --out` wrote")
    out = artifacts.ensure_writable_dir(run_dir / "report", "report folder")
    results = collect(run_dir, pair, n_boot)
    results["figures"] = draw_figures(run_dir, results, out)
    (out / "tables").mkdir(exist_ok=True)
    results["files"] = {"results": "results.json", "tables": []}
    for f in sorted((run_dir / "tables").glob("*")):
        shutil.copyfile(f, out / "tables" / f.name)
        results["files"]["tables"].append(f"tables/{f.name}")
    results = _finite(results)  # NaN (not measured) -> null: strict JSON for any reader
    artifacts.write_json(out / "results.json", results)
    artifacts.write_text(out / "index.html", render(results))
    return results


def format_report_summary(results: dict[str, Any]) -> str:
    """Table 1 (with the paper's values) and the verdicts, for the terminal."""
    from advimb.html import fmt as _num

    t1 = results["table1"]
    comp = t1["paper_comparable"]
    short = ["diff under", "diff over", "same bal", "same under", "same over"]
    lines = ["Table 1 - accuracy of the target class under attack, % " + ("(this run / paper)" if comp else ""),
             f"{'class':12s}" + "".join(f"{s:>15s}" for s in short)]
    for r in [*t1["rows"], t1["average"]]:
        cells = [_num(r["measured"][c]) + (f" / {_num(r['paper'][c])}" if comp else "") for c in t1["columns"]]
        lines.append(f"{r['class']:12s}" + "".join(f"{x:>15s}" for x in cells))
    if results.get("balanced_clean_accuracy_percent") is not None:
        lines.append(f"balanced model, clean test accuracy: {results['balanced_clean_accuracy_percent']:.1f}%")
    lines.append("claims (95% bootstrap intervals):")
    for c in results["claims"]["claims"]:
        comps = "; ".join(f"{x['label']} {_num(x['value'])} [{_num(x['lo'])}, {_num(x['hi'])}]"
                          for x in c["comparisons"]) or "not measurable in this run"
        lines.append(f"  {c['id']} {c['verdict'].upper():15s} {comps}")
    return "\n".join(lines)

"""The report of a run folder: figures, claims with intervals, ``results.json`` and a
self-contained ``report/index.html``, built only from stored artifacts.

    report/
      index.html        the page (figures beside it, no network access)
      results.json      every number the page shows, with the artifact it came from
      figures/*.png|svg|pdf
      tables/*.csv      copies of the run's tables (the page links to them)

It never trains or attacks: inputs are ``config.toml``, ``manifest.json``,
``models/balanced/history.csv``, ``eval/clean/*.json`` and ``eval/attack/*.json|npz`` (read
through :mod:`advimb.results`) and the tables built from them (:mod:`advimb.results.tables`). The
paper's numbers appear only when the run is in the paper's setting
(:func:`advimb.results.reference.paper_setting`); otherwise the page, ``results.json`` and the
terminal say why not.
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.errors import UserError
from advimb.layout import GRID, RunLayout
from advimb.report import figures
from advimb.report.html import render
from advimb.report.text import fmt as _num
from advimb.results.claims import check_claims, default_pair, magnitude_text, parse_pair
from advimb.results.metrics import GridMetrics
from advimb.results.reader import KINDS, TABLE1_COLUMNS, load_grid, model_name
from advimb.results.reference import PAPER_SETTING, describe_attack, paper_setting, reference
from advimb.results.stats import N_BOOT, Bootstrap
from advimb.results.tables import build_tables, read_tables


def _read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _r(x: float, digits: int = 2) -> float:
    return float("nan") if x is None or not math.isfinite(x) else round(float(x), digits)


def _est(row: dict[str, Any], col: str) -> dict[str, float]:
    return {"value": _r(row[col]), "lo": _r(row.get(f"{col}_lo")), "hi": _r(row.get(f"{col}_hi"))}


def _table1(rows: list[dict[str, Any]], ref: dict[str, Any] | None, interval: str,
            sources: list[str], classes: tuple[str, ...]) -> dict[str, Any]:
    """Table 1 (means over seeds with intervals) from the table's rows; with the paper's
    ``ref`` (only in its setting), the paper's values and the differences too; the
    dataset's ``classes`` that the run does not study are named."""
    out = []
    for r in rows:
        row: dict[str, Any] = {"class": r["class"], "measured": {}, "ci": {}, "paper": {}, "difference": {}}
        for j, (col, _, _) in enumerate(TABLE1_COLUMNS):
            e = _est(r, col)
            row["measured"][col], row["ci"][col] = e["value"], [e["lo"], e["hi"]]
            if ref and r["class"] != "average":
                p = float(ref["table1_percent"][r["class"]][j])
                row["paper"][col], row["difference"][col] = p, round(e["value"] - p, 2)
        out.append(row)
    avg = out.pop()
    cols = [c for c, _, _ in TABLE1_COLUMNS]
    table1 = {"columns": cols, "rows": out, "average": avg, "paper_comparable": ref is not None,
              "interval": interval, "sources": sources + (["advimb/reference/possas_zhou.json"] if ref else [])}
    if ref:
        for col in cols:
            avg["paper"][col] = round(float(np.mean([r["paper"][col] for r in out])), 2)
            avg["difference"][col] = round(avg["measured"][col] - avg["paper"][col], 2)
        diffs = [abs(r["difference"][c]) for r in out for c in cols]
        table1["cells_within_10_points"] = [sum(d <= 10 for d in diffs), len(diffs)]
    # a study of some classes (in the paper's setting for the cells it measures, or not): say which it does not
    studied = {r["class"] for r in out}
    if missing := [c for c in classes if c not in studied]:
        table1["classes_not_studied"] = missing
    return table1


def _panel(grid, flip: dict, c: str, kind: str) -> dict[str, Any]:
    """Fig. 6: where class ``c``'s images go, clean and perturbed, under the ``kind``:c model."""
    model = model_name(kind, c)
    fr = [flip[(c, model, "same_model", lab)] for lab in grid.classes]
    return {"class": c, "kind": kind, "model": model, "clean": [_r(x["clean_share"]) for x in fr],
            "adversarial": [_r(x["share"]) for x in fr], "n": fr[0]["attacked_images"],
            "source": grid.first(c, kind, "same_model")["source"]}


def collect(run_dir: Path, pair=None, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (no files written but the tables)."""
    run_dir = Path(run_dir)
    grid = load_grid(run_dir)  # refuses an incomplete run folder, saying what is missing
    classes, targets, cfg = grid.classes, grid.targets, grid.config
    bal_conf = grid.clean["balanced"][0].confusion
    pair = default_pair(classes, targets, bal_conf) if pair is None else parse_pair(pair, classes, targets)
    # the stored tables when they are current (``advimb run`` has just built them), else built now
    summary = read_tables(run_dir, grid) or build_tables(run_dir, grid)
    m = summary.get("metrics")  # the claims share the tables' resamples when the tables were just built
    if m is None or n_boot != m.boot.n_boot:  # the claims' replicates; the tables always use N_BOOT
        m = GridMetrics(grid, Bootstrap(n_boot=n_boot, seed=0))
    ref = reference()
    why_not = paper_setting(cfg, grid.manifest.get("dataset", {}))
    comparable = not why_not
    layout = RunLayout(run_dir)
    hist_path = layout.model("balanced") / "history.csv"
    exp_tables = summary.get("experiments", {}).get("tables", [])
    return {
        **_header(run_dir, grid, ref, why_not),
        "interval_method": summary["interval"],
        **_balanced(summary, grid),
        "table1": _table1(summary["rows"]["table1"], ref if comparable else None, summary["interval"],
                          grid.attack_sources(), classes),
        **_figure_data(grid, summary, pair),
        "history": {"rows": _read_history(hist_path) if hist_path.exists() else [],
                    "source": str(hist_path.relative_to(run_dir))},
        "confusion": {"balanced": bal_conf.tolist(), "source": grid.clean["balanced"][0].source},
        "claims": check_claims(m, ref if comparable else None, pair),
        "sweep": _sweep(run_dir, summary.get("sweep")),
        "experiments": {"seeds": grid.seeds, "long_tail": summary.get("long_tail"),
                        "defences": summary.get("defences"),
                        "rows": {k: v for k, v in summary["rows"].items() if k in exp_tables},
                        "sources": {k: v for k, v in artifacts.read_json(layout.tables / "sources.json").items()
                                    if k in exp_tables}},
    }


def _header(run_dir: Path, grid, ref: dict[str, Any], why_not: list[str]) -> dict[str, Any]:
    """The run (config, manifest, attack in words), the paper's reference and whether it is
    set beside this run, and the page's notes."""
    cfg, layout = grid.config, RunLayout(run_dir)
    comparable = not why_not
    notes = [] if comparable else [
        "No comparison with the paper: " + "; ".join(why_not) + ". The paper's numbers belong to its "
        f"setting ({PAPER_SETTING}), so they are not shown beside this run."]
    return {
        "title": f"advimb report: {run_dir.resolve().name}",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": {"dir": str(run_dir), "config_toml": layout.config.read_text() if layout.config.exists() else "",
                "manifest": grid.manifest, "preset": cfg.preset if cfg else None, "seed": cfg.seed if cfg else None,
                "attack": cfg.to_dict()["attack"] if cfg else {},
                "attack_words": describe_attack(cfg.attack) if cfg else "unknown (no config.toml)",
                "examples": cfg.eval.examples if cfg else None, "sources": ["config.toml", "manifest.json"]},
        # the paper's numbers only where they are shown
        "reference": {"citation": ref["citation"], "source": ref["source"],
                      **({"text": ref["text"]} if comparable else {})},
        "paper_comparison": {"shown": comparable, "reasons": why_not, "paper_setting": PAPER_SETTING},
        "notes": notes,
    }


def _balanced(summary: dict[str, Any], grid) -> dict[str, Any]:
    bal = summary["balanced_clean_accuracy"], *summary["balanced_clean_accuracy_interval"]
    return {"balanced_clean_accuracy_percent": _r(bal[0]),
            "balanced_clean_accuracy": {"value": _r(bal[0]), "lo": _r(bal[1]), "hi": _r(bal[2])},
            "balanced_clean_source": grid.clean["balanced"][0].source}


def _figure_data(grid, summary: dict[str, Any], pair: tuple[str, str]) -> dict[str, Any]:
    """Fig. 2, Fig. 4 and Fig. 6 data, from the tables' rows."""
    rows, classes, targets = summary["rows"], grid.classes, grid.targets
    attack_src = grid.attack_sources()
    clean_target = [{"class": r["class"], **{k: _r(r[k]) for k in KINDS},
                     "ci": {k: [_r(r[f"{k}_lo"]), _r(r[f"{k}_hi"])] for k in KINDS}}
                    for r in rows["clean_target_accuracy"]]
    rel: dict[str, dict[str, Any]] = {}
    for r in rows["relative_difference"]:
        if r["gradient"] == "same_model":
            rel.setdefault(r["class"], {"class": r["class"]})[r["model_kind"]] = _r(r["relative_difference"])
    rd_avg = summary["relative_difference_average_percent"]
    flip = {(r["class"], r["evaluated_model"], r["gradient"], r["predicted_class"]): r for r in rows["flip_rates"]}
    flips = {kind: [[_r(flip[(c, model_name(kind, c), "same_model", lab)]["share"]) for lab in classes]
                    for c in targets] for kind in KINDS}
    return {
        "clean_target_accuracy": {"rows": clean_target, "sources": grid.clean_sources(),
                                  "definition": "clean accuracy of the class on the full test set"},
        "relative_difference": {
            "rows": [rel[c] for c in targets],
            "average": {"class": "average", **{k: None if rd_avg[k] is None else _r(rd_avg[k]) for k in KINDS}},
            "undefined": summary["relative_difference_undefined_classes"], "gradient": "same_model",
            "definition": "100 x (clean - attacked) / clean, both on the attacked test images",
            "sources": attack_src},
        "flip_rates": {"targets": targets, "classes": list(classes), "percent": flips, "sources": attack_src},
        "pair": {"classes": list(pair),
                 "panels": [_panel(grid, flip, c, kind) for c in pair if c in targets for kind in ("under", "over")]},
    }


def _sweep(run_dir: Path, rows: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The sweep summary ``build_tables`` computed, with the artifacts it read."""
    if not rows:
        return None
    summary = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    return {"summary": summary, "sources": artifacts.read_json(RunLayout(run_dir).tables / "sources.json")["sweep"],
            "attacks": sorted({r["attack"] for r in rows}), "epsilons": sorted({r["eps"] for r in rows})}


def _examples(run_dir: Path, results: dict[str, Any], rows: int = 5) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to ``rows`` stored examples of the balanced model's attack, one per class, the
    pair's classes first, preferring images the attack flipped."""
    classes = results["flip_rates"]["classes"]
    order = list(dict.fromkeys([*(c for c in results["pair"]["classes"] if c in results["flip_rates"]["targets"]),
                                *results["flip_rates"]["targets"]]))
    items, sources = [], []
    for c in order:
        path = RunLayout(run_dir).attack(GRID, "balanced", c, "npz")
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


def draw_figures(run_dir: Path, results: dict[str, Any], out: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Draw every figure into ``out/figures``; returns their entries for ``results`` and,
    for each figure of the paper's grid that could not be drawn, why (never dropped silently)."""
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    classes = results["flip_rates"]["classes"]
    targets = results["flip_rates"]["targets"]
    entries: list[dict[str, Any]] = []
    not_drawn: list[dict[str, str]] = []

    def add(fid: str, title: str, files: dict[str, str], sources: list[str], **data: Any) -> None:
        entries.append({"id": fid, "title": title, "files": {k: f"figures/{v}" for k, v in files.items()},
                        "sources": sources, "data": data})

    t1 = results["table1"]
    cols = t1["columns"]
    meas = np.array([[r["measured"][c] for c in cols] for r in t1["rows"]], dtype=float)
    paper = (np.array([[r["paper"][c] for c in cols] for r in t1["rows"]], dtype=float)
             if t1["paper_comparable"] else None)
    add("table1", "Table 1: accuracy of the target class under attack" + (", this run beside the paper"
                                                                            if paper is not None else ""),
        figures.table1(meas, paper, targets, cols, fig_dir), t1["sources"])
    _fig1(results, fig_dir, add, not_drawn)
    add("fig2", "Fig. 2: clean accuracy of the target class",
        figures.clean_target(results["clean_target_accuracy"]["rows"], fig_dir),
        results["clean_target_accuracy"]["sources"])
    _fig3(run_dir, results, fig_dir, add, not_drawn)
    rd = results["relative_difference"]
    add("fig4", "Fig. 4: relative difference per class",
        figures.relative_difference(rd["rows"] + [rd["average"]], fig_dir), rd["sources"])
    a, b = results["pair"]["classes"]
    if results["pair"]["panels"]:
        add("fig6", f"Fig. 6: where perturbed {a} and {b} images go",
            figures.label_distributions(results["pair"]["panels"], classes, fig_dir),
            sorted({p["source"] for p in results["pair"]["panels"]}))
    else:  # pragma: no cover - the pair's first class is always studied (parse_pair, default_pair)
        not_drawn.append({"id": "fig6", "title": "Fig. 6", "reason": f"neither {a} nor {b} is a studied class"})
    if results.get("sweep"):
        sw = results["sweep"]
        add("fig7", "Fig. 7: accuracy under attack against eps, per attack",
            figures.sweep_curves(sw["summary"], fig_dir), sw["sources"])
    exp = results["experiments"]
    figures.draw(exp["rows"], exp, fig_dir, add, exp["sources"])
    fr = results["flip_rates"]
    add("fig6b", "Fig. 6b: flip rates, true class x predicted class",
        figures.flip_heatmaps({k: np.array(v, dtype=float) for k, v in fr["percent"].items()}, targets, classes,
                              fig_dir), fr["sources"])
    return entries, not_drawn


def _fig1(results: dict[str, Any], fig_dir: Path, add, not_drawn: list[dict[str, str]]) -> None:
    """Fig. 1, the balanced model's history and confusion, or why it is not drawn."""
    hist, conf = results["history"]["rows"], results["confusion"]["balanced"]
    if not hist:
        not_drawn.append({"id": "fig1", "title": "Fig. 1: the balanced model",
                          "reason": f"{results['history']['source']} is missing from the run folder"})
        return
    best = min(hist, key=lambda h: h["val_loss"])
    add("fig1", "Fig. 1: the balanced model",
        figures.training(hist, np.array(conf), results["flip_rates"]["classes"], fig_dir),
        [results["history"]["source"], results["confusion"]["source"]],
        epochs=len(hist), best_epoch=int(best["epoch"]), best_val_loss=round(best["val_loss"], 4),
        best_val_accuracy_percent=round(100 * best["val_accuracy"], 2))


def _fig3(run_dir: Path, results: dict[str, Any], fig_dir: Path, add, not_drawn: list[dict[str, str]]) -> None:
    """Fig. 3, adversarial examples, or why it is not drawn."""
    items, src = _examples(run_dir, results)
    if not items:
        stored = results["run"].get("examples")
        not_drawn.append({"id": "fig3", "title": "Fig. 3: adversarial examples", "reason": (
            "the run stored no example images (eval.examples = 0)" if stored == 0 else
            "this folder's eval/attack/*.npz hold no example images (removed after the run, as in a published "
            "copy that does not redistribute the dataset's images)")})
        return
    eps = float(results["run"]["attack"].get("eps", 0.01)) or 0.01
    factor = round(0.5 / eps, 1)
    add("fig3", "Fig. 3: adversarial examples (balanced model, same-model attack)",
        figures.examples(items, eps, factor, fig_dir), src, amplification=factor, eps=eps,
        examples=[{k: v for k, v in it.items() if k not in ("clean", "adversarial")} for it in items])


def build_report(run_dir: str | Path, pair=None, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Build ``run_dir/report`` (page, figures, results.json, tables); returns the results."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; give the folder `advimb run --out` wrote")
    results = collect(run_dir, pair, n_boot)  # every check (pair, completeness) before the first write
    out = artifacts.ensure_writable_dir(RunLayout(run_dir).report, "report folder")
    results["figures"], results["figures_not_drawn"] = draw_figures(run_dir, results, out)
    drawn = {Path(p).name for f in results["figures"] for p in f["files"].values()}
    for stale in (out / "figures").iterdir():  # a figure an earlier build drew and this one did not
        if stale.name not in drawn:
            stale.unlink()
    results = artifacts.json_safe(results)  # an undefined number is None from here on: "n/a", never "nan"
    (out / "tables").mkdir(exist_ok=True)
    results["files"] = {"results": "results.json", "tables": []}
    for f in sorted(RunLayout(run_dir).tables.glob("*")):
        shutil.copyfile(f, out / "tables" / f.name)
        results["files"]["tables"].append(f"tables/{f.name}")
    artifacts.write_json(out / "results.json", results)
    artifacts.write_text(out / "index.html", render(results))
    return results


def not_studied_text(classes: list[str], comparable: bool = True) -> str:
    beside = ", the paper's beside them" if comparable else ""
    return (f"not studied by this run: the rows of {', '.join(classes)} ({5 * len(classes)} cells of Table 1); its "
            f"averages{beside} and the claims are over the studied classes only")


def format_report_summary(results: dict[str, Any]) -> str:
    """Table 1 (with the paper's values when the run is in its setting, else why not) and
    each claim's sign-test verdict with its magnitude agreement, for the terminal."""
    t1 = results["table1"]
    comp = t1["paper_comparable"]
    short = ["diff under", "diff over", "same bal", "same under", "same over"]
    lines = [f"attack: {results['run']['attack_words']}",
             "Table 1 - accuracy of the target class under attack, % " + ("(this run / paper)" if comp else "(this run)"),
             f"{'class':12s}" + "".join(f"{s:>15s}" for s in short)]
    for r in [*t1["rows"], t1["average"]]:
        cells = [_num(r["measured"][c]) + (f" / {_num(r['paper'][c])}" if comp else "") for c in t1["columns"]]
        lines.append(f"{r['class']:12s}" + "".join(f"{x:>15s}" for x in cells))
    a = t1["average"]
    lines.append("average, 95% interval: " + ", ".join(
        f"{s} [{_num(a['ci'][c][0])}, {_num(a['ci'][c][1])}]" for s, c in zip(short, t1["columns"]))
        + f"  ({results['interval_method']})")
    if comp:
        w, n = t1["cells_within_10_points"]
        lines.append(f"{w} of {n} cells within 10 points of the paper's Table 1")
    else:
        lines.append("no comparison with the paper: " + "; ".join(results["paper_comparison"]["reasons"]))
    if t1.get("classes_not_studied"):
        lines.append(not_studied_text(t1["classes_not_studied"], comp))
    b = results["balanced_clean_accuracy"]
    lines.append(f"balanced model, clean test accuracy: {_num(b['value'])}% [{_num(b['lo'])}, {_num(b['hi'])}]")
    lines.append("claims - verdict = sign test of each difference (95% interval above 0); magnitude = this run vs "
                 "the paper:")
    for c in results["claims"]["claims"]:
        comps = "; ".join(f"{x['label']} {_num(x['value'])} [{_num(x['lo'])}, {_num(x['hi'])}]"
                          if x["lo"] is not None else f"{x['label']} undefined"
                          for x in c["comparisons"]) or "not measurable in this run"
        lines.append(f"  {c['id']:4s} {c['shown_as'].upper():26s} {comps}")
        if c["floor_effect"]:
            lines.append(f"       {c['floor_effect']} (sign test alone: {c['verdict']})")
        elif c["verdict"] == "not measurable" and c["notes"]:
            lines.append(f"       {c['notes'][0]}")
        lines.append(f"       magnitude: {magnitude_text(c)}")
    return "\n".join(lines)

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

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.errors import UserError
from advimb.layout import RunLayout
from advimb.report.drawing import draw_figures
from advimb.report.html import render
from advimb.report.text import fmt as _num
from advimb.report.text import magnitude_text
from advimb.results.claims import check_claims
from advimb.results.metrics import GridMetrics
from advimb.results.pairs import default_pair, parse_pair
from advimb.results.reader import BALANCED, KINDS, TABLE1_COLUMNS, GridResults, load_grid
from advimb.results.reference import PAPER_SETTING, describe_attack, paper_setting, reference
from advimb.results.robal import beside_robal, has_robal_models
from advimb.results.stats import N_BOOT, Bootstrap, Estimate, check_n_boot
from advimb.results.stored import read_history
from advimb.results.tables import build_tables, read_tables
from advimb.scenario import Gradient, Kind


def _r(x: float | None, digits: int = 2) -> float:
    return float("nan") if x is None or not math.isfinite(x) else round(float(x), digits)


def _est(row: dict[str, Any], col: str) -> dict[str, float]:
    return Estimate.from_columns(row, col).to_dict()


def _table1(
    rows: list[dict[str, Any]], ref: dict[str, Any] | None, interval: str, sources: list[str], classes: tuple[str, ...]
) -> dict[str, Any]:
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
    table1 = {
        "columns": cols,
        "rows": out,
        "average": avg,
        "paper_comparable": ref is not None,
        "interval": interval,
        "sources": sources + (["advimb/reference/possas_zhou.json"] if ref else []),
    }
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


def _panel(grid: GridResults, flip: dict, c: str, kind: Kind) -> dict[str, Any]:
    """Fig. 6: where class ``c``'s images go, clean and perturbed, under the ``kind``:c model."""
    model = grid.outcomes.name(grid.model(kind, c))
    fr = [flip[(c, model, Gradient.SAME, lab)] for lab in grid.classes]
    return {
        "class": c,
        "kind": kind,
        "model": model,
        "clean": [_r(x["clean_share"]) for x in fr],
        "adversarial": [_r(x["share"]) for x in fr],
        "n": fr[0]["attacked_images"],
        "source": grid.cell(c, kind, Gradient.SAME)[0].source.replace(".npz", ".json"),
    }


def collect(run_dir: Path, pair=None, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (no files written but the tables)."""
    run_dir = Path(run_dir)
    grid = load_grid(run_dir)  # refuses an incomplete run folder, saying what is missing
    classes, targets, cfg = grid.classes, grid.targets, grid.config
    bal_conf = grid.clean(BALANCED)[0].confusion
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
    history, history_source = read_history(run_dir, BALANCED, grid.classes)
    exp_tables = summary.get("experiments", {}).get("tables", [])
    return {
        **_header(run_dir, grid, ref, why_not),
        "interval_method": summary["interval"],
        **_balanced(summary, grid),
        "table1": _table1(
            summary["rows"]["table1"], ref if comparable else None, summary["interval"], grid.attack_sources(), classes
        ),
        **_figure_data(grid, summary, pair),
        "history": {
            "rows": history,
            "source": history_source,
        },
        "confusion": {"balanced": bal_conf.tolist(), "source": grid.clean(BALANCED)[0].source},
        "claims": check_claims(m, ref if comparable else None, pair),
        "sweep": _sweep(run_dir, summary.get("sweep")),
        "experiments": {
            "seeds": grid.seeds,
            "long_tail": summary.get("long_tail"),
            "long_tail_robustness": summary.get("long_tail_robustness"),
            # absent (not null) when there is nothing to say, so earlier runs' results.json stay as they were
            **_robal(summary.get("long_tail_robustness"), cfg, grid.manifest.get("dataset", {})),
            "defences": summary.get("defences"),
            "rows": {k: v for k, v in summary["rows"].items() if k in exp_tables},
            "sources": {
                k: v for k, v in artifacts.read_json(layout.tables / "sources.json").items() if k in exp_tables
            },
        },
    }


def _robal(rows: list[dict[str, Any]] | None, cfg, dataset: dict[str, Any]) -> dict[str, Any]:
    """``{"robal": ...}``, RoBal's tables beside the long-tailed models
    (:func:`advimb.results.robal.beside_robal`), for a run in RoBal's setting or one with
    RoBal's models (then the reasons it is not); ``{}`` otherwise."""
    if not rows:
        return {}
    out = beside_robal(rows, cfg, dataset)
    return {"robal": out} if out["tables"] or has_robal_models(rows) else {}


def _header(run_dir: Path, grid, ref: dict[str, Any], why_not: list[str]) -> dict[str, Any]:
    """The run (config, manifest, attack in words), the paper's reference and whether it is
    set beside this run, and the page's notes."""
    cfg, layout = grid.config, RunLayout(run_dir)
    comparable = not why_not
    notes = (
        []
        if comparable
        else [
            "No comparison with the paper: " + "; ".join(why_not) + ". The paper's numbers belong to its "
            f"setting ({PAPER_SETTING}), so they are not shown beside this run."
        ]
    )
    return {
        "title": f"advimb report: {run_dir.resolve().name}",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": {
            "dir": str(run_dir),
            "config_toml": layout.config.read_text() if layout.config.exists() else "",
            "manifest": grid.manifest,
            "preset": cfg.preset if cfg else None,
            "seed": cfg.seed if cfg else None,
            "attack": cfg.to_dict()["attack"] if cfg else {},
            "attack_words": describe_attack(cfg.attack) if cfg else "unknown (no config.toml)",
            "examples": cfg.eval.examples if cfg else None,
            "sources": ["config.toml", "manifest.json"],
        },
        # the paper's numbers only where they are shown
        "reference": {
            "citation": ref["citation"],
            "source": ref["source"],
            **({"text": ref["text"]} if comparable else {}),
        },
        "paper_comparison": {"shown": comparable, "reasons": why_not, "paper_setting": PAPER_SETTING},
        "notes": notes,
    }


def _balanced(summary: dict[str, Any], grid: GridResults) -> dict[str, Any]:
    bal = summary["balanced_clean_accuracy"], *summary["balanced_clean_accuracy_interval"]
    return {
        "balanced_clean_accuracy_percent": _r(bal[0]),
        "balanced_clean_accuracy": Estimate(*bal).to_dict(),
        "balanced_clean_source": grid.clean(BALANCED)[0].source,
    }


def _figure_data(grid: GridResults, summary: dict[str, Any], pair: tuple[str, str]) -> dict[str, Any]:
    """Fig. 2, Fig. 4 and Fig. 6 data, from the tables' rows."""
    rows, classes, targets = summary["rows"], grid.classes, grid.targets
    attack_src = grid.attack_sources()
    clean_target = [
        {
            "class": r["class"],
            **{k: _r(r[k]) for k in KINDS},
            "ci": {k: [_r(r[f"{k}_lo"]), _r(r[f"{k}_hi"])] for k in KINDS},
        }
        for r in rows["clean_target_accuracy"]
    ]
    rel: dict[str, dict[str, Any]] = {}
    for r in rows["relative_difference"]:
        if r["gradient"] == Gradient.SAME:
            rel.setdefault(r["class"], {"class": r["class"]})[r["model_kind"]] = _r(r["relative_difference"])
    rd_avg = summary["relative_difference_average_percent"]
    flip = {(r["class"], r["evaluated_model"], r["gradient"], r["predicted_class"]): r for r in rows["flip_rates"]}
    flips = {
        kind: [
            [_r(flip[(c, grid.outcomes.name(grid.model(kind, c)), Gradient.SAME, lab)]["share"]) for lab in classes]
            for c in targets
        ]
        for kind in KINDS
    }
    return {
        "clean_target_accuracy": {
            "rows": clean_target,
            "sources": grid.clean_sources(),
            "definition": "clean accuracy of the class on the full test set",
        },
        "relative_difference": {
            "rows": [rel[c] for c in targets],
            "average": {"class": "average", **{k: None if rd_avg[k] is None else _r(rd_avg[k]) for k in KINDS}},
            "undefined": summary["relative_difference_undefined_classes"],
            "gradient": Gradient.SAME.value,
            "definition": "100 x (clean - attacked) / clean, both on the attacked test images",
            "sources": attack_src,
        },
        "flip_rates": {"targets": targets, "classes": list(classes), "percent": flips, "sources": attack_src},
        "pair": {
            "classes": list(pair),
            "panels": [_panel(grid, flip, c, kind) for c in pair if c in targets for kind in (Kind.UNDER, Kind.OVER)],
        },
    }


def _sweep(run_dir: Path, rows: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The sweep summary ``build_tables`` computed, with the artifacts it read."""
    if not rows:
        return None
    summary = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    return {
        "summary": summary,
        "sources": artifacts.read_json(RunLayout(run_dir).tables / "sources.json")["sweep"],
        "attacks": sorted({r["attack"] for r in rows}),
        "epsilons": sorted({r["eps"] for r in rows}),
    }


def build_report(run_dir: str | Path, pair=None, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Build ``run_dir/report`` (page, figures, results.json, tables); returns the results."""
    run_dir = Path(run_dir)
    check_n_boot(n_boot)
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
    return (
        f"not studied by this run: the rows of {', '.join(classes)} ({5 * len(classes)} cells of Table 1); its "
        f"averages{beside} and the claims are over the studied classes only"
    )


def format_report_summary(results: dict[str, Any]) -> str:
    """Table 1 (with the paper's values when the run is in its setting, else why not) and
    each claim's sign-test verdict with its magnitude agreement, for the terminal."""
    t1 = results["table1"]
    comp = t1["paper_comparable"]
    short = ["diff under", "diff over", "same bal", "same under", "same over"]
    lines = [
        f"attack: {results['run']['attack_words']}",
        "Table 1 - accuracy of the target class under attack, % " + ("(this run / paper)" if comp else "(this run)"),
        f"{'class':12s}" + "".join(f"{s:>15s}" for s in short),
    ]
    for r in [*t1["rows"], t1["average"]]:
        cells = [_num(r["measured"][c]) + (f" / {_num(r['paper'][c])}" if comp else "") for c in t1["columns"]]
        lines.append(f"{r['class']:12s}" + "".join(f"{x:>15s}" for x in cells))
    a = t1["average"]
    lines.append(
        "average, 95% interval: "
        + ", ".join(f"{s} [{_num(a['ci'][c][0])}, {_num(a['ci'][c][1])}]" for s, c in zip(short, t1["columns"]))
        + f"  ({results['interval_method']})"
    )
    if comp:
        w, n = t1["cells_within_10_points"]
        lines.append(f"{w} of {n} cells within 10 points of the paper's Table 1")
    else:
        lines.append("no comparison with the paper: " + "; ".join(results["paper_comparison"]["reasons"]))
    if t1.get("classes_not_studied"):
        lines.append(not_studied_text(t1["classes_not_studied"], comp))
    b = results["balanced_clean_accuracy"]
    lines.append(f"balanced model, clean test accuracy: {_num(b['value'])}% [{_num(b['lo'])}, {_num(b['hi'])}]")
    lines.append(
        "claims - verdict = sign test of each difference (95% interval above 0); magnitude = this run vs the paper:"
    )
    for c in results["claims"]["claims"]:
        comps = (
            "; ".join(
                f"{x['label']} {_num(x['value'])} [{_num(x['lo'])}, {_num(x['hi'])}]"
                if x["lo"] is not None
                else f"{x['label']} undefined"
                for x in c["comparisons"]
            )
            or "not measurable in this run"
        )
        lines.append(f"  {c['id']:4s} {c['shown_as'].upper():26s} {comps}")
        if c["floor_effect"]:
            lines.append(f"       {c['floor_effect']} (sign test alone: {c['verdict']})")
        elif c["verdict"] == "not measurable" and c["notes"]:
            lines.append(f"       {c['notes'][0]}")
        lines.append(f"       magnitude: {magnitude_text(c)}")
    return "\n".join(lines)

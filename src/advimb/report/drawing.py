"""The report's figures from its collected results: which figure is drawn from which numbers,
and, for each figure of the paper's grid that cannot be drawn, why. The drawing itself is
:mod:`advimb.report.figures` and :mod:`advimb.report.experiment_figures`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advimb.report import experiment_figures, figures
from advimb.results.stored import read_examples
from advimb.scenario import BALANCED


def _examples(run_dir: Path, results: dict[str, Any], rows: int = 5) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to ``rows`` stored examples of the balanced model's attack, one per class, the
    pair's classes first, preferring images the attack flipped."""
    classes = results["flip_rates"]["classes"]
    order = list(
        dict.fromkeys(
            [
                *(c for c in results["pair"]["classes"] if c in results["flip_rates"]["targets"]),
                *results["flip_rates"]["targets"],
            ]
        )
    )
    items: list[dict[str, Any]] = []
    sources: list[str] = []
    for c in order:
        ex = read_examples(run_dir, BALANCED, c, tuple(classes)) if len(items) < rows else None
        if ex is None:
            continue
        pc, pa = ex.prob_clean, ex.prob_adv
        t = classes.index(c)
        ok = [i for i in range(len(pc)) if pc[i].argmax() == t and pa[i].argmax() != t]
        i = ok[0] if ok else 0
        items.append(
            {
                "true": c,
                "clean": ex.clean[i],
                "adversarial": ex.adversarial[i],
                "pred_clean": classes[int(pc[i].argmax())],
                "conf_clean": float(pc[i].max()),
                "pred_adv": classes[int(pa[i].argmax())],
                "conf_adv": float(pa[i].max()),
                "test_index": int(ex.test_indices[i]),
            }
        )
        sources.append(ex.source)
    return items, sources


def draw_figures(
    run_dir: Path, results: dict[str, Any], out: Path
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Draw every figure into ``out/figures``; returns their entries for ``results`` and,
    for each figure of the paper's grid that could not be drawn, why (never dropped silently)."""
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    classes = results["flip_rates"]["classes"]
    targets = results["flip_rates"]["targets"]
    entries: list[dict[str, Any]] = []
    not_drawn: list[dict[str, str]] = []

    def add(fid: str, title: str, files: dict[str, str], sources: list[str], **data: Any) -> None:
        entries.append(
            {
                "id": fid,
                "title": title,
                "files": {k: f"figures/{v}" for k, v in files.items()},
                "sources": sources,
                "data": data,
            }
        )

    _table1(results, targets, fig_dir, add)
    _fig1(results, fig_dir, add, not_drawn)
    add(
        "fig2",
        "Fig. 2: clean accuracy of the target class",
        figures.clean_target(results["clean_target_accuracy"]["rows"], fig_dir),
        results["clean_target_accuracy"]["sources"],
    )
    _fig3(run_dir, results, fig_dir, add, not_drawn)
    rd = results["relative_difference"]
    add(
        "fig4",
        "Fig. 4: relative difference per class",
        figures.relative_difference(rd["rows"] + [rd["average"]], fig_dir),
        rd["sources"],
    )
    _fig6(results, classes, fig_dir, add, not_drawn)
    if results.get("sweep"):
        sw = results["sweep"]
        add(
            "fig7",
            "Fig. 7: accuracy under attack against eps, per attack",
            experiment_figures.sweep_curves(sw["summary"], fig_dir),
            sw["sources"],
        )
    exp = results["experiments"]
    experiment_figures.draw(exp["rows"], exp, fig_dir, add, exp["sources"])
    fr = results["flip_rates"]
    add(
        "fig6b",
        "Fig. 6b: flip rates, true class x predicted class",
        figures.flip_heatmaps(
            {k: np.array(v, dtype=float) for k, v in fr["percent"].items()}, targets, classes, fig_dir
        ),
        fr["sources"],
    )
    return entries, not_drawn


def _table1(results: dict[str, Any], targets: list[str], fig_dir: Path, add) -> None:
    """Table 1 as a figure, this run beside the paper when the run is in the paper's setting."""
    t1 = results["table1"]
    cols = t1["columns"]
    meas = np.array([[r["measured"][c] for c in cols] for r in t1["rows"]], dtype=float)
    paper = (
        np.array([[r["paper"][c] for c in cols] for r in t1["rows"]], dtype=float) if t1["paper_comparable"] else None
    )
    add(
        "table1",
        "Table 1: accuracy of the target class under attack"
        + (", this run beside the paper" if paper is not None else ""),
        figures.table1(meas, paper, targets, cols, fig_dir),
        t1["sources"],
    )


def _fig6(results: dict[str, Any], classes: list[str], fig_dir: Path, add, not_drawn: list[dict[str, str]]) -> None:
    """Fig. 6, where the pair's perturbed images go, or why it is not drawn."""
    a, b = results["pair"]["classes"]
    if results["pair"]["panels"]:
        add(
            "fig6",
            f"Fig. 6: where perturbed {a} and {b} images go",
            figures.label_distributions(results["pair"]["panels"], classes, fig_dir),
            sorted({p["source"] for p in results["pair"]["panels"]}),
        )
    else:  # pragma: no cover - the pair's first class is always studied (parse_pair, default_pair)
        not_drawn.append({"id": "fig6", "title": "Fig. 6", "reason": f"neither {a} nor {b} is a studied class"})


def _fig1(results: dict[str, Any], fig_dir: Path, add, not_drawn: list[dict[str, str]]) -> None:
    """Fig. 1, the balanced model's history and confusion, or why it is not drawn."""
    hist, conf = results["history"]["rows"], results["confusion"]["balanced"]
    if not hist:
        not_drawn.append(
            {
                "id": "fig1",
                "title": "Fig. 1: the balanced model",
                "reason": f"{results['history']['source']} is missing from the run folder",
            }
        )
        return
    best = min(hist, key=lambda h: h["val_loss"])
    add(
        "fig1",
        "Fig. 1: the balanced model",
        figures.training(hist, np.array(conf), results["flip_rates"]["classes"], fig_dir),
        [results["history"]["source"], results["confusion"]["source"]],
        epochs=len(hist),
        best_epoch=int(best["epoch"]),
        best_val_loss=round(best["val_loss"], 4),
        best_val_accuracy_percent=round(100 * best["val_accuracy"], 2),
    )


def _fig3(run_dir: Path, results: dict[str, Any], fig_dir: Path, add, not_drawn: list[dict[str, str]]) -> None:
    """Fig. 3, adversarial examples, or why it is not drawn."""
    items, src = _examples(run_dir, results)
    if not items:
        stored = results["run"].get("examples")
        not_drawn.append(
            {
                "id": "fig3",
                "title": "Fig. 3: adversarial examples",
                "reason": (
                    "the run stored no example images (eval.examples = 0)"
                    if stored == 0
                    else "this folder's eval/attack/*.npz hold no example images (removed after the run, as in a published "
                    "copy that does not redistribute the dataset's images)"
                ),
            }
        )
        return
    eps = float(results["run"]["attack"].get("eps", 0.01)) or 0.01
    factor = round(0.5 / eps, 1)
    add(
        "fig3",
        "Fig. 3: adversarial examples (balanced model, same-model attack)",
        figures.examples(items, eps, factor, fig_dir),
        src,
        amplification=factor,
        eps=eps,
        examples=[{k: v for k, v in it.items() if k not in ("clean", "adversarial")} for it in items],
    )

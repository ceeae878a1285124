"""The report's figures, drawn with matplotlib from plain numbers (never from models).

Every function takes already-loaded results (lists, dicts, arrays) and writes one figure
as PNG (for the page, 150 dpi), SVG and PDF (for papers) through :func:`save`. Colours are
the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies) and
heatmaps use viridis / a purple-orange diverging map; axes carry units and class names.
The object-oriented API (``matplotlib.figure.Figure``) is used so that nothing touches
pyplot's global state or needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from advimb import artifacts
from advimb.report.text import fmt

#: Okabe & Ito (2008) colour-blind-safe palette
OKABE_ITO = {"blue": "#0072B2", "vermillion": "#D55E00", "green": "#009E73", "orange": "#E69F00",
             "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000"}
KIND_COLOURS = {"balanced": OKABE_ITO["blue"], "under": OKABE_ITO["vermillion"], "over": OKABE_ITO["green"]}
KIND_LABELS = {"balanced": "balanced", "under": "under-sampled target", "over": "over-sampled target"}
FORMATS = ("png", "svg", "pdf")


def save(fig: Figure, out_dir: Path, stem: str) -> dict[str, str]:
    """Write ``fig`` as PNG, SVG and PDF (atomically, reproducible metadata); returns
    ``{format: file name}``."""
    files = {}
    meta = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    for kind in FORMATS:
        path = Path(out_dir) / f"{stem}.{kind}"
        # a fixed salt: the SVG's element ids, and so its bytes, are the same at every build
        with artifacts.atomic_path(path) as tmp, matplotlib.rc_context({"svg.hashsalt": "advimb"}):
            fig.savefig(tmp, format=kind, dpi=150, metadata=meta[kind])
        files[kind] = path.name
    return files


def _grouped_bars(ax, labels: list[str], series: dict[str, list[float]], colours: dict[str, str],
                  names: dict[str, str], ylabel: str) -> None:
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(labels))
    for i, (k, vals) in enumerate(series.items()):
        vals = np.array([np.nan if v is None else v for v in vals], dtype=float)  # undefined: no bar
        ax.bar(x + (i - (n - 1) / 2) * width, vals, width, label=names.get(k, k), color=colours.get(k),
               edgecolor="white", linewidth=0.5)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def training(history: list[dict[str, float]], confusion: np.ndarray, classes: list[str],
             out_dir: Path, stem: str = "fig1_balanced_model") -> dict[str, str]:
    """Fig. 1: loss and accuracy per epoch (train and validation) and the row-normalised
    clean confusion matrix of the balanced model."""
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1, 1, 1.25])
    ep = [h["epoch"] for h in history]
    for ax, key, name in ((ax1, "loss", "cross-entropy loss"), (ax2, "accuracy", "accuracy (%)")):
        scale = 100 if key == "accuracy" else 1
        ax.plot(ep, [scale * h[key] for h in history], "-o", ms=3, color=OKABE_ITO["blue"], label="training")
        ax.plot(ep, [scale * h[f"val_{key}"] for h in history], "-s", ms=3, color=OKABE_ITO["orange"],
                label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_title("loss per epoch")
    ax2.set_title("accuracy per epoch")
    cm = np.asarray(confusion, dtype=np.float64)
    cmn = 100 * cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax3.imshow(cmn, cmap="viridis", vmin=0, vmax=100)
    ax3.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax3.set_yticks(range(len(classes)), classes, fontsize=8)
    ax3.set_xlabel("predicted class")
    ax3.set_ylabel("true class")
    ax3.set_title("clean test confusion (% of true class)")
    if len(classes) <= 12:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax3.text(j, i, f"{cmn[i, j]:.0f}", ha="center", va="center", fontsize=6.5,
                         color="black" if cmn[i, j] > 60 else "white")
    fig.colorbar(im, ax=ax3, label="% of true class")
    return save(fig, out_dir, stem)


def clean_target(rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig2_clean_target_accuracy") -> dict[str, str]:
    """Fig. 2: clean accuracy of each target class for the three kinds of model."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    labels = [r["class"] for r in rows]
    _grouped_bars(ax, labels, {k: [r[k] for r in rows] for k in ("balanced", "under", "over")},
                  KIND_COLOURS, KIND_LABELS, "clean accuracy of the target class (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Target-class accuracy without attack")
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save(fig, out_dir, stem)


def examples(items: list[dict[str, Any]], eps: float, factor: float, out_dir: Path,
             stem: str = "fig3_adversarial_examples") -> dict[str, str]:
    """Fig. 3: image, perturbation (0.5 + factor * delta, grey = no change), adversarial
    image, with predicted label and confidence before and after."""
    n = max(len(items), 1)
    fig = Figure(figsize=(6.0, 2.1 * n), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 3))
    for row, it in zip(axes, items):
        clean = it["clean"].astype(np.float64) / 255.0  # HWC, C = 1 or 3
        adv = np.transpose(it["adversarial"], (1, 2, 0)).astype(np.float64)
        delta = adv - clean
        if clean.shape[-1] == 1:  # a grayscale dataset: one channel, drawn in grey levels
            clean, adv, delta = clean[..., 0], adv[..., 0], delta[..., 0]
        for ax, img, title in (
            (row[0], clean, f"clean: {it['pred_clean']} ({100 * it['conf_clean']:.0f}%)\ntrue class: {it['true']}"),
            (row[1], np.clip(0.5 + factor * delta, 0, 1),
             f"perturbation x{factor:g}\n(|delta| <= {eps:g}; grey = 0)"),
            (row[2], np.clip(adv, 0, 1), f"adversarial: {it['pred_adv']} ({100 * it['conf_adv']:.0f}%)"),
        ):
            ax.imshow(img, interpolation="nearest", cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=8.5)
            ax.set_xticks([])
            ax.set_yticks([])
    return save(fig, out_dir, stem)


def relative_difference(rows: list[dict[str, Any]], out_dir: Path,
                        stem: str = "fig4_relative_difference") -> dict[str, str]:
    """Fig. 4: (clean - perturbed) / clean per class and kind, same-model attack, with the
    average over classes as the last group."""
    fig = Figure(figsize=(10.5, 4), layout="constrained")
    ax = fig.subplots()
    labels = [r["class"] for r in rows]
    _grouped_bars(ax, labels, {k: [r[k] for r in rows] for k in ("balanced", "under", "over")},
                  KIND_COLOURS, KIND_LABELS, "relative difference (%)")
    ax.axvline(len(labels) - 1.5, color="grey", lw=0.8, ls="--")
    ax.set_title("Relative accuracy drop under the same-model attack (higher = more vulnerable)")
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save(fig, out_dir, stem)


def label_distributions(panels: list[dict[str, Any]], classes: list[str], out_dir: Path,
                        stem: str = "fig6_pair_distributions") -> dict[str, str]:
    """Fig. 6 (paper layout): for each panel (class, model), the share of the class's test
    images predicted as each label, clean (hatched) and perturbed (solid)."""
    cols = 2
    nrows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(11, 3.3 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, sharey=True)).ravel()
    x = np.arange(len(classes))
    for ax, p in zip(axes, panels):
        colour = KIND_COLOURS[p["kind"]]
        ax.bar(x - 0.2, p["clean"], 0.4, color="white", edgecolor=colour, hatch="///", label="clean")
        ax.bar(x + 0.2, p["adversarial"], 0.4, color=colour, label="perturbed")
        ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{p['class']} images, {p['model']} model (same-model attack)", fontsize=9.5)
        ax.set_ylabel("share of images (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save(fig, out_dir, stem)


def flip_heatmaps(mats: dict[str, np.ndarray], targets: list[str], classes: list[str], out_dir: Path,
                  stem: str = "fig6_flip_heatmaps") -> dict[str, str]:
    """Where perturbed images go, per model kind: row = attacked (true) class, column =
    predicted label, value = share of that class's perturbed images (%), same-model attack."""
    fig = Figure(figsize=(5.2 * len(mats), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(mats)))
    im = None
    for ax, (kind, m) in zip(axes, mats.items()):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=100)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(targets)), targets, fontsize=8)
        ax.set_xlabel("predicted class after attack")
        ax.set_ylabel("true (attacked) class")
        ax.set_title(f"{KIND_LABELS[kind]} model(s)", fontsize=10)
        if len(classes) <= 12:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    if np.isfinite(m[i, j]):
                        ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=6,
                                color="black" if m[i, j] > 60 else "white")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="% of the class's perturbed images", shrink=0.8)
    return save(fig, out_dir, stem)


def table1(measured: np.ndarray, paper: np.ndarray | None, classes: list[str], columns: list[str],
           out_dir: Path, stem: str = "table1_heatmap") -> dict[str, str]:
    """Table 1 as heatmaps: this run, the paper, and this run minus the paper (pp)."""
    panels = [("this run (%)", measured, "viridis", (0, 100))]
    if paper is not None:
        diff = measured - paper
        lim = max(10.0, float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 10.0)
        panels += [("paper, Table 1 (%)", paper, "viridis", (0, 100)),
                   ("this run - paper (pp)", diff, "PuOr_r", (-lim, lim))]
    fig = Figure(figsize=(4.6 * len(panels), 0.36 * len(classes) + 1.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    short = [c.replace("different_model_", "diff. ").replace("same_model_", "same ") for c in columns]
    for ax, (title, m, cmap, (lo, hi)) in zip(axes, panels):
        im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(len(columns)), short, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_title(title, fontsize=10)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    dark = (m[i, j] - lo) / (hi - lo) < 0.6 if cmap == "viridis" else abs(m[i, j]) > 0.6 * hi
                    ax.text(j, i, f"{m[i, j]:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return save(fig, out_dir, stem)


COLUMN_STYLE = {  # Table 1 columns: colour by model kind, dashed = different-model (transfer)
    "same_model_balanced": (KIND_COLOURS["balanced"], "-", "same model, balanced"),
    "same_model_under": (KIND_COLOURS["under"], "-", "same model, under-sampled"),
    "same_model_over": (KIND_COLOURS["over"], "-", "same model, over-sampled"),
    "different_model_under": (KIND_COLOURS["under"], "--", "different model, under-sampled"),
    "different_model_over": (KIND_COLOURS["over"], "--", "different model, over-sampled"),
}


def sweep_curves(rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig7_accuracy_vs_eps") -> dict[str, str]:
    """Accuracy of the target class under attack (mean over classes) against eps, one
    panel per attack, one line per Table 1 column; the worst class as a thin line."""
    attacks = sorted({r["attack"] for r in rows})
    fig = Figure(figsize=(4.6 * len(attacks) + 1.5, 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(attacks), sharey=True))
    for ax, attack in zip(axes, attacks):
        for col, (colour, ls, label) in COLUMN_STYLE.items():
            pts = sorted((r["eps"], r["accuracy"], r["worst_class_accuracy"]) for r in rows
                         if r["attack"] == attack and r["column"] == col)
            if not pts:
                continue
            e, a, w = zip(*pts)
            ax.plot(e, a, ls, marker="o", ms=4, color=colour, label=label)
            ax.plot(e, w, ls, lw=0.8, alpha=0.5, color=colour)
        ax.set_xscale("log")
        eps_values = sorted({r["eps"] for r in rows if r["attack"] == attack})
        ax.set_xticks(eps_values, [f"{e:g}" for e in eps_values], rotation=30)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("eps (L-inf, [0, 1] pixel scale, log)")
        ax.set_title(attack.upper())
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("target-class accuracy under attack (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    return save(fig, out_dir, stem)


# ----------------------------------------------------------------------------- experiments beyond the paper

CYCLE = list(OKABE_ITO.values())


def _err(rows: list[dict[str, Any]], col: str) -> np.ndarray:
    v = np.array([r[col] for r in rows], dtype=float)
    lo = np.array([r.get(f"{col}_lo", np.nan) for r in rows], dtype=float)
    hi = np.array([r.get(f"{col}_hi", np.nan) for r in rows], dtype=float)
    return np.nan_to_num(np.stack([v - lo, hi - v]), nan=0.0).clip(min=0)


def imbalance_sweep(rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig8_imbalance_sweep") -> dict[str, str]:
    """Against the imbalance ratio (log), one column of panels per swept class: target-class
    accuracy (clean, same-model attack, transfer attack; top) and the relative difference
    (clean - attacked) / clean of the same-model attack (bottom); 95% intervals as bars."""
    classes = list(dict.fromkeys(r["class"] for r in rows))
    fig = Figure(figsize=(4.2 * len(classes) + 1.8, 6.4), layout="constrained")
    axes = np.array(fig.subplots(2, len(classes), sharey="row", squeeze=False))
    for k, cls in enumerate(classes):
        rs = sorted((r for r in rows if r["class"] == cls), key=lambda r: r["ratio"])
        x = [r["ratio"] for r in rs]
        top, bottom = axes[0, k], axes[1, k]
        for col, colour, ls, label in (("clean_accuracy_attacked_images", OKABE_ITO["black"], ":", "clean"),
                                       ("adversarial_accuracy_same", KIND_COLOURS["under"], "-", "attack, same model"),
                                       ("adversarial_accuracy_transfer", KIND_COLOURS["balanced"], "--",
                                        "attack, balanced model's gradient")):
            pts = [r for r in rs if r.get(col) not in (None, "")]
            top.errorbar([r["ratio"] for r in pts], [r[col] for r in pts], yerr=_err(pts, col), fmt=ls, marker="o",
                         ms=4, capsize=2, color=colour, label=label)
        pts = [r for r in rs if r.get("relative_difference") is not None and np.isfinite(r["relative_difference"])]
        bottom.errorbar([r["ratio"] for r in pts], [r["relative_difference"] for r in pts],
                        yerr=_err(pts, "relative_difference"), fmt="-", marker="o", ms=4, capsize=2,
                        color=KIND_COLOURS["under"])
        top.set_title(cls)
        top.set_ylim(-2, 102)
        for ax in (top, bottom):
            ax.axvline(1.0, color="grey", lw=0.8, alpha=0.6)
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{v:.3g}" for v in x], rotation=45)
            ax.minorticks_off()
            ax.grid(alpha=0.3)
    fig.supxlabel("imbalance ratio: target count / every other class's count (log; 1 = balanced)", fontsize=10)
    axes[0, 0].set_ylabel("target-class accuracy (%)")
    axes[1, 0].set_ylabel("relative difference, same model (%)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    return save(fig, out_dir, stem)


def long_tail(rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig9_long_tail") -> dict[str, str]:
    """Per-class accuracy under attack (same model; filled, with 95% intervals) and clean
    (open) against the class's training count (log), one colour per profile; each point a
    class, labelled; classes that share a count are spread slightly apart."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    for i, p in enumerate(profiles):
        rs = sorted((r for r in rows if r["profile"] == p), key=lambda r: r["train_count"])
        seen: dict[int, int] = {}
        x = []
        for r in rs:  # spread ties (step profiles) so every class stays visible
            k = seen.get(r["train_count"], 0)
            seen[r["train_count"]] = k + 1
            x.append(r["train_count"] * (1 + 0.035 * k))
        c = CYCLE[i % len(CYCLE)]
        ax.errorbar(x, [r["adversarial_accuracy_same"] for r in rs], yerr=_err(rs, "adversarial_accuracy_same"),
                    fmt="o", ms=5, capsize=2, color=c, label=f"{p}: under attack (same model)")
        ax.plot(x, [r["clean_accuracy_attacked_images"] for r in rs], "o", mfc="none", color=c, label=f"{p}: clean")
        for xi, r in zip(x, rs):
            ax.annotate(r["class"], (xi, r["adversarial_accuracy_same"]), fontsize=6, color=c,
                        xytext=(3, -8 if i else 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images of the class (log)")
    ax.set_ylabel("class accuracy on its attacked test images (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, out_dir, stem)


def defences(summary: list[dict[str, Any]], out_dir: Path, stem: str = "fig10_defences") -> dict[str, str]:
    """Mean accuracy under attack (same model) over the defended classes: plain and
    defended under-sampled model, balanced model (and defended balanced for adversarial
    training), with 95% intervals; clean-accuracy cost in the labels."""
    names = [s["defence"] for s in summary]
    series = (("under", "under-sampled, no defence", KIND_COLOURS["under"]),
              ("defended", "under-sampled, defended", OKABE_ITO["orange"]),
              ("balanced", "balanced, no defence", KIND_COLOURS["balanced"]),
              ("defended_balanced", "balanced, defended", OKABE_ITO["sky"]))
    fig = Figure(figsize=(max(6.0, 1.8 * len(names) + 2), 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    w = 0.8 / len(series)
    for i, (k, label, colour) in enumerate(series):
        est = [s[f"{k}_adversarial_accuracy"] for s in summary]
        v = np.array([e["value"] if e["value"] is not None else np.nan for e in est], dtype=float)
        lo = np.array([e["lo"] if e["lo"] is not None else np.nan for e in est], dtype=float)
        hi = np.array([e["hi"] if e["hi"] is not None else np.nan for e in est], dtype=float)
        bars = ax.bar(x + (i - 1.5) * w, np.nan_to_num(v), w, color=colour, label=label, edgecolor="white")
        ax.bar_label(bars, ["" if not np.isfinite(t) else f"{t:.0f}" for t in v], fontsize=7, padding=1)
        ax.errorbar(x + (i - 1.5) * w, v, yerr=np.nan_to_num(np.stack([v - lo, hi - v])).clip(min=0), fmt="none",
                    ecolor="black", capsize=2, lw=0.8)
    ax.set_xticks(x, [f"{n}\nclean cost {fmt(s['clean_accuracy_cost_pp'])} pp" for n, s in zip(names, summary)])
    ax.set_ylabel("target-class accuracy under attack (%)")
    ax.set_ylim(0, 102)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return save(fig, out_dir, stem)


def draw(rows: dict[str, list[dict[str, Any]]], summary: dict[str, Any], fig_dir: Path, add, sources) -> None:
    """Draw the experiments' figures that have data; ``add`` registers each with the report."""
    if rows.get("imbalance_sweep"):
        add("fig8", "Fig. 8: target-class accuracy against the imbalance ratio",
            imbalance_sweep(rows["imbalance_sweep"], fig_dir), sources.get("imbalance_sweep", []))
    if rows.get("long_tail"):
        add("fig9", "Fig. 9: long-tailed training sets, per-class accuracy against class frequency",
            long_tail(rows["long_tail"], fig_dir), sources.get("long_tail", []))
    if summary.get("defences"):
        add("fig10", "Fig. 10: defences against the under-sampled models' vulnerability",
            defences(summary["defences"], fig_dir), sources.get("defences", []))

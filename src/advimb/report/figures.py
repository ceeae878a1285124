"""The report's figures, drawn with matplotlib from plain numbers (never from models).

Every function takes already-loaded results (lists, dicts, arrays) and writes one figure
as PNG (for the page, 150 dpi), SVG and PDF (for papers) through :func:`save`. Colours are
the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies) and
heatmaps use viridis / a purple-orange diverging map; axes carry units and class names.
The object-oriented API (``matplotlib.figure.Figure``) is used so that nothing touches
pyplot's global state or needs a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from advimb import artifacts

#: Okabe & Ito (2008) colour-blind-safe palette
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
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


def _grouped_bars(
    ax,
    labels: list[str],
    series: Mapping[str, Sequence[float | None]],
    colours: dict[str, str],
    names: dict[str, str],
    ylabel: str,
) -> None:
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(labels))
    for i, (k, vals) in enumerate(series.items()):
        heights = np.array([np.nan if v is None else v for v in vals], dtype=float)  # undefined: no bar
        ax.bar(
            x + (i - (n - 1) / 2) * width,
            heights,
            width,
            label=names.get(k, k),
            color=colours.get(k),
            edgecolor="white",
            linewidth=0.5,
        )
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def training(
    history: list[dict[str, float]],
    confusion: np.ndarray,
    classes: list[str],
    out_dir: Path,
    stem: str = "fig1_balanced_model",
) -> dict[str, str]:
    """Fig. 1: loss and accuracy per epoch (train and validation) and the row-normalised
    clean confusion matrix of the balanced model."""
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1, 1, 1.25])
    ep = [h["epoch"] for h in history]
    for ax, key, name in ((ax1, "loss", "cross-entropy loss"), (ax2, "accuracy", "accuracy (%)")):
        scale = 100 if key == "accuracy" else 1
        ax.plot(ep, [scale * h[key] for h in history], "-o", ms=3, color=OKABE_ITO["blue"], label="training")
        ax.plot(
            ep, [scale * h[f"val_{key}"] for h in history], "-s", ms=3, color=OKABE_ITO["orange"], label="validation"
        )
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
                ax3.text(
                    j,
                    i,
                    f"{cmn[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="black" if cmn[i, j] > 60 else "white",
                )
    fig.colorbar(im, ax=ax3, label="% of true class")
    return save(fig, out_dir, stem)


def clean_target(rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig2_clean_target_accuracy") -> dict[str, str]:
    """Fig. 2: clean accuracy of each target class for the three kinds of model."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    labels = [r["class"] for r in rows]
    _grouped_bars(
        ax,
        labels,
        {k: [r[k] for r in rows] for k in ("balanced", "under", "over")},
        KIND_COLOURS,
        KIND_LABELS,
        "clean accuracy of the target class (%)",
    )
    ax.set_ylim(0, 100)
    ax.set_title("Target-class accuracy without attack")
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save(fig, out_dir, stem)


def examples(
    items: list[dict[str, Any]], eps: float, factor: float, out_dir: Path, stem: str = "fig3_adversarial_examples"
) -> dict[str, str]:
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
            (row[1], np.clip(0.5 + factor * delta, 0, 1), f"perturbation x{factor:g}\n(|delta| <= {eps:g}; grey = 0)"),
            (row[2], np.clip(adv, 0, 1), f"adversarial: {it['pred_adv']} ({100 * it['conf_adv']:.0f}%)"),
        ):
            ax.imshow(img, interpolation="nearest", cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=8.5)
            ax.set_xticks([])
            ax.set_yticks([])
    return save(fig, out_dir, stem)


def relative_difference(
    rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig4_relative_difference"
) -> dict[str, str]:
    """Fig. 4: (clean - perturbed) / clean per class and kind, same-model attack, with the
    average over classes as the last group."""
    fig = Figure(figsize=(10.5, 4), layout="constrained")
    ax = fig.subplots()
    labels = [r["class"] for r in rows]
    _grouped_bars(
        ax,
        labels,
        {k: [r[k] for r in rows] for k in ("balanced", "under", "over")},
        KIND_COLOURS,
        KIND_LABELS,
        "relative difference (%)",
    )
    ax.axvline(len(labels) - 1.5, color="grey", lw=0.8, ls="--")
    ax.set_title("Relative accuracy drop under the same-model attack (higher = more vulnerable)")
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save(fig, out_dir, stem)


def label_distributions(
    panels: list[dict[str, Any]], classes: list[str], out_dir: Path, stem: str = "fig6_pair_distributions"
) -> dict[str, str]:
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
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return save(fig, out_dir, stem)


def flip_heatmaps(
    mats: dict[str, np.ndarray], targets: list[str], classes: list[str], out_dir: Path, stem: str = "fig6_flip_heatmaps"
) -> dict[str, str]:
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
                        ax.text(
                            j,
                            i,
                            f"{m[i, j]:.0f}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color="black" if m[i, j] > 60 else "white",
                        )
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="% of the class's perturbed images", shrink=0.8)
    return save(fig, out_dir, stem)


def table1(
    measured: np.ndarray,
    paper: np.ndarray | None,
    classes: list[str],
    columns: list[str],
    out_dir: Path,
    stem: str = "table1_heatmap",
) -> dict[str, str]:
    """Table 1 as heatmaps: this run, the paper, and this run minus the paper (pp)."""
    panels: list[tuple[str, np.ndarray, str, tuple[float, float]]] = [("this run (%)", measured, "viridis", (0, 100))]
    if paper is not None:
        diff = measured - paper
        lim = max(10.0, float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 10.0)
        panels += [
            ("paper, Table 1 (%)", paper, "viridis", (0, 100)),
            ("this run - paper (pp)", diff, "PuOr_r", (-lim, lim)),
        ]
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
                    ax.text(
                        j, i, f"{m[i, j]:.1f}", ha="center", va="center", fontsize=7, color="white" if dark else "black"
                    )
        fig.colorbar(im, ax=ax, shrink=0.8)
    return save(fig, out_dir, stem)


#: one colour per series of the experiments' figures
CYCLE = list(OKABE_ITO.values())


def interval_errors(rows: list[dict[str, Any]], col: str) -> np.ndarray:
    """Error-bar lengths (below, above) of ``col`` from its ``_lo`` / ``_hi`` columns."""
    v = np.array([r[col] for r in rows], dtype=float)
    lo = np.array([r.get(f"{col}_lo", np.nan) for r in rows], dtype=float)
    hi = np.array([r.get(f"{col}_hi", np.nan) for r in rows], dtype=float)
    return np.nan_to_num(np.stack([v - lo, hi - v]), nan=0.0).clip(min=0)


def count_axis(ax: Any) -> None:
    """An x axis of training-image counts: log scale, plain numbers, labelled."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images of the class (log)")

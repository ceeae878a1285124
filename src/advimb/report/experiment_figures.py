"""The figures of the sweeps and experiments beyond the paper (figures 7 to 10), drawn the way
:mod:`advimb.report.figures` draws the paper's: plain numbers in, one figure out through
:func:`advimb.report.figures.save`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from advimb.report.figures import CYCLE, KIND_COLOURS, OKABE_ITO, count_axis, save
from advimb.report.figures import interval_errors as _err
from advimb.report.longtail_figures import long_tail_robustness
from advimb.report.text import fmt

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
            pts = sorted(
                (r["eps"], r["accuracy"], r["worst_class_accuracy"])
                for r in rows
                if r["attack"] == attack and r["column"] == col
            )
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
        for col, colour, ls, label in (
            ("clean_accuracy_attacked_images", OKABE_ITO["black"], ":", "clean"),
            ("adversarial_accuracy_same", KIND_COLOURS["under"], "-", "attack, same model"),
            ("adversarial_accuracy_transfer", KIND_COLOURS["balanced"], "--", "attack, balanced model's gradient"),
        ):
            pts = [r for r in rs if r.get(col) not in (None, "")]
            top.errorbar(
                [r["ratio"] for r in pts],
                [r[col] for r in pts],
                yerr=_err(pts, col),
                fmt=ls,
                marker="o",
                ms=4,
                capsize=2,
                color=colour,
                label=label,
            )
        pts = [r for r in rs if r.get("relative_difference") is not None and np.isfinite(r["relative_difference"])]
        bottom.errorbar(
            [r["ratio"] for r in pts],
            [r["relative_difference"] for r in pts],
            yerr=_err(pts, "relative_difference"),
            fmt="-",
            marker="o",
            ms=4,
            capsize=2,
            color=KIND_COLOURS["under"],
        )
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
        ax.errorbar(
            x,
            [r["adversarial_accuracy_same"] for r in rs],
            yerr=_err(rs, "adversarial_accuracy_same"),
            fmt="o",
            ms=5,
            capsize=2,
            color=c,
            label=f"{p}: under attack (same model)",
        )
        ax.plot(x, [r["clean_accuracy_attacked_images"] for r in rs], "o", mfc="none", color=c, label=f"{p}: clean")
        for xi, r in zip(x, rs):
            ax.annotate(
                r["class"],
                (xi, r["adversarial_accuracy_same"]),
                fontsize=6,
                color=c,
                xytext=(3, -8 if i else 3),
                textcoords="offset points",
            )
    count_axis(ax)
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
    series = (
        ("under", "under-sampled, no defence", KIND_COLOURS["under"]),
        ("defended", "under-sampled, defended", OKABE_ITO["orange"]),
        ("balanced", "balanced, no defence", KIND_COLOURS["balanced"]),
        ("defended_balanced", "balanced, defended", OKABE_ITO["sky"]),
    )
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
        ax.errorbar(
            x + (i - 1.5) * w,
            v,
            yerr=np.nan_to_num(np.stack([v - lo, hi - v])).clip(min=0),
            fmt="none",
            ecolor="black",
            capsize=2,
            lw=0.8,
        )
    ax.set_xticks(x, [f"{n}\nclean cost {fmt(s['clean_accuracy_cost_pp'])} pp" for n, s in zip(names, summary)])
    ax.set_ylabel("target-class accuracy under attack (%)")
    ax.set_ylim(0, 102)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return save(fig, out_dir, stem)


def draw(rows: dict[str, list[dict[str, Any]]], summary: dict[str, Any], fig_dir: Path, add, sources) -> None:
    """Draw the experiments' figures that have data; ``add`` registers each with the report."""
    if rows.get("imbalance_sweep"):
        add(
            "fig8",
            "Fig. 8: target-class accuracy against the imbalance ratio",
            imbalance_sweep(rows["imbalance_sweep"], fig_dir),
            sources.get("imbalance_sweep", []),
        )
    if rows.get("long_tail"):
        add(
            "fig9",
            "Fig. 9: long-tailed training sets, per-class accuracy against class frequency",
            long_tail(rows["long_tail"], fig_dir),
            sources.get("long_tail", []),
        )
    if rows.get("long_tail_classes"):
        add(
            "fig11",
            "Fig. 11: long-tailed robustness, per-class accuracy under attack against class frequency",
            long_tail_robustness(rows["long_tail_classes"], fig_dir),
            sources.get("long_tail_classes", []),
        )
    if summary.get("defences"):
        add(
            "fig10",
            "Fig. 10: defences against the under-sampled models' vulnerability",
            defences(summary["defences"], fig_dir),
            sources.get("defences", []),
        )

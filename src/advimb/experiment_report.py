"""The report's part for the experiments beyond the paper: figures (imbalance sweep, long
tails, defences) and the page's sections, drawn from the tables' rows only."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from advimb.figures import KIND_COLOURS, OKABE_ITO, save
from advimb.html import ci, fmt

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


CAPTIONS = {
    "fig8": "Each swept class's training count against every other class's (1 = balanced; left of it "
            "under-sampling, right of it over-sampling). Top: clean accuracy of the class, and its accuracy under "
            "the attack with the model's own gradient and with the balanced model's. Bottom: the relative "
            "difference (clean - attacked) / clean of the same-model attack (undefined where the class is never "
            "recognised clean). Error bars: 95% two-level bootstrap (seeds, then test images).",
    "fig9": "One model per long-tailed training set; each point is a class, placed at its number of training "
            "images. Error bars: 95% two-level bootstrap (seeds, then test images).",
    "fig10": "Means over the defended classes; error bars: 95% two-level bootstrap, paired on the same test "
             "images. The label gives the loss in overall clean test accuracy of the defended under-sampled "
             "models against the plain ones.",
}


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def section(res: dict[str, Any]) -> str:
    """The page's section on the experiments (empty when none ran)."""
    exp = res.get("experiments") or {}
    parts = []
    if exp.get("seeds", 1) > 1:
        parts.append(f"<p>This run holds <b>{exp['seeds']} seeds</b> (independent replicates of every job). Every "
                     "table and figure shows means over seeds with the one interval method "
                     f"({escape(res.get('interval_method', ''))}); each claim also gets a paired t-test over seeds.</p>")
    lt = exp.get("long_tail") or []
    if lt:
        rows = [[escape(r["profile"]), fmt(r["spearman_rho_count_vs_adversarial_accuracy"], 2),
                 fmt(r["spearman_p"], 4), escape(r["tail_classes"]),
                 ci({"value": r["tail_minus_head_adversarial_accuracy"],
                     "lo": r["tail_minus_head_adversarial_accuracy_lo"],
                     "hi": r["tail_minus_head_adversarial_accuracy_hi"]}, "")] for r in lt]
        parts.append("<h3>Long-tailed training sets</h3>" + _table(
            ["profile", "Spearman rho (count vs accuracy under attack)", "p", "rarer half",
             "rarer minus frequent half, pp [95% interval]"], rows) + f"<p class='note'>Intervals: "
                     f"{escape(res.get('interval_method', ''))}, paired on the same images.</p>")
    de = exp.get("defences") or []
    if de:
        rows = [[escape(r["defence"]), *(ci(r[k], "") for k in ("under_adversarial_accuracy",
                 "defended_adversarial_accuracy", "balanced_adversarial_accuracy", "gap_plain_pp", "gap_defended_pp",
                 "gap_closed_pp")), fmt(r["clean_accuracy_cost_pp"]), escape(r["verdict"])] for r in de]
        parts.append("<h3>Defences</h3><p>Same-model accuracy under attack of the under-sampled target class, "
                     "mean over the defended classes, % [95% interval: "
                     f"{escape(res.get('interval_method', ''))}, paired on the same images]; the gap is balanced "
                     "minus under-sampled; "
                     "the clean cost is the drop in overall clean test accuracy. Verdict: <i>closes the gap</i> when "
                     "the defence raises the under-sampled model's accuracy (interval above 0) and the remaining gap's "
                     "interval reaches 0, <i>narrows</i> when only the first holds.</p>" + _table(
                         ["defence", "under, plain", "under, defended", "balanced", "gap before (pp)",
                          "gap after (pp)", "closed (pp)", "clean cost (pp)", "verdict"], rows))
    if not parts and not exp.get("figures"):
        return ""
    return "<h2>Beyond the paper</h2>" + "".join(parts)

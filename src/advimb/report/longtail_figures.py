"""The long-tailed robustness figure (Fig. 11): per-class robust accuracy of every long-tailed
model against its class's training count, under the main attack, with the model's own
gradient and with the balanced model's (transfer); drawn from ``tables/long_tail_classes.csv``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from advimb.report.figures import CYCLE, count_axis, save
from advimb.report.figures import interval_errors as _err
from advimb.scenario import Gradient


def long_tail_robustness(
    rows: list[dict[str, Any]], out_dir: Path, stem: str = "fig11_long_tail_robustness"
) -> dict[str, str]:
    """Two panels (own gradient, balanced model's gradient) of the first attack's rows: per
    method, robust accuracy per class (filled, 95% intervals) and clean accuracy (open)
    against the class's training count (log)."""
    attack = rows[0]["attack"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (grad, title) in zip(
        axes,
        (
            (Gradient.SAME.longtail_label, "own gradient"),
            (Gradient.BALANCED.longtail_label, "balanced model's gradient"),
        ),
    ):
        for i, method in enumerate(methods):
            rs = sorted(
                (r for r in rows if r["method"] == method and r["gradient"] == grad and r["attack"] == attack),
                key=lambda r: r["train_count"],
            )
            if not rs:
                continue
            x, c = [r["train_count"] for r in rs], CYCLE[i % len(CYCLE)]
            ax.errorbar(
                x,
                [r["robust_accuracy"] for r in rs],
                yerr=_err(rs, "robust_accuracy"),
                fmt="o-",
                ms=4,
                capsize=2,
                color=c,
                label=f"{method}: {attack}",
            )
            ax.plot(x, [r["clean_accuracy"] for r in rs], "o", mfc="none", color=c, label=f"{method}: clean")
        count_axis(ax)
        ax.set_title(f"{attack}, {title}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("class accuracy on its test images (%)")
    axes[0].set_ylim(-2, 102)
    axes[0].legend(fontsize=6, loc="upper left")
    return save(fig, out_dir, stem)

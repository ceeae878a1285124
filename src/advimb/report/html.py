"""``report/index.html`` from the report's results dict (and nothing else), rendered with a
Jinja2 template (``templates/page.html.j2``, autoescaped).

One static page: inline CSS, no scripts, no network; figures are PNG files beside it
(``figures/``), with links to their SVG/PDF versions. Readable on a laptop screen
(max width ~70em) and printable (figures never split across pages). This module holds what
the template cannot say simply: each figure's caption and the number formats.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from advimb import __version__
from advimb.report.text import ci, fmt, magnitude_text
from advimb.results.stats import Estimate
from advimb.scenario import Gradient

VERDICT_HELP = (
    "Each claim's verdict is a <b>sign test</b>: the difference the paper predicts is positive is "
    "<b>direction reproduced</b> when every such difference has its 95% interval above 0, <b>direction "
    "not reproduced</b> when any interval lies below 0, <b>inconclusive</b> when an interval contains 0, "
    "and <b>not measurable</b> when a difference is undefined in this run. It says nothing about size: "
    "<i>magnitude</i> sets this run's values beside the paper's (inside or outside this run's interval), "
    "shown only when the run is in the paper's setting. A comparison that rests on under-sampled models "
    "which hardly ever predict their own class on clean images is shown as <b>floor effect</b>, "
    "whatever its sign test says."
)


EXPERIMENT_CAPTIONS = {
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


def _rel_avg(res: dict[str, Any], kind: str) -> str:
    """The mean relative difference of one kind of model, or why it is undefined."""
    v = res["relative_difference"]["average"].get(kind)
    if v is not None:
        return f"{v:.1f}%"
    und = res["relative_difference"]["undefined"].get(kind) or []
    return f"undefined: clean accuracy 0 for {', '.join(und)}" if und else "undefined"


def _captions(res: dict[str, Any]) -> dict[str, str]:
    """One paragraph per figure: what it shows, and the number to look at."""
    t1 = res["table1"]
    pair = res["pair"]["classes"]
    out = {
        "table1": "Accuracy (%) of each target class's attacked test images, for the five model/gradient "
        "combinations of the paper's Table 1: left this run, middle the paper's published values, right "
        "the cell-wise difference this run minus paper in percentage points (purple: lower than the "
        "paper, orange: higher)."
        if t1["paper_comparable"]
        else "Accuracy (%) of each target class's attacked test images for the five combinations of Table 1.",
        "fig2": "Clean accuracy (%) of each target class on the full test set for the balanced model, the model "
        "trained with that class under-sampled, and the model trained with it over-sampled (all other "
        "classes reduced). Imbalance moves the decision boundary: minority classes lose recall, majority "
        "classes gain it.",
        "fig4": "Relative difference 100 x (clean - perturbed) / clean of the target class under the same-model "
        "attack, both accuracies on the attacked test images; the last group is the mean over classes ("
        + ", ".join(
            f"{name} {_rel_avg(res, kind)}"
            for kind, name in (("balanced", "balanced"), ("under", "under-sampled"), ("over", "over-sampled"))
        )
        + "). Higher means the attack removes a larger share of what the model got right. A class whose "
        "clean accuracy is 0 has no bar (its relative difference is undefined).",
        "fig6": f"Predicted-label distribution of the {pair[0]} and {pair[1]} test images, clean (hatched) and "
        f"after the same-model attack (solid), for the models trained with each class under-sampled and "
        "over-sampled (the paper's Fig. 6 layout). A tall perturbed bar on the other class of the pair "
        "means the attack pushes images into the similar class.",
        "fig6b": "Where perturbed images go, for every target class: row = attacked class, column = label "
        "predicted after the same-model attack, value = % of that class's attacked images. Each row of "
        "the under-/over-sampled panels comes from a different model (the one with that row's class "
        "under-/over-sampled); the diagonal is the accuracy under attack.",
    }
    out["fig7"] = (
        "Accuracy (%) of the target class under attack, mean over classes (thick, with markers) and "
        "the worst class (thin), against the attack budget eps on a log scale, for each attack of the "
        "sweep. Solid: same-model attack; dashed: different-model (transfer) attack from the balanced "
        "model. BIM and PGD take 10 steps of 2.5 eps / 10 unless the config says otherwise."
    )
    out.update(_data_captions(res))
    out.update({k: v for k, v in EXPERIMENT_CAPTIONS.items() if any(f["id"] == k for f in res.get("figures", []))})
    return out


def _data_captions(res: dict[str, Any]) -> dict[str, str]:
    """The captions that quote a drawn figure's own numbers (Fig. 1, Fig. 3)."""
    out = {}
    for f in res["figures"]:
        d = f["data"]
        if f["id"] == "fig1":
            out["fig1"] = (
                f"The balanced model: training and validation cross-entropy and accuracy per epoch "
                f"({d['epochs']} epochs; best validation loss {d['best_val_loss']} at epoch "
                f"{d['best_epoch']}, whose weights are kept) and its confusion matrix on the clean test "
                f"set, each row normalised to 100% (overall accuracy "
                f"{ci(res['balanced_clean_accuracy'])})."
            )
        if f["id"] == "fig3":
            out["fig3"] = (
                f"Test images attacked with the balanced model's own gradient (FGSM, eps {d['eps']:g} "
                f"on the [0, 1] pixel scale): the clean image with the predicted label and its softmax "
                f"confidence, the perturbation amplified {d['amplification']:g}x around mid-grey so it "
                "is visible, and the adversarial image with the label and confidence after the attack. "
                "Images the attack flipped are preferred when the stored examples include one."
            )
    return out


def _seed_test(x: dict[str, Any]) -> str:
    t = x.get("seed_test")
    if not t:
        return "one seed"
    return (
        f"t({t['df']}) = {fmt(t['t'], 2)}, p = {fmt(t['p'], 4)} (per seed: {', '.join(fmt(v) for v in t['per_seed'])})"
    )


def _label(key: str) -> str:
    return key.replace("_percent", "").replace("_", " ")


def _experiment_rows(exp: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """The rows of the page's long-tail and defences tables (formatted)."""
    lt = [
        [
            r["profile"],
            fmt(r["spearman_rho_count_vs_adversarial_accuracy"], 2),
            fmt(r["spearman_p"], 4),
            r["tail_classes"],
            ci(Estimate.from_columns(r, "tail_minus_head_adversarial_accuracy").exact(), ""),
        ]
        for r in exp.get("long_tail") or []
    ]
    de = [
        [
            r["defence"],
            *(
                ci(r[k], "")
                for k in (
                    "under_adversarial_accuracy",
                    "defended_adversarial_accuracy",
                    "balanced_adversarial_accuracy",
                    "gap_plain_pp",
                    "gap_defended_pp",
                    "gap_closed_pp",
                )
            ),
            fmt(r["clean_accuracy_cost_pp"]),
            r["verdict"],
        ]
        for r in exp.get("defences") or []
    ]
    return lt, de


def _robustness_rows(exp: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """The long-tailed robustness tables (formatted): (own gradient, balanced model's gradient)."""

    def cell(r: dict[str, Any], k: str) -> str:
        return ci(Estimate.from_columns(r, k).exact(), "")

    own: list[list[str]] = []
    transfer: list[list[str]] = []
    for r in exp.get("long_tail_robustness") or []:
        row = [r["method"], r["attack"], cell(r, "clean"), cell(r, "robust")]
        row += [f"{cell(r, 'worst_class_robust')} ({r['worst_class']})", cell(r, "tail_robust"), cell(r, "head_robust")]
        (own if r["gradient"] == Gradient.SAME else transfer).append(row)
    return own, transfer


def _robal_rows(exp: dict[str, Any]) -> list[list[list[str]]]:
    """RoBal's tables beside the run (formatted): per table, per published row, the method and
    per column ``this run [interval] / paper (difference)``."""
    out = []
    for t in (exp.get("robal") or {}).get("tables", []):
        rows = []
        for r in t["rows"]:
            cells = [r["method"]]
            for c in r["cells"]:
                run = "not run" if c["run"] is None else ci(c["run"], "")
                diff = "" if c["diff"] is None else f" ({c['diff']:+.1f}{', inside' if c['inside'] else ''})"
                cells.append(f"{run} / {c['paper']:.2f}{diff}")
            rows.append(cells + [r["note"]])
        out.append(rows)
    return out


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("advimb.report", "templates"),
        autoescape=select_autoescape(["j2"]),
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, ci=ci, label=_label, magnitude=magnitude_text, seed_test=_seed_test)
    return env


def render(res: dict[str, Any]) -> str:
    """The whole page as a string."""
    long_tail_rows, defence_rows = _experiment_rows(res.get("experiments") or {})
    return (
        _environment()
        .get_template("page.html.j2")
        .render(
            res=res,
            run=res["run"],
            claims=res["claims"],
            captions=_captions(res),
            version=__version__,
            verdict_help=VERDICT_HELP,
            long_tail_rows=long_tail_rows,
            robustness_rows=_robustness_rows(res.get("experiments") or {}),
            robal_rows=_robal_rows(res.get("experiments") or {}),
            defence_rows=defence_rows,
        )
    )

"""``tables/README.md`` of a run folder: what every table holds, its definitions and its
interval method, written beside the tables by :func:`advimb.results.tables.build_tables`."""

from __future__ import annotations

from advimb.results.reader import GridResults


def tables_readme(res: GridResults, method: str, names: list[str]) -> str:
    """``tables/README.md``: what every table holds, its definitions and its interval method."""
    n = res.n_attacked
    attacked = (
        f"all {n} test images of each class"
        if res.config is None or res.config.eval.test_per_class == 0
        else f"the first {n} test images of each class"
    )
    lines = [
        "# Tables of this run",
        "",
        f"Built by advimb from the stored artifacts (`sources.json` names them). Every number is a percentage; "
        f"`<column>_lo` / `<column>_hi` are its 95% interval, the same method in every table: {method}. "
        f"With several seeds a value is the mean over seeds. An empty cell is undefined (the row's `note` says why).",
        "",
        f"Attacked images: {attacked}. Clean accuracy of a model: its full test set.",
        "",
        "| table | what it holds |",
        "|---|---|",
        "| `table1.csv`, `table1.md` | the paper's Table 1: accuracy of each class's attacked images under attack, "
        "for the different-model (balanced model's gradient) and same-model attacks; last row: mean over classes |",
        "| `clean_target_accuracy.csv` | Fig. 2: clean accuracy of each class on the full test set, for the balanced "
        "model and the models with that class under- and over-sampled |",
        "| `clean_accuracy.csv` | every model's clean accuracy on the full test set, overall and per class |",
        "| `relative_difference.csv` | Fig. 4: relative difference 100 x (clean - attacked) / clean, **both on the "
        "attacked images** (`clean_accuracy_attacked_images`, `adversarial_accuracy`); undefined when the clean "
        "accuracy is 0 |",
        "| `flip_rates.csv` | Fig. 6: share of each class's attacked images predicted as each label, before "
        "(`clean_share`) and after (`share`) the attack |",
        "| `summary.json` | column averages with intervals, the paper's orderings counted over classes |",
    ]
    extra = {
        "sweep": "every attack at every eps of the sweep (first seed; accuracies with their intervals)",
        "sweep_summary": "per attack, eps and Table 1 column (first seed; mean and worst-class accuracy with intervals)",
        "imbalance_sweep": "the imbalance sweep (`clean_accuracy_attacked_images`: clean accuracy of the "
        "attacked images, like the relative difference's)",
        "long_tail": "long-tailed profiles, per class (`clean_accuracy_attacked_images` as above)",
        "long_tail_summary": "long-tailed profiles, summary",
        "defences": "defences, per class (`*_clean_accuracy_attacked_images` on the attacked images, "
        "`*_clean_accuracy_full_test_set` on the full test set)",
        "defences_summary": "defences, summary (`value [lo, hi]`; `n/a: reason` when undefined)",
    }
    lines += [f"| `{k}.csv` | {extra[k]} |" for k in names if k in extra]
    return "\n".join(lines) + "\n"

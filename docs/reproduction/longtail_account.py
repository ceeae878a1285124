"""The long-tailed robustness study's blocks of docs/reproduction/README.md (``account.py``
renders and checks them): every number from the run folder's stored artifacts, through
advimb's own reader and metrics, so the paired differences share the tables' resamples."""

from __future__ import annotations

import csv
from pathlib import Path


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _ci(row: dict[str, str], col: str) -> str:
    return f"{float(row[col]):.1f} [{float(row[col + '_lo']):.1f}, {float(row[col + '_hi']):.1f}]"


def _e(e, sign: str = "") -> str:
    return f"{e.value:{sign}.1f} [{e.lo:{sign}.1f}, {e.hi:{sign}.1f}]"


def robustness(run: Path) -> str:
    """The papers' layout: method x attack, clean / robust / worst class / tail / head (%)."""
    rows = _csv(run / "tables" / "long_tail_robustness.csv")
    out = []
    for grad, title in (
        ("same_model", "the model's own gradient"),
        ("balanced_model", "the balanced model's gradient"),
    ):
        out.append(f"Attacked with {title}:\n\n")
        out.append(
            "| method | attack | clean | robust | worst class | tail | head |\n|---|---|---:|---:|---:|---:|---:|\n"
        )
        for r in rows:
            if r["gradient"] == grad:
                out.append(
                    f"| {r['method']} | {r['attack']} | {_ci(r, 'clean')} | {_ci(r, 'robust')} | "
                    f"{_ci(r, 'worst_class_robust')} ({r['worst_class']}) | {_ci(r, 'tail_robust')} | "
                    f"{_ci(r, 'head_robust')} |\n"
                )
        out.append("\n")
    tail = rows[0]["tail_classes"].replace(",", ", ")
    head = rows[0]["head_classes"].replace(",", ", ")
    out.append(f"Tail: {tail}; head: {head} (by training count).\n")
    return "".join(out)


def per_class(run: Path) -> str:
    """Per class (rarest last): training count, and per method clean and robust accuracy under
    the main attack with the model's own gradient."""
    rows = _csv(run / "tables" / "long_tail_classes.csv")
    attack = rows[0]["attack"]
    mine = [r for r in rows if r["attack"] == attack and r["gradient"] == "same_model"]
    methods = list(dict.fromkeys(r["method"] for r in mine))
    classes = list(dict.fromkeys(r["class"] for r in mine))
    count = {r["class"]: int(r["train_count"]) for r in mine}
    cell = {(r["method"], r["class"]): r for r in mine}
    head = "| class | training images | " + " | ".join(f"{m}: clean / {attack}" for m in methods) + " |\n"
    out = [head, "|---|---:|" + "---:|" * len(methods) + "\n"]
    for c in sorted(classes, key=lambda c: -count[c]):
        vals = [
            f"{float(cell[(m, c)]['clean_accuracy']):.1f} / {_ci(cell[(m, c)], 'robust_accuracy')}" for m in methods
        ]
        out.append(f"| {c} | {count[c]:,} | " + " | ".join(vals) + " |\n")
    return "".join(out)


def _metrics(run: Path):
    from advimb.results.metrics import Metrics
    from advimb.results.reader import Outcomes
    from advimb.results.stats import N_BOOT, Bootstrap

    o = Outcomes.read(run)
    return o, Metrics(o, Bootstrap(n_boot=N_BOOT, seed=0))


def _per(o, m, s, which: str = "adv") -> list:
    """Per class accuracy of model ``s`` under the main attack with its own gradient."""
    return [m.accuracy(s, s, c, which) for c in o.classes]


def _groups(o, counts: list[int]) -> tuple[list[int], list[int]]:
    """(tail, head) class indices by training count, as the run's tables split them."""
    from advimb.results.longtail import split_classes

    return split_classes(counts, o.config.experiments.tail_fraction if o.config else 1 / 3)


def _paired(o, m, a, b, groups: list[list[int]]) -> str:
    """The cells of ``a`` minus ``b`` on the same test images: clean, robust, robust on each of
    ``groups`` (class indices), worst class robust."""
    from advimb.results.longtail import worst
    from advimb.results.metrics import difference

    pa, pb = _per(o, m, a), _per(o, m, b)
    diff = [
        difference(m.mean_over(_per(o, m, a, "clean")), m.mean_over(_per(o, m, b, "clean"))),
        difference(m.mean_over(pa), m.mean_over(pb)),
        *(difference(m.mean_over([pa[c] for c in g]), m.mean_over([pb[c] for c in g])) for g in groups),
        difference(worst(pa)[0], worst(pb)[0]),
    ]
    return " | ".join(_e(m.estimate(q), "+") for q in diff)


def balanced_softmax(run: Path) -> str:
    """What the balanced softmax changes: each model with it minus the same model without, on
    the same test images (paired), under the main attack with its own gradient, and the
    class that loses most robustness (clean minus robust) per model."""
    from advimb.results.longtail import method_name
    from advimb.results.metrics import difference
    from advimb.scenario import Kind

    o, m = _metrics(run)
    models = {s.defence: s for s in o.models("long_tail") if s.kind == Kind.LONGTAIL}
    counts = m.counts(next(iter(models.values()))) or []
    tail, _ = _groups(o, counts)

    out = ["| with balanced softmax minus without (pp) | clean | robust | tail robust | worst class robust |\n"]
    out.append("|---|---:|---:|---:|---:|\n")
    for d in sorted(models):
        base = d.removesuffix("+logit_adjust") if d.endswith("+logit_adjust") else ("" if d == "logit_adjust" else None)
        if base is None or base not in models:
            continue
        out.append(
            f"| {method_name(d)} minus {method_name(base)} | {_paired(o, m, models[d], models[base], [tail])} |\n"
        )
    out.append("\n| model | class losing most (clean minus robust, pp) |\n|---|---|\n")
    for d, s in sorted(models.items()):
        drops = [difference(m.accuracy(s, s, c, "clean"), m.accuracy(s, s, c)) for c in o.classes]
        k = max(range(len(drops)), key=lambda i: drops[i][0])
        out.append(f"| {method_name(d)} | {o.classes[k]} ({counts[k]:,} images): {_e(m.estimate(drops[k]))} |\n")
    return "".join(out)


#: RoBal's variants, and what the CPU study sets them beside (defence name: short label)
ROBAL_VARIANTS = ("robal_n", "robal_r")
ROBAL_AGAINST = {"": "plain", "fgsm_rs_at": "fast AT", "fgsm_rs_at+logit_adjust": "AT-BSL"}


def robal(run: Path) -> str:
    """What RoBal changes: each variant minus plain, fast AT and AT-BSL on the same test images
    (paired, so the intervals are the differences'), overall and per class, under the main
    attack with the model's own gradient."""
    from advimb.results.longtail import method_name
    from advimb.results.metrics import difference

    o, m = _metrics(run)
    models = {s.defence: s for s in o.models("long_tail")}
    variants = [v for v in ROBAL_VARIANTS if v in models]
    against = [d for d in ROBAL_AGAINST if d in models]
    if not variants:
        return "This run has no RoBal model.\n"
    counts = m.counts(models[variants[0]]) or []
    tail, head = _groups(o, counts)
    out = [
        "| RoBal minus (pp) | clean | robust | tail robust | head robust | worst class robust |\n",
        "|---|---:|---:|---:|---:|---:|\n",
    ]
    for v in variants:
        for d in against:
            out.append(
                f"| {method_name(v)} minus {method_name(d)} | {_paired(o, m, models[v], models[d], [tail, head])} |\n"
            )
    others = {d: _per(o, m, models[d]) for d in against}
    for v in variants:
        own = _per(o, m, models[v])
        out.append(
            f"\n{method_name(v)}, robust accuracy per class and its difference from each (pp):\n\n"
            "| class | training images | robust | "
            + " | ".join(f"minus {ROBAL_AGAINST[d]}" for d in against)
            + " |\n|---|---:|---:|"
            + "---:|" * len(against)
            + "\n"
        )
        for c in sorted(range(len(o.classes)), key=lambda c: -counts[c]):
            cells = [_e(m.estimate(difference(own[c], others[d][c])), "+") for d in against]
            out.append(f"| {o.classes[c]} | {counts[c]:,} | {_e(m.estimate(own[c]))} | " + " | ".join(cells) + " |\n")
    return "".join(out)


def transfer(run: Path) -> str:
    """How the balanced model's gradient transfers: per long-tailed model, robust accuracy under
    the main attack with its own gradient and with the balanced model's, and the paired
    difference, overall and on the tail."""
    from advimb.results.longtail import method_name
    from advimb.results.metrics import difference
    from advimb.scenario import BALANCED

    o, m = _metrics(run)
    out = [
        "| model | own gradient | balanced model's gradient | balanced minus own (pp) | tail: own | "
        "tail: balanced's |\n|---|---:|---:|---:|---:|---:|\n"
    ]
    for s in sorted(o.models("long_tail"), key=lambda s: s.defence):
        counts = m.counts(s)
        if counts is None:
            continue
        tail, _ = _groups(o, counts)
        own = _per(o, m, s)
        bal = [m.accuracy(s, BALANCED, c) for c in o.classes]
        qs = [
            m.mean_over(own),
            m.mean_over(bal),
            difference(m.mean_over(bal), m.mean_over(own)),
            m.mean_over([own[c] for c in tail]),
            m.mean_over([bal[c] for c in tail]),
        ]
        out.append(
            f"| {method_name(s.defence)} | "
            + " | ".join(_e(m.estimate(q), "+" if i == 2 else "") for i, q in enumerate(qs))
            + " |\n"
        )
    return "".join(out)


def working_invocations(manifest: dict) -> list[dict]:
    """The invocations of a run that ran jobs (a resume that found everything done ran none);
    the last invocation when none did."""
    return [i for i in manifest["invocations"] if i.get("jobs_run")] or manifest["invocations"][-1:]


def headline(run: Path) -> str:
    """The main README's lines: the study in one line and, per method, robust and tail-robust
    accuracy under the main attack with the model's own gradient."""
    import json

    from advimb.results.reader import read_config

    m = json.loads((run / "manifest.json").read_text())
    invs = working_invocations(m)
    prov = run / "provenance.json"
    cpu = json.loads(prov.read_text())["machine"]["cpu"] if prov.exists() else "this machine"
    cfg = read_config(run)
    rows = [r for r in _csv(run / "tables" / "long_tail_robustness.csv") if r["gradient"] == "same_model"]
    attack = rows[0]["attack"]
    parts = [
        f"{i['wall_seconds']:,.0f} s for {i['jobs_run']} jobs"
        + (f" ({i['jobs_recomputed']} recomputed because their job changed)" if i.get("jobs_recomputed") else "")
        for i in invs
    ]
    out = [
        f"- `advimb {' '.join(invs[0]['argv'][1:4])}`, CIFAR-10-LT (rho = 100, LDAM's split) on 2 cores of {cpu}"
        + (f" ({cfg.train.precision})" if cfg else "")
        + ": "
        f"study time {'; then '.join(parts)}.\n"
    ]
    for r in rows:
        if r["attack"] == attack:
            out.append(
                f"- {r['method']}: clean {_ci(r, 'clean')}%, {attack} {_ci(r, 'robust')}%, tail classes "
                f"({r['tail_classes'].replace(',', ', ')}) {_ci(r, 'tail_robust')}%.\n"
            )
    return "".join(out)


LONGTAIL_BLOCKS = {
    "lt_headline": headline,
    "lt_robustness": robustness,
    "lt_per_class": per_class,
    "lt_balanced_softmax": balanced_softmax,
    "lt_robal": robal,
    "lt_transfer": transfer,
}

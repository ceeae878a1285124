"""The numbers of docs/reproduction/README.md, generated from a published run folder.

Every table in this folder's README (and the main README's headline) between
``<!-- account:NAME RUN -->`` and ``<!-- /account:NAME -->`` is the output of :func:`block` on
the run folder's stored artifacts (its manifest, config,
scenario counts, model histories, tables and report), so no number there lacks an artifact
that explains it. ``--check`` (run by the tests) fails when a block differs from what the
artifacts give; ``--write`` rewrites the blocks.

    python docs/reproduction/account.py --write     # after regenerating a run's tables/report
    python docs/reproduction/account.py --check
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from longtail_account import LONGTAIL_BLOCKS, working_invocations

README = HERE / "README.md"
MAIN_README = HERE.parent.parent / "README.md"
SITE_HOME = HERE.parent / "index.md"  # the documentation site's home repeats the main README's headline
BLOCK = re.compile(r"<!-- account:(\w+) ([\w./-]+) -->\n(.*?)<!-- /account:\1 -->", re.DOTALL)
COLS = ("different_model_under", "different_model_over", "same_model_balanced", "same_model_under", "same_model_over")
HEAD = (
    "different model: under",
    "different model: over",
    "same model: balanced",
    "same model: under",
    "same model: over",
)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _json(path: Path):
    return json.loads(path.read_text())


def _ci(row: dict[str, str], col: str, digits: int = 1) -> str:
    return f"{float(row[col]):.{digits}f} [{float(row[col + '_lo']):.{digits}f}, {float(row[col + '_hi']):.{digits}f}]"


def run_facts(run: Path) -> str:
    m, cfg = _json(run / "manifest.json"), (run / "config.toml").read_text()
    invs = working_invocations(m)
    inv = invs[0]
    env, ds = m["environment"], m["dataset"]

    def phases(js: dict[str, float]) -> str:
        phase = {
            "training": sum(v for k, v in js.items() if k.startswith("train")),
            "clean evaluation": sum(v for k, v in js.items() if k.startswith("clean")),
            "attacks": sum(v for k, v in js.items() if k.startswith("attack")),
        }
        return ", ".join(f"{k} {v:.1f} s" for k, v in phase.items())

    train = "; ".join(
        f"{k.removeprefix('train ')} {v:.1f} s"
        for i in invs
        for k, v in i["job_seconds"].items()
        if k.startswith("train")
    )
    prec = re.search(r'precision = "(\w+)"', cfg).group(1)
    stack = re.search(r'stack = "(\w+)"', cfg).group(1)
    if len(invs) == 1:
        when = [("started / finished", f"{inv['started']} / {inv['finished']}")]
        wall = [
            (
                "wall time",
                f"{inv['wall_seconds']:.0f} s of study time ({inv['jobs_run']} jobs): " + phases(inv["job_seconds"]),
            )
        ]
    else:
        when = [
            (f"invocation {n} started / finished", f"{i['started']} / {i['finished']}") for n, i in enumerate(invs, 1)
        ]
        wall = [
            (
                f"invocation {n} wall time",
                f"{i['wall_seconds']:.0f} s of study time ({i['jobs_run']} jobs, {i.get('jobs_recomputed', 0)} of "
                "them recomputed because their job changed): " + phases(i["job_seconds"]),
            )
            for n, i in enumerate(invs, 1)
        ]
    rows = [
        ("command", f"`{' '.join(inv['argv'])}`"),
        (
            "device",
            f"{env['device']}, {env['torch_threads']} CPU threads; PyTorch {env['torch']}, torchvision "
            f"{env['torchvision']}, numpy {env['numpy']}, Python {env['python']}",
        ),
        ("code", f"advimb {env['advimb']}; the manifest records git commit `{env['commit'][:7]}` (see Provenance)"),
        (
            "settings resolved",
            f"train.precision = {prec}, train.stack = {stack}, compile off, {inv['executor']['name']} executor",
        ),
        (
            "dataset",
            f"{ds['name']}: {ds['origin']} (fingerprint `{ds['fingerprint'][:16]}...`), "
            f"{sum(ds['train_per_class']):,} training and {sum(ds['test_per_class']):,} test images",
        ),
        *when,
        *wall,
        ("training by job", train),
        *epoch_seconds(run),
    ]
    return "| what | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


def epoch_seconds(run: Path) -> list[tuple[str, str]]:
    """Every trained model's epochs and their summed seconds (``models/*/meta.json``), over every
    invocation (an interrupted one's epochs included), where the history records them; not for
    models trained in a stack (``stacked_with``), whose epochs share their seconds."""
    import statistics

    out, total = [], [0, 0.0]
    for meta_path in sorted((run / "models").glob("*/meta.json")):
        meta = _json(meta_path)
        hist = meta.get("history") or []
        if hist and all("seconds" in h for h in hist) and meta.get("stacked_with", 1) <= 1:
            secs = [h["seconds"] for h in hist]
            total[0], total[1] = total[0] + len(secs), total[1] + sum(secs)
            out.append(
                f"{meta_path.parent.name.replace('-', ':', 1)} {len(secs)} epochs, {sum(secs):.0f} s "
                f"(median {statistics.median(secs):.1f} s/epoch)"
            )
    if not out:
        return []
    if len(out) > 5:  # a grid: its sum, not a row per model
        out = [f"{len(out)} models, {total[0]} epochs, {total[1]:.0f} s"]
    return [("training epochs by model, every invocation (models/*/meta.json)", "; ".join(out))]


def table1(run: Path) -> str:
    res = _json(run / "report" / "results.json")
    t1 = res["table1"]
    rows = _csv(run / "tables" / "table1.csv")
    out = ["| class | " + " | ".join(HEAD) + " |", "|---|" + "---:|" * len(COLS)]
    for r, rr in zip(rows, [*t1["rows"], t1["average"]]):
        cells = [f"{_ci(r, c)} / {rr['paper'][c]:g} / {rr['difference'][c]:+.1f}" for c in COLS]
        name = f"**{r['class']}**" if r["class"] == "average" else r["class"]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    w, n = t1["cells_within_10_points"]
    far = sorted(
        ((abs(rr["difference"][c]), rr["class"], h) for rr in t1["rows"] for c, h in zip(COLS, HEAD)), reverse=True
    )[:5]
    return (
        "Each cell: this run [95% interval] / the paper / difference in points.\n\n" + "\n".join(out) + "\n\n"
        f"{w} of {n} cells are within 10 points of the paper's. Largest differences: "
        + "; ".join(f"{cls}, {h} ({d:.1f})" for d, cls, h in far)
        + ".\n"
    )


def claims(run: Path) -> str:
    from advimb.report.text import magnitude_text

    res = _json(run / "report" / "results.json")
    out = [
        "| claim | sign test | differences the paper predicts > 0, pp [95% interval] | magnitude: this run vs "
        "the paper |",
        "|---|---|---|---|",
    ]
    for c in res["claims"]["claims"]:
        comps = "; ".join(
            f"{x['label'].replace(' (pp)', '')}: {x['value']:+.1f} [{x['lo']:.1f}, {x['hi']:.1f}]"
            for x in c["comparisons"]
        )
        out.append(f"| {c['id']} | {c['shown_as']} | {comps} | {magnitude_text(c)} |")
    return f"Intervals: {res['claims']['interval_method']}. Verdict = sign test only.\n\n" + "\n".join(out) + "\n"


def models(run: Path) -> str:
    import tomllib

    clean = {r["model"]: r for r in _csv(run / "tables" / "clean_accuracy.csv")}
    on_test = tomllib.loads((run / "config.toml").read_text())["train"].get("validation") == "test"
    val = "validation (the test set)" if on_test else "validation"
    test_per_class = _json(run / "manifest.json")["dataset"]["test_per_class"]
    out = [
        f"| model | training / {val} images (its class) | best epoch / stopped | best val. loss | val. acc. "
        "at best | train acc. at best / at stop | clean test acc. | its class, clean test acc. |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in clean.items():
        slug = name.replace(":", "-")
        meta = _json(run / "models" / slug / "meta.json")
        sc = _json(run / "scenarios" / f"{slug}.json")
        hist = meta["history"]
        best = hist[meta["best_epoch"] - 1]
        target = meta["target"]
        i = list(sc["counts"]).index(target) if target else None
        n_val, val_i = (
            (sum(test_per_class), test_per_class[i] if i is not None else 0)
            if on_test
            else (
                sc["n_val"],
                sc["val_per_class"][i] if i is not None else 0,
            )
        )
        own = f"{sc['train_per_class'][i]:,} / {val_i:,}" if target is not None else "-"
        out.append(
            f"| {name} | {sc['n_train']:,} / {n_val:,} ({own}) | {meta['best_epoch']} / {meta['stopped_epoch']} | "
            f"{best['val_loss']:.3f} | {100 * best['val_accuracy']:.1f}% | {100 * best['accuracy']:.1f}% / "
            f"{100 * hist[-1]['accuracy']:.1f}% | {_ci(row, 'accuracy')} | "
            f"{_ci(row, target) if target else '-'} |"
        )
    return "\n".join(out) + "\n"


def per_class(run: Path) -> str:
    fig2 = _csv(run / "tables" / "clean_target_accuracy.csv")
    t1 = {r["class"]: r for r in _csv(run / "tables" / "table1.csv")}
    rel = {(r["class"], r["model_kind"], r["gradient"]): r for r in _csv(run / "tables" / "relative_difference.csv")}
    out = [
        "| class | clean: balanced | clean: under-sampled | clean: over-sampled | under-sampled model: attacked "
        "with the balanced model's gradient | that, as a share of its clean accuracy on those images |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for r in fig2:
        c = r["class"]
        d = rel[(c, "under", "different_model")]
        ratio = float(d["adversarial_accuracy"]) / float(d["clean_accuracy_attacked_images"])
        ratios.append(ratio)
        out.append(
            f"| {c} | {_ci(r, 'balanced')} | {_ci(r, 'under')} | {_ci(r, 'over')} | "
            f"{_ci(t1[c], 'different_model_under')} | {100 * ratio:.0f}% |"
        )
    s = _json(run / "tables" / "summary.json")
    ct = s["clean_target_average_percent"]
    mean_ratio = sum(ratios) / len(ratios)
    du = s["table1_average_percent"]["different_model_under"]
    return (
        "\n".join(out) + "\n\n"
        f"Means over classes: clean accuracy of the class {ct['balanced']:.1f}% (balanced model), "
        f"{ct['under']:.1f}% (under-sampled), {ct['over']:.1f}% (over-sampled). Under the transfer attack the "
        f"under-sampled models keep {100 * mean_ratio:.0f}% of their clean accuracy on the attacked images (mean of "
        f"the per-class ratios; {du:.1f}% / {ct['under']:.1f}% = {100 * du / ct['under']:.0f}% as a ratio of the "
        f"means). The same ratios applied to the balanced model's clean accuracy of the classes "
        f"({ct['balanced']:.1f}%) give {mean_ratio * ct['balanced']:.1f}% to {du / ct['under'] * ct['balanced']:.1f}%.\n"
    )


def pair(run: Path) -> str:
    """Where the report's pair's images go, clean and perturbed (same-model attack), by model."""
    a, b = _json(run / "report" / "results.json")["pair"]["classes"]
    flips = _csv(run / "tables" / "flip_rates.csv")
    out = [
        "| images | model | share predicted as the pair's other class: clean -> perturbed | top wrong labels "
        "after the attack |",
        "|---|---|---|---|",
    ]
    for cls, other, model in (
        (a, b, "balanced"),
        (a, b, f"under:{a}"),
        (a, b, f"over:{a}"),
        (b, a, "balanced"),
        (b, a, f"under:{b}"),
        (b, a, f"over:{b}"),
    ):
        rows = [
            r for r in flips if r["class"] == cls and r["evaluated_model"] == model and r["gradient"] == "same_model"
        ]
        to = next(r for r in rows if r["predicted_class"] == other)
        wrong = sorted((r for r in rows if r["predicted_class"] != cls), key=lambda r: -float(r["share"]))[:3]
        out.append(
            f"| {cls} | {model} | {other}: {_ci(to, 'clean_share')} -> {_ci(to, 'share')} | "
            + ", ".join(f"{r['predicted_class']} {float(r['share']):.1f}" for r in wrong)
            + " |"
        )
    n = int(flips[0]["attacked_images"])
    return f"Shares of the class's {n:,} attacked test images, % [95% interval].\n\n" + "\n".join(out) + "\n"


def headline(run: Path) -> str:
    """The main README's summary of a run."""
    res = _json(run / "report" / "results.json")
    t1, cl = res["table1"], {c["id"]: c for c in res["claims"]["claims"]}
    avg = t1["average"]
    bal = res["balanced_clean_accuracy"]
    ct = res["claims"]["clean_target_accuracy_percent"]
    ref = res["reference"]["text"]
    verdicts = ", ".join(f"{i} {cl[i]['shown_as']}" for i in cl)
    w, n = t1["cells_within_10_points"]
    a, b = res["pair"]["classes"]
    c4b = cl["C4b"]["comparisons"][0]
    return (
        f"- Claims (sign tests, 95% bootstrap intervals): {verdicts}. C4b: under {a} under-sampling, the share of "
        f"{a} images called {b} after the attack minus before it: {c4b['value']:+.1f} points "
        f"[{c4b['lo']:.1f}, {c4b['hi']:.1f}].\n"
        f"- Table 1: {w} of {n} cells within 10 points of the paper's; column averages (this run / paper): "
        + "; ".join(f"{h} {avg['measured'][c]:.1f}% / {avg['paper'][c]:g}%" for c, h in zip(COLS, HEAD))
        + ".\n"
        f"- Balanced model, clean test accuracy: {bal['value']:.1f}% [{bal['lo']:.1f}, {bal['hi']:.1f}] (the authors "
        f"report {ref['balanced_clean_accuracy_thesis_percent']}% from their code). Clean accuracy of the target "
        f"class, mean over classes: {ct['balanced']['value']:.1f}% for the balanced model, "
        f"{ct['under']['value']:.1f}% for the models with that class under-sampled.\n"
    )


#: the published run every later run is compared with
BASE = "paper-h200"


def _e(e, sign: str = "") -> str:
    return f"{e.value:{sign}.1f} [{e.lo:{sign}.1f}, {e.hi:{sign}.1f}]"


def _beside_rows(run: Path, base: Path | None = None):
    """(label, published, this run, difference, the paper's value) per quantity of :func:`beside`
    (:func:`advimb.results.compare.compare_runs`)."""
    from advimb.results.compare import compare_runs

    return compare_runs(run, base or HERE / BASE)


def beside_headline(run: Path) -> str:
    """The main README's line on a later run: its headline quantities beside the published run's."""
    rows, new = _beside_rows(run)
    pick = {r[0]: r for r in rows}
    c = new.targets[0]
    bal = pick["balanced model, clean test accuracy (10,000 images)"]
    own = pick[f"under:{c}, clean accuracy of {c} ({new.n_attacked:,} images)"]
    du = pick[f"Table 1, {c}, different model: under"]
    return (
        f"- Balanced model, clean test accuracy {_e(bal[2])} (published run {_e(bal[1])}); under:{c}, clean "
        f"accuracy of {c} {_e(own[2])} (published run {_e(own[1])}; difference {_e(own[3], '+')} points, "
        f"paired on the same images); Table 1's {c} cell, different model: under, {_e(du[2])} (published "
        f"{_e(du[1])}, the paper {du[4]}).\n"
    )


def beside(run: Path, base: Path | None = None) -> str:
    """A later run beside the published one on the classes it studies: the balanced model's
    clean accuracy, each studied class's clean accuracy in its under- and over-sampled models
    and its five Table 1 cells, with the paper's value where the paper gives one. Both runs
    attack every test image of the class in the same order, so their per-image outcomes on
    those images are paired: the difference's interval resamples the same images for both
    (the same :class:`Bootstrap` key). The clean accuracy over the whole test set is stored
    as confusion counts (no image order), so its difference resamples the runs independently."""
    rows, new = _beside_rows(run, base)
    out = [
        f"Each row: the published run ({(base or HERE / BASE).name}) [95% interval] | this run [95% interval] | this run minus the "
        "published one, points [95% interval] | the paper. The intervals come from this table's own resample, so "
        "they can differ in the last digit from other tables' intervals of the same quantity.",
        "",
        "| quantity | published run | this run | difference | paper |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, eo, en, ed, paper in rows:
        out.append(f"| {label} | {_e(eo)} | {_e(en)} | {_e(ed, '+')} | {paper} |")
    missing = [c for c in new.classes if c not in new.targets]
    note = (
        f"\nThis run studies {', '.join(new.targets)} only: the other {len(missing)} classes' rows of Table 1 "
        f"({5 * len(missing)} cells) and every column average are not measured by it.\n"
        if missing
        else ""
    )
    return "\n".join(out) + "\n" + note


BLOCKS = {
    "headline": headline,
    "beside": beside,
    "beside_headline": beside_headline,
    "beside_balval": lambda run: beside(run, HERE / "cpu-balval-cat"),
    "run": run_facts,
    "table1": table1,
    "claims": claims,
    "models": models,
    "per_class": per_class,
    "pair": pair,
}


BLOCKS.update(LONGTAIL_BLOCKS)  # the long-tailed robustness study's (longtail_account.py)


def block(name: str, run: str) -> str:
    return BLOCKS[name](HERE / run)


#: numbers the prose may use that no run artifact holds: the protocol's constants (eps 0.01,
#: dropout 0.25 / 0.5, CIFAR-10's 60,000 images, the long-tail eps 8/255 and step 2/255), the
#: authors' 83.45%, RoBal's training step 0.0078, commit and anchor names
PROTOCOL_NUMBERS = {"0.01", "0.25", "0.5", "60,000", "83.45%", "585", "001", "255", "0.0078"}
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*%?")


def unexplained_numbers(text: str) -> list[str]:
    """Numbers in the prose (outside the generated blocks and the quoted command output) that
    appear in neither of those nor in ``PROTOCOL_NUMBERS``: a number the text asserts that no
    artifact shows."""
    generated = "".join(m[0] for m in BLOCK.finditer(text)) + "".join(re.findall(r"```.*?```", text, re.DOTALL))
    prose = re.sub(r"```.*?```", "", BLOCK.sub("", text), flags=re.DOTALL)
    return sorted({n for n in NUMBER.findall(prose) if n not in PROTOCOL_NUMBERS and n.rstrip("%") not in generated})


def render(text: str) -> str:
    return BLOCK.sub(lambda m: f"<!-- account:{m[1]} {m[2]} -->\n{block(m[1], m[2])}<!-- /account:{m[1]} -->", text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true", help="fail when a block differs from its artifacts")
    g.add_argument("--write", action="store_true", help="rewrite every block from its artifacts")
    args = ap.parse_args()
    stale = []
    for path in (README, MAIN_README, SITE_HOME):
        text = path.read_text()
        new = render(text)
        if args.write:
            path.write_text(new)
        elif new != text:
            stale.append(str(path.relative_to(HERE.parent.parent)))
    loose = unexplained_numbers(README.read_text())
    if loose:
        print(
            f"docs/reproduction/README.md states numbers that no generated table shows: {', '.join(loose)}",
            file=sys.stderr,
        )
        return 1
    if stale:
        print(
            f"{', '.join(stale)} out of step with the artifacts; run python docs/reproduction/account.py --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

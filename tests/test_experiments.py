"""Experiments beyond the paper: seeds, imbalance sweeps, long-tailed profiles, defences,
a second architecture. Exact properties first, then one smoke study with all of them."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from advimb.cli import main
from advimb.config.sections import ImbalanceConfig
from advimb.data.imbalance import Scenario, class_counts, long_tail_counts, parse_scenario
from advimb.training.defences import FGSMImages, PGDImages, Regime, balanced_weights
from advimb.training.regimes import epoch_order

CLASSES = tuple(f"class{i}" for i in range(10))


def test_long_tail_profiles_follow_their_formulas():
    exp = long_tail_counts("exp", 10.0, 5000, 10)
    assert exp[0] == 5000 and exp[-1] == 500
    assert exp == [int(5000 * 10 ** (-i / 9)) for i in range(10)]
    assert all(a > b for a, b in itertools.pairwise(exp))
    assert long_tail_counts("step", 10.0, 5000, 10) == [5000] * 5 + [500] * 5
    assert long_tail_counts("step", 4.0, 100, 3) == [100, 100, 25]  # odd C: the rarer half rounds down


def test_scenario_names_round_trip_and_counts():
    cfg = ImbalanceConfig()
    for name, counts in [
        ("under:class3@250", [5000] * 3 + [250] + [5000] * 6),
        ("over:class3@2500", [1000] * 3 + [2500] + [1000] * 6),
        ("under:class3+pgd_at", [5000] * 3 + [1000] + [5000] * 6),
        ("longtail:step10", [5000] * 5 + [500] * 5),
    ]:
        s = parse_scenario(name, CLASSES)
        assert s.name(CLASSES) == name and class_counts(s, 10, cfg) == counts
        assert not s.plain
    assert parse_scenario("over:class3", CLASSES).plain


def test_class_weights_and_resampling():
    y = torch.tensor([0] * 6 + [1] * 2 + [2] * 4)
    w = balanced_weights(y, 4)
    assert w == pytest.approx((12 / 18, 12 / 6, 12 / 12, 0.0))
    g = torch.Generator().manual_seed(0)
    plain = epoch_order(y, Regime(), torch.Generator().manual_seed(0))
    assert torch.equal(plain, torch.randperm(12, generator=torch.Generator().manual_seed(0)))
    order = epoch_order(y, Regime(resample=True), g)
    assert torch.bincount(y[order]).tolist() == [6, 6, 6]  # every class topped up to the largest
    assert set(range(12)) <= set(order.tolist())  # every original image still in the epoch


@pytest.mark.parametrize("kind", [FGSMImages, PGDImages])
def test_adversarial_training_batches(kind):
    from advimb.config.sections import ModelConfig
    from advimb.models import build_model

    model = build_model(ModelConfig(widths=(4, 8, 8), fc=16), 3, (3, 16, 16), seed=0).train()
    x, y = torch.rand(12, 3, 16, 16), torch.tensor([0, 1, 2] * 4)
    g = torch.Generator().manual_seed(0)
    adv = kind.from_spec(0.03, 3, ()).craft(model, x, y, g)
    assert (adv - x).abs().max() <= 0.03 + 1e-6 and (adv - x).abs().max() > 0.01
    assert model.training  # put back in training mode
    minority = kind.from_spec(0.03, 7, (2,)).craft(model, x, y, g)
    changed = (minority - x).flatten(1).abs().amax(1) > 0
    assert changed.tolist() == (y == 2).tolist()  # only the minority class is perturbed


def test_defended_models_share_their_undefended_twins_data_and_init(smoke_cfg):
    from advimb.data.sources import load_dataset
    from advimb.study.jobs.train import TrainJob

    ds = load_dataset(smoke_cfg.data)
    plain = TrainJob(smoke_cfg, ds.classes, ds.fingerprint, scenario=Scenario("under", 3))
    defended = TrainJob(smoke_cfg, ds.classes, ds.fingerprint, scenario=Scenario("under", 3, defence="pgd_at"))
    assert plain.seeds() == defended.seeds() and plain.key != defended.key
    assert np.array_equal(plain.select(ds).split.train, defended.select(ds).split.train)


EXPERIMENTS = [
    "--seeds",
    "2",
    "--set",
    "experiments.counts=[5, 20, 50]",
    "--set",
    "experiments.count_classes=['class3']",
    "--set",
    "experiments.long_tail=['exp:10', 'step:5']",
    "--set",
    "experiments.defences=['class_weight', 'resample', 'logit_adjust', 'fgsm_at', 'pgd_at']",
    "--set",
    "experiments.defence_classes=['class3', 'class5']",
    "--set",
    "experiments.adv_steps=2",
]


@pytest.fixture(scope="module")
def exp_run(tmp_path_factory, smoke_run):
    """The smoke study (its 72 jobs copied from smoke_run: adding experiments must reuse
    them) plus every experiment, two seeds, through the CLI, with the report."""
    import shutil

    out = tmp_path_factory.mktemp("experiments") / "run"
    shutil.copytree(smoke_run["run_dir"], out)
    assert main(["run", "--preset", "smoke", "--out", str(out), "--no-progress", "--n-boot", "200", *EXPERIMENTS]) == 0
    return out


def test_experiments_reuse_the_paper_grid_and_fill_every_table(exp_run):
    inv = json.loads((exp_run / "manifest.json").read_text())["invocations"][-1]
    assert inv["jobs_skipped"] == 72  # the first seed's paper grid was already there
    t = exp_run / "tables"
    sweep = (t / "imbalance_sweep.csv").read_text().splitlines()
    # class3 by imbalance ratio: under@5 (5/50), under (10/50), under@20, balanced, over@20 (20/10), over (50/10)
    models = [line.split(",")[1] for line in sweep[1:]]
    assert models == ["under:class3@5", "under:class3", "under:class3@20", "balanced", "over:class3@20", "over:class3"]
    lt = (t / "long_tail.csv").read_text().splitlines()
    assert len(lt) == 1 + 2 * 10 and lt[1].startswith("longtail:exp10,class0,50,")
    summary = json.loads((t / "summary.json").read_text())
    assert summary["seeds"] == 2 and summary["experiments"]["seeds"] == 2
    assert [d["defence"] for d in summary["defences"]] == [
        "class_weight",
        "resample",
        "logit_adjust",
        "fgsm_at",
        "pgd_at",
    ]

    def by_rule(closed, gap_defended):  # the verdict's rule, written out from its definition
        if closed["lo"] is None:
            return "not measurable"
        if closed["hi"] < 0:
            return "widens the gap"  # the defended model lies further below the balanced one
        if closed["lo"] <= 0:
            return "no measurable effect"
        return "closes the gap" if gap_defended["lo"] <= 0 else "narrows the gap"

    for d in summary["defences"]:
        assert d["classes"] == 2
        assert d["verdict"] == by_rule(d["gap_closed_pp"], d["gap_defended_pp"])
        assert d["gap_closed_pp"]["value"] == pytest.approx(
            d["defended_adversarial_accuracy"]["value"] - d["under_adversarial_accuracy"]["value"], abs=0.02
        )
    assert {r["profile"] for r in summary["long_tail"]} == {"longtail:exp10", "longtail:step5"}
    ds = (t / "defences_summary.csv").read_text()
    assert "nan" not in ds.lower()  # an undefined number says why instead
    cw = next(line for line in ds.splitlines() if line.startswith("class_weight,"))
    assert "n/a: no defended balanced model (only adversarial training defends the balanced model)" in cw
    header = (t / "table1.csv").read_text().splitlines()[0]
    assert "same_model_under_lo" in header and "same_model_under_hi" in header
    assert (
        "mean over 2 seeds; [95% interval: 95% percentile bootstrap (2,000 replicates; the 2 seeds resampled, "
        "then the test images within each class of each seed)]" in (t / "table1.md").read_text()
    )
    sources = json.loads((t / "sources.json").read_text())
    for name in ("imbalance_sweep", "long_tail", "defences"):
        assert sources[name] and all((exp_run / s).exists() for s in sources[name])


def test_no_interval_leaves_0_100_with_two_seeds(exp_run):
    """With 2 seeds a t-interval (df = 1) gave cells like 10.0% [-117.1, 137.1]; every table
    now uses the one bootstrap, whose intervals are accuracies themselves."""
    import csv

    t = exp_run / "tables"
    checked = 0
    for name in (
        "table1",
        "clean_target_accuracy",
        "clean_accuracy",
        "flip_rates",
        "imbalance_sweep",
        "long_tail",
        "defences",
    ):
        with open(t / f"{name}.csv") as f:
            for row in csv.DictReader(f):
                for col, v in row.items():
                    if (
                        not col.endswith("_lo")
                        or v == ""
                        or "relative_difference" in col
                        or "gap" in col
                        or "minus" in col
                    ):
                        continue
                    base = col[:-3]
                    lo, hi, val = float(v), float(row[f"{base}_hi"]), float(row[base])
                    assert 0 <= lo <= val <= hi <= 100, (name, base, lo, val, hi)
                    checked += 1
    assert checked > 500
    md = (t / "table1.md").read_text()
    assert "-" not in "".join(
        line.split("|", 2)[2] for line in md.splitlines() if line.startswith("| ") and "[" in line
    )


def test_replicates_are_independent(exp_run):
    a = json.loads((exp_run / "models" / "under-class3" / "meta.json").read_text())
    b = json.loads((exp_run / "replicates" / "1" / "models" / "under-class3" / "meta.json").read_text())
    assert a["seeds"] != b["seeds"] and b["replicate"] == 1
    with (
        np.load(exp_run / "scenarios" / "under-class3.npz") as za,
        np.load(exp_run / "replicates" / "1" / "scenarios" / "under-class3.npz") as zb,
    ):
        assert not np.array_equal(za["indices"], zb["indices"])  # its own data selection


def test_defended_models_train_with_their_regime(exp_run):
    meta = json.loads((exp_run / "models" / "under-class3+pgd_at" / "meta.json").read_text())
    assert meta["regime"]["images"] == {"kind": "PGDImages", "eps": 0.01, "classes": [], "steps": 2}
    assert meta["regime"]["loss"] == {"kind": "CrossEntropy"}
    cw = json.loads((exp_run / "models" / "under-class5+class_weight" / "meta.json").read_text())["regime"]
    assert cw["class_weight"][5] > cw["class_weight"][0]  # the minority class weighs more
    rs = json.loads((exp_run / "models" / "under-class5+resample" / "meta.json").read_text())
    assert rs["regime"]["resample"] and rs["augment"]


def test_report_shows_the_experiments(exp_run):
    res = json.loads((exp_run / "report" / "results.json").read_text())
    ids = {f["id"] for f in res["figures"]}
    assert {"fig8", "fig9", "fig10"} <= ids
    for f in res["figures"]:
        for path in f["files"].values():
            assert (exp_run / "report" / path).stat().st_size > 1000
    html = (exp_run / "report" / "index.html").read_text()
    assert "Beyond the paper" in html and "2 seeds" in html and "paired t-test over seeds" in html
    comp = res["claims"]["claims"][0]["comparisons"][0]
    assert comp["seed_test"]["seeds"] == 2 and len(comp["seed_test"]["per_seed"]) == 2
    assert res["claims"]["seeds"] == 2 and "the 2 seeds resampled, then" in res["claims"]["claims"][0]["interval"]
    assert res["table1"]["rows"][0]["ci"]


def test_rerun_with_experiments_skips_everything(exp_run):
    from advimb.config.io import parse_assignment
    from advimb.config.presets import resolve_config
    from advimb.study.run import run_study

    sets = [parse_assignment(s) for s in EXPERIMENTS[3::2]]
    cfg = resolve_config("smoke", overrides=[{"experiments": {"seeds": 2}}, *sets], env={})
    res = run_study(cfg, exp_run, progress=False)
    assert res["stats"]["run"] == 0


def test_a_second_architecture_runs_the_study(tmp_path):
    """resnet_small (batch norm: never stacked, even with train.stack=on) on three classes."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--preset",
                "smoke",
                "--out",
                str(out),
                "--no-progress",
                "--no-report",
                "--set",
                "model.name='resnet_small'",
                "--set",
                "train.stack='on'",
                "--set",
                "imbalance.classes=['class0', 'class1']",
            ]
        )
        == 0
    )
    meta = json.loads((out / "models" / "under-class0" / "meta.json").read_text())
    assert meta["stacked_with"] == 1
    assert len((out / "tables" / "table1.csv").read_text().splitlines()) == 1 + 2 + 1


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--set", "experiments.defences=['dropout']"], "experiments.defences: 'dropout' is not one of"),
        (
            ["--set", "experiments.long_tail=['exp']"],
            "experiments.long_tail: 'exp' is not <profile>:<rho> with rho >= 1",
        ),
        (
            ["--set", "experiments.long_tail=['pow:3']"],
            "experiments.long_tail: unknown profile 'pow'; choose one of: exp, step",
        ),
        (["--set", "experiments.long_tail=['step:0.5']"], "rho >= 1"),
        (["--seeds", "0"], "experiments.seeds: must be in [1, 100]"),
        (
            [
                "--set",
                "imbalance.classes=['class0']",
                "--set",
                "experiments.counts=[5]",
                "--set",
                "experiments.count_classes=['class1']",
            ],
            "experiments.count_classes: 'class1' is not a target class",
        ),
        (["--set", "experiments.counts=[500]"], "asks for 500"),
        (["--set", "experiments.adv_eps=2"], "experiments.adv_eps: 2.0 is outside [0, 1]"),
    ],
)
def test_bad_experiment_input_is_one_line(tmp_path, capsys, argv, msg):
    assert main(["run", "--preset", "smoke", "--no-progress", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advimb: error:") and msg in err and "\n" not in err


@pytest.mark.browser
def test_experiment_report_renders_in_headless_chromium(exp_run, chromium, tmp_path):
    from conftest import render_in_chromium

    problems, broken, n_images, width = render_in_chromium(
        chromium, exp_run / "report" / "index.html", tmp_path / "report.png"
    )
    assert not problems, problems
    assert not broken, f"images that did not load: {broken}"
    res = json.loads((exp_run / "report" / "results.json").read_text())
    assert n_images == len(res["figures"])
    assert width <= 1366, "the page scrolls sideways on a laptop screen"


def test_minority_only_adversarial_training_perturbs_the_under_sampled_class(smoke_cfg):
    from advimb.data.sources import load_dataset
    from advimb.study.jobs.train import TrainJob

    ds = load_dataset(smoke_cfg.data)
    cfg = dataclasses.replace(
        smoke_cfg,
        experiments=dataclasses.replace(smoke_cfg.experiments, adv_scope="minority", adv_eps=0.02, adv_steps=3),
    )
    y = torch.from_numpy(ds.y_train)
    under = TrainJob(cfg, ds.classes, ds.fingerprint, scenario=Scenario("under", 4, defence="pgd_at"))
    assert under.regime(y, 10) == Regime(images=PGDImages(0.02, (4,), 3))
    bal = TrainJob(cfg, ds.classes, ds.fingerprint, scenario=Scenario("balanced", defence="fgsm_at"))
    assert bal.regime(y, 10) == Regime(images=FGSMImages(0.02, ()))  # nothing is minority
    plain_scope = TrainJob(smoke_cfg, ds.classes, ds.fingerprint, scenario=Scenario("under", 4, defence="pgd_at"))
    assert plain_scope.key != under.key  # the scope and eps are part of what the job computes

"""The eps/attack sweep: jobs, tables, metrics, report; and attack evaluation invariants."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from advimb.cli import main
from advimb.layout import slug
from advimb.scenario import BALANCED


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    code = main(
        [
            "sweep",
            "--preset",
            "smoke",
            "--no-progress",
            "--out",
            str(out),
            "--attacks",
            "fgsm,pgd",
            "--epsilons",
            "0.01,0.04",
            "--set",
            "imbalance.classes=['class3', 'class5']",
            "--n-boot",
            "200",
        ]
    )
    assert code == 0
    return out


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_every_point_and_matches_the_main_grid(sweep_run):
    points = sorted(p.name for p in (sweep_run / "sweep").iterdir())
    assert points == ["fgsm-eps0.01", "fgsm-eps0.04", "pgd-eps0.01", "pgd-eps0.04"]
    rows = _csv(sweep_run / "tables" / "sweep.csv")
    assert len(rows) == 4 * 2 * 5  # points x classes x combinations per class
    main_grid = {  # the main grid's accuracy under attack, from its stored predictions
        (r["class"], r["evaluated_model"], r["gradient_model"]): float(
            (np.load(f.with_suffix(".npz"))[f"pred_adv__{slug(r['evaluated_model'])}"] == r["class_index"]).mean()
        )
        for f in (sweep_run / "eval" / "attack").glob("*.json")
        for r in json.loads(f.read_text())["combinations"]
    }
    fgsm01 = [r for r in rows if r["attack"] == "fgsm" and float(r["eps"]) == 0.01]
    table1 = {r["class"]: r for r in _csv(sweep_run / "tables" / "table1.csv")}
    cells = 0
    for r in fgsm01:  # and Table 1's cell with its interval: the same images, the same bootstrap
        col = f"{r['gradient']}_{r['model_kind']}"
        if r["class"] in table1 and col in table1[r["class"]]:
            cells += 1
            for suffix in ("", "_lo", "_hi"):
                assert r[f"adversarial_accuracy{suffix}"] == table1[r["class"]][col + suffix], (col, suffix)
    assert cells == 2 * 5  # both studied classes' five cells
    for r in fgsm01:  # the sweep's FGSM at the main eps reproduces the main grid exactly
        assert float(r["adversarial_accuracy"]) == pytest.approx(  # in percent, like every table
            100 * main_grid[(r["class"], r["evaluated_model"], r["gradient_model"])], abs=1e-6
        )


def test_sweep_metrics(sweep_run):
    rows = _csv(sweep_run / "tables" / "sweep.csv")
    for r in rows:
        n, correct = int(r["n"]), int(r["n_clean_correct"])
        assert 0 <= correct <= n
        if correct:
            assert 0 <= float(r["success_rate"]) <= 100
    me = [r for r in rows if r["attack"] == "fgsm" and float(r["eps"]) == 0.04]
    assert me and all(float(r["min_eps_max"]) == 0.04 for r in me)  # searched once, at the largest eps
    assert all(r["min_eps_flippable_share"] != "" for r in me if int(r["n_clean_correct"]))
    assert all(r["min_eps_mean"] == r["min_eps_max"] == "" for r in rows if float(r["eps"]) == 0.01)
    searched = [r for r in me if r["min_eps_mean"] != ""]
    assert searched, "no combination has a minimal eps to check"  # the smoke models flip few images
    for r in searched:
        assert 0 < float(r["min_eps_median"]) <= float(r["min_eps_max"]) == 0.04
        assert 0 < float(r["min_eps_mean"]) <= 0.04
    summ = _csv(sweep_run / "tables" / "sweep_summary.csv")
    for s in summ:
        acc = [
            float(r["adversarial_accuracy"])
            for r in rows
            if r["attack"] == s["attack"]
            and r["eps"] == s["eps"]
            and f"{r['gradient']}_{r['model_kind']}" == s["column"]
        ]
        assert float(s["accuracy"]) == pytest.approx(np.mean(acc), abs=1e-3)
        assert float(s["worst_class_accuracy"]) == pytest.approx(min(acc), abs=1e-3)
        assert float(s["accuracy_lo"]) <= float(s["accuracy"]) <= float(s["accuracy_hi"])


def test_minimal_eps_flips_at_the_found_eps_and_not_far_below(sweep_run):
    """Re-check the stored minimal eps of some images directly with FGSM."""
    from advimb.attacks.core import fgsm
    from advimb.config.io import from_dict, load_toml
    from advimb.config.sections import ExperimentConfig
    from advimb.data.sources import load_dataset
    from advimb.layout import RunLayout
    from advimb.study.jobs.base import load_weights

    cfg = from_dict(ExperimentConfig, load_toml(sweep_run / "config.toml"))
    ds = load_dataset(cfg.data)
    model = load_weights(cfg, ds, RunLayout(sweep_run), BALANCED, "cpu")
    checked = 0
    for f in sorted((sweep_run / "sweep" / "fgsm-eps0.04").glob("balanced__*.npz")):  # classes it gets right
        z = np.load(f)
        idx, me = z["test_indices"], z["min_eps__balanced"]
        x = torch.from_numpy(ds.x_test[idx]).permute(0, 3, 1, 2).float().div(255)
        y = torch.from_numpy(ds.y_test[idx]).long()
        with torch.no_grad():
            correct = (model(x).argmax(1) == y).numpy()
        for i in np.flatnonzero(np.isfinite(me) & correct)[:5]:
            e, res = float(me[i]), 0.04 / 2**10  # 10 halvings of [0, 0.04]
            with torch.no_grad():
                at = model(fgsm(model, x[i : i + 1], y[i : i + 1], eps=e)).argmax(1).item()
                below = model(fgsm(model, x[i : i + 1], y[i : i + 1], eps=max(e - res, 0.0))).argmax(1).item()
            assert at != y[i].item(), "the image does not flip at its minimal eps"
            assert below == y[i].item(), "the image already flips one resolution step below"
            checked += 1
    assert checked, "no flippable, correctly classified image to check"


def test_report_shows_the_sweep(sweep_run):
    res = json.loads((sweep_run / "report" / "results.json").read_text())
    assert "fig7" in {f["id"] for f in res["figures"]}
    assert res["sweep"]["attacks"] == ["fgsm", "pgd"] and res["sweep"]["epsilons"] == [0.01, 0.04]
    assert "Attack and eps sweep" in (sweep_run / "report" / "index.html").read_text()


def test_pgd_evaluation_does_not_depend_on_batch_size(smoke_run, smoke_cfg):
    import dataclasses

    from advimb.attacks.evaluate import attack_images
    from advimb.data.sources import load_dataset
    from advimb.layout import RunLayout
    from advimb.study.jobs.base import load_weights

    ds = load_dataset(smoke_cfg.data)
    model = load_weights(smoke_cfg, ds, RunLayout(smoke_run["run_dir"]), BALANCED, "cpu")
    x, y = torch.from_numpy(ds.x_test[:40]), torch.from_numpy(ds.y_test[:40]).long()
    res = [
        attack_images(
            model, x, y, dataclasses.replace(smoke_cfg.attack, name="pgd", eps=0.03, batch_size=b), ds.classes, seed=7
        )
        for b in (7, 40)
    ]
    assert torch.equal(res[0], res[1])


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--attacks", "fgsm,zoo"], "unknown attack 'zoo'"),
        (["--epsilons", "0.01,abc"], "not a comma-separated list of numbers"),
        (["--epsilons", "0.01,1.5"], "sweep.epsilons: 1.5 is outside (0, 1]"),
        (["--set", "attack.steps=0"], "attack.steps: must be >= 1"),
        (["--epsilons", ""], "needs at least one attack and one eps"),
        (["--set", "attack.target='zebra'"], "unknown class 'zebra'"),
    ],
)
def test_bad_sweep_input(capsys, tmp_path, argv, msg):
    assert main(["sweep", "--preset", "smoke", "--no-progress", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advimb: error:") and msg in err and "\n" not in err

"""The Python API beyond the study: a finished run's trained models as plain ``nn.Module``s."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchattacks  # test extra: a missing oracle fails, never skips

import advimb
from advimb.data.sources import load_dataset
from advimb.errors import UserError
from advimb.results.reader import read_config
from advimb.scenario import Kind, Scenario


def test_load_model_gives_the_studied_model_ready_for_torchattacks(smoke_run):
    """``advimb.load_model`` returns the model the study evaluated: the same clean predictions
    on the full test set, and torchattacks' FGSM on it sends the class's attacked images where
    the study's FGSM sent them."""
    run = Path(smoke_run["run_dir"])
    cfg = read_config(run)
    ds = load_dataset(cfg.data)
    target = ds.classes[3]
    net = advimb.load_model(run, f"under:{target}")
    same = advimb.load_model(run, Scenario(Kind.UNDER, 3))  # a Scenario, or the class by index
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), same.state_dict().values()))
    assert isinstance(net, torch.nn.Module) and not net.training
    x = torch.from_numpy(ds.x_test).permute(0, 3, 1, 2).float().div(255)
    with torch.no_grad():
        pred = net(x).argmax(1).numpy()
    stored = np.load(run / "eval" / "clean" / f"under-{target}.npz")
    np.testing.assert_array_equal(pred[stored["test_indices"]], stored["predictions"])

    attacked = np.load(run / "eval" / "attack" / f"under-{target}__{target}.npz")
    idx = torch.from_numpy(attacked["test_indices"])
    xs, ys = x[idx], torch.from_numpy(ds.y_test)[idx]
    fgsm = torchattacks.FGSM(net, eps=cfg.attack.eps)
    adv = torch.cat([fgsm(xs[i : i + 16], ys[i : i + 16]) for i in range(0, len(xs), 16)])
    assert (adv - xs).abs().max() <= cfg.attack.eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        adv_pred = net(adv).argmax(1).numpy()
    same = (adv_pred == attacked[f"pred_adv__under-{target}"]).mean()
    assert same >= 0.95, f"torchattacks and the study agree on {same:.0%} of the perturbed images"


def test_load_model_says_what_is_wrong(smoke_run, tmp_path):
    run = Path(smoke_run["run_dir"])
    with pytest.raises(
        UserError, match=r"has no trained model 'under:nope' \(unknown class 'nope'.*; it has: balanced, over:"
    ):
        advimb.load_model(run, "under:nope")
    with pytest.raises(UserError, match=r"has no trained model 'under:class3\+pgd_at'; it has: balanced, over:"):
        advimb.load_model(run, Scenario(Kind.UNDER, 3, defence="pgd_at"))
    with pytest.raises(UserError, match="is not a run folder"):
        advimb.load_model(tmp_path, "balanced")
    with pytest.raises(UserError, match="is not a torch device"):
        advimb.load_model(run, "balanced", device="gpu7")
    assert json.loads((run / "manifest.json").read_text())["dataset"]["classes"]


def test_too_few_bootstrap_replicates_is_a_one_line_error_before_anything_is_written(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_run["run_dir"], run)
    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
    with pytest.raises(
        UserError, match=r"^n_boot 50 is too small for a 95% interval; use at least 100 \(default 2000\)$"
    ):
        advimb.Results(run).build_report(n_boot=50)
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before


def test_a_run_beside_another_is_a_table_with_paired_differences():
    """``Results.beside``: the faithful cat run beside the published one, as the reproduction
    account shows it; each difference is the run's value minus the base's to within the
    bootstrap's rounding, and a run beside itself differs by exactly nothing."""
    here = Path(__file__).resolve().parent.parent / "docs" / "reproduction"
    df = advimb.Results(here / "cpu-faithful-cat").beside(here / "paper-h200", n_boot=200)
    assert df["quantity"].iloc[0] == "balanced model, clean test accuracy (10,000 images)"
    assert len(df) == 1 + 3 + 5  # the whole test set, cat in three models, Table 1's cat row
    assert ((df["difference"] - (df["run"] - df["base"])).abs() < 1e-9).all()
    row = df.set_index("quantity").loc["Table 1, cat, different model: under"]
    assert (
        row["paper"] == "21"
        and row["base"] == pytest.approx(5.7, abs=0.05)
        and row["run"] == pytest.approx(21.2, abs=0.05)
    )
    same = advimb.Results(here / "paper-h200").beside(here / "paper-h200", n_boot=200)
    paired = same.iloc[1:]  # every row but the whole test set's (independent resamples by design)
    assert (paired["difference"] == 0).all() and (paired["difference_lo"] == 0).all()


def test_the_api_takes_every_argument_the_command_line_does():
    """Every flag of ``advimb run`` that sets one config key is a keyword of ``advimb.build_config``
    (and so of ``advimb.run``), translated by the same function."""
    import inspect

    from advimb.study.checks import ARGUMENT_KEYS

    assert set(ARGUMENT_KEYS) <= set(inspect.signature(advimb.build_config).parameters)
    cfg = advimb.build_config("smoke", seed=3, eps="8/255", executor="local")
    assert cfg.seed == 3 and cfg.attack.eps == pytest.approx(8 / 255) and cfg.executor.name == "local"
    with pytest.raises(UserError, match="executor.name"):
        advimb.build_config("smoke", executor="slurm")

"""Stacked training equals one-by-one training (float32, fixed seeds)."""

from __future__ import annotations

import copy

import pytest
import torch

from advimb.config import ModelConfig, TrainConfig
from advimb.models import build_model
from advimb.stacked import fit_stacked
from advimb.train import fit


def _setup(m=3, n=96, nval=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (400, 16, 16, 3), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 4, (400,), generator=g)
    x[..., 0] = (y * 60).to(torch.uint8)[:, None, None]  # learnable signal
    idx = [torch.randperm(300, generator=g)[:n] for _ in range(m)]
    vidx = [300 + torch.randperm(100, generator=g)[:nval] for _ in range(m)]
    mcfg = ModelConfig(widths=(4, 8, 8), fc=16)
    models = [build_model(mcfg, 4, (3, 16, 16), seed=10 + i) for i in range(m)]
    return x, y, idx, vidx, models


@pytest.mark.parametrize("patience", [1, 50])
def test_stacked_equals_one_by_one(patience):
    x, y, idx, vidx, models = _setup()
    cfg = TrainConfig(lr=1e-3, max_epochs=4, patience=patience, min_delta=0.0, channels_last=False)
    seeds, augment = [5, 6, 7], [False, True, False]
    singles = [copy.deepcopy(m) for m in models]
    ref = [fit(m, (x[i], y[i]), (x[v], y[v]), cfg, seed=s, augment=a, progress=False)
           for m, i, v, s, a in zip(singles, idx, vidx, seeds, augment)]
    got = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, [(x[v], y[v]) for v in vidx], cfg,
                      seeds=seeds, augment=augment, progress=False)
    for r, g in zip(ref, got):
        assert [h["epoch"] for h in r.history] == [h["epoch"] for h in g.history]
        assert r.best_epoch == g.best_epoch and r.stopped_epoch == g.stopped_epoch
        for k in r.state_dict:
            assert torch.allclose(r.state_dict[k], g.state_dict[k], rtol=1e-4, atol=1e-5), k
        for hr, hg in zip(r.history, g.history):
            assert hr["val_loss"] == pytest.approx(hg["val_loss"], rel=1e-4)
            assert hr["loss"] == pytest.approx(hg["loss"], rel=1e-4)


def test_a_stopped_model_does_not_change_the_others():
    """With patience 1 model 1 stops after epoch 2 and leaves the stack; every model's result
    equals its result trained alone (a stack of one)."""
    x, y, idx, vidx, models = _setup()
    cfg = TrainConfig(lr=1e-3, max_epochs=5, patience=1, min_delta=0.0, channels_last=False)
    val = [(x[v], y[v]) for v in vidx]
    trio = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg,
                       seeds=[5, 6, 7], augment=[False, False, False], progress=False)
    stops = [r.stopped_epoch for r in trio]
    assert min(stops) < max(stops) == 5, stops  # someone left the stack early, someone ran on
    for i, r in enumerate(trio):
        solo = fit_stacked([copy.deepcopy(models[i])], x, y, idx[i:i + 1], val[i:i + 1], cfg,
                           seeds=[5 + i], augment=[False], progress=False)[0]
        assert solo.stopped_epoch == r.stopped_epoch and solo.best_epoch == r.best_epoch
        for k in r.state_dict:
            assert torch.allclose(r.state_dict[k], solo.state_dict[k], rtol=1e-4, atol=1e-5), k


def test_study_with_stacked_training(smoke_cfg, smoke_run, tmp_path):
    """train.stack=on: the under- and the over-sampled models train as two stacked groups;
    every member writes its own artifacts; a rerun finds everything done; the models agree
    with one-by-one training (smoke_run) to RMSProp's float sensitivity."""
    import json
    from pathlib import Path

    import dataclasses

    from advimb.data import load_dataset
    from advimb.jobs import TrainGroupJob, plan
    from advimb.study import run_study

    cfg = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, stack="on"))
    ds = load_dataset(cfg.data)
    groups = [j for j in plan(cfg, ds) if isinstance(j, TrainGroupJob)]
    assert sorted(len(g.members) for g in groups) == [10, 10]
    res = run_study(cfg, tmp_path / "run", progress=False)
    run = Path(res["run_dir"])
    meta = json.loads((run / "models" / "under-class3" / "meta.json").read_text())
    assert meta["stacked_with"] == 10
    again = run_study(cfg, tmp_path / "run", progress=False)
    assert again["stats"]["run"] == 0
    ref = Path(smoke_run["run_dir"])
    for f in ("balanced", "under-class3", "over-class5"):
        a = json.loads((ref / "eval" / "clean" / f"{f}.json").read_text())["accuracy"]
        b = json.loads((run / "eval" / "clean" / f"{f}.json").read_text())["accuracy"]
        assert abs(a - b) <= 0.1, (f, a, b)

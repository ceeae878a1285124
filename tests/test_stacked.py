"""Stacked training equals one-by-one training (float32, fixed seeds)."""

from __future__ import annotations

import copy

import pytest
import torch

from advimb.config.sections import ModelConfig, TrainConfig
from advimb.devices import resolve_runtime
from advimb.models import build_model
from advimb.training.fit import fit
from advimb.training.stacked import fit_stacked


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
    cfg = TrainConfig(lr=1e-3, max_epochs=4, patience=patience, min_delta=0.0, channels_last=False,
                      precision="fp32")
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
    cfg = TrainConfig(lr=1e-3, max_epochs=5, patience=1, min_delta=0.0, channels_last=False,
                      precision="fp32")
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
    import dataclasses
    import json
    from pathlib import Path

    from advimb.data.sources import load_dataset
    from advimb.study.jobs.train import TrainGroupJob
    from advimb.study.plan import plan
    from advimb.study.run import run_study

    cfg = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, stack="on"))
    ds = load_dataset(cfg.data)
    groups = [j for j in plan(resolve_runtime(cfg), ds) if isinstance(j, TrainGroupJob)]
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


def test_stacked_training_resumes_from_an_epoch_checkpoint():
    """Interrupted after epoch 3 (model 1 has already left the stack), resumed from the state
    the epoch-end callback saw: every model's weights and history equal an uninterrupted run."""
    x, y, idx, vidx, models = _setup()
    cfg = TrainConfig(lr=1e-3, max_epochs=6, patience=1, min_delta=0.0, channels_last=False, precision="fp32")
    val = [(x[v], y[v]) for v in vidx]
    kw = dict(seeds=[5, 6, 7], augment=[False, True, False], progress=False)
    saved = {}

    def stop_after_3(state):
        if state["epoch"] == 3:
            saved.update(copy.deepcopy(state))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, on_epoch_end=stop_after_3, **kw)
    assert len(saved["active"]) < 3  # someone had left the stack when it was interrupted
    resumed = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, resume=saved, **kw)
    straight = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, **kw)
    for r, s in zip(resumed, straight):
        assert [h["val_loss"] for h in r.history] == [h["val_loss"] for h in s.history]
        assert r.best_epoch == s.best_epoch and r.stopped_epoch == s.stopped_epoch
        assert all(torch.equal(r.state_dict[k], s.state_dict[k]) for k in s.state_dict)


def test_interrupted_stacked_group_resumes_in_the_study(smoke_cfg, tmp_path, monkeypatch, capsys):
    """A study with train.stack=on stopped in the middle of a stacked group (after its
    epoch 2 checkpoint) resumes that group from the checkpoint and ends with the tables of an
    uninterrupted run."""
    import dataclasses
    import json
    from pathlib import Path

    from advimb.study.run import run_study
    from advimb.training import stacked

    cfg = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, stack="on", max_epochs=4,
                                                                   patience=4))
    real = stacked.fit_stacked

    def interrupted(*a, on_epoch_end=None, **kw):
        def cb(state):
            on_epoch_end(state)
            if state["epoch"] == 2:
                raise KeyboardInterrupt
        return real(*a, on_epoch_end=cb, **kw)

    monkeypatch.setattr(stacked, "fit_stacked", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(stacked, "fit_stacked", real)
    run = tmp_path / "run"
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert len(list(run.glob("models/_stack-*/train_state.pt"))) == 1
    capsys.readouterr()
    run_study(cfg, run, progress=False)
    assert "resuming train 10 models stacked" in capsys.readouterr().err
    assert not list(run.glob("models/_stack-*/train_state.pt"))
    straight = Path(run_study(cfg, tmp_path / "straight", progress=False)["run_dir"])
    for t in ("table1.csv", "clean_accuracy.csv", "flip_rates.csv"):
        assert (run / "tables" / t).read_text() == (straight / "tables" / t).read_text(), t
    for m in ("under-class0", "over-class9"):
        a = json.loads((run / "models" / m / "meta.json").read_text())["history"]
        b = json.loads((straight / "models" / m / "meta.json").read_text())["history"]
        assert [h["val_loss"] for h in a] == [h["val_loss"] for h in b]


@pytest.mark.slow
def test_compiled_training_equals_eager():
    """train.compile=on (torch.compile of the training step; inductor on the CPU, CUDA graphs
    on a GPU) gives the eager results to float tolerance, one-by-one and stacked."""
    x, y, idx, vidx, models = _setup(m=2)
    val = [(x[v], y[v]) for v in vidx]
    out = {}
    for mode in ("off", "on"):
        cfg = TrainConfig(lr=1e-3, max_epochs=2, channels_last=False, precision="fp32", compile=mode)
        one = fit(copy.deepcopy(models[0]), (x[idx[0]], y[idx[0]]), val[0], cfg, seed=5, progress=False)
        two = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, seeds=[5, 6],
                          augment=[False, True], progress=False)
        out[mode] = [one, *two]
    for e, c in zip(out["off"], out["on"]):
        assert [h["val_loss"] for h in e.history] == pytest.approx([h["val_loss"] for h in c.history], rel=1e-4)
        for k in e.state_dict:
            assert torch.allclose(e.state_dict[k], c.state_dict[k], rtol=1e-3, atol=1e-4), k

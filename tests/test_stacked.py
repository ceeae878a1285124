"""Stacked training equals one-by-one training (float32, fixed seeds): equal and unequal
training-set sizes, padded last batches, early stops at different epochs, class weights and
re-sampling, interrupted and resumed, compiled and eager."""

from __future__ import annotations

import copy

import pytest
import torch

from advimb.config.sections import ModelConfig, TrainConfig
from advimb.devices import resolve_runtime
from advimb.models import build_model
from advimb.scenario import parse_scenario
from advimb.training.fit import fit
from advimb.training.regimes import Regime, balanced_weights
from advimb.training.stacked import fit_stacked
from advimb.training.waste import wasted_work


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


@pytest.mark.determinism
@pytest.mark.parametrize("patience", [1, 50])
def test_stacked_equals_one_by_one(patience):
    x, y, idx, vidx, models = _setup()
    cfg = TrainConfig(lr=1e-3, max_epochs=4, patience=patience, min_delta=0.0, channels_last=False, precision="fp32")
    seeds, augment = [5, 6, 7], [False, True, False]
    singles = [copy.deepcopy(m) for m in models]
    ref = [
        fit(m, (x[i], y[i]), (x[v], y[v]), cfg, seed=s, augment=a, progress=False)
        for m, i, v, s, a in zip(singles, idx, vidx, seeds, augment)
    ]
    got = fit_stacked(
        [copy.deepcopy(m) for m in models],
        x,
        y,
        idx,
        [(x[v], y[v]) for v in vidx],
        cfg,
        seeds=seeds,
        augment=augment,
        progress=False,
    )
    for r, g in zip(ref, got):
        assert [h["epoch"] for h in r.history] == [h["epoch"] for h in g.history]
        assert r.best_epoch == g.best_epoch and r.stopped_epoch == g.stopped_epoch
        for k in r.state_dict:
            assert torch.allclose(r.state_dict[k], g.state_dict[k], rtol=1e-4, atol=1e-5), k
        for hr, hg in zip(r.history, g.history):
            assert hr["val_loss"] == pytest.approx(hg["val_loss"], rel=1e-4)
            assert hr["loss"] == pytest.approx(hg["loss"], rel=1e-4)


@pytest.mark.determinism
def test_a_stopped_model_does_not_change_the_others():
    """With patience 1 model 1 stops after epoch 2 and leaves the stack; every model's result
    equals its result trained alone (a stack of one)."""
    x, y, idx, vidx, models = _setup()
    cfg = TrainConfig(lr=1e-3, max_epochs=5, patience=1, min_delta=0.0, channels_last=False, precision="fp32")
    val = [(x[v], y[v]) for v in vidx]
    trio = fit_stacked(
        [copy.deepcopy(m) for m in models],
        x,
        y,
        idx,
        val,
        cfg,
        seeds=[5, 6, 7],
        augment=[False, False, False],
        progress=False,
    )
    stops = [r.stopped_epoch for r in trio]
    assert min(stops) < max(stops) == 5, stops  # someone left the stack early, someone ran on
    for i, r in enumerate(trio):
        solo = fit_stacked(
            [copy.deepcopy(models[i])],
            x,
            y,
            idx[i : i + 1],
            val[i : i + 1],
            cfg,
            seeds=[5 + i],
            augment=[False],
            progress=False,
        )[0]
        assert solo.stopped_epoch == r.stopped_epoch and solo.best_epoch == r.best_epoch
        for k in r.state_dict:
            assert torch.allclose(r.state_dict[k], solo.state_dict[k], rtol=1e-4, atol=1e-5), k


def _assert_same(ref, got, rel=1e-4, atol=1e-5):
    for r, g in zip(ref, got):
        assert [h["epoch"] for h in r.history] == [h["epoch"] for h in g.history]
        assert r.best_epoch == g.best_epoch and r.stopped_epoch == g.stopped_epoch and r.steps == g.steps
        for hr, hg in zip(r.history, g.history):
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
                assert hr[k] == pytest.approx(hg[k], rel=rel, abs=1e-6), k
        for k in r.state_dict:
            assert torch.allclose(r.state_dict[k], g.state_dict[k], rtol=1e-4, atol=atol), k


def _unequal():
    """Four models with training sets of 37, 96, 50 and 61 images (batch 16: every epoch
    ends in a padded batch, and each model's epochs end at different steps), validation
    sets of 40, 25, 40 and 33 images."""
    x, y, _, _, models = _setup(m=4, seed=3)
    g = torch.Generator().manual_seed(1)
    idx = [torch.randperm(300, generator=g)[:n] for n in (37, 96, 50, 61)]
    vidx = [300 + torch.randperm(100, generator=g)[:n] for n in (40, 25, 40, 33)]
    return x, y, idx, vidx, models


@pytest.mark.determinism
def test_one_stack_of_unequal_sizes_equals_one_by_one():
    """The one stack of a study: models of different set sizes (padded last batches, epochs
    ending at different steps), early stops at different epochs, one model with class weights
    and one re-sampled (each epoch longer than its set): each model's history, steps and
    weights equal its one-by-one training."""
    x, y, idx, vidx, models = _unequal()
    cfg = TrainConfig(
        lr=1e-3, batch_size=16, max_epochs=7, patience=1, min_delta=0.0, channels_last=False, precision="fp32"
    )
    seeds, augment = [5, 6, 7, 8], [False, True, False, True]
    regimes = [Regime(), Regime(), Regime(class_weight=tuple(balanced_weights(y[idx[2]], 4))), Regime(resample=True)]
    ref = [
        fit(copy.deepcopy(m), (x[i], y[i]), (x[v], y[v]), cfg, seed=s, augment=a, regime=r, progress=False)
        for m, i, v, s, a, r in zip(models, idx, vidx, seeds, augment, regimes)
    ]
    stops = [r.stopped_epoch for r in ref]
    assert len(set(stops)) > 1 and max(stops) == 7, stops  # early stops at different epochs
    got = fit_stacked(
        [copy.deepcopy(m) for m in models],
        x,
        y,
        idx,
        [(x[v], y[v]) for v in vidx],
        cfg,
        seeds=seeds,
        augment=augment,
        regimes=regimes,
        progress=False,
    )
    _assert_same(ref, got)


@pytest.mark.determinism
def test_logit_adjustment_trains_the_same_one_by_one_and_stacked():
    """The logit-adjusted loss (log class prior added to the training logits): stacked equals
    one by one, and it changes training (against the same model trained plainly)."""
    from advimb.training.regimes import log_prior

    x, y, idx, vidx, models = _unequal()
    cfg = TrainConfig(lr=1e-3, batch_size=16, max_epochs=3, patience=5, channels_last=False, precision="fp32")
    regimes = [Regime(logit_adjust=log_prior(y[i], 4)) for i in idx[:2]]
    assert regimes[0].logit_adjust != regimes[1].logit_adjust
    val = [(x[v], y[v]) for v in vidx[:2]]
    ref = [
        fit(copy.deepcopy(m), (x[i], y[i]), v, cfg, seed=s, regime=r, progress=False)
        for m, i, v, s, r in zip(models, idx, val, (5, 6), regimes)
    ]
    got = fit_stacked(
        [copy.deepcopy(m) for m in models[:2]],
        x,
        y,
        idx[:2],
        val,
        cfg,
        seeds=[5, 6],
        augment=[False, False],
        regimes=regimes,
        progress=False,
    )
    # RMSProp divides by the root of a tiny accumulator where a weight's gradients are ~0, so
    # rounding-level gradient differences can move such a weight by ~1e-5 (losses agree to 1e-7)
    _assert_same(ref, got, atol=1e-4)
    plain = fit(copy.deepcopy(models[0]), (x[idx[0]], y[idx[0]]), val[0], cfg, seed=5, progress=False)
    assert not torch.allclose(plain.state_dict["classifier.3.bias"], ref[0].state_dict["classifier.3.bias"])


def test_a_stopped_model_keeps_its_weights_and_the_shape_never_changes(monkeypatch):
    """Every step of the stack has one shape (so a compiled step never recompiles), and a model
    that stopped receives an exactly zero gradient: its weights stay where they were."""
    from advimb.training import stacked

    x, y, idx, vidx, models = _unequal()
    cfg = TrainConfig(
        lr=2e-3, batch_size=16, max_epochs=6, patience=1, min_delta=0.0, channels_last=False, precision="fp32"
    )
    shapes, after_stop = set(), {}
    real_tick = stacked._Stack.tick

    def tick(self):
        before = {i: {k: v[i].clone() for k, v in self.params.items()} for i in range(self.m) if self.done[i]}
        step, self.step_fn = self.step_fn, lambda *a: shapes.add(tuple(t.shape for t in a[2:])) or step(*a)
        out = real_tick(self)
        self.step_fn = step
        for i, p in before.items():
            after_stop[i] = after_stop.get(i, True) and all(torch.equal(p[k], self.params[k][i]) for k in p)
        return out

    monkeypatch.setattr(stacked._Stack, "tick", tick)
    res = fit_stacked(
        [copy.deepcopy(m) for m in models],
        x,
        y,
        idx,
        [(x[v], y[v]) for v in vidx],
        cfg,
        seeds=[1, 2, 3, 4],
        augment=[False] * 4,
        progress=False,
    )
    assert shapes == {
        ((4, 16, 3, 16, 16), (4, 16), (4, 16), (4, 16), (4, 4))
    }  # images, labels, weights, mask, logit offsets
    assert after_stop and all(after_stop.values()), after_stop
    assert min(r.stopped_epoch for r in res) < 6


def test_wasted_work_counts_padding_and_stopped_models():
    w = wasted_work([40, 32], [2, 1], batch_size=16)  # 3 steps x 2 epochs = 6 steps; 2 x 1 = 2 steps
    assert w["steps"] == 6 and w["samples"] == 6 * 16 * 2
    assert w["useful"] == pytest.approx((80 + 32) / 192)
    assert w["padding"] == pytest.approx((96 - 80) / 192)
    assert w["stopped"] == pytest.approx((192 - 96 - 32) / 192)


@pytest.mark.determinism
def test_study_with_stacked_training(smoke_cfg, smoke_run, tmp_path):
    """train.stack=on: all 21 models (balanced, under- and over-sampled: three training-set
    sizes) train as one stack and are evaluated on the clean test set as one batched group;
    every member writes its own artifacts; a rerun finds everything done; the batched clean
    predictions equal each model's own; the models agree with one-by-one training
    (smoke_run) to RMSProp's float sensitivity."""
    import dataclasses
    import json
    from pathlib import Path

    import numpy as np

    from advimb.attacks.evaluate import predict
    from advimb.data.sources import load_dataset
    from advimb.layout import RunLayout
    from advimb.study.jobs.base import load_weights
    from advimb.study.jobs.evaluate import CleanEvalGroupJob
    from advimb.study.jobs.train import TrainGroupJob
    from advimb.study.plan import plan
    from advimb.study.run import run_study

    cfg = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, stack="on"))
    ds = load_dataset(cfg.data)
    jobs = plan(resolve_runtime(cfg), ds)
    assert [len(g.members) for g in jobs if isinstance(g, TrainGroupJob)] == [21]
    assert [len(g.members) for g in jobs if isinstance(g, CleanEvalGroupJob)] == [21]
    res = run_study(cfg, tmp_path / "run", progress=False)
    run = Path(res["run_dir"])
    meta = json.loads((run / "models" / "under-class3" / "meta.json").read_text())
    assert meta["stacked_with"] == 21
    again = run_study(cfg, tmp_path / "run", progress=False)
    assert again["stats"]["run"] == 0
    rcfg = resolve_runtime(cfg)
    for f in ("balanced", "under-class3", "over-class5"):
        s = parse_scenario(f.replace("-", ":"), ds.classes)
        own, probs = predict(
            load_weights(rcfg, ds, RunLayout(run), s, torch.device("cpu")), torch.from_numpy(ds.x_test)
        )
        batched = np.load(run / "eval" / "clean" / f"{f}.npz")["predictions"]
        # the README's tolerance: the labels agree except where a model's top two classes are
        # within float rounding of each other (a near-tie that the batched pass may break the other way)
        top2 = np.sort(probs, axis=1)[:, -2:]
        assert np.all((batched == own) | (top2[:, 1] - top2[:, 0] < 1e-5)), f
    ref = Path(smoke_run["run_dir"])
    for f in ("balanced", "under-class3", "over-class5"):
        a = json.loads((ref / "eval" / "clean" / f"{f}.json").read_text())["accuracy"]
        b = json.loads((run / "eval" / "clean" / f"{f}.json").read_text())["accuracy"]
        assert abs(a - b) <= 0.1, (f, a, b)


def test_one_stack_holds_every_seed_and_every_defence_that_allows_it(smoke_cfg):
    """With --seeds 2 and the class-weight, re-sampling and FGSM-AT defences, the plan has one
    stack holding every seed's models and the weighted and re-sampled ones; the adversarially
    trained models train one by one."""
    from advimb.config.presets import resolve_config
    from advimb.data.sources import load_dataset
    from advimb.study.jobs.train import TrainGroupJob, TrainJob
    from advimb.study.plan import plan

    cfg = resolve_config(
        "smoke",
        overrides=[
            {
                "train": {"stack": "on"},
                "experiments": {
                    "seeds": 2,
                    "defences": ["class_weight", "resample", "fgsm_at"],
                    "defence_classes": ["class3"],
                },
            }
        ],
        env={},
    )
    jobs = plan(resolve_runtime(cfg), load_dataset(cfg.data))
    groups = [j for j in jobs if isinstance(j, TrainGroupJob)]
    alone = [j for j in jobs if isinstance(j, TrainJob)]
    assert len(groups) == 1
    members = groups[0].members
    assert sorted({m.replicate for m in members}) == [0, 1]
    assert {m.scenario.defence for m in members} == {"", "class_weight", "resample"}
    assert len(members) == 2 * (21 + 2)
    assert {j.scenario.defence for j in alone} == {"fgsm_at"} and len(alone) == 2 * 2


@pytest.mark.determinism
def test_stacked_training_resumes_from_an_epoch_checkpoint():
    """Interrupted after epoch 3 (model 1 has already left the stack), resumed from the state
    the epoch-end callback saw: every model's weights and history equal an uninterrupted run."""
    x, y, idx, vidx, models = _setup()
    cfg = TrainConfig(lr=1e-3, max_epochs=6, patience=1, min_delta=0.0, channels_last=False, precision="fp32")
    val = [(x[v], y[v]) for v in vidx]
    kw = {"seeds": [5, 6, 7], "augment": [False, True, False], "progress": False}
    saved = {}

    def stop_after_3(state):
        if state["epoch"] == 3:
            saved.update(copy.deepcopy(state))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, on_epoch_end=stop_after_3, **kw)
    assert any(saved["done"]) and not all(saved["done"])  # someone had stopped when it was interrupted
    resumed = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, resume=saved, **kw)
    straight = fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, val, cfg, **kw)
    for r, s in zip(resumed, straight):
        assert [h["val_loss"] for h in r.history] == [h["val_loss"] for h in s.history]
        assert r.best_epoch == s.best_epoch and r.stopped_epoch == s.stopped_epoch
        assert all(torch.equal(r.state_dict[k], s.state_dict[k]) for k in s.state_dict)


def test_interrupted_stacked_group_resumes_in_the_study(smoke_cfg, tmp_path, monkeypatch, capsys):
    """A study with train.stack=on stopped in the middle of its stack (when the first models
    finished epoch 2; the others are in the middle of an epoch) resumes the stack from its
    checkpoint and ends with the tables of an
    uninterrupted run."""
    import dataclasses
    import json
    from pathlib import Path

    from advimb.study.run import run_study
    from advimb.training import stacked

    cfg = dataclasses.replace(
        smoke_cfg, train=dataclasses.replace(smoke_cfg.train, stack="on", max_epochs=4, patience=4)
    )
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
    assert "resuming train 21 models stacked after step" in capsys.readouterr().err
    assert not list(run.glob("models/_stack-*/train_state.pt"))
    straight = Path(run_study(cfg, tmp_path / "straight", progress=False)["run_dir"])
    for t in ("table1.csv", "clean_accuracy.csv", "flip_rates.csv"):
        assert (run / "tables" / t).read_text() == (straight / "tables" / t).read_text(), t
    for m in ("under-class0", "over-class9"):
        a = json.loads((run / "models" / m / "meta.json").read_text())["history"]
        b = json.loads((straight / "models" / m / "meta.json").read_text())["history"]
        assert [h["val_loss"] for h in a] == [h["val_loss"] for h in b]


@pytest.mark.determinism
@pytest.mark.slow
def test_compiled_training_equals_eager():
    """train.compile=on (torch.compile of the training step; inductor on the CPU, CUDA graphs
    on a GPU) gives the eager results to float tolerance, one-by-one and in the one stack of
    unequal sizes with early stops and padded batches, where the step compiles once: any
    recompile (a changed shape) is an error here."""
    x, y, idx, vidx, models = _unequal()
    val = [(x[v], y[v]) for v in vidx]
    regimes = [Regime(), Regime(), Regime(class_weight=tuple(balanced_weights(y[idx[2]], 4))), Regime(resample=True)]
    out = {}
    for mode in ("off", "on"):
        cfg = TrainConfig(
            lr=1e-3,
            batch_size=16,
            max_epochs=7,
            patience=1,
            min_delta=0.0,
            channels_last=False,
            precision="fp32",
            compile=mode,
        )
        one = fit(copy.deepcopy(models[0]), (x[idx[0]], y[idx[0]]), val[0], cfg, seed=5, progress=False)
        torch._dynamo.reset()
        with torch._dynamo.config.patch(error_on_recompile=True):
            four = fit_stacked(
                [copy.deepcopy(m) for m in models],
                x,
                y,
                idx,
                val,
                cfg,
                seeds=[5, 6, 7, 8],
                augment=[False, True, False, True],
                regimes=regimes,
                progress=False,
            )
        out[mode] = [one, *four]
    assert len({r.stopped_epoch for r in out["on"][1:]}) > 1  # models stopped at different epochs
    for e, c in zip(out["off"], out["on"]):
        assert [h["val_loss"] for h in e.history] == pytest.approx([h["val_loss"] for h in c.history], rel=1e-4)
        for k in e.state_dict:
            assert torch.allclose(e.state_dict[k], c.state_dict[k], rtol=1e-3, atol=1e-4), k


def test_a_failing_compile_falls_back_to_eager(monkeypatch, capsys):
    """If torch.compile fails on the first step, the stack (and the one-by-one trainer) says
    so in one line and trains eager, with the eager results."""

    def broken(fn, mode=None):
        def fail(*a, **kw):
            raise RuntimeError("backend exploded\nlong traceback")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    x, y, idx, vidx, models = _setup(m=2)
    val = [(x[v], y[v]) for v in vidx]
    out = {}
    for mode in ("off", "on"):
        cfg = TrainConfig(lr=1e-3, max_epochs=2, channels_last=False, precision="fp32", compile=mode)
        out[mode] = fit_stacked(
            [copy.deepcopy(m) for m in models],
            x,
            y,
            idx,
            val,
            cfg,
            seeds=[5, 6],
            augment=[False, False],
            progress=False,
        )
        out[mode].append(fit(copy.deepcopy(models[0]), (x[idx[0]], y[idx[0]]), val[0], cfg, seed=5, progress=False))
    err = capsys.readouterr().err
    assert "torch.compile of the stacked step failed (RuntimeError: backend exploded); training eager" in err
    assert "torch.compile of the training step failed (RuntimeError: backend exploded); training eager" in err
    for e, c in zip(out["off"], out["on"]):
        assert all(torch.equal(e.state_dict[k], c.state_dict[k]) for k in e.state_dict)


def test_a_stack_checkpoints_at_most_every_so_often(tmp_path):
    from advimb.study.jobs.base import Checkpoint

    ck = Checkpoint(tmp_path / "s.pt", "key", every=3600.0)
    ck.save({"epoch": 1, "x": torch.zeros(1)})
    ck.save({"epoch": 2, "x": torch.ones(1)})  # within the hour: skipped
    assert ck.load(torch.device("cpu"), "job")["epoch"] == 1
    every = Checkpoint(tmp_path / "e.pt", "key")
    every.save({"epoch": 1})
    every.save({"epoch": 2})
    assert every.load(torch.device("cpu"), "job")["epoch"] == 2

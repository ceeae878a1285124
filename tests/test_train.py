import numpy as np
import pytest
import torch
from torch import nn

from advimb.config.sections import TrainConfig
from advimb.training.fit import EarlyStopping, fit, keras_lr, make_optimizer


def test_keras_inverse_time_decay_values():
    assert keras_lr(1e-4, 1e-5, 0) == 1e-4
    assert keras_lr(1e-4, 1e-5, 100_000) == pytest.approx(5e-5)
    assert keras_lr(1e-4, 1e-6, 1_000_000) == pytest.approx(5e-5)
    assert keras_lr(1e-4, 1e-5, 1563) == pytest.approx(1e-4 / 1.01563)
    assert keras_lr(1e-4, 0.0, 10**9) == 1e-4


def test_rmsprop_matches_keras_update_rule():
    """Keras 2 RMSprop: a = rho*a + (1-rho)*g^2; w -= lr * g / (sqrt(a) + eps)."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 2).double()
    cfg = TrainConfig(lr=1e-2, rho=0.9, eps=1e-7)
    opt = make_optimizer(lin, cfg)
    w = lin.weight.detach().numpy().copy()
    a = np.zeros_like(w)
    x = torch.randn(5, 3, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        lin(x).pow(2).sum().backward()
        g = lin.weight.grad.numpy().copy()
        opt.step()
        a = 0.9 * a + 0.1 * g**2
        w = w - 1e-2 * g / (np.sqrt(a) + 1e-7)
        np.testing.assert_allclose(lin.weight.detach().numpy(), w, rtol=1e-12, atol=1e-14)


def test_early_stopping_on_a_scripted_loss_sequence():
    es = EarlyStopping(min_delta=0.01, patience=3)
    seq = [1.0, 0.9, 0.895, 0.85, 0.86, 0.845, 0.849, 0.80]
    improved, stopped_at = [], None
    for epoch, v in enumerate(seq, 1):
        improved.append(es.step(v, epoch))
        if es.should_stop:
            stopped_at = epoch
            break
    # 0.895 is not 0.01 below 0.9; 0.845 is not 0.01 below 0.85 -> 3 epochs without improvement
    assert improved == [True, True, False, True, False, False, False]
    assert stopped_at == 7 and es.best_epoch == 4 and es.best == 0.85


def _toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = (torch.rand(n, 8, 8, 3, generator=g) * 60 + y[:, None, None, None] * 60).to(torch.uint8)
    return x, y


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def _fit(epochs, resume=None, on_epoch_end=None, patience=50):
    torch.manual_seed(0)
    model = Tiny()
    cfg = TrainConfig(
        lr=1e-2, batch_size=16, max_epochs=epochs, patience=patience, channels_last=False, precision="fp32"
    )
    res = fit(
        model,
        _toy(),
        _toy(48, seed=1),
        cfg,
        seed=7,
        augment=True,
        resume=resume,
        on_epoch_end=on_epoch_end,
        progress=False,
    )
    return model, res


@pytest.mark.determinism
def test_fit_is_deterministic_and_restores_best_weights():
    states = {}
    _, res = _fit(
        6, on_epoch_end=lambda s: states.__setitem__(s["epoch"], {k: v.clone() for k, v in s["model"].items()})
    )
    _, res2 = _fit(6)
    assert all(torch.equal(res.state_dict[k], res2.state_dict[k]) for k in res.state_dict)
    losses = [h["val_loss"] for h in res.history]
    assert res.best_epoch == int(np.argmin(losses)) + 1
    best = states[res.best_epoch]
    assert all(torch.equal(res.state_dict[k], best[k]) for k in best)
    assert set(res.history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert res.history[-1]["lr"] == pytest.approx(keras_lr(1e-2, 1e-5, res.steps))


@pytest.mark.determinism
def test_resume_from_an_epoch_checkpoint_gives_identical_weights():
    import copy

    saved = {}  # the callback's tensors are live: copy them when the epoch ends
    _fit(3, on_epoch_end=lambda s: saved.update(copy.deepcopy(s)) if s["epoch"] == 3 else None)
    _, resumed = _fit(6, resume=saved)
    _, straight = _fit(6)
    assert [h["val_loss"] for h in resumed.history] == pytest.approx([h["val_loss"] for h in straight.history])
    assert all(torch.equal(resumed.state_dict[k], straight.state_dict[k]) for k in straight.state_dict)


def test_training_stops_early():
    _, res = _fit(100, patience=2)
    assert res.stopped_epoch < 100
    assert res.stopped_epoch - res.best_epoch == 2


def test_restore_best_false_keeps_the_last_epochs_weights():
    import dataclasses

    states = {}
    torch.manual_seed(0)
    model = Tiny()
    cfg = TrainConfig(
        lr=1e-2, batch_size=16, max_epochs=6, patience=50, channels_last=False, precision="fp32", restore_best=False
    )
    res = fit(
        model,
        _toy(),
        _toy(48, seed=1),
        cfg,
        seed=7,
        augment=True,
        progress=False,
        on_epoch_end=lambda s: states.__setitem__(s["epoch"], {k: v.clone() for k, v in s["model"].items()}),
    )
    assert all(torch.equal(res.state_dict[k], states[6][k]) for k in states[6])
    _, best = _fit(6)  # the same training with restore_best = true keeps the best epoch instead
    assert best.best_epoch == res.best_epoch
    if res.best_epoch != 6:
        assert not all(torch.equal(res.state_dict[k], best.state_dict[k]) for k in best.state_dict)
    assert dataclasses.replace(cfg, restore_best=True) != cfg

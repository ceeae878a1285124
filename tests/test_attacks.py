import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advimb.attacks.core import fgsm, sign


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * 8 * 8, 5)
    )


def _data(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


@settings(max_examples=30, deadline=None)
@given(
    eps=st.floats(0, 1), seed=st.integers(0, 1000), clip=st.booleans(), direction=st.sampled_from(["ascent", "descent"])
)
def test_linf_bound_and_range(eps, seed, clip, direction):
    model, (x, y) = _model(seed), _data(seed)
    adv = fgsm(model, x, y, eps=eps, clip=clip, direction=direction)
    assert (adv - x).abs().max() <= eps + 1e-6
    if clip:
        assert adv.min() >= 0 and adv.max() <= 1
    else:  # unclipped: every pixel moves by exactly eps (or 0 where the gradient is 0)
        d = (adv - x).abs()
        assert torch.all(((d - eps).abs() < 1e-6) | (d < 1e-6))


def test_matches_the_formula_and_is_deterministic():
    model, (x, y) = _model(), _data()
    xg = x.clone().requires_grad_(True)
    F.cross_entropy(model(xg), y, reduction="sum").backward()
    expected = (x + 0.01 * xg.grad.sign()).clamp(0, 1)
    adv = fgsm(model, x, y, eps=0.01)
    assert torch.equal(adv, expected) and torch.equal(adv, fgsm(model, x, y, eps=0.01))


def test_ascent_raises_and_descent_lowers_the_loss():
    model, (x, y) = _model(), _data(n=64)
    loss = lambda z: F.cross_entropy(model(z), y).item()
    assert loss(fgsm(model, x, y, eps=0.03)) > loss(x) > loss(fgsm(model, x, y, eps=0.03, direction="descent"))


def test_gradient_label_targets_a_class():
    model, (x, y) = _model(), _data(n=64)
    to_two = fgsm(model, x, y, eps=0.05, grad_label=2, direction="descent")
    assert (model(to_two).argmax(1) == 2).sum() > (model(x).argmax(1) == 2).sum()


def test_sign_of_zero_conventions():
    g = torch.tensor([-2.0, 0.0, 3.0])
    assert sign(g, "torch").tolist() == [-1, 0, 1]
    assert sign(g, "plus").tolist() == [-1, 1, 1]
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    nn.init.zeros_(flat[1].weight)  # zero input gradient everywhere
    x, y = _data()
    assert torch.equal(fgsm(flat, x, y, eps=0.1, sign_zero="torch"), x)
    assert torch.allclose(fgsm(flat, x, y, eps=0.1, sign_zero="plus", clip=False), x + 0.1)


def test_model_in_training_mode_is_attacked_in_eval_mode_and_restored():
    model, (x, y) = _model(dropout=0.5), _data()
    model.train()
    a = fgsm(model, x, y, eps=0.01)
    b = fgsm(model, x, y, eps=0.01)
    assert model.training  # restored
    assert torch.equal(a, b)  # no dropout noise: eval mode was used
    model.eval()
    assert torch.equal(a, fgsm(model, x, y, eps=0.01))
    assert all(p.grad is None for p in model.parameters())


def test_batched_equals_whole():
    model, (x, y) = _model(), _data(n=32)
    whole = fgsm(model, x, y, eps=0.01)
    parts = torch.cat([fgsm(model, x[i : i + 8], y[i : i + 8], eps=0.01) for i in range(0, 32, 8)])
    assert torch.equal(whole, parts)


def test_eps_outside_unit_interval_is_rejected():
    model, (x, y) = _model(), _data()
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=1.5)


# ----------------------------------------------------------------------------- every attack

from advimb.attacks.core import attack_params, bim, get_attack, list_attacks, pgd


def _kw(name, eps, seed):
    """A seeded random start for every attack that draws one (PGD, CW)."""
    return {"generator": torch.Generator().manual_seed(seed)} if "random_start" in attack_params(name) else {}


@pytest.mark.parametrize("name", list_attacks())
@settings(max_examples=15, deadline=None)
@given(
    eps=st.floats(0.0, 0.3),
    seed=st.integers(0, 1000),
    clip=st.booleans(),
    direction=st.sampled_from(["ascent", "descent"]),
)
def test_every_attack_keeps_its_bound_and_range_and_is_deterministic(name, eps, seed, clip, direction):
    attack = get_attack(name)
    model, (x, y) = _model(seed), _data(seed, n=8)
    adv = attack(model, x, y, eps=eps, clip=clip, direction=direction, **_kw(name, eps, seed))
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert (adv - x).abs().max() <= eps + 1e-6
    if clip:
        assert adv.min() >= 0 and adv.max() <= 1
    again = attack(model, x, y, eps=eps, clip=clip, direction=direction, **_kw(name, eps, seed))
    assert torch.equal(adv, again)


@settings(max_examples=20, deadline=None)
@given(eps=st.floats(0.0, 0.5), seed=st.integers(0, 1000), sign_zero=st.sampled_from(["torch", "plus"]))
def test_fgsm_is_one_bim_step_of_size_eps(eps, seed, sign_zero):
    model, (x, y) = _model(seed), _data(seed)
    assert torch.equal(
        fgsm(model, x, y, eps=eps, sign_zero=sign_zero),
        bim(model, x, y, eps=eps, steps=1, step_size=eps, sign_zero=sign_zero),
    )


@pytest.mark.parametrize("name", list_attacks())
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_ascent_raises_and_descent_lowers_the_true_label_loss_on_average(name, seed):
    attack = get_attack(name)
    model, (x, y) = _model(seed), _data(seed, n=64)
    loss = lambda z: F.cross_entropy(model(z), y).item()
    up = attack(model, x, y, eps=0.03, **_kw(name, 0.03, seed))
    down = attack(model, x, y, eps=0.03, direction="descent", **_kw(name, 0.03, seed))
    assert loss(up) > loss(x) > loss(down)


@pytest.mark.parametrize("name", list_attacks())
def test_every_attack_runs_a_training_mode_model_in_eval_mode_and_restores_it(name):
    attack = get_attack(name)
    model, (x, y) = _model(dropout=0.5), _data()
    model.train()
    a = attack(model, x, y, eps=0.02, **_kw(name, 0.02, 0))
    assert model.training, "the attack left the model in eval mode"
    model.eval()
    assert torch.equal(a, attack(model, x, y, eps=0.02, **_kw(name, 0.02, 0)))  # dropout was off
    assert all(p.grad is None for p in model.parameters())


def test_targeted_attacks_move_images_to_the_target():
    model, (x, y) = _model(), _data(n=64)
    for name in list_attacks():
        adv = get_attack(name)(model, x, y, eps=0.1, target=2, **_kw(name, 0.1, 0))
        assert (model(adv).argmax(1) == 2).sum() > (model(x).argmax(1) == 2).sum(), name


def test_pgd_start_is_seeded_and_inside_the_ball():
    model, (x, y) = _model(), _data()
    a = pgd(model, x, y, eps=0.05, steps=1, step_size=1e-9, generator=torch.Generator().manual_seed(1))
    b = pgd(model, x, y, eps=0.05, steps=1, step_size=1e-9, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b) and (a - x).abs().max() <= 0.05 + 1e-6

"""advimb's attacks against reference libraries on the same model, inputs and seed.

torchattacks (FGSM, BIM, PGD, MIFGSM) and Foolbox 3 (FGSM, BIM, PGD without random start);
MIM from a random start against RoBal's ``_mim_whitebox`` loop written out.
Conventions are aligned, and each difference is said where it is set:
- loss reduction: torchattacks averages the cross-entropy over the batch, advimb and Foolbox
  sum it; only the gradient's sign is used, and with a batch of 16 (a power of two) the
  mean is the sum scaled exactly, so the signs agree bit for bit;
- sign(0) = 0 in all three (advimb's default ``sign_zero='torch'``);
- clipping: all project onto the eps ball and then onto [0, 1] (advimb's default ``clip``);
- step size: BIM/PGD get the same absolute step; torchattacks' PGD draws its random start
  with torch's global generator, so advimb's ``pgd`` is called with ``generator=None`` after
  the same ``torch.manual_seed``.
Tolerance: 1e-6 absolute (float32 pixels in [0, 1] have a spacing of 6e-8 near 1; the
libraries compute x + (x_adv - x).clamp(...) or clamp(x_adv, x - eps, x + eps), which can
differ by a few ulps, never by a step).
"""

from __future__ import annotations

import foolbox as fb
import pytest
import torch
import torchattacks
from torch import nn

from advimb.attacks.core import bim, fgsm, mim, pgd

ATOL = 1e-6

pytestmark = pytest.mark.determinism  # rerun under other CPU code paths (tests/test_determinism.py)


def _model(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(8 * 8 * 8, 10),
    )
    return m.eval()


def _data(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("eps", [0.004, 0.01, 0.03])
def test_fgsm_matches_torchattacks_and_foolbox(eps):
    model, (x, y) = _model(), _data()
    ours = fgsm(model, x, y, eps=eps)
    ta = torchattacks.FGSM(model, eps=eps)(x, y)
    assert torch.allclose(ours, ta, atol=ATOL, rtol=0)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, fb_adv, _ = fb.attacks.FGSM()(fmodel, x, y, epsilons=eps)
    assert torch.allclose(ours, fb_adv, atol=ATOL, rtol=0)


@pytest.mark.parametrize("eps,steps,alpha", [(0.01, 5, 0.0025), (0.03, 10, 0.005)])
def test_bim_matches_torchattacks_and_foolbox(eps, steps, alpha):
    model, (x, y) = _model(1), _data(1)
    ours = bim(model, x, y, eps=eps, steps=steps, step_size=alpha)
    ta = torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)(x, y)
    assert torch.allclose(ours, ta, atol=ATOL, rtol=0)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=alpha, steps=steps, random_start=False)
    _, fb_adv, _ = attack(fmodel, x, y, epsilons=eps)
    assert torch.allclose(ours, fb_adv, atol=ATOL, rtol=0)


def test_pgd_matches_torchattacks_with_the_same_seed():
    model, (x, y) = _model(2), _data(2)
    eps, alpha, steps = 0.02, 0.005, 7
    torch.manual_seed(123)
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
    torch.manual_seed(123)
    ours = pgd(model, x, y, eps=eps, steps=steps, step_size=alpha, random_start=True)
    assert torch.allclose(ours, ta, atol=ATOL, rtol=0)
    assert not torch.allclose(ours, bim(model, x, y, eps=eps, steps=steps, step_size=alpha))  # the start matters


def test_pgd_without_random_start_matches_foolbox():
    model, (x, y) = _model(3), _data(3)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.LinfPGD(abs_stepsize=0.004, steps=6, random_start=False)
    _, fb_adv, _ = attack(fmodel, x, y, epsilons=0.015)
    ours = pgd(model, x, y, eps=0.015, steps=6, step_size=0.004, random_start=False)
    assert torch.allclose(ours, fb_adv, atol=ATOL, rtol=0)


def test_targeted_fgsm_matches_torchattacks():
    """Targeted: descend the target class's loss (torchattacks' set_mode_targeted_by_function)."""
    model, (x, y) = _model(4), _data(4)
    target = (y + 1) % 10
    ta = torchattacks.FGSM(model, eps=0.02)
    ta.set_mode_targeted_by_function(lambda images, labels: (labels + 1) % 10)
    assert torch.allclose(fgsm(model, x, y, eps=0.02, target=target), ta(x, y), atol=ATOL, rtol=0)


def test_targeted_fgsm_matches_foolbox():
    """Foolbox's FGSM refuses targeted criteria; its BIM with one step of size eps is FGSM."""
    model, (x, y) = _model(5), _data(5)
    target = torch.full_like(y, 5)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=0.02, steps=1, random_start=False)
    _, fb_adv, _ = attack(fmodel, x, fb.criteria.TargetedMisclassification(target), epsilons=0.02)
    assert torch.allclose(fgsm(model, x, y, eps=0.02, target=5), fb_adv, atol=ATOL, rtol=0)


@pytest.mark.parametrize("eps,steps,alpha", [(0.01, 5, 0.0025), (0.031, 20, 0.0078)])
def test_mim_without_random_start_matches_torchattacks_mifgsm(eps, steps, alpha):
    model, (x, y) = _model(4), _data(4)
    ours = mim(model, x, y, eps=eps, steps=steps, step_size=alpha, random_start=False)
    ta = torchattacks.MIFGSM(model, eps=eps, alpha=alpha, steps=steps, decay=1.0)(x, y)
    assert torch.allclose(ours, ta, atol=ATOL, rtol=0)
    assert not torch.allclose(ours, bim(model, x, y, eps=eps, steps=steps, step_size=alpha))  # momentum matters


def test_mim_from_a_random_start_is_robals_loop():
    """RoBal's ``attacks/other_attacks.py::_mim_whitebox`` (mean cross-entropy, gradient over its
    mean absolute value, momentum with decay 1, sign step, ball then [0, 1]) from the same start."""
    model, (x, y) = _model(5), _data(5)
    eps, steps, alpha = 0.031, 20, 0.0078
    start = (x + torch.empty_like(x).uniform_(-eps, eps, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    x_pgd, previous = start.clone(), torch.zeros_like(x)
    for _ in range(steps):
        x_pgd.requires_grad_(True)
        (g,) = torch.autograd.grad(nn.CrossEntropyLoss()(model(x_pgd), y), x_pgd)
        previous = 1.0 * previous + g / torch.mean(torch.abs(g), [1, 2, 3], keepdim=True)
        x_pgd = x_pgd.detach() + alpha * previous.sign()
        x_pgd = torch.clamp(x + torch.clamp(x_pgd - x, -eps, eps), 0, 1.0)
    ours = mim(model, x, y, eps=eps, steps=steps, step_size=alpha, x_init=start)
    assert torch.allclose(ours, x_pgd, atol=ATOL, rtol=0)

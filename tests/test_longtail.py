"""The long-tailed adversarial-robustness protocol (../shared/LONGTAIL.md): LDAM's split, the
papers' architectures, SGD with schedules and crops, TRADES, composed defences, the margin-loss
PGD, the long-tail robustness tables, and the ``longtail`` preset end to end at a tiny size."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advimb.attacks.core import cw, margin_loss, pgd
from advimb.cli import main
from advimb.config.io import from_dict
from advimb.config.sections import ExperimentConfig, ImbalanceConfig, ModelConfig, TrainConfig
from advimb.data.imbalance import Scenario, class_counts, ldam_indices, long_tail_counts, parse_scenario
from advimb.errors import UserError
from advimb.models import build_model
from advimb.results.longtail import split_classes, worst
from advimb.training.defences import PGDImages, Regime, TradesLoss, get_defence, log_prior, trades_kl, trades_loss
from advimb.training.fit import epoch_lr, fit, random_crop

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# ----------------------------------------------------------------------------- LDAM's split


@pytest.mark.parametrize(
    "rho,n_max,classes,total,first",
    [
        (100, 5000, 10, 12406, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]),
        (50, 5000, 10, 13996, [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100]),
        (10, 5000, 10, 20431, None),
        (100, 500, 100, 10847, None),
        (50, 500, 100, 12608, None),
        (10, 500, 100, 19573, None),
    ],
)
def test_ldam_counts_are_the_papers(rho, n_max, classes, total, first):
    counts = long_tail_counts("ldam", rho, n_max, classes)
    assert sum(counts) == total and counts[0] == n_max
    if first:
        assert counts == first


def _ldam_code(targets: np.ndarray, img_num_per_cls: list[int]) -> np.ndarray:
    """LDAM-DRW's ``IMBALANCECIFAR10.gen_imbalanced_data`` (imbalance_cifar.py), as written
    there: numpy's global generator seeded with rand_number = 0, then per class a shuffle."""
    np.random.seed(0)
    new = []
    for the_class, the_img_num in zip(np.unique(targets), img_num_per_cls, strict=True):
        idx = np.where(targets == the_class)[0]
        np.random.shuffle(idx)
        new.append(idx[:the_img_num])
    return np.concatenate(new)


def test_ldam_selection_is_ldams_code_on_a_labels_array():
    state = np.random.get_state()
    try:
        labels = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 5000))
        counts = long_tail_counts("ldam", 100, 5000, 10)
        ours = ldam_indices(labels, counts)
        theirs = _ldam_code(labels, counts)
    finally:
        np.random.set_state(state)
    assert np.array_equal(ours, np.sort(theirs)) and len(ours) == 12406
    assert np.bincount(labels[ours]).tolist() == counts
    # pinned: the first images LDAM keeps of the rarest class in this labels array
    assert ours[labels[ours] == 9][:3].tolist() == sorted(theirs[labels[theirs] == 9])[:3]


def test_a_longtail_ldam_scenario_reads_and_counts_from_long_tail_max():
    s = parse_scenario("longtail:ldam100+pgd_at+logit_adjust", CIFAR10)
    assert (s.profile, s.rho, s.defence) == ("ldam", 100.0, "pgd_at+logit_adjust")
    assert s.name(CIFAR10) == "longtail:ldam100+pgd_at+logit_adjust"
    counts = class_counts(
        Scenario("longtail", profile="ldam", rho=100), 10, ImbalanceConfig(majority_count=1000, long_tail_max=5000)
    )
    assert sum(counts) == 12406


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", ["resnet18_cifar", "preact_resnet18", "wrn_28_10", "wrn_34_10"])
@pytest.mark.parametrize("channels", [1, 3])
def test_each_long_tail_model_takes_a_training_step(name, channels):
    model = build_model(ModelConfig(name=name, init="torch"), 10, (channels, 32, 32), seed=0)
    x, y = torch.rand(4, channels, 32, 32), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (4, 10)
    # the step is SGD's, w - lr * grad, on every parameter (the weights moved as the gradient says)
    for name_, p in model.named_parameters():
        assert torch.allclose(p.detach(), start[name_] - 0.05 * p.grad, atol=1e-6), name_
    moved = [k for k, _ in model.named_parameters() if not torch.equal(model.state_dict()[k], start[k])]
    assert len(moved) > len(list(model.parameters())) // 2


def test_the_registry_lists_the_papers_models_as_not_stackable():
    from advimb.models import is_stackable, list_models

    for name in ("resnet18_cifar", "preact_resnet18", "wrn_28_10", "wrn_34_10"):
        assert name in list_models() and not is_stackable(name)
    n = sum(p.numel() for p in build_model(ModelConfig(name="wrn_28_10"), 10, (3, 32, 32)).parameters())
    assert abs(n - 36.5e6) < 0.1e6  # WideResNet-28-10's 36.5 M parameters


# ----------------------------------------------------------------------------- training


def test_sgd_with_a_schedule_is_torch_sgd_with_its_scheduler():
    """advimb's SGD and piecewise / cosine schedules against torch.optim.SGD stepped by
    MultiStepLR / CosineAnnealingLR on the same model, data and batches."""
    for schedule, make in (
        ("piecewise", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 3], gamma=0.1)),
        ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4)),
    ):
        cfg = TrainConfig(
            optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule=schedule,
            milestones=(2, 3), max_epochs=4, patience=4, batch_size=8, restore_best=False,
            precision="fp32", device="cpu", channels_last=False,
        )  # fmt: skip
        torch.manual_seed(0)
        x = torch.randint(0, 256, (16, 8, 8, 3), dtype=torch.uint8)
        y = torch.randint(0, 3, (16,))
        ref = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
        ours = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
        ours.load_state_dict(ref.state_dict())
        fit(ours, (x, y), (x, y), cfg, seed=1, progress=False)
        opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = make(opt)
        from advimb.config.seeds import derive_seed
        from advimb.training.regimes import epoch_order

        for epoch in range(4):
            assert opt.param_groups[0]["lr"] == pytest.approx(epoch_lr(cfg, epoch))
            gen = torch.Generator().manual_seed(derive_seed(1, "shuffle", epoch))
            perm = epoch_order(y, Regime(), gen)
            for i in range(0, 16, 8):
                idx = perm[i : i + 8]
                xb = x[idx].permute(0, 3, 1, 2).float() / 255
                opt.zero_grad()
                F.cross_entropy(ref(xb), y[idx]).backward()
                opt.step()
            sched.step()
        for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-6), schedule


def test_random_crop_is_torchvisions_crop_of_the_padded_image():
    import torchvision.transforms.functional as TF

    x = torch.rand(3, 3, 8, 8)
    shifts = torch.tensor([[0, 0], [4, 1], [2, 3]])
    out = random_crop(x, shifts, 2)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(out[i], TF.crop(F.pad(x[i], (2, 2, 2, 2)), dy, dx, 8, 8))


def test_trades_loss_is_its_formula_on_fixed_logits():
    clean = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    adv = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.2, 0.1]])
    y = torch.tensor([0, 1])
    p, q = clean.softmax(1), adv.softmax(1)
    kl = (p * (p.log() - q.log())).sum(1).mean()  # KL(f(x) || f(x')) per image, averaged
    assert trades_kl(clean, adv) == pytest.approx(float(kl), rel=1e-6)
    ce = -(clean.log_softmax(1)[torch.arange(2), y]).mean()
    assert trades_loss(clean, adv, y, 6.0, None) == pytest.approx(float(ce + 6 * kl), rel=1e-6)


def test_trades_with_class_weights_weighs_its_natural_term_on_fixed_logits():
    """``trades+class_weight``: mean_i w[y_i] CE_i + beta KL (the weights re-weigh the fit to the
    labels, the KL stays unweighted; Keras class_weight's mean, not torch's weighted mean).
    Before, the TRADES step dropped the weights without a word."""
    y_train = torch.tensor([0] * 6 + [1] * 2)
    d = get_defence("trades+class_weight")
    r = d.regime(d.spec(0.03, "all", 2, False), y_train, 2, None)
    assert r.class_weight == pytest.approx((8 / 12, 8 / 4)) and r.loss == TradesLoss(6.0)
    clean = torch.tensor([[2.0, 0.5], [0.0, 1.0], [1.5, -0.5]])
    adv = torch.tensor([[1.0, 1.0], [0.5, 0.2], [0.0, 0.3]])
    y = torch.tensor([0, 1, 1])
    w = torch.tensor(r.class_weight)
    ce = -clean.log_softmax(1)[torch.arange(3), y]  # per image
    p, q = clean.softmax(1), adv.softmax(1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    expected = (ce * torch.tensor([8 / 12, 8 / 4, 8 / 4])).mean() + 6 * kl
    assert float(r.loss(clean, y, w, None, adv)) == pytest.approx(float(expected), rel=1e-6)
    assert float(r.loss(clean, y, None, None, adv)) == pytest.approx(float(ce.mean() + 6 * kl), rel=1e-6)


def test_a_trades_step_uses_the_class_weights():
    """One epoch of trades against trades+class_weight from the same start: the weights change the
    trained model (before, both trained the same)."""
    from advimb.config.sections import TrainConfig
    from advimb.training.fit import fit

    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(24, 8, 8, 3, generator=gen) * 255).to(torch.uint8)
    y = torch.tensor([0] * 18 + [1] * 6)
    cfg = TrainConfig(lr=1e-2, batch_size=8, max_epochs=1, channels_last=False, precision="fp32", patience=5)
    states = []
    for name in ("trades", "trades+class_weight"):
        d = get_defence(name)
        regime = d.regime(d.spec(0.03, "all", 2, False), y, 2, None)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        res = fit(model, (x, y), (x, y), cfg, seed=1, augment=False, regime=regime, progress=False)
        states.append(res.state_dict)
    assert not torch.equal(states[0]["1.weight"], states[1]["1.weight"])


def test_balanced_softmax_offsets_are_the_log_prior():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    offsets = torch.tensor(log_prior(y, 3))
    assert torch.allclose(offsets, torch.tensor([0.5, 0.3, 0.2]).log(), atol=1e-6)
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    # the balanced softmax (Ren et al. 2020): p_j proportional to n_j exp(z_j)
    bs = (torch.tensor([50.0, 30.0, 20.0]) * logits.exp()) / (torch.tensor([50.0, 30.0, 20.0]) * logits.exp()).sum()
    assert torch.allclose((logits + offsets).softmax(1), bs, atol=1e-6)


def test_composed_defences_merge_their_regimes_and_refuse_two_attacks():
    y = torch.tensor([0] * 8 + [1] * 2)
    atbsl = get_defence("pgd_at+logit_adjust")
    assert atbsl.adversarial and not atbsl.stackable
    spec = atbsl.spec(8 / 255, "all", 10, False)
    assert spec == {
        "name": "pgd_at+logit_adjust",
        "parts": [{"name": "pgd_at", "eps": 8 / 255, "scope": "all", "steps": 10}, {"name": "logit_adjust"}],
    }
    r = atbsl.regime(spec, y, 2, None)
    assert r.images == PGDImages(8 / 255, (), 10)
    assert r.logit_adjust == pytest.approx(log_prior(y, 2))
    trades = get_defence("trades")
    assert trades.regime(trades.spec(0.03, "all", 5, False), y, 2, None).loss == TradesLoss(6.0)
    with pytest.raises(UserError, match="pgd_at and fgsm_rs_at both set the training images"):
        get_defence("pgd_at+fgsm_rs_at")
    with pytest.raises(UserError, match="name each defence once"):
        get_defence("logit_adjust+logit_adjust")
    with pytest.raises(UserError, match="is not one of"):
        get_defence("pgd_at+dropout")


# ----------------------------------------------------------------------------- attacks and config


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_margin_loss_pgd_stays_in_its_ball_and_lowers_the_margin():
    model, x, y = _Linear(), torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    logits = torch.tensor([[3.0, 1.0, 0.0, 2.5]])
    assert margin_loss(logits, torch.tensor([0])).item() == pytest.approx(-(3.0 - 2.5 + 50))
    gen = torch.Generator().manual_seed(0)
    x_adv = cw(model, x, y, eps=8 / 255, steps=5, generator=gen)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert margin_loss(model(x_adv), y).sum() > margin_loss(model(x), y).sum()
    assert not torch.equal(x_adv, pgd(model, x, y, eps=8 / 255, steps=5, generator=torch.Generator().manual_seed(0)))


def test_eps_is_given_as_a_fraction_in_configs():
    cfg = from_dict(ExperimentConfig, {"attack": {"eps": "8/255"}, "experiments": {"adv_eps": "2/255"}})
    assert cfg.attack.eps == 8 / 255 and cfg.experiments.adv_eps == 2 / 255
    with pytest.raises(UserError, match="a fraction such as 8/255"):
        from_dict(ExperimentConfig, {"attack": {"eps": "8/0"}})


def test_long_tail_metrics_split_the_classes_and_bootstrap_the_minimum():
    tail, head = split_classes([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 1 / 3)
    assert tail == [7, 8, 9] and head == [0, 1, 2]
    per = [(50.0, np.array([40.0, 60.0])), (20.0, np.array([30.0, 10.0])), (30.0, np.array([25.0, 35.0]))]
    (point, reps), c = worst(per)
    assert point == 20.0 and c == 1 and reps.tolist() == [25.0, 10.0]


def test_every_registered_defence_and_attack_has_its_papers_name():
    """The tables' row and column names (results.longtail, torch-free, beside the tables) cover
    every registered defence, every preset's long-tail composition, every registered attack and
    every long-tail attack: a new one without its name fails here, not silently in a table."""
    from advimb.attacks import list_attacks
    from advimb.config.additive import LONG_TAIL_ATTACKS
    from advimb.config.presets import PRESETS
    from advimb.results.longtail import METHODS, attack_label, method_name
    from advimb.training.defences import list_defences

    composed = {d for _, p in PRESETS.items() for d in p.overrides.get("experiments", {}).get("long_tail_defences", [])}
    missing = [d for d in [*list_defences(), *sorted(composed)] if d not in METHODS]
    assert not missing, missing
    assert method_name("pgd_at+logit_adjust") == "AT-BSL (Yue et al. 2024)" and method_name("mine") == "mine"
    names = [*list_attacks(), *(a["name"] for _, a in LONG_TAIL_ATTACKS.items())]
    unlabelled = [n for n in names if attack_label(n, 20) == n]
    assert not unlabelled, unlabelled
    assert attack_label("pgd", 20) == "PGD-20" and attack_label("torchattacks:AutoAttack", 20) == "AA"


# ----------------------------------------------------------------------------- end to end


def test_the_longtail_preset_runs_end_to_end_at_a_tiny_size(tmp_path, capsys):
    """The GPU preset as it is (SGD with its schedule, crops, held-out validation, robust
    checkpoint selection, PGD-AT, TRADES and AT-BSL, PGD-20 and CW), shrunk by overrides only
    where a CPU test needs it: synthetic data, a tiny ResNet, one epoch, two-step attacks, no
    AutoAttack; every table and the report section are built."""
    out = tmp_path / "run"
    argv = ["run", "--preset", "longtail", "--out", str(out), "--no-progress", "--n-boot", "200"]
    tiny = [
        "data.source='synthetic'",
        "data.synthetic={train_per_class=40, test_per_class=6}",
        "imbalance.majority_count=20",
        "imbalance.minority_count=5",
        "imbalance.long_tail_max=30",
        "imbalance.classes=['class0']",
        "experiments.long_tail=['ldam:10']",
        "experiments.long_tail_attacks=['cw']",
        "train.max_epochs=1",
        "train.batch_size=32",
        "train.val_per_class=4",
        "attack.steps=2",
        "experiments.adv_steps=1",
        "model.name='resnet_small'",  # the preset's ResNet-18 at CPU-test size (its step: tested above)
        "model.widths=[4, 8, 8]",
    ]
    for t in tiny:
        argv += ["--set", t]
    assert main(argv) == 0, capsys.readouterr().err
    with open(out / "tables" / "long_tail_robustness.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    methods = {r["method"] for r in rows}
    assert {"plain (cross-entropy)", "PGD-AT (Madry et al. 2018)", "TRADES (Zhang et al. 2019)"} <= methods
    assert "AT-BSL (Yue et al. 2024)" in methods and {r["attack"] for r in rows} == {"PGD-2", "CW-2"}
    assert {r["gradient"] for r in rows} == {"same_model", "balanced_model"}
    record = json.loads((out / "scenarios" / "longtail-ldam10.json").read_text())
    assert list(record["counts"].values()) == long_tail_counts("ldam", 10, 30, 10)
    # the selection it was trained with, LDAM-DRW's draws, not the configured one (the bug: "random")
    assert record["selection"] == "ldam"
    assert json.loads((out / "scenarios" / "balanced.json").read_text())["selection"] == "random"
    hist = (out / "models" / "longtail-ldam10+trades" / "history.csv").read_text()
    assert "val_robust_accuracy" in hist.splitlines()[0]
    assert "val_robust_accuracy" not in (out / "models" / "longtail-ldam10" / "history.csv").read_text()
    page = (out / "report" / "index.html").read_text()
    assert "Long-tailed robustness" in page and "fig11_long_tail_robustness" in page

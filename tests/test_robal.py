"""RoBal (Wu et al. 2021) against its code's formulas (``wutong16/Adversarial_Long-Tail``, as
``../shared/LONGTAIL.md`` names the files), the answers written out by hand: the cosine
classifier, the class-aware margins and bias, the scaled cross-entropy with the KL term, the
training images, RoBal-N's test-time correction; its head on every registered model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advimb.config.sections import ModelConfig
from advimb.errors import UserError
from advimb.models import build_model, list_models
from advimb.training.defences import (
    Corrected,
    Correction,
    CosineClassifier,
    CosineHead,
    RobalImages,
    attach_head,
    get_defence,
    robal_loss,
    robal_margins,
)

COUNTS = (400, 100, 25)  # a three-class long tail, n_min = 25, N = 525


def test_the_cosine_classifier_is_cosplus_on_fixed_features_and_weights():
    """``CosPlus``: (x / ||x||) . (W / (||W|| + 0.03125)), scale 1, no bias."""
    head = CosineClassifier(2, 3)
    w = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    with torch.no_grad():
        head.weight.copy_(torch.tensor(w, dtype=torch.float32))
    x = np.array([[6.0, 8.0], [0.0, -1.0]])
    ex = x / np.linalg.norm(x, axis=1, keepdims=True)  # [[0.6, 0.8], [0, -1]]
    ew = w / (np.linalg.norm(w, axis=1, keepdims=True) + 0.03125)  # norms 5, 2, 1
    expected = ex @ ew.T  # e.g. [0, 0]: (0.6 * 3 + 0.8 * 4) / 5.03125
    out = head(torch.tensor(x, dtype=torch.float32))
    assert out.detach().numpy() == pytest.approx(expected, abs=1e-6)
    assert float(out[0, 0].detach()) == pytest.approx(5.0 / 5.03125, abs=1e-6)
    assert not any(n == "bias" for n, _ in head.named_parameters())
    assert torch.equal(head(torch.zeros(1, 2)), torch.zeros(1, 3))  # norm 0: cosines 0, not NaN


def test_margins_and_bias_are_robals_for_both_variants():
    """margin_c = tau_m log(n_c / n_min) / s + m (s = 10, m = 0.1); bias_c = tau_b log(n_c / N)."""
    assert robal_margins(COUNTS, 0.0) == pytest.approx((0.1, 0.1, 0.1))
    assert robal_margins(COUNTS, 0.3) == pytest.approx(
        (0.3 * math.log(16) / 10 + 0.1, 0.3 * math.log(4) / 10 + 0.1, 0.1)
    )
    y = torch.tensor([0] * 400 + [1] * 100 + [2] * 25)
    for name, tau_b, tau_m in (("robal_n", 1.2, 0.0), ("robal_r", 1.5, 0.3)):
        d = get_defence(name)
        r = d.regime(d.spec(0.031, "all", 5, False), y, 3, None)
        assert r.logit_adjust == pytest.approx(tuple(tau_b * math.log(n / 525) for n in COUNTS))
        assert r.loss.margins == pytest.approx(robal_margins(COUNTS, tau_m))
        assert r.head == CosineHead(0.03125) and r.images == RobalImages(0.031, (), 5, 0.0078)
    n = get_defence("robal_n").regime(get_defence("robal_n").spec(0.031, "all", 5, False), y, 3, None)
    assert n.correction == Correction(tuple(-0.1 * math.log(c / 525) for c in COUNTS), 10.0)
    assert (
        get_defence("robal_r").regime(get_defence("robal_r").spec(0.031, "all", 5, False), y, 3, None).correction
        is None
    )


def test_robals_loss_is_its_formula_on_fixed_cosines():
    """CE(10 (cos_adv - margin on the true class) + bias, y) + 6 KL(softmax(cos) || softmax(cos_adv)),
    written out in numpy; with class weights the CE's images are weighted (Keras' mean)."""
    clean = np.array([[0.9, 0.1, -0.2], [0.2, 0.7, 0.1]])
    adv = np.array([[0.5, 0.4, 0.0], [0.3, 0.3, 0.2]])
    y = np.array([0, 2])
    margins = np.array(robal_margins(COUNTS, 0.3))
    bias = 1.5 * np.log(np.array(COUNTS) / 525)
    z = adv.copy()
    z[np.arange(2), y] -= margins[y]
    z = 10 * z + bias
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    ce = -log_p[np.arange(2), y]
    p = np.exp(clean) / np.exp(clean).sum(1, keepdims=True)
    q = np.exp(adv) / np.exp(adv).sum(1, keepdims=True)
    kl = (p * (np.log(p) - np.log(q + 1e-12))).sum() / 2
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    ours = robal_loss(t(clean), t(adv), torch.tensor(y), t(margins), t(bias))
    assert float(ours) == pytest.approx(float(ce.mean() + 6 * kl), rel=1e-5)
    w = np.array([0.5, 1.0, 3.0])
    weighted = robal_loss(t(clean), t(adv), torch.tensor(y), t(margins), t(bias), t(w))
    assert float(weighted) == pytest.approx(float((ce * w[y]).mean() + 6 * kl), rel=1e-5)
    d = get_defence("robal_r")
    r = d.regime(d.spec(0.031, "all", 5, False), torch.tensor([0] * 400 + [1] * 100 + [2] * 25), 3, None)
    via_regime = r.loss(t(clean), torch.tensor(y), None, torch.tensor(r.logit_adjust, dtype=torch.float32), t(adv))
    assert float(via_regime) == pytest.approx(float(ce.mean() + 6 * kl), rel=1e-5)  # the bias is the adjustment


def test_robals_training_images_are_its_code_from_a_one_sided_start():
    """``add_reg_train``: x + eps * rand, then 5 steps of sign(grad mean CE) * 0.0078, onto the ball
    and [0, 1], the model in eval mode; written out as its code, from the same generator state."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    x = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    eps, step = 0.031, 0.0078
    ours = RobalImages(eps, (), 5, step).craft(model, x, y, torch.Generator().manual_seed(9))
    assert model.training  # restored
    model.eval()
    x_adv = x + eps * torch.rand(x.shape, generator=torch.Generator().manual_seed(9))
    for _ in range(5):
        x_adv.requires_grad_()
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), [x_adv])
        x_adv = x_adv.detach() + step * torch.sign(g)
        x_adv = torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)
    assert torch.allclose(ours, x_adv, atol=1e-6, rtol=0)
    start = x + eps * torch.rand(x.shape, generator=torch.Generator().manual_seed(9))
    assert bool(((start - x) >= 0).all())  # the start is one-sided, as the code's torch.rand


def test_robal_n_is_evaluated_with_its_correction_and_robal_r_as_trained():
    """The evaluated structure: RoBal-N = 10 * cos - 0.1 log prior around the cosine head (the
    scale and offsets saved with the weights), RoBal-R the cosine head alone."""
    cfg = ModelConfig(widths=(4, 8, 8), fc=16)
    n = get_defence("robal_n").evaluated(build_model(cfg, 3, (3, 8, 8), seed=0), 3)
    r = get_defence("robal_r").evaluated(build_model(cfg, 3, (3, 8, 8), seed=0), 3)
    assert isinstance(n, Corrected) and isinstance(list(n.model.modules())[-1], CosineClassifier)
    assert not isinstance(r, Corrected) and isinstance(list(r.modules())[-1], CosineClassifier)
    c = Correction((0.2, -0.1, 0.05), 10.0)
    state = Corrected.saved(r.state_dict(), c)
    n.load_state_dict(state)
    x = torch.rand(2, 3, 8, 8)
    expected = 10.0 * r.eval()(x) + torch.tensor(c.offsets)
    assert torch.allclose(n.eval()(x), expected, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_the_cosine_head_replaces_every_registered_models_classifier(name):
    """Every registered model ends in an nn.Linear; RoBal's head takes its place and classifies."""
    cfg = ModelConfig(name=name, widths=(4, 8, 8), fc=16)
    model = build_model(cfg, 10, (3, 32, 32), seed=0)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    model = attach_head(model, CosineHead(), 10, seed=0)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, CosineClassifier))]
    assert isinstance(layers[-1], CosineClassifier) and len(layers) == linears  # the last linear, replaced
    out = model.eval()(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and bool((out.abs() <= 1.0 + 1e-5).all())  # cosines (scale 1)


def test_robal_composes_only_with_what_it_does_not_set():
    assert get_defence("robal_n+class_weight").fields >= {"class_weight", "images", "loss", "head", "correction"}
    for other, field in (("logit_adjust", "logit_adjust"), ("trades", "images"), ("pgd_at", "images")):
        with pytest.raises(UserError, match=f"both set the training {field}"):
            get_defence(f"robal_r+{other}")


# ----------------------------------------------------------------------------- RoBal's tables beside a run

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
WHOLE = {"classes": CIFAR10, "image_shape": [3, 32, 32], "train_per_class": [5000] * 10, "test_per_class": [1000] * 10}


def _row(method: str, attack: str, robust: float, clean: float, model: str = "longtail-ldam50") -> dict:
    return {
        "model": model,
        "method": method,
        "attack": attack,
        "gradient": "same_model",
        "robust": robust,
        "robust_lo": robust - 1.0,
        "robust_hi": robust + 1.0,
        "clean": clean,
        "clean_lo": clean - 1.0,
        "clean_hi": clean + 1.0,
    }


def test_robals_table_2_is_set_beside_a_run_in_its_setting_cell_by_cell():
    """In RoBal's setting (the robal preset on the whole CIFAR-10): each published cell beside the
    run's, the difference run minus paper; TRADES shown without a difference (its config is not in
    RoBal's repository); a model the run lacks says so."""
    from advimb.config.presets import resolve_config
    from advimb.results.robal import beside_robal, robal_setting

    cfg = resolve_config("robal", env={})
    assert robal_setting(cfg, WHOLE) == (["2"], [])
    rows = [
        _row("RoBal-N (Wu et al. 2021)", "PGD-20", 30.0, 70.0, "longtail-ldam50+robal_n"),
        _row("RoBal-N (Wu et al. 2021)", "AA (APGD-CE + APGD-T)", 28.0, 70.0, "longtail-ldam50+robal_n"),
        _row("TRADES (Zhang et al. 2019)", "PGD-20", 31.0, 55.0, "longtail-ldam50+trades"),
        _row("RoBal-N (Wu et al. 2021)", "PGD-20", 99.0, 99.0, "longtail-ldam100+robal_n"),  # another profile
    ]
    out = beside_robal(rows, cfg, WHOLE)
    assert out["why_not"] == [] and [t["id"] for t in out["tables"]] == ["2"]
    t = out["tables"][0]
    assert t["columns"] == ["clean", "FGSM", "PGD-20", "MIM-20", "CW-20", "AA"]
    by = {r["method"]: r for r in t["rows"]}
    n = by["RoBal-N"]["cells"]
    assert n[0]["diff"] == pytest.approx(70.0 - 75.52) and n[0]["inside"] is False
    assert n[2]["diff"] == pytest.approx(30.0 - 33.50) and n[2]["run"]["value"] == 30.0
    assert n[5]["diff"] == pytest.approx(28.0 - 31.72) and n[1]["run"] is None and n[1]["diff"] is None
    assert by["TRADES"]["cells"][2]["diff"] is None and "no TRADES config" in by["TRADES"]["note"]
    assert by["RoBal-R"]["note"] == "this run has no such model"
    from advimb.report.html import _robal_rows

    formatted = _robal_rows({"robal": out})[0]
    cell = next(r for r in formatted if r[0] == "RoBal-N")[3]
    assert cell.startswith("30.0 [29.0, 31.0] / 33.50 (-3.5") and "inside" not in cell


def test_no_robal_table_beside_a_run_out_of_its_setting_and_the_reasons_say_why():
    from advimb.config.presets import resolve_config
    from advimb.results.robal import beside_robal

    rows = [_row("RoBal-N (Wu et al. 2021)", "PGD-20", 30.0, 70.0, "longtail-ldam50+robal_n")]
    for overrides, reason in (
        ([{"train": {"max_epochs": 40, "patience": 40}}], "40 epochs"),
        ([{"model": {"name": "resnet18_cifar"}}], "the model is resnet18_cifar"),
        ([{"train": {"precision": "bf16"}}], "train in bf16"),
        ([{"experiments": {"long_tail": ["ldam:10"]}}], "the long-tailed profiles are ldam:10"),
        ([{"train": {"milestones": [60, 70]}}], "milestones [60, 70]"),
    ):
        out = beside_robal(rows, resolve_config("robal", overrides=overrides, env={}), WHOLE)
        assert out["tables"] == [] and any(reason in w for w in out["why_not"]), (reason, out["why_not"])
    small = {**WHOLE, "train_per_class": [500] * 10}
    out = beside_robal(rows, resolve_config("robal", env={}), small)
    assert out["tables"] == [] and any("not the whole CIFAR-10" in w for w in out["why_not"])
    assert resolve_config("robal", overrides=[{"experiments": {"long_tail": ["ldam:100"]}}], env={})
    out = beside_robal(
        rows, resolve_config("robal", overrides=[{"experiments": {"long_tail": ["ldam:100"]}}], env={}), WHOLE
    )
    assert [t["id"] for t in out["tables"]] == ["4"]  # Table 4 at rho = 100, its RoBal row not paired
    assert next(r for r in out["tables"][0]["rows"] if r["method"] == "RoBal")["note"].startswith(
        "the table does not say"
    )


def test_the_robal_preset_runs_end_to_end_at_a_tiny_size(tmp_path, capsys):
    """The preset as it is (WRN's SGD recipe, the last epoch kept, PGD-AT as RoBal's code, TRADES,
    RoBal-N and RoBal-R; FGSM, PGD-20, MIM, CW and RoBal's AA per class), shrunk by overrides only
    where a CPU test needs it; the report names why RoBal's table is not beside this run."""
    from advimb.cli import main

    out = tmp_path / "run"
    argv = ["run", "--preset", "robal", "--out", str(out), "--no-progress", "--n-boot", "200"]
    tiny = [
        "data.source='synthetic'",
        "data.synthetic={train_per_class=120, test_per_class=4}",
        "imbalance.majority_count=20",
        "imbalance.minority_count=5",
        "imbalance.long_tail_max=100",
        "imbalance.classes=['class0']",
        "train.max_epochs=2",
        "train.patience=2",
        "train.batch_size=32",
        "train.val_per_class=4",
        "attack.steps=2",
        "model.name='resnet_small'",
        "model.widths=[4, 8, 8]",
    ]
    for t in tiny:
        argv += ["--set", t]
    assert main(argv) == 0, capsys.readouterr().err
    import csv

    with open(out / "tables" / "long_tail_robustness.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {
        "plain (cross-entropy)",
        "PGD-AT as RoBal's code trains it",
        "TRADES (Zhang et al. 2019)",
        "RoBal-N (Wu et al. 2021)",
        "RoBal-R (Wu et al. 2021)",
    }
    assert {r["attack"] for r in rows} == {"PGD-2", "FGSM", "MIM-2", "CW-2", "AA (APGD-CE + APGD-T)"}
    import json

    meta = json.loads((out / "models" / "longtail-ldam50+robal_n" / "meta.json").read_text())
    assert meta["regime"]["head"]["kind"] == "CosineHead" and meta["regime"]["correction"]["scale"] == 10.0
    assert meta["stopped_epoch"] == 2 and meta["best_epoch"] == 2  # the last epoch kept
    import advimb

    model = advimb.load_model(out, "longtail-ldam50+robal_n")
    assert isinstance(model, Corrected) and isinstance(list(model.model.modules())[-1], CosineClassifier)
    assert not isinstance(advimb.load_model(out, "longtail-ldam50+robal_r"), Corrected)
    page = (out / "report" / "index.html").read_text()
    assert "RoBal&#39;s tables beside this run" in page or "RoBal's tables beside this run" in page
    assert "No comparison with RoBal" in page and "not CIFAR-10" in page

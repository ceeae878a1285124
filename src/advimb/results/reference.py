"""The paper's published numbers and the setting they belong to.

The paper's Table 1 and stated numbers ship as package data (``reference/possas_zhou.json``).
They are set beside a run's numbers only when the run is in the paper's setting
(:func:`paper_setting`): CIFAR-10's ten classes at 32x32, the paper's training counts, its
model and its attack on every test image. A 4-class dataset whose folders happen to be
named cat/dog/ship/truck, the reduced ``quick`` preset or another attack get no comparison,
and the report says why.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from advimb.config.sections import AttackConfig, ExperimentConfig, default_step
from advimb.data.dataset import CIFAR10_CLASSES

#: the paper's setting, in words (shown when a run is not in it)
PAPER_SETTING = (
    "CIFAR-10 (its ten classes, 32x32 RGB, 5,000 training and 1,000 test images each), 5,000 / "
    "1,000 training images per majority / minority class, the paper's reduced VGG (widths 32/64/128, "
    "FC-512) trained with its RMSProp protocol, FGSM with eps 0.01, ascent on the true label, every "
    "test image attacked"
)


def reference() -> dict[str, Any]:
    """The paper's published numbers (Table 1 and the text), shipped as package data."""
    return json.loads(resources.files("advimb").joinpath("reference/possas_zhou.json").read_text())


def paper_setting(cfg: ExperimentConfig | None, dataset: dict[str, Any]) -> list[str]:
    """How a run differs from the paper's setting, as reasons (empty: it is in it). ``dataset``
    is the manifest's dataset summary. The two protocols of docs/PROTOCOL.md (``paper``,
    ``faithful``: sign(0), clipping, dropout, decay, patience, validation, ...) are both the
    paper's setting. The data is taken to be CIFAR-10 when it is read as CIFAR-10 (its class
    names and counts checked by the loader and here); its pixels are not checked against a
    known fingerprint (the official archive's is not recorded, and copies such as the JPEG
    one legitimately differ)."""
    if cfg is None:
        return ["the run folder has no readable config.toml, so its setting cannot be checked"]
    if not dataset:
        return ["the run folder has no manifest.json with the dataset's description, so the data cannot be checked"]
    return data_differences(cfg, dataset) + _recipe_differences(cfg)


def data_differences(cfg: ExperimentConfig, dataset: dict[str, Any]) -> list[str]:
    """How a run's data differs from the paper's: CIFAR-10 whole, read as CIFAR-10."""
    why = []
    classes = tuple(dataset.get("classes", ()))
    if classes != CIFAR10_CLASSES:
        why.append(
            f"the dataset's classes are {', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''} "
            f"({len(classes)}), not CIFAR-10's ten"
        )
    elif cfg.data.source != "cifar10":
        why.append(
            f"data.source is {cfg.data.source!r}: only data read as CIFAR-10 (data.source = 'cifar10') is "
            "known to be CIFAR-10, whatever its folders are called"
        )
    shape = list(dataset.get("image_shape", []))
    if shape != [3, 32, 32]:
        why.append(f"the images are {'x'.join(map(str, shape))} (channels x height x width), not 3x32x32")
    if classes == CIFAR10_CLASSES and (
        dataset.get("train_per_class") != [5000] * 10 or dataset.get("test_per_class") != [1000] * 10
    ):
        why.append("the dataset is not the whole CIFAR-10 (5,000 training and 1,000 test images per class)")
    if cfg.data.resize or cfg.data.pad:
        why.append(f"the images are transformed (data.resize = {cfg.data.resize}, data.pad = {cfg.data.pad})")
    return why


def _recipe_differences(cfg: ExperimentConfig) -> list[str]:
    """How a run's counts, model, training, attack and evaluation differ from the paper's."""
    why = []
    im = cfg.imbalance
    if (im.majority_count, im.minority_count) != (5000, 1000):
        why.append(
            f"the training counts are {im.majority_count:,} / {im.minority_count:,} per majority / minority "
            "class (the paper's: 5,000 / 1,000)"
        )
    mo = cfg.model
    if mo.name not in ("vgg_paper", "vgg_authors") or tuple(mo.widths) != (32, 64, 128) or mo.fc != 512:
        why.append(
            f"the model is {mo.name} with widths {'/'.join(map(str, mo.widths))} and FC-{mo.fc} (the paper's: "
            "its reduced VGG, widths 32/64/128, FC-512)"
        )
    if mo.normalize != "none":
        why.append(f"the model normalises its input (model.normalize = {mo.normalize!r}; the paper: x / 255 only)")
    t = cfg.train
    if t.augment not in ("none", "hflip_except_over"):
        why.append(
            f"the training images are augmented with {t.augment!r} (the paper's text: none; the authors' code: "
            "random horizontal flips except for the over-sampled models, 'hflip_except_over')"
        )
    if (
        (t.lr, t.batch_size, t.max_epochs, t.rho, t.eps) != (1e-4, 32, 200, 0.9, 1e-7)
        or t.decay not in (1e-5, 1e-6)
        or t.patience not in (10, 20)
    ):
        why.append(
            f"the training is lr {t.lr:g}, batch {t.batch_size}, up to {t.max_epochs} epochs, rho {t.rho:g}, "
            f"decay {t.decay:g}, patience {t.patience} (the paper's protocol: RMSProp lr 1e-4, rho 0.9, batch 32, "
            "up to 200 epochs, decay 1e-5 (text) or 1e-6 (code), patience 10 or 20)"
        )
    if (t.optimizer, t.weight_decay, t.select) != ("rmsprop_keras", 0.0, "val_loss"):
        why.append(
            f"the optimiser is {t.optimizer} with weight decay {t.weight_decay:g} (schedule {t.schedule}), "
            f"checkpoints chosen by {t.select} (the paper: Keras RMSProp, no weight decay, the lowest validation loss)"
        )
    if t.validation == "unused":
        why.append(
            "the models early-stop on training images their scenario leaves out (train.validation = 'unused'; "
            "the paper: a split of the scenario's own images)"
        )
    a = cfg.attack
    if (a.name, a.eps, a.direction, a.grad_label, a.target) != ("fgsm", 0.01, "ascent", "true", ""):
        why.append(f"the attack is {describe_attack(a)} (the paper's: FGSM, eps 0.01, ascent on the true label)")
    if cfg.eval.test_per_class and cfg.eval.test_per_class < 1000:
        why.append(f"the first {cfg.eval.test_per_class} test images of each class are attacked (the paper: all 1,000)")
    return why


def describe_attack(a: AttackConfig) -> str:
    """The attack in words, e.g. ``FGSM, eps 0.01, ascent on the true label``; options are
    named only where they differ from the defaults."""
    words = [a.name.upper(), f"eps {a.eps:g}"]
    if a.name in ("bim", "pgd"):
        step = a.step_size or default_step(a.eps, a.steps)
        words.append(
            f"{a.steps} steps of {step:.3g}" + (", random start" if a.name == "pgd" and a.random_start else "")
        )
    if a.target:
        words.append(f"targeted at {a.target}")
    else:
        label = "the true label" if a.grad_label == "true" else f"label {a.grad_label}"
        words.append(f"{a.direction} on {label}")
    if a.sign_zero == "plus":
        words.append("sign(0) = +1")
    if not a.clip:
        words.append("no clipping to [0, 1]")
    return ", ".join(words)

"""The training policy: what a model is trained and early-stopped on, beyond its training
images. Three rules, each written once and used by every trainer (one by one or stacked):

- **validation source** (``train.validation``): ``split`` holds out a stratified
  ``val_fraction`` of the scenario's training images; ``balanced`` holds out the same images
  and keeps, of every class, as many as the smallest class has (the rest are neither trained
  nor validated on); ``test`` is the authors' leak, early stopping on the test set;
- **augmentation** (``train.augment``): horizontal flips for every model (``hflip``), for all
  but the over-sampled ones (``hflip_except_over``, the authors' code) or none, and always for
  a re-sampled training set (its duplicates get random flips); random crops of the
  zero-padded image (``crop``, ``crop_hflip`` with flips: the long-tail papers' recipe);
- **normalisation statistics** (``model.normalize = per_channel``): the mean and standard
  deviation per channel of the model's own training images, on the [0, 1] scale;
- **checkpoint selection** (``train.select``): the lowest validation loss, or for an
  adversarially trained model with ``val_robust`` the highest accuracy under PGD on the
  validation images (:func:`robust_validation`).

It also names what a scenario's model trains with (:class:`ScenarioSelection`,
:class:`Prepared`); the training job only orchestrates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from advimb.attacks.core import eval_mode, pgd, uniform_start
from advimb.config.sections import ExperimentConfig, TrainConfig
from advimb.config.seeds import derive_seed
from advimb.data.imbalance import balanced_subset, stratified_split
from advimb.devices import to_float
from advimb.errors import UserError
from advimb.scenario import Kind
from advimb.training.defences import Regime, get_defence


class Split(NamedTuple):
    """A scenario's selected training indices divided by the validation rule: what it trains
    on, what it early-stops on (empty for ``test``: the test set) and what is held out unused."""

    train: np.ndarray
    val: np.ndarray
    unused: np.ndarray


class ScenarioSelection(NamedTuple):
    """A scenario's training images: its counts per class, the selected indices (into the
    training set) and their division by the validation rule (not ``imbalance.selection``, the
    setting that names how they are drawn)."""

    counts: list[int]
    indices: np.ndarray
    split: Split


class Prepared(NamedTuple):
    """What a model trains with: its selection, its training indices on the device, the
    images it early-stops on, the initial model, whether it flips and its regime."""

    sel: ScenarioSelection
    train_idx: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor]
    model: nn.Module
    augment: bool
    regime: Regime


def validation_split(indices: np.ndarray, labels: np.ndarray, cfg: ExperimentConfig, seed: int) -> Split:
    """The training / validation / unused division of ``indices`` (into the training set)
    under ``cfg.train.validation``, the held-out part drawn from ``seed``."""
    unused = np.array([], dtype=np.int64)
    if cfg.train.validation == "test":  # the authors' leak: validate (early-stop) on the test set
        return Split(indices, unused, unused)
    if cfg.train.validation == "unused":  # every selected image trains; validate on the others
        return Split(*left_out(indices, labels, cfg.train.val_per_class, seed), unused)
    tr, val = stratified_split(indices, labels, cfg.train.val_fraction, seed)
    if cfg.train.validation == "balanced":  # held out but neither trained nor validated on: unused
        kept = balanced_subset(val, labels, derive_seed(seed, "balanced"))
        return Split(tr, kept, np.setdiff1d(val, kept))
    return Split(tr, val, unused)


def left_out(indices: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation): ``per_class`` validation images of every class, drawn by a seeded
    permutation per class from the training images that ``indices`` does not select; where a
    class has fewer left (CIFAR-10-LT's head class keeps all its images), the rest are held
    out of the class's selected images, which then do not train. Both sorted; a one-line error
    when a class has too few images in all."""
    rest = np.setdiff1d(np.arange(len(labels)), indices)
    rng = np.random.default_rng(seed)
    val, held = [], []
    for c in np.unique(labels):
        members, own = rest[labels[rest] == c], indices[labels[indices] == c]
        short = max(per_class - len(members), 0)
        if short >= len(own):
            raise UserError(
                f"train.validation = unused needs {per_class} validation images of class {c}, but it has "
                f"{len(members) + len(own)} in all; lower train.val_per_class"
            )
        val.append(rng.permutation(members)[:per_class])
        if short:
            held.append(rng.permutation(own)[:short])
    extra = np.concatenate(held) if held else np.array([], dtype=np.int64)
    return np.setdiff1d(indices, extra), np.sort(np.concatenate([*val, extra]))


def validation_data(
    cfg: ExperimentConfig, arrays: dict[str, torch.Tensor], val: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels a model early-stops on: its held-out training images ``val``, or
    the whole test set under the authors' leak (``train.validation = "test"``)."""
    if cfg.train.validation == "test":
        return arrays["x_test"], arrays["y_test"]
    return arrays["x_train"][val], arrays["y_train"][val]


def augments(cfg: ExperimentConfig, kind: Kind, regime: Regime) -> bool:
    """Does a model of scenario kind ``kind`` train on randomly flipped images?"""
    aug = cfg.train.augment
    rule = aug in ("hflip", "crop_hflip") or (aug == "hflip_except_over" and kind != Kind.OVER)
    return rule or regime.resample  # re-sampled duplicates get random flips


def crop_padding(train: TrainConfig) -> int:
    """The zero padding of the random crops a model trains on (0: no crops)."""
    return train.crop_padding if train.augment in ("crop", "crop_hflip") else 0


def normalisation(
    cfg: ExperimentConfig, x_train_u8: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """The per-channel mean and standard deviation, on CPU, of the model's training images
    (uint8 NHWC) when the model normalises its input, else ``(None, None)``."""
    if cfg.model.normalize != "per_channel":
        return None, None
    xf = x_train_u8.float().div(255)
    return xf.mean((0, 1, 2)).cpu(), xf.std((0, 1, 2)).cpu()


def selects_robust(train: TrainConfig, defence: str) -> bool:
    """Is a model's checkpoint chosen by robust validation accuracy? With ``train.select =
    val_robust``, an adversarially trained one's is; a plain one keeps the validation loss."""
    return train.select == "val_robust" and bool(defence) and get_defence(defence).adversarial


def robust_validation(
    val: tuple[torch.Tensor, torch.Tensor], eps: float, steps: int, seed: int, batch_size: int, channels_last: bool
) -> Callable[[nn.Module], float]:
    """A model's accuracy on the validation images ``val`` (uint8 NHWC, labels) under PGD with
    ``eps`` and ``steps``, from the same random start (drawn from ``seed``) every epoch."""

    def accuracy(model: nn.Module) -> float:
        gen = torch.Generator().manual_seed(seed)
        correct = 0
        for i in range(0, len(val[0]), batch_size):
            xb, yb = to_float(val[0][i : i + batch_size], channels_last), val[1][i : i + batch_size]
            x_adv = pgd(model, xb, yb, eps=eps, steps=steps, x_init=uniform_start(xb, eps, gen))
            with torch.no_grad(), eval_mode(model):
                correct += int((model(x_adv).argmax(1) == yb).sum())
        return correct / max(len(val[0]), 1)

    return accuracy

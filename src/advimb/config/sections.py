"""Frozen dataclass configs, one per stage, composed into :class:`ExperimentConfig`.

Defaults are the protocol as the paper's text describes it, with the corrections that
``docs/PROTOCOL.md`` names (seeded random selection, held-out validation split, clipping to
[0, 1]). Presets (``presets.py``) and config files only fill these dataclasses; every
value is validated here, at the boundary, with an error that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advimb.config.additive import ExecutorConfig, ExperimentsConfig, SweepConfig
from advimb.config.enums import (
    Augment,
    Auto,
    Direction,
    Init,
    Normalize,
    Optimizer,
    Precision,
    Schedule,
    Select,
    Selection,
    SignZero,
    Validation,
)
from advimb.config.io import to_dict
from advimb.config.keys import ADDED_LATER, EXECUTION_KEYS
from advimb.config.validate import _check, _enum


@dataclass(frozen=True)
class SyntheticConfig:
    """Procedural, class-structured 32x32 RGB images (see ``data.make_synthetic``)."""

    classes: int = 10
    train_per_class: int = 200
    test_per_class: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        _check(2 <= self.classes <= 100, "data.synthetic.classes", "must be in [2, 100]")
        _check(self.train_per_class >= 1, "data.synthetic.train_per_class", "must be >= 1")
        _check(self.test_per_class >= 1, "data.synthetic.test_per_class", "must be >= 1")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from.

    source: ``cifar10`` (torchvision download into the cache, or a local copy in ``dir``:
    official python batches, their tar.gz, an image-folder tree or an archive of one),
    ``folder`` (any image-folder dataset in ``dir``: ``train/<class>/*``, ``test/<class>/*``)
    or ``synthetic``. ``dir`` defaults to ``$ADVIMB_DATA``; ``cache_dir`` to
    ``$ADVIMB_CACHE`` or ``~/.cache/advimb``. Images keep their channels (1 for a
    grayscale dataset, 3 for colour). ``resize`` (0 = off): every image resized to
    ``resize`` x ``resize`` (bilinear, antialiased); then ``pad`` (0 = off): that many
    pixels of zeros added on every side (e.g. 28x28 MNIST-like images with ``pad = 2`` give
    the 32x32 the VGG needs: its three 2x2 pools need sides divisible by 8).
    """

    source: str = "cifar10"
    dir: str | None = None
    cache_dir: str | None = None
    download: bool = True
    resize: int = 0
    pad: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _check(
            0 <= self.resize <= 1024,
            "data.resize",
            "must be in [0, 1024] (0 = keep the size; N = resize every image to N x N)",
        )
        _check(0 <= self.pad <= 64, "data.pad", "must be in [0, 64] (pixels of zeros added on every side)")


@dataclass(frozen=True)
class CountsScenario:
    """An imbalance of your own (``[[imbalance.scenarios]]``): a ``name`` (letters, digits, ``_``
    and ``-``) and the training images of every class in label order (``counts``), or
    ``factory = "package.module:function"``, a callable ``(num_classes) -> counts`` of your
    code. Each is one model, evaluated like a long-tailed profile (every class attacked with
    its own gradient and the balanced model's; ``tables/long_tail.csv``)."""

    name: str = ""
    counts: tuple[int, ...] = ()
    factory: str = ""

    def __post_init__(self) -> None:
        import re

        _check(
            bool(re.fullmatch(r"[A-Za-z0-9_-]+", self.name)),
            "imbalance.scenarios.name",
            f"{self.name!r} must be letters, digits, _ or - (it names the model and its files)",
        )
        _check(
            bool(self.counts) != bool(self.factory),
            f"imbalance.scenarios ({self.name})",
            "give either counts (one per class, in label order) or factory, not both or neither",
        )
        _check(all(c >= 0 for c in self.counts), f"imbalance.scenarios ({self.name}).counts", "must be >= 0")


@dataclass(frozen=True)
class ImbalanceConfig:
    """The training scenarios (paper Sec. 3.1).

    ``balanced``: every class keeps ``majority_count`` images; ``under:<c>``: class c keeps
    ``minority_count``, the others ``majority_count``; ``over:<c>``: class c keeps
    ``majority_count``, the others ``minority_count``. ``classes`` limits the targets
    (names or indices; empty = every class). ``selection``: ``random`` (seeded, nested:
    a smaller subset of a class is a prefix of the same permutation) or ``first`` (the
    authors' code: drop the first images of the class in dataset order). ``scenarios``: your
    own count vectors (:class:`CountsScenario`), trained and evaluated beside the grid.
    ``long_tail_max``: the largest class's count of the long-tailed profiles (0 =
    ``majority_count``; CIFAR-10-LT: 5,000, CIFAR-100-LT: 500).
    """

    majority_count: int = 5000
    minority_count: int = 1000
    selection: str = "random"
    classes: tuple[str, ...] = ()
    scenarios: tuple[CountsScenario, ...] = ()
    long_tail_max: int = 0

    def __post_init__(self) -> None:
        names = [c.name for c in self.scenarios]
        _check(len(set(names)) == len(names), "imbalance.scenarios", f"names must be unique, got {names}")
        _check(self.majority_count >= 1, "imbalance.majority_count", "must be >= 1")
        _check(self.minority_count >= 1, "imbalance.minority_count", "must be >= 1")
        _enum(self, "selection", Selection, "imbalance.selection")
        _check(self.long_tail_max >= 0, "imbalance.long_tail_max", "must be >= 0 (0 = majority_count)")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture from the registry (``advimb list``), input in [0, 1].

    ``vgg_paper``: the paper's text (ReLU after every conv); ``vgg_authors``: the authors'
    code (linear conv stacks in blocks 2-3, dropout). ``normalize``: ``none`` (the paper)
    or ``per_channel`` (mean/std of the balanced training set, inside the model).
    ``init``: ``keras`` (Glorot-uniform weights, zero biases, as the Keras original) or
    ``torch`` (PyTorch defaults).
    """

    name: str = "vgg_paper"
    widths: tuple[int, ...] = (32, 64, 128)
    fc: int = 512
    normalize: str = "none"
    init: str = "keras"

    def __post_init__(self) -> None:
        _check(
            len(self.widths) == 3 and all(w >= 1 for w in self.widths),
            "model.widths",
            "must be three positive integers",
        )
        _check(self.fc >= 1, "model.fc", "must be >= 1")
        _enum(self, "normalize", Normalize, "model.normalize")
        _enum(self, "init", Init, "model.init")


@dataclass(frozen=True)
class TrainConfig:
    """RMSProp with Keras semantics and early stopping (docs/PROTOCOL.md, Training).

    lr_t = lr / (1 + decay * t), t = iterations so far (Keras inverse-time decay).
    ``validation``: ``split`` (stratified ``val_fraction`` of the scenario's training
    images, the correct default), ``balanced`` (the same held-out images, of which every
    class keeps as many as the smallest class has, so early stopping weighs every class
    alike; the training images are ``split``'s, and a scenario whose classes are all held
    out equally, such as ``balanced``, is ``split`` exactly) or ``test`` (the authors' leak:
    early stopping on the test set; faithful reproduction only). ``augment``: ``none``, ``hflip`` or
    ``hflip_except_over`` (the authors' code). ``device``: ``auto``, ``cpu``, ``cuda``...
    ``optimizer``: ``rmsprop_keras`` (the paper's) or ``sgd`` (with ``momentum``,
    ``nesterov``; ``decay`` is Keras' and applies to RMSProp only); ``weight_decay``: L2 added
    by the optimiser (either). ``schedule`` (SGD): ``none``, ``piecewise`` (lr times ``gamma``
    at each epoch of ``milestones``) or ``cosine`` (from lr to 0 over ``max_epochs``, per
    epoch). ``augment`` also: ``crop`` / ``crop_hflip``: a random 32x32 crop of the image
    zero-padded by ``crop_padding`` (and flips), the long-tail papers' augmentation.
    ``validation`` also: ``unused``: ``val_per_class`` images of every class from the training
    images the scenario leaves out (a long-tailed split leaves thousands of all but its head
    class; a class with too few left gives the rest from its own images, which then do not
    train: CIFAR-10-LT's head class, 50 of its 5,000 at 50 per class). ``select``: keep the weights of the epoch with the lowest validation
    loss (``val_loss``) or, for an adversarially trained model, the highest robust accuracy on
    the validation images (``val_robust``: PGD with the experiments' adversarial-training eps
    and steps), since adversarially trained models overfit robustly; early stopping watches the
    same number. A plain model keeps ``val_loss``.
    ``precision``: ``auto``, ``fp32`` or ``bf16`` (autocast). ``auto`` is resolved before
    a run starts: ``bf16`` where it pays (a GPU of compute capability >= 8, a CPU with AMX
    or an AMD CPU with AVX-512 BF16: :func:`advimb.devices.bf16_native`), else ``fp32``; the resolved value is what the
    run folder's config records. It changes results, so it is part of the science config.
    ``compile``: ``on``, ``off`` or ``auto`` (on for CUDA, off for the CPU, where it measured
    no gain): ``torch.compile`` of the training step (CUDA graphs on a GPU); an execution
    setting like ``stack``. ``stack``: train every stackable model of the study together as
    one stacked model of one shape (``advimb.training.stacked``): ``on``, ``off`` or ``auto``
    (on for CUDA, off for the CPU, where it measured slower; see BENCHMARKS.md). Stacked and
    one-by-one training agree to float rounding per step, so ``stack`` is an execution
    setting.
    """

    lr: float = 1e-4
    rho: float = 0.9
    eps: float = 1e-7
    decay: float = 1e-5
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 10
    min_delta: float = 1e-4
    restore_best: bool = True
    validation: str = "split"
    val_fraction: float = 0.1
    augment: str = "none"
    device: str = "auto"
    channels_last: bool = True
    threads: int = 0
    precision: str = "auto"
    stack: str = "auto"
    compile: str = "auto"
    optimizer: str = "rmsprop_keras"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    milestones: tuple[int, ...] = (75, 90)
    gamma: float = 0.1
    crop_padding: int = 4
    val_per_class: int = 100
    select: str = "val_loss"

    def __post_init__(self) -> None:
        _check(self.lr > 0, "train.lr", "must be > 0")
        _enum(self, "optimizer", Optimizer, "train.optimizer")
        _enum(self, "schedule", Schedule, "train.schedule")
        _enum(self, "select", Select, "train.select")
        _check(0 <= self.momentum < 1, "train.momentum", "must be in [0, 1)")
        _check(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        _check(all(m >= 1 for m in self.milestones), "train.milestones", "epochs must be >= 1")
        _check(0 < self.gamma <= 1, "train.gamma", "must be in (0, 1]")
        _check(self.crop_padding >= 0, "train.crop_padding", "must be >= 0")
        _check(self.val_per_class >= 1, "train.val_per_class", "must be >= 1")
        _check(
            self.schedule == "none" or self.optimizer == "sgd",
            "train.schedule",
            "applies to train.optimizer = 'sgd' (RMSProp keeps Keras' inverse-time train.decay)",
        )
        _enum(self, "precision", Precision, "train.precision")
        _enum(self, "compile", Auto, "train.compile")
        _enum(self, "stack", Auto, "train.stack")
        _check(0 <= self.rho < 1, "train.rho", "must be in [0, 1)")
        _check(self.eps > 0, "train.eps", "must be > 0")
        _check(self.decay >= 0, "train.decay", "must be >= 0")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(self.max_epochs >= 1, "train.max_epochs", "must be >= 1")
        _check(self.patience >= 1, "train.patience", "must be >= 1")
        _check(self.min_delta >= 0, "train.min_delta", "must be >= 0")
        _enum(self, "validation", Validation, "train.validation")
        _check(0 < self.val_fraction < 1, "train.val_fraction", "must be in (0, 1)")
        _enum(self, "augment", Augment, "train.augment")
        _check(self.threads >= 0, "train.threads", "must be >= 0 (0 = torch's default)")


def default_step(eps: float, steps: int) -> float:
    """The iterative attacks' step when none is given: 2.5 * eps / steps (Madry et al.)."""
    return 2.5 * eps / steps


@dataclass(frozen=True)
class AttackConfig:
    """The attack (paper Sec. 3.2): FGSM, one step of size ``eps`` on the [0, 1] scale.

    ``direction``: ``ascent`` (Eq. 1, the paper's choice) or ``descent`` (Eq. 2).
    ``grad_label``: ``true`` or a class (name or index) whose loss gradient is used.
    ``sign_zero``: ``torch`` (sign(0) = 0) or ``plus`` (sign(0) = +1, the authors' code).
    ``clip``: clip the result to [0, 1] (the authors' code did not).
    ``target``: a class (name or index): targeted attack towards it (descent on its loss).
    Iterative attacks (``bim``, ``pgd``): ``steps`` sign steps of ``step_size`` (0 = 2.5 *
    eps / steps), projected onto the eps ball and [0, 1]; ``pgd`` starts at a random point
    of the ball (``random_start``), drawn from the job's seed. ``params``: the constructor's
    arguments of a ``torchattacks:<Attack>`` (``advimb.attacks.plugins``), e.g.
    ``{norm = "Linf", version = "standard"}`` for ``torchattacks:AutoAttack``.
    """

    name: str = "fgsm"
    eps: float = 0.01
    direction: str = "ascent"
    grad_label: str = "true"
    target: str = ""
    clip: bool = True
    sign_zero: str = "torch"
    steps: int = 10
    step_size: float = 0.0
    random_start: bool = True
    batch_size: int = 0
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check(
            0.0 <= self.eps <= 1.0,
            "attack.eps",
            f"{self.eps} is outside [0, 1]; eps is on the [0, 1] pixel scale (paper: 0.01)",
        )
        _enum(self, "direction", Direction, "attack.direction")
        _enum(self, "sign_zero", SignZero, "attack.sign_zero")
        _check(self.batch_size >= 0, "attack.batch_size", "must be >= 0 (0 = auto: 500 on a CPU, 4096 on a GPU)")
        _check(self.steps >= 1, "attack.steps", "must be >= 1")
        _check(
            0.0 <= self.step_size <= 1.0,
            "attack.step_size",
            f"{self.step_size} is outside [0, 1] (0 = 2.5 * eps / steps)",
        )
        _check(
            not (self.target and self.grad_label != "true"),
            "attack.target",
            "a targeted attack descends the target's loss; leave attack.grad_label = 'true'",
        )


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation grid. Clean accuracy is always measured on the full test set.
    ``test_per_class``: attack the first N test images of each class (0 = all; the paper
    attacks all 1,000). ``examples``: adversarial images stored per attack job for figures.
    ``batch_size``: images per forward pass (0 = auto: 500 on a CPU, 4096 on a GPU).
    ``group_attacks``: ``on`` runs all attack jobs of one grid point as one job (each model
    loaded once, every gradient model's images attacked and classified in big batches),
    ``off`` runs them one by one, ``auto`` = ``on`` with the local executor and ``off`` with
    Dask (each attack job its own task, spread over the workers). Results are identical
    either way (an execution setting)."""

    test_per_class: int = 0
    batch_size: int = 0
    examples: int = 8
    group_attacks: str = "auto"

    def __post_init__(self) -> None:
        _check(self.test_per_class >= 0, "eval.test_per_class", "must be >= 0 (0 = all)")
        _check(self.batch_size >= 0, "eval.batch_size", "must be >= 0 (0 = auto: 500 on a CPU, 4096 on a GPU)")
        _enum(self, "group_attacks", Auto, "eval.group_attacks")
        _check(self.examples >= 0, "eval.examples", "must be >= 0")


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole study. ``seed`` drives selection, validation split, initialisation and
    batch order of every model (per-job seeds are derived from it and recorded)."""

    preset: str = "paper"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def science_dict(self) -> dict[str, Any]:
        """The config without the keys that only say where or how fast work runs
        (``EXECUTION_KEYS``): two runs with equal science dicts give the same results. A key
        added after run folders were published is left out at its default
        (``ADDED_LATER``), so their job keys stay valid."""
        d = self.to_dict()
        for section, key in EXECUTION_KEYS:
            d[section].pop(key, None)
        for (section, key), default in ADDED_LATER.items():
            if d[section].get(key) == default:
                d[section].pop(key)
        d.pop("sweep")  # additive grids: they add results and change none
        d.pop("experiments")  # additive too: each added job's key says what defines it
        d["imbalance"].pop("scenarios")  # additive too: a custom model's key holds its own counts
        d.pop("executor")  # who runs the jobs, not what they compute
        return d

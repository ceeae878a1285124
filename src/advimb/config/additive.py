"""The config sections that add jobs to a study or say who runs them, never changing a result of
the paper's grid: attack/eps sweeps, the experiments beyond the paper, the executor. Not part
of the science config (``ExperimentConfig.science_dict``); each added job's key says what
defines it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advimb.config.enums import AdvScope, ExecutorName, Resources
from advimb.config.validate import _check, _enum
from advimb.registry import Registry


@dataclass(frozen=True)
class SweepConfig:
    """Extra evaluation grids on the same trained models: every attack in ``attacks`` (default:
    ``attack.name``) at every eps in ``epsilons``, all 50 combinations each, written under
    ``sweep/<attack>-eps<eps>/``. Additive: it changes no result of the main grid, so it is
    not part of the science config. ``min_eps``: for FGSM, also find each image's minimal
    flipping eps by bisection up to ``max(epsilons)``."""

    attacks: tuple[str, ...] = ()
    epsilons: tuple[float, ...] = ()
    min_eps: bool = True

    def __post_init__(self) -> None:
        for e in self.epsilons:
            _check(0.0 < e <= 1.0, "sweep.epsilons", f"{e} is outside (0, 1]; eps is on the [0, 1] pixel scale")
        _check(len(set(self.epsilons)) == len(self.epsilons), "sweep.epsilons", "has duplicates")


#: the further attacks of ``experiments.long_tail_attacks``: the ``attack.*`` settings each changes
LONG_TAIL_ATTACKS: Registry[dict[str, Any]] = Registry(
    "config experiments.long_tail_attacks: {name!r} is not one of {names}", sort=False
)
for _name, _attack in (
    ("fgsm", {"name": "fgsm"}),
    ("pgd", {"name": "pgd"}),
    ("cw", {"name": "cw"}),
    ("mim", {"name": "mim"}),
    ("autoattack", {"name": "torchattacks:AutoAttack", "params": {"norm": "Linf", "version": "standard"}}),
    # RoBal's "AA": the official package's standard APGD-CE and APGD-T only, 100 iterations each
    (
        "apgd_ce_t",
        {"name": "torchattacks:APGD+APGDT", "params": {"norm": "Linf", "loss": "ce", "steps": 100, "n_restarts": 1}},
    ),
):
    LONG_TAIL_ATTACKS.add(_name, _attack)


@dataclass(frozen=True)
class ExperimentsConfig:
    """Experiments beyond the paper's grid. Each adds models and evaluations to the same
    run folder and changes no result of the main grid, so the table is not part of the
    science config; every job it adds carries in its own key whatever defines it.

    ``seeds``: independent replicates of every job (data selection, validation split,
    initialisation, batch order, PGD starts); replicate 0 uses ``seed``, replicate k > 0
    ``derive_seed(seed, "replicate", k)`` and lives in ``replicates/<k>/``.
    ``counts``: imbalance sweep: for every class in ``count_classes`` (empty = the grid's
    target classes) and every count n, an under-sampled model with n images of the class
    and ``imbalance.majority_count`` of the others (when n < majority_count) and an
    over-sampled one with n and ``imbalance.minority_count`` of the others (when n >
    minority_count); the paper's own under/over models are the points n = minority_count
    and n = majority_count. ``long_tail``: profiles ``exp:<rho>`` (n_i = majority_count *
    rho^(-i/(C-1)) for class i) and ``step:<rho>`` (the last half of the classes at
    majority_count / rho), each one model, every class attacked. ``defences``: training
    options (the registry of ``advimb.training.regimes``) applied to the under-sampled models of ``defence_classes``
    (empty = the grid's target classes), and for adversarial training to the balanced
    model too: ``class_weight`` (loss weighted by N / (C n_c)), ``resample`` (the minority
    class re-sampled with replacement up to the largest class, with horizontal flips),
    ``fgsm_at`` / ``pgd_at`` (training on FGSM / PGD images of eps ``adv_eps``, 0 =
    ``attack.eps``; PGD with ``adv_steps`` steps); ``adv_scope`` ``all`` or ``minority``
    (perturb only the under-sampled class's images). ``long_tail_defences``: defences (or
    compositions such as ``pgd_at+logit_adjust``, AT-BSL) each applied to every long-tailed
    model; ``long_tail_attacks``: further attacks on every long-tailed model and class, beside
    ``attack`` (``fgsm``, ``pgd``, ``cw``: PGD on the margin loss, ``mim``: PGD with momentum,
    ``autoattack``: torchattacks' AutoAttack, standard, Linf, ``apgd_ce_t``: its APGD-CE and
    APGD-T at 100 iterations, RoBal's "AA"; each with ``attack.eps``, the others also with
    ``attack.steps`` and ``attack.step_size``);
    ``tail_fraction``: the share of the classes, by training count, that the long-tail tables
    call the tail (the rarest) and the head (the most frequent).
    """

    seeds: int = 1
    counts: tuple[int, ...] = ()
    count_classes: tuple[str, ...] = ()
    long_tail: tuple[str, ...] = ()
    defences: tuple[str, ...] = ()
    defence_classes: tuple[str, ...] = ()
    adv_scope: str = "all"
    adv_eps: float = 0.0
    adv_steps: int = 7
    long_tail_defences: tuple[str, ...] = ()
    long_tail_attacks: tuple[str, ...] = ()
    tail_fraction: float = 1 / 3

    def __post_init__(self) -> None:
        _check(1 <= self.seeds <= 100, "experiments.seeds", "must be in [1, 100]")
        _check(all(n >= 1 for n in self.counts), "experiments.counts", "every count must be >= 1")
        _check(len(set(self.counts)) == len(self.counts), "experiments.counts", "has duplicates")
        for p in self.long_tail:  # the profile's name is checked against its registry (advimb.study.checks)
            kind, _, rho = p.partition(":")
            try:
                ok = bool(kind) and kind.isidentifier() and float(rho) >= 1
            except ValueError:
                ok = False
            _check(ok, "experiments.long_tail", f"{p!r} is not <profile>:<rho> with rho >= 1, e.g. exp:10")
        _enum(self, "adv_scope", AdvScope, "experiments.adv_scope")
        _check(0.0 <= self.adv_eps <= 1.0, "experiments.adv_eps", f"{self.adv_eps} is outside [0, 1] (0 = attack.eps)")
        _check(self.adv_steps >= 1, "experiments.adv_steps", "must be >= 1")
        for a in self.long_tail_attacks:
            _check(
                a in LONG_TAIL_ATTACKS,
                "experiments.long_tail_attacks",
                f"{a!r} is not one of {', '.join(LONG_TAIL_ATTACKS)}",
            )
        _check(
            not self.long_tail_defences or bool(self.long_tail),
            "experiments.long_tail_defences",
            "defend the long-tailed models of experiments.long_tail; give a profile there (e.g. ldam:100)",
        )
        _check(0 < self.tail_fraction <= 0.5, "experiments.tail_fraction", "must be in (0, 0.5]")


@dataclass(frozen=True)
class ExecutorConfig:
    """Who runs the jobs; never what they compute, so it is not part of the science config.

    ``name``: ``local`` (this process, in order) or ``dask`` (Dask distributed; ``pip
    install "advimb[dask]"``). For ``dask``: ``scheduler`` is a scheduler address
    (``tcp://host:8786``; empty = ``$DASK_SCHEDULER_ADDRESS``), else ``scheduler_file`` (a
    file written by ``dask scheduler --scheduler-file``), else advimb starts a LocalCluster
    on 127.0.0.1 with ``workers`` worker processes (0 = one per GPU on CUDA, else one per
    two CPU cores). ``retries``: how often a task that raised is retried (a task whose worker
    died is rescheduled by Dask, up to its ``allowed-failures``). ``resources``: ``auto``
    declares GPU=1 for every task when the device is CUDA (workers started with
    ``--resources GPU=1``), ``none`` declares nothing. ``connect_timeout``: seconds to wait
    for the scheduler.
    """

    name: str = "local"
    scheduler: str = ""
    scheduler_file: str = ""
    workers: int = 0
    retries: int = 2
    resources: str = "auto"
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        _enum(self, "name", ExecutorName, "executor.name")
        _check(self.workers >= 0, "executor.workers", "must be >= 0 (0 = automatic)")
        _check(0 <= self.retries <= 20, "executor.retries", "must be in [0, 20]")
        _enum(self, "resources", Resources, "executor.resources")
        _check(self.connect_timeout > 0, "executor.connect_timeout", "must be > 0 (seconds)")

"""The study as a list of jobs (:func:`plan`): the paper's grid, attack/eps sweeps and the
experiments beyond the paper, for every replicate, grouped for stacked training and
batched attacks where that is on. Executors run the list; every job follows the jobs it
depends on."""

from __future__ import annotations

import dataclasses

from advimb.config.sections import ExperimentConfig
from advimb.data.dataset import Dataset
from advimb.data.imbalance import Scenario, paper_scenarios, target_classes
from advimb.devices import resolve_device
from advimb.layout import sweep_folder
from advimb.models import build_model
from advimb.study.jobs.base import Job
from advimb.study.jobs.evaluate import AttackGroupJob, AttackJob, CleanEvalJob
from advimb.study.jobs.train import TrainGroupJob, TrainJob


def plan(config: ExperimentConfig, ds: Dataset) -> list[Job]:
    """The study as jobs, in an order where every job follows its dependencies: for each
    replicate (``experiments.seeds``), the paper's grid (21 trainings, 21 clean
    evaluations, 30 attack jobs holding the 50 combinations, plus any attack/eps sweep)
    and the experiments' models and attacks (``advimb.experiments``)."""
    from advimb.study.experiments import replicate_config

    out: list[Job] = []
    for k in range(config.experiments.seeds):
        out += _plan_replicate(replicate_config(config, k), ds, k)
    return out


def _plan_replicate(config: ExperimentConfig, ds: Dataset, k: int) -> list[Job]:
    from advimb.study.experiments import experiment_grid

    classes, fp = ds.classes, ds.fingerprint
    scenarios = paper_scenarios(config.imbalance, classes)
    extra, extra_attacks = experiment_grid(config, classes)
    train = {s: TrainJob(config, classes, fp, k, scenario=s) for s in [*scenarios, *extra]}
    clean = [CleanEvalJob(config, classes, fp, k, scenario=s, model_key=j.key) for s, j in train.items()]
    attacks: list[AttackJob] = []

    def attack(cfg: ExperimentConfig, grad: Scenario, target: int, evaluated: tuple[Scenario, ...], **kw) -> None:
        keys = tuple(dict.fromkeys(train[s].key for s in (grad, *evaluated)))
        attacks.append(AttackJob(cfg, classes, fp, k, gradient=grad, target=target, evaluated=evaluated,
                                 model_keys=keys, **kw))

    bal = Scenario("balanced")
    for c in target_classes(config.imbalance, classes):
        under, over = Scenario("under", c), Scenario("over", c)
        for grad, evaluated in ((bal, (bal, under, over)), (under, (under,)), (over, (over,))):
            attack(config, grad, c, evaluated)
            for cfg, sub, me in sweep_grid(config) if k == 0 else ():  # attack sweeps: first seed
                attack(cfg, grad, c, evaluated, subdir=sub, min_eps_max=me)
    for a in extra_attacks:
        attack(config, a["gradient"], a["target"], a["evaluated"], subdir=a["subdir"])
    return [*group_training(list(train.values()), config, ds), *clean, *group_attacks(attacks, config)]


def group_attacks(jobs: list[AttackJob], config: ExperimentConfig) -> list[Job]:
    """With ``eval.group_attacks`` on (``auto``: on with the local executor), the attack jobs
    of each grid point (main grid, each sweep point) become one :class:`AttackGroupJob`."""
    mode = config.eval.group_attacks
    if mode == "off" or (mode == "auto" and config.executor.name == "dask"):
        return list(jobs)
    groups: dict[tuple[int, str], list[AttackJob]] = {}
    for j in jobs:
        groups.setdefault((j.replicate, j.subdir), []).append(j)
    return [g[0] if len(g) == 1 else AttackGroupJob(g[0].config, g[0].classes, g[0].fingerprint, g[0].replicate,
                                                    members=tuple(g))
            for g in groups.values()]


def sweep_grid(config: ExperimentConfig) -> list[tuple[ExperimentConfig, str, float]]:
    """(config, folder, minimal-eps bound) of every sweep point: each attack at each eps."""
    sw = config.sweep
    out = []
    for name in sw.attacks or (config.attack.name,):
        for eps in sw.epsilons:
            cfg = dataclasses.replace(config, attack=dataclasses.replace(config.attack, name=name, eps=eps))
            # the minimal eps does not depend on the sweep's eps: search once, at the largest
            me = eps if sw.min_eps and name == "fgsm" and eps == max(sw.epsilons) else 0.0
            out.append((cfg, sweep_folder(name, eps), me))
    return out


def stack_enabled(config: ExperimentConfig) -> bool:
    if config.train.stack == "auto":
        # planned where the jobs may not run (a Dask head node): the name, not this machine's GPUs
        return resolve_device(config.train.device, check=False).type == "cuda"
    return config.train.stack == "on"


def group_training(jobs: list[TrainJob], config: ExperimentConfig, ds: Dataset) -> list[Job]:
    """With stacking on, TrainJobs of equal training- and validation-set size become
    TrainGroupJobs (the study's ten under-sampled and ten over-sampled models). Defended
    models (their own training regime) and models with batch norm train one by one."""
    from advimb.training.stacked import stackable

    if not stack_enabled(config) or not stackable(build_model(config.model, ds.num_classes, ds.image_shape)):
        return list(jobs)
    groups: dict[tuple[int, int], list[TrainJob]] = {}
    out: list[Job] = []
    for j in jobs:
        if j.scenario.defence:
            out.append(j)
            continue
        sel = j.select(ds)
        groups.setdefault((len(sel["train"]), len(sel["val"])), []).append(j)
    for g in groups.values():
        out.append(g[0] if len(g) == 1 else TrainGroupJob(config, ds.classes, ds.fingerprint, g[0].replicate,
                                                          members=tuple(g)))
    return out

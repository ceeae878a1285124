"""The study as a list of jobs (:func:`plan`): the paper's grid, attack/eps sweeps and the
experiments beyond the paper, for every replicate, grouped for stacked training and
batched attacks where that is on. Executors run the list; every job follows the jobs it
depends on."""

from __future__ import annotations

import dataclasses

from advimb.config.sections import ExperimentConfig
from advimb.data.dataset import Dataset
from advimb.data.imbalance import Scenario, paper_scenarios, target_classes
from advimb.devices import check_resolved
from advimb.layout import sweep_folder
from advimb.scenario import Kind
from advimb.study.experiments import experiment_grid, replicate_config
from advimb.study.jobs.base import Job
from advimb.study.jobs.evaluate import AttackGroupJob, AttackJob, CleanEvalGroupJob, CleanEvalJob
from advimb.study.jobs.train import TrainGroupJob, TrainJob
from advimb.training.stacking import stacks, study_stacks


def plan(config: ExperimentConfig, ds: Dataset) -> list[Job]:
    """The study as jobs, in an order where every job follows its dependencies: for each
        replicate (``experiments.seeds``), the paper's grid (21 trainings, 21 clean
        evaluations, 30 attack jobs holding the 50 combinations, plus any attack/eps sweep)
        and the experiments' models and attacks (``advimb.study.experiments``); with stacking on, the trainings
    of all replicates first, as one stack (:func:`group_training`)."""
    check_resolved(config)
    trains: list[TrainJob] = []
    cleans: list[CleanEvalJob] = []
    rest: list[Job] = []
    for k in range(config.experiments.seeds):
        t, c, r = _plan_replicate(replicate_config(config, k), ds, k)
        trains += t
        cleans += c
        rest += r
    return [*group_training(trains, config, ds), *group_clean(cleans, config, ds), *rest]


def _plan_replicate(
    config: ExperimentConfig, ds: Dataset, k: int
) -> tuple[list[TrainJob], list[CleanEvalJob], list[Job]]:
    """One replicate's training jobs, clean evaluations, and attack jobs."""
    classes, fp = ds.classes, ds.fingerprint
    scenarios = paper_scenarios(config.imbalance, classes)
    extra, extra_attacks = experiment_grid(config, classes)
    train = {s: TrainJob(config, classes, fp, k, scenario=s) for s in [*scenarios, *extra]}
    clean = [CleanEvalJob(config, classes, fp, k, scenario=s, model_key=j.key) for s, j in train.items()]
    attacks: list[AttackJob] = []

    def attack(cfg: ExperimentConfig, grad: Scenario, target: int, evaluated: tuple[Scenario, ...], **kw) -> None:
        keys = tuple(dict.fromkeys(train[s].key for s in (grad, *evaluated)))
        attacks.append(
            AttackJob(cfg, classes, fp, k, gradient=grad, target=target, evaluated=evaluated, model_keys=keys, **kw)
        )

    bal = Scenario(Kind.BALANCED)
    for c in target_classes(config.imbalance, classes):
        under, over = Scenario(Kind.UNDER, c), Scenario(Kind.OVER, c)
        for grad, evaluated in ((bal, (bal, under, over)), (under, (under,)), (over, (over,))):
            attack(config, grad, c, evaluated)
            for cfg, sub, me in sweep_grid(config) if k == 0 else ():  # attack sweeps: first seed
                attack(cfg, grad, c, evaluated, subdir=sub, min_eps_max=me)
    for a in extra_attacks:
        attack(a.get("config", config), a["gradient"], a["target"], a["evaluated"], subdir=a["subdir"])
    return list(train.values()), clean, group_attacks(attacks, config)


def group_clean(jobs: list[CleanEvalJob], config: ExperimentConfig, ds: Dataset) -> list[Job]:
    """With stacking on, the clean evaluations of every stackable model become one
    :class:`CleanEvalGroupJob` (the models classify each test batch together)."""
    if not study_stacks(config) or len(jobs) < 2:
        return list(jobs)
    return [CleanEvalGroupJob(config, ds.classes, ds.fingerprint, 0, members=tuple(jobs))]


def group_attacks(jobs: list[AttackJob], config: ExperimentConfig) -> list[Job]:
    """With ``eval.group_attacks`` on (resolved: on with the local executor), the attack jobs
    of each grid point (main grid, each sweep point) become one :class:`AttackGroupJob`."""
    if config.eval.group_attacks != "on":
        return list(jobs)
    groups: dict[tuple[int, str], list[AttackJob]] = {}
    for j in jobs:
        groups.setdefault((j.replicate, j.subdir), []).append(j)
    return [
        g[0]
        if len(g) == 1
        else AttackGroupJob(g[0].config, g[0].classes, g[0].fingerprint, g[0].replicate, members=tuple(g))
        for g in groups.values()
    ]


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


def group_training(jobs: list[TrainJob], config: ExperimentConfig, ds: Dataset) -> list[Job]:
    """With stacking on, every stackable model of the study, whatever its training-set size
    and replicate (the balanced, under- and over-sampled models of every seed, the long-tail
    and sweep models, the defended models whose defence only weights or re-samples), trains
    in one :class:`TrainGroupJob`: one stacked model of one shape. Adversarially trained
    models (each batch crafted against its own model) and models that declared themselves
    not stackable (batch norm) train one by one."""
    if not study_stacks(config):
        return list(jobs)
    stack: list[TrainJob] = []
    alone: list[Job] = []
    for j in jobs:
        (stack if stacks(config, j.scenario.defence) else alone).append(j)
    if len(stack) < 2:
        return list(jobs)
    return [TrainGroupJob(config, ds.classes, ds.fingerprint, 0, members=tuple(stack)), *alone]

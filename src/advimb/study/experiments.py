"""Experiments beyond the paper's grid, as more jobs of the same kinds (``[experiments]``).

- **seeds**: the whole plan again per replicate, with an independent base seed, in
  ``replicates/<k>/`` (:func:`replicate_config`);
- **imbalance sweep** (``counts``): under- and over-sampled models of a class at other
  training counts, attacked with their own gradient and the balanced model's;
- **long-tailed profiles** (``long_tail``): one model per profile, every class attacked;
- **defences** (``defences``): the under-sampled models (and, for adversarial training, the
  balanced one) trained with a defence, attacked like the paper's.

Their attack results go to ``experiments/<name>/`` so the paper's tables never mix them in;
``experiment_tables`` reads them (and the main grid's results for the shared models).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from advimb.config.additive import LONG_TAIL_ATTACKS
from advimb.config.sections import ExperimentConfig
from advimb.config.seeds import derive_seed
from advimb.data.imbalance import Scenario, parse_class, target_classes
from advimb.errors import UserError
from advimb.layout import EXPERIMENTS, variant_folder
from advimb.scenario import Kind
from advimb.training.defences import get_defence


def replicate_seed(seed: int, k: int) -> int:
    """Base seed of replicate ``k`` (0 is the study's own seed)."""
    return seed if k == 0 else derive_seed(seed, "replicate", k)


def replicate_config(config: ExperimentConfig, k: int) -> ExperimentConfig:
    return config if k == 0 else dataclasses.replace(config, seed=replicate_seed(config.seed, k))


def _classes(names: tuple[str, ...], key: str, config: ExperimentConfig, classes: tuple[str, ...]) -> list[int]:
    """Classes an experiment targets: ``names`` or, empty, the grid's target classes; each
    must be one of the grid's targets (whose plain models the experiment compares with)."""
    grid = target_classes(config.imbalance, classes)
    if not names:
        return grid
    out = sorted({parse_class(c, classes) for c in names})
    for c in out:
        if c not in grid:
            raise UserError(
                f"experiments.{key}: {classes[c]!r} is not a target class of the grid "
                "(imbalance.classes); add it there or drop it here"
            )
    return out


def count_scenarios(config: ExperimentConfig, classes: tuple[str, ...]) -> dict[int, list[Scenario]]:
    """Per swept class, its sweep models beyond the paper's own (see ExperimentsConfig)."""
    e, im = config.experiments, config.imbalance
    if not e.counts:
        return {}
    out: dict[int, list[Scenario]] = {}
    for c in _classes(e.count_classes, "count_classes", config, classes):
        lst = []
        for n in sorted(e.counts):
            if n < im.majority_count and n != im.minority_count:
                lst.append(Scenario(Kind.UNDER, c, count=n))
            if n > im.minority_count and n != im.majority_count:
                lst.append(Scenario(Kind.OVER, c, count=n))
        out[c] = lst
    return out


def long_tail_scenarios(config: ExperimentConfig) -> list[Scenario]:
    """The long-tailed profiles' models and your own count vectors' (``imbalance.scenarios``),
    then the profiles' models with each of ``long_tail_defences``: every class of each
    attacked, the same way."""
    out = []
    for p in config.experiments.long_tail:
        kind, _, rho = p.partition(":")
        out.append(Scenario(Kind.LONGTAIL, profile=kind, rho=float(rho)))
    defended = [dataclasses.replace(s, defence=d) for s in out for d in config.experiments.long_tail_defences]
    return out + [Scenario(Kind.COUNTS, label=c.name) for c in config.imbalance.scenarios] + defended


def long_tail_attack_configs(config: ExperimentConfig) -> list[tuple[str, ExperimentConfig]]:
    """(folder, config) of every further attack on the long-tailed models
    (``experiments.long_tail_attacks``): ``attack`` with the settings that attack changes."""
    out = []
    for label in config.experiments.long_tail_attacks:
        attack = dataclasses.replace(config.attack, **LONG_TAIL_ATTACKS[label])
        out.append((variant_folder(label), dataclasses.replace(config, attack=attack)))
    return out


def defence_scenarios(config: ExperimentConfig, classes: tuple[str, ...]) -> dict[str, list[Scenario]]:
    """Per defence, its defended models: under:c+d for every defended class c, and
    balanced+d for adversarial training."""
    e = config.experiments
    if not e.defences:
        return {}
    targets = _classes(e.defence_classes, "defence_classes", config, classes)
    out = {}
    for d in e.defences:
        out[d] = [Scenario(Kind.UNDER, c, defence=d) for c in targets]
        if get_defence(d).adversarial:  # adversarial training also defends the balanced model
            out[d].insert(0, Scenario(Kind.BALANCED, defence=d))
    return out


def experiment_grid(config: ExperimentConfig, classes: tuple[str, ...]) -> tuple[list[Scenario], list[dict[str, Any]]]:
    """The experiments' new models and their attack jobs as (gradient, target, evaluated,
    folder) dicts; the balanced model (and, for comparisons, the paper's under/over models)
    come from the main grid."""
    bal = Scenario(Kind.BALANCED)
    scenarios: list[Scenario] = []
    attacks: list[dict[str, Any]] = []

    def add(grad: Scenario, target: int, evaluated: tuple[Scenario, ...], folder: str, **kw: Any) -> None:
        sub = kw.pop("subdir", EXPERIMENTS[folder])
        attacks.append({"gradient": grad, "target": target, "evaluated": evaluated, "subdir": sub, **kw})

    for c, lst in count_scenarios(config, classes).items():
        scenarios += lst
        for s in lst:
            add(s, c, (s,), "counts")
        if lst:
            add(bal, c, tuple(lst), "counts")
    lt = long_tail_scenarios(config)
    scenarios += lt
    further = long_tail_attack_configs(config)
    for c in range(len(classes)) if lt else ():
        for s in lt:
            add(s, c, (s,), "long_tail")
        add(bal, c, tuple(lt), "long_tail")
        for sub, cfg in further:  # the profiles' models (plain and defended) under each further attack
            for s in lt:
                if s.kind == Kind.LONGTAIL:
                    add(s, c, (s,), "long_tail", subdir=sub, config=cfg)
            add(bal, c, tuple(s for s in lt if s.kind == Kind.LONGTAIL), "long_tail", subdir=sub, config=cfg)
    defended = defence_scenarios(config, classes)
    for lst in defended.values():
        scenarios += lst
        for s in lst:
            targets = target_classes(config.imbalance, classes) if s.target is None else [s.target]
            for c in targets:
                add(s, c, (s,), "defences")
    under_def = [s for lst in defended.values() for s in lst if s.target is not None]
    for c in sorted({s.target for s in under_def if s.target is not None}):
        add(bal, c, tuple(s for s in under_def if s.target == c), "defences")
    return list(dict.fromkeys(scenarios)), attacks

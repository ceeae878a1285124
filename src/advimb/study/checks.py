"""Every name of an open set in a config checked against its registry, when the config is built
(the CLI's first step, and the study's preflight): datasets, models, attacks, defences and
long-tail profiles. Closed sets are enums, checked by the config itself. And the one
translation of a run's arguments (the CLI's flags, the Python API's keywords) into a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advimb.attacks.core import get_attack
from advimb.attacks.plugins import check_plugin, is_plugin
from advimb.config.io import nest
from advimb.config.presets import resolve_config
from advimb.config.sections import ExperimentConfig
from advimb.data.imbalance import check_profile
from advimb.data.sources import check_source
from advimb.errors import UserError
from advimb.models import check_model
from advimb.training.defences import get_defence


def check_names(cfg: ExperimentConfig) -> None:
    """Raise a one-line :class:`advimb.errors.UserError` for the first unknown name."""
    check_source(cfg.data.source)
    check_model(cfg.model.name)
    for name in (cfg.attack.name, *cfg.sweep.attacks):
        get_attack(name)
        if is_plugin(name):
            check_plugin(name, cfg.attack.params, cfg.attack.target, cfg.attack.grad_label, cfg.attack.direction)
    for d in (*cfg.experiments.defences, *cfg.experiments.long_tail_defences):
        get_defence(d)
    for p in cfg.experiments.long_tail:
        check_profile(p.partition(":")[0])


#: the arguments of ``advimb run`` (flags) and ``advimb.run`` (keywords) that set one config key
ARGUMENT_KEYS = {
    "data_dir": "data.dir",
    "seed": "seed",
    "seeds": "experiments.seeds",
    "eps": "attack.eps",
    "device": "train.device",
    "executor": "executor.name",
    "scheduler": "executor.scheduler",
    "scheduler_file": "executor.scheduler_file",
}


def sweep_overrides(attacks: str | list[str], epsilons: str | list[float]) -> dict[str, Any]:
    """The ``sweep`` settings of ``advimb sweep --attacks fgsm,pgd --epsilons 0.005,0.01`` (comma
    lists, or lists): one-line errors for a list that is not one, or is empty."""
    if isinstance(epsilons, str):
        try:
            epsilons = [float(e) for e in epsilons.split(",") if e.strip()]
        except ValueError:
            raise UserError(
                f"--epsilons {epsilons!r} is not a comma-separated list of numbers, e.g. 0.005,0.01,0.02"
            ) from None
    names = [a.strip() for a in attacks.split(",") if a.strip()] if isinstance(attacks, str) else list(attacks)
    if not epsilons or not names:
        raise UserError(
            "advimb sweep needs at least one attack and one eps, e.g. --attacks fgsm,pgd --epsilons 0.005,0.01"
        )
    return {"sweep": {"attacks": names, "epsilons": [float(e) for e in epsilons]}}


def resolve_arguments(
    preset: str | None,
    config_file: str | Path | None = None,
    overrides: list[dict[str, Any]] | None = None,
    **arguments: Any,
) -> ExperimentConfig:
    """The resolved config of a run's arguments, every name checked: the preset, the config
    file, ``overrides`` (nested tables, in order: ``--set``) and then each of
    :data:`ARGUMENT_KEYS` that is not None (``data_dir=...``, ``seeds=3``...)."""
    extra = list(overrides or [])
    extra += [
        nest(ARGUMENT_KEYS[name], str(value) if isinstance(value, Path) else value)
        for name, value in arguments.items()
        if value is not None
    ]
    cfg = resolve_config(preset, config_file, extra)
    check_names(cfg)
    return cfg

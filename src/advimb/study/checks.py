"""Every name of an open set in a config checked against its registry, when the config is built
(the CLI's first step, and the study's preflight): datasets, models, attacks, defences and
long-tail profiles. Closed sets are enums, checked by the config itself."""

from __future__ import annotations

from advimb.attacks.core import get_attack
from advimb.attacks.plugins import check_plugin, is_plugin
from advimb.config.sections import ExperimentConfig
from advimb.data.imbalance import check_profile
from advimb.data.sources import check_source
from advimb.models import check_model
from advimb.training.regimes import get_defence


def check_names(cfg: ExperimentConfig) -> None:
    """Raise a one-line :class:`advimb.errors.UserError` for the first unknown name."""
    check_source(cfg.data.source)
    check_model(cfg.model.name)
    for name in (cfg.attack.name, *cfg.sweep.attacks):
        get_attack(name)
        if is_plugin(name):
            check_plugin(name, cfg.attack.params, cfg.attack.target, cfg.attack.grad_label, cfg.attack.direction)
    for d in cfg.experiments.defences:
        get_defence(d)
    for p in cfg.experiments.long_tail:
        check_profile(p.partition(":")[0])

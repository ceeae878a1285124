"""The study's configuration: frozen dataclasses per stage (``sections``), reading and writing
them (``io``: dicts, TOML, ``--set``), presets (``presets``) and the seeds and hashes jobs are
keyed by (``seeds``). Imports only ``advimb.errors``; every other package may import it."""

from advimb.config.io import dump_toml, from_dict, load_toml, merge, parse_assignment, to_dict, tomllib
from advimb.config.presets import PRESETS, list_presets, resolve_config
from advimb.config.sections import (
    EXECUTION_KEYS,
    AttackConfig,
    DataConfig,
    EvalConfig,
    ExecutorConfig,
    ExperimentConfig,
    ExperimentsConfig,
    ImbalanceConfig,
    ModelConfig,
    SweepConfig,
    SyntheticConfig,
    TrainConfig,
)
from advimb.config.seeds import derive_seed, stable_hash

__all__ = [
    "EXECUTION_KEYS",
    "PRESETS",
    "AttackConfig",
    "DataConfig",
    "EvalConfig",
    "ExecutorConfig",
    "ExperimentConfig",
    "ExperimentsConfig",
    "ImbalanceConfig",
    "ModelConfig",
    "SweepConfig",
    "SyntheticConfig",
    "TrainConfig",
    "derive_seed",
    "dump_toml",
    "from_dict",
    "list_presets",
    "load_toml",
    "merge",
    "parse_assignment",
    "resolve_config",
    "stable_hash",
    "to_dict",
    "tomllib",
]

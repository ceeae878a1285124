"""Presets: named partial configs over the defaults (which are the ``paper`` protocol).

Resolution order, later wins: defaults < preset < config file < ``$ADVIMB_DATA`` (fills
``data.dir`` only when nothing above set it) < ``--set`` / CLI flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from advimb.config import ExperimentConfig, from_dict, load_toml, merge
from advimb.errors import UserError

#: name -> (one-line description with its cost, overrides of the defaults)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "smoke": (
        "synthetic data, tiny models, 21 scenarios and 50 combinations in seconds (tests)",
        {
            "data": {"source": "synthetic",
                     "synthetic": {"train_per_class": 60, "test_per_class": 20}},
            "imbalance": {"majority_count": 50, "minority_count": 10},
            "model": {"widths": [4, 8, 8], "fc": 16},
            # fp32: tiny models gain nothing from bf16, and the tests compare numbers
            # across machines whose CPUs may or may not run bf16 natively
            "train": {"max_epochs": 2, "patience": 2, "batch_size": 32, "lr": 1e-3, "precision": "fp32"},
            "eval": {"examples": 4},
        },
    ),
    "quick": (
        "real CIFAR-10 at reduced scale: all 21 scenarios and 50 combinations, "
        "about 8 minutes on a 2-core CPU",
        {
            # Reduced: 500/100 images per class (paper 5,000/1,000: same 5:1 ratio),
            # half-width VGG (16/32/64, FC-512), at most 8 epochs (patience 3), the first
            # 500 test images of each class are attacked (paper: all 1,000; clean accuracy
            # is measured on the full test set). Optimiser, decay, batch
            # size, attack and eps are the paper's.
            "imbalance": {"majority_count": 500, "minority_count": 100},
            "model": {"widths": [16, 32, 64]},
            "train": {"max_epochs": 8, "patience": 3},
            "eval": {"test_per_class": 500},
        },
    ),
    "paper": (
        "the protocol as the paper's text describes it (with PROTOCOL.md's corrections): "
        "hours on a 2-core CPU, minutes on a GPU",
        {},
    ),
    "faithful": (
        "the authors' code choices: vgg_authors, decay 1e-6, patience 20, test set as "
        "validation, first-N selection, hflip, sign(0)=+1, no clipping; cost as paper",
        {
            "imbalance": {"selection": "first"},
            "model": {"name": "vgg_authors"},
            "train": {"decay": 1e-6, "patience": 20, "validation": "test",
                      "augment": "hflip_except_over"},
            "attack": {"sign_zero": "plus", "clip": False},
        },
    ),
}


def list_presets() -> list[str]:
    return list(PRESETS)


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
) -> ExperimentConfig:
    """Build the resolved :class:`ExperimentConfig` (see module docstring for the order)."""
    env = dict(os.environ) if env is None else env
    file_d = load_toml(config_file) if config_file else {}
    name = preset or file_d.get("preset") or "paper"
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    d = merge(PRESETS[name][1], file_d)
    d["preset"] = name
    cli: dict[str, Any] = {}
    for o in overrides or []:
        cli = merge(cli, o)
    d_all = merge(d, cli)
    data = d_all.get("data", {})
    if (
        data.get("dir") is None
        and data.get("source", "cifar10") != "synthetic"
        and env.get("ADVIMB_DATA")
    ):
        d_all = merge(d_all, {"data": {"dir": env["ADVIMB_DATA"]}})
    if d_all.get("data", {}).get("dir") is not None:  # record where the data really was
        d_all = merge(d_all, {"data": {"dir": str(Path(str(d_all["data"]["dir"])).expanduser().resolve())}})
    return from_dict(ExperimentConfig, d_all)

"""Presets: named partial configs over the defaults (which are the ``paper`` protocol).

Resolution order, later wins: defaults < preset < config file < ``$ADVIMB_DATA`` (fills
``data.dir`` only when nothing above set it) < ``--set`` / CLI flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from advimb.config.io import from_dict, load_toml, merge
from advimb.config.sections import ExperimentConfig
from advimb.errors import UserError

#: what each preset costs, as measured (commands and devices in BENCHMARKS.md)
SMOKE_COST = "about 15 s on a 2-core CPU with the report, 7 s without (--no-report), start-up included"
QUICK_COST = ("3 to 6 minutes on a 2-core CPU (181 s and 334 s measured on two machines of this kind), plus "
              "about 17 s for the first decode of the data")
PAPER_COST = ("583 s of study time on one H200 (measured with the settings before the one stack and compile "
              "on CUDA by default; the current default is unmeasured on a GPU); many hours on a 2-core CPU "
              "(not measured)")
FAITHFUL_COST = "not measured yet (like paper, plus flips and patience 20)"

class Preset(NamedTuple):
    """A preset: what it is, what it costs (measured; the README's preset table says the
    same, a test checks it) and its overrides of the defaults."""

    description: str
    cost: str
    overrides: dict[str, Any]


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "synthetic data, tiny models; all 21 scenarios and 50 combinations (the tests' preset)",
        SMOKE_COST,
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
    "quick": Preset(
        "real CIFAR-10 at reduced scale; all 21 scenarios and 50 combinations",
        QUICK_COST,
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
    "paper": Preset(
        "the protocol as the paper's text describes it (defaults, with PROTOCOL.md's corrections)",
        PAPER_COST,
        {},
    ),
    "faithful": Preset(
        "the authors' code choices: vgg_authors, decay 1e-6, patience 20, test set as "
        "validation, first-N selection, hflip, sign(0)=+1, no clipping",
        FAITHFUL_COST,
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
    d = merge(PRESETS[name].overrides, file_d)
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

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
from advimb.registry import Registry

#: what each preset costs, as measured (commands and devices in BENCHMARKS.md)
SMOKE_COST = "about 15 s on a 2-core CPU with the report, 7 s without (--no-report), start-up included"
QUICK_COST = (
    "3 to 6 minutes on a 2-core CPU with the report, by CPU: 188 s on an Intel Xeon with AMX, 336 to "
    "388 s in three runs on an AMD EPYC with AVX-512 BF16 (both bf16; the earlier quick preset took "
    "339 and 404 s there), 546 s there in fp32 (the precision an Intel Xeon without AMX trains in, "
    "not measured on one), plus about 17 s for the first decode of the data"
)
PAPER_COST = (
    "583 s of study time on one H200 (measured with the settings before the one stack and compile "
    "on CUDA by default; the current default is unmeasured on a GPU); many hours on a 2-core CPU "
    "(not measured)"
)
FAITHFUL_COST = (
    "measured for cat on a 2-core AMD EPYC with AVX-512 BF16 (bf16, docs/reproduction/cpu-faithful-cat): "
    "balanced model 76 epochs at a median 75 s (8,369 s as run, one epoch slowed by work beside it), "
    "under:cat 59 epochs (3,935 s), over:cat 57 epochs (1,290 s), clean evaluation and attacks 30 s; "
    "so a class row about 1.5 h and the 10-class study about 17 h there (extrapolated from cat, "
    "not measured); not measured on an Intel Xeon or a GPU"
)


LONGTAIL_COST = (
    "unmeasured: no GPU was lent to measure it (seven ResNet-18s of 100 epochs, three of them adversarially "
    "trained with PGD-10, then PGD-20, CW-20 and AutoAttack on every test image)"
)
LONGTAIL_CPU_COST = (
    "about 59 minutes on a 2-core AMD EPYC without AVX-512 BF16 (fp32): 3,534 s for the whole study (161 jobs; "
    "training 2,123 s, of which RoBal-N 622 s and RoBal-R 613 s; attacks 1,387 s), docs/reproduction/longtail-cpu; "
    "the earlier study without RoBal took 1,521 s in bf16 on an EPYC with AVX-512 BF16; not measured on an "
    "Intel Xeon"
)
ROBAL_COST = (
    "unmeasured: no GPU was lent to measure it; estimated (not measured) at about 1,400 PFLOP of model "
    "arithmetic, and up to 1,600 PFLOP more for AutoAttack's APGD-T if no image fell earlier "
    "(benchmarks/robal_flops.py: WRN-34-10's FLOPs per image counted by torch's FlopCounterMode times "
    "the passes the preset makes)"
)
LONGTAIL_DEPARTURES = (
    "a long-tailed training set (CIFAR-10-LT, rho = 100: 5,000 ... 50 images per class) instead of one class "
    "under- or over-sampled; the paper's grid kept for one class (airplane), as the balanced transfer source",
    "eps 8/255 with PGD-20 (step 2/255) as the attack (the paper: FGSM at eps 0.01)",
    "checkpoints of adversarially trained models chosen by PGD accuracy on 100 (CPU preset: 50) held-out "
    "training images per class that the split leaves out",
)


class Preset(NamedTuple):
    """A preset: what it is, what it costs (measured; the README's preset table says the
    same, a test checks it), its overrides of the defaults and, in words, every way it
    departs from the paper's protocol (``advimb list`` and the README print them; each is
    also among the report's reasons why a run is not in the paper's setting, a test checks
    that too)."""

    description: str
    cost: str
    overrides: dict[str, Any]
    departures: tuple[str, ...] = ()


_BUILT_IN: dict[str, Preset] = {
    "smoke": Preset(
        "synthetic data, tiny models; all 21 scenarios and 50 combinations (the tests' preset)",
        SMOKE_COST,
        {
            "data": {"source": "synthetic", "synthetic": {"train_per_class": 60, "test_per_class": 20}},
            "imbalance": {"majority_count": 50, "minority_count": 10},
            "model": {"widths": [4, 8, 8], "fc": 16},
            # fp32: tiny models gain nothing from bf16, and the tests compare numbers
            # across machines whose CPUs may or may not run bf16 natively
            "train": {"max_epochs": 2, "patience": 2, "batch_size": 32, "lr": 1e-3, "precision": "fp32"},
            "eval": {"examples": 4},
        },
        (
            "synthetic images (60 / 20 per class), not CIFAR-10",
            "50 / 10 training images per majority / minority class",
            "a tiny VGG (convolutions 4/8/8, FC-16)",
            "RMSProp at lr 1e-3, at most 2 epochs, patience 2",
            "float32 whatever the CPU",
        ),
    ),
    "quick": Preset(
        "real CIFAR-10 at reduced scale: two classes (automobile, truck), 5 models, every test image attacked",
        QUICK_COST,
        {
            # chosen from measurements (BENCHMARKS.md (h), benchmarks/quick_search.py): what
            # buys accuracy per second on a 2-core CPU is fewer, larger training sets, a higher
            # learning rate with batch 64 (about 1.2x bf16 throughput over 32), flips and
            # normalised inputs; the attack, eps, optimiser and its decay are the paper's
            "imbalance": {"majority_count": 2500, "minority_count": 500, "classes": ["automobile", "truck"]},
            "model": {"widths": [16, 32, 64], "normalize": "per_channel"},
            "train": {"lr": 1e-3, "batch_size": 64, "max_epochs": 8, "patience": 4, "augment": "hflip"},
        },
        (
            "2,500 / 500 training images per majority / minority class (the paper: 5,000 / 1,000; the same 5:1 ratio)",
            "two of the ten classes studied, automobile and truck, a pair of similar classes for C4 (the paper's "
            "is cat -> dog, but at this scale the under:cat and under:dog models predict their own class for about "
            "5-13% of its images, at the floor), so 5 models and 2 x 5 Table 1 cells",
            "a half-width VGG: convolutions 16/32/64 (the paper: 32/64/128), FC-512 kept",
            "inputs normalised per channel inside the model (the paper: x / 255 only)",
            "RMSProp at lr 1e-3 with batch 64, at most 8 epochs, patience 4 (the paper: lr 1e-4, batch 32, up to 200 "
            "epochs, patience 10)",
            "random horizontal flips for every model (the paper's text: none; its authors' code: all but the "
            "over-sampled models)",
        ),
    ),
    "paper": Preset(
        "the protocol as the paper's text describes it (defaults, with docs/PROTOCOL.md's corrections)",
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
            "train": {"decay": 1e-6, "patience": 20, "validation": "test", "augment": "hflip_except_over"},
            "attack": {"sign_zero": "plus", "clip": False},
        },
    ),
    "longtail": Preset(
        "today's long-tailed adversarial-robustness protocol (../shared/LONGTAIL.md): CIFAR-10-LT rho = 100 "
        "(LDAM's split), ResNet-18, SGD 0.1 with steps at 75 and 90 of 100 epochs, crops and flips; plain, "
        "PGD-AT, TRADES and AT-BSL; PGD-20, CW-20 and AutoAttack per class (a GPU preset)",
        LONGTAIL_COST,
        {
            # the paper's grid reduced to one class, for the transfer source: the balanced model
            "imbalance": {
                "majority_count": 4500,
                "minority_count": 900,
                "classes": ["airplane"],
                "long_tail_max": 5000,
            },
            "model": {"name": "resnet18_cifar", "init": "torch", "normalize": "per_channel"},
            "train": {
                "optimizer": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 5e-4,
                "schedule": "piecewise",
                "milestones": [75, 90],
                "max_epochs": 100,
                "patience": 100,
                "batch_size": 128,
                "augment": "crop_hflip",
                "validation": "unused",
                "val_per_class": 100,
                "select": "val_robust",
            },
            "attack": {"name": "pgd", "eps": 8 / 255, "steps": 20, "step_size": 2 / 255},
            "experiments": {
                "long_tail": ["ldam:100"],
                "long_tail_defences": ["pgd_at", "trades", "pgd_at+logit_adjust"],
                "long_tail_attacks": ["cw", "autoattack"],
                "adv_eps": 8 / 255,
                "adv_steps": 10,
            },
        },
        LONGTAIL_DEPARTURES,
    ),
    "robal": Preset(
        "RoBal's setting (Wu et al. 2021, its code; ../shared/LONGTAIL.md): CIFAR-10-LT rho = 50 (LDAM's split), "
        "WRN-34-10 on unnormalised images, SGD 0.1, momentum 0.9, weight decay 2e-4, batch 64, 80 epochs with /10 "
        "at 60 and 75, crops and flips, fp32, the last epoch kept; plain, PGD-AT and TRADES on PGD-5 images, RoBal-N "
        "and RoBal-R; clean, FGSM, PGD-20, MIM-20, CW-20 and AA (APGD-CE + APGD-T) per class at eps 0.031 (a GPU "
        "preset); RoBal's Table 4 with --set experiments.long_tail=['ldam:100']",
        ROBAL_COST,
        {
            # the paper's grid reduced to one class, for the transfer source: the balanced model
            "imbalance": {
                "majority_count": 4500,
                "minority_count": 900,
                "classes": ["airplane"],
                "long_tail_max": 5000,
            },
            "model": {"name": "wrn_34_10", "init": "torch", "normalize": "none"},
            "train": {
                "optimizer": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 2e-4,
                "schedule": "piecewise",
                "milestones": [60, 75],
                "gamma": 0.1,
                "max_epochs": 80,
                "patience": 80,
                "restore_best": False,
                "batch_size": 64,
                "augment": "crop_hflip",
                "validation": "unused",
                "val_per_class": 100,
                "select": "val_loss",
                "precision": "fp32",
            },
            "attack": {"name": "pgd", "eps": 0.031, "steps": 20, "step_size": 0.0078},
            "experiments": {
                "long_tail": ["ldam:50"],
                "long_tail_defences": ["pgd_at_robal", "trades", "robal_n", "robal_r"],
                "long_tail_attacks": ["fgsm", "mim", "cw", "apgd_ce_t"],
                "adv_eps": 0.031,
                "adv_steps": 5,
            },
        },
        (
            "a long-tailed training set (CIFAR-10-LT, rho = 50: 5,000 ... 100 images per class) instead of one class "
            "under- or over-sampled; the paper's grid kept for one class (airplane), as the balanced transfer source",
            "eps 0.031 with PGD-20 (step 0.0078) as the attack (the paper: FGSM at eps 0.01)",
            "WRN-34-10 trained with SGD for 80 epochs, the last epoch kept (the paper: its reduced VGG, RMSProp, "
            "early stopping)",
        ),
    ),
    "longtail_cpu": Preset(
        "the long-tailed protocol at a 2-core CPU's scale: CIFAR-10-LT rho = 100 (LDAM's split), the half-width "
        "VGG, 12 epochs; plain, balanced softmax, fast adversarial training (FGSM with a random start), "
        "AT-BSL with it, RoBal-N and RoBal-R (RoBal's PGD-5 images); PGD-20 and CW-20 per class",
        LONGTAIL_CPU_COST,
        {
            "imbalance": {
                "majority_count": 1000,
                "minority_count": 200,
                "classes": ["airplane"],
                "long_tail_max": 5000,
            },
            "model": {"widths": [16, 32, 64], "normalize": "per_channel"},
            "train": {
                "lr": 1e-3,
                "batch_size": 64,
                "max_epochs": 12,
                "patience": 12,
                "augment": "hflip",
                "validation": "unused",
                "val_per_class": 50,
                "select": "val_robust",
            },
            "attack": {"name": "pgd", "eps": 8 / 255, "steps": 20, "step_size": 2 / 255},
            "experiments": {
                "long_tail": ["ldam:100"],
                "long_tail_defences": [
                    "logit_adjust",
                    "fgsm_rs_at",
                    "fgsm_rs_at+logit_adjust",
                    "robal_n",
                    "robal_r",
                ],
                "long_tail_attacks": ["cw"],
                "adv_eps": 8 / 255,
                "adv_steps": 10,
            },
        },
        LONGTAIL_DEPARTURES
        + (
            "the half-width VGG trained with RMSProp at lr 1e-3, batch 64, 12 epochs (those papers: ResNet-18 or "
            "WideResNet, SGD, about 100 epochs)",
            "fast adversarial training (FGSM from a random start, Wong et al. 2020) instead of PGD-10 (RoBal-N and "
            "RoBal-R keep RoBal's PGD-5 training images)",
        ),
    ),
}


#: the presets, in the order ``advimb list`` prints them; an outside preset registers with ``PRESETS.add``
PRESETS: Registry[Preset] = Registry("unknown preset {name!r}; choose one of: {names}", sort=False)
for _name, _preset in _BUILT_IN.items():
    PRESETS.add(_name, _preset)


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
    d = merge(PRESETS.get(name).overrides, file_d)
    d["preset"] = name
    cli: dict[str, Any] = {}
    for o in overrides or []:
        cli = merge(cli, o)
    d_all = merge(d, cli)
    data = d_all.get("data", {})
    if data.get("dir") is None and data.get("source", "cifar10") != "synthetic" and env.get("ADVIMB_DATA"):
        d_all = merge(d_all, {"data": {"dir": env["ADVIMB_DATA"]}})
    if d_all.get("data", {}).get("dir") is not None:  # record where the data really was
        d_all = merge(d_all, {"data": {"dir": str(Path(str(d_all["data"]["dir"])).expanduser().resolve())}})
    return from_dict(ExperimentConfig, d_all)

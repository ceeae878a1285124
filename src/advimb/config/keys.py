"""Which config keys are science (they change results, so they are part of every job's key)
and which only say where or how fast work runs; and the science keys added after run folders
were published, left out of job keys at the default that means what those folders did. A leaf
of :mod:`advimb.config`.
"""

from __future__ import annotations

from typing import Any

#: science keys added after run folders were published, with the default that means what
#: those folders did (left out of job keys at it: ``science_dict``)
ADDED_LATER: dict[tuple[str, str], Any] = {
    ("imbalance", "long_tail_max"): 0,
    ("train", "optimizer"): "rmsprop_keras",
    ("train", "momentum"): 0.9,
    ("train", "nesterov"): False,
    ("train", "weight_decay"): 0.0,
    ("train", "schedule"): "none",
    ("train", "milestones"): [75, 90],
    ("train", "gamma"): 0.1,
    ("train", "crop_padding"): 4,
    ("train", "val_per_class"): 100,
    ("train", "select"): "val_loss",
}

#: keys that change where or how fast the study runs, never its results (the dataset's
#: content is checked by its fingerprint instead of its path)
EXECUTION_KEYS = (
    ("data", "dir"),
    ("data", "cache_dir"),
    ("data", "download"),
    ("train", "device"),
    ("train", "threads"),
    ("train", "stack"),
    ("train", "compile"),
    ("attack", "batch_size"),
    ("eval", "batch_size"),
    ("eval", "group_attacks"),
)

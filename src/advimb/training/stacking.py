"""Which models train in the study's one stack (:mod:`advimb.training.stacked`), decided here
once from what each part declares: the model (its registry entry's ``stackable``: no batch
norm), the training recipe (the stacked trainer has the paper's optimiser, flips only and
validation-loss selection) and the defence (:attr:`advimb.training.defences.Defence.stackable`:
one that only weights the loss, offsets the logits or re-samples). ``train.stack = on`` asks
for it; a model that cannot stack trains one by one.
"""

from __future__ import annotations

from advimb.config.sections import ExperimentConfig
from advimb.models import is_stackable
from advimb.training.defences import get_defence


def study_stacks(config: ExperimentConfig) -> bool:
    """Do this study's models train (and get evaluated) as one stack?"""
    t = config.train
    plain = t.optimizer == "rmsprop_keras" and t.weight_decay == 0 and t.select == "val_loss"
    return t.stack == "on" and is_stackable(config.model.name) and plain and t.augment not in ("crop", "crop_hflip")


def stacks(config: ExperimentConfig, defence: str) -> bool:
    """Does a model with ``defence`` ("" for none) train in the study's stack?"""
    return study_stacks(config) and (not defence or get_defence(defence).stackable)

"""The order of a training epoch: the training set shuffled, or, for a regime that re-samples
(``resample``), every class topped up to the largest by draws with replacement. The defences
themselves, and what each changes, are :mod:`advimb.training.defences`; their names are
re-exported here for code written against this module before they moved.
"""

from __future__ import annotations

import torch

from advimb.training.defences import (  # noqa: F401 - the earlier home of these names
    DEFENCES,
    AdversarialTraining,
    ClassWeight,
    Composed,
    Defence,
    LogitAdjust,
    Regime,
    Resample,
    Trades,
    balanced_weights,
    compose,
    get_defence,
    list_defences,
    log_prior,
    register_defence,
    trades_kl,
    trades_loss,
    trades_neighbour,
)


def epoch_size(y: torch.Tensor, regime: Regime) -> int:
    """How many images :func:`epoch_order` gives per epoch: ``n``, or with ``resample`` the
    largest class's count times the number of classes present."""
    if not regime.resample:
        return len(y)
    counts = torch.bincount(y.cpu())
    return int(counts.max()) * int((counts > 0).sum())


def epoch_order(y: torch.Tensor, regime: Regime, gen: torch.Generator) -> torch.Tensor:
    """Positions into the training set for one epoch, shuffled (CPU tensor). Without
    ``resample`` this is ``randperm(n)`` (the paper's order); with it, every class is topped
    up to the largest class's count by draws with replacement."""
    n = len(y)
    perm = torch.randperm(n, generator=gen)
    if not regime.resample:
        return perm
    y = y.cpu()
    counts = torch.bincount(y)
    top = int(counts.max())
    extra = []
    for c, k in enumerate(counts.tolist()):
        if 0 < k < top:
            members = torch.nonzero(y == c).flatten()
            extra.append(members[torch.randint(0, k, (top - k,), generator=gen)])
    order = torch.cat([perm, *extra])
    return order[torch.randperm(len(order), generator=gen)]

"""What a fixed-shape stack of models computes for nothing (:func:`wasted_work`), from the
models' training-set sizes and epochs alone."""

from __future__ import annotations

import math
from collections.abc import Sequence


def wasted_work(n_images: Sequence[int], epochs: Sequence[int], batch_size: int) -> dict[str, float]:
    """What one fixed-shape stack computes for nothing, as shares of all the samples it
    computes: ``padding`` (zero-weight samples filling each epoch's last batch) and
    ``stopped`` (the steps of models that have already stopped while the longest-running
    one trains on). ``n_images[m]``: model m's images per epoch; ``epochs[m]``: the epochs it
    trained."""
    steps = [math.ceil(n / batch_size) * e for n, e in zip(n_images, epochs)]
    total = max(steps) * batch_size * len(steps)
    useful = sum(n * e for n, e in zip(n_images, epochs))
    padding = sum(s * batch_size for s in steps) - useful
    return {
        "padding": padding / total,
        "stopped": (total - useful - padding) / total,
        "useful": useful / total,
        "steps": max(steps),
        "samples": total,
    }

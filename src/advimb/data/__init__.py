"""The data stage: datasets as uint8 arrays (``dataset``, ``sources``, ``folders``, ``cache``,
``synthetic``) and the imbalanced training scenarios drawn from them (``imbalance``). Imports
``advimb.config``, ``advimb.artifacts`` and ``advimb.errors``, nothing above them."""

from advimb.data.dataset import CIFAR10_CLASSES, Dataset, check_usable, eval_subset, transform
from advimb.data.sources import load_dataset
from advimb.data.synthetic import make_synthetic

__all__ = ["CIFAR10_CLASSES", "Dataset", "check_usable", "eval_subset", "load_dataset", "make_synthetic", "transform"]

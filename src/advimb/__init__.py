"""advimb: how class imbalance in the training data changes a CNN's vulnerability to
adversarial inputs (a reproduction and generalisation of Possas & Zhou)."""

import os as _os

__version__ = "0.1.0"

# PyTorch's CPU kernels run on GNU OpenMP (libgomp), whose idle threads spin for about 300,000
# iterations before they sleep. Alone on its cores a study loses nothing to that; beside a
# second process on the same cores, each spinning thread burns the core the other process's
# thread is waiting for (measured: a paper-scale model fell from ~670 to ~170 images/s beside a
# second study, a quarter of its rate, where a fair share is a half; issue 34). benchmarks/fair_share.py measures it (alone and side by side; not measured yet).
# A passive wait lets the other process run. libgomp reads this once, when torch is first
# imported, so it takes effect only where advimb is imported first (the CLI, Dask workers that
# inherit the environment); a user's own OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def __getattr__(name: str):
    """``advimb.run``, ``advimb.load``, ``advimb.load_model``, ``advimb.build_config`` and ``advimb.Results``
    (:mod:`advimb.api`), imported on first use so that ``import advimb`` stays light."""
    if name in ("run", "load", "load_model", "build_config", "Results"):
        from advimb import api

        return getattr(api, name)
    raise AttributeError(f"module 'advimb' has no attribute {name!r}")

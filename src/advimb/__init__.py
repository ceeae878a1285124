"""advimb: how class imbalance in the training data changes a CNN's vulnerability to
adversarial inputs (a reproduction and generalisation of Possas & Zhou)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``advimb.run``, ``advimb.load``, ``advimb.load_model``, ``advimb.build_config`` and ``advimb.Results``
    (:mod:`advimb.api`), imported on first use so that ``import advimb`` stays light."""
    if name in ("run", "load", "load_model", "build_config", "Results"):
        from advimb import api

        return getattr(api, name)
    raise AttributeError(f"module 'advimb' has no attribute {name!r}")

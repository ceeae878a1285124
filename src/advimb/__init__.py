"""advimb: how class imbalance in the training data changes a CNN's vulnerability to
adversarial inputs (a reproduction and generalisation of Possas & Zhou)."""

__version__ = "0.1.0"

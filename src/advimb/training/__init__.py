"""The training stage: the paper's optimiser and early stopping (``fit``), the training policy
(``policy``: validation source, augmentation rule, normalisation statistics, checkpoint
selection), the defences and what each changes (``defences``), an epoch's order (``regimes``)
and many models trained as one stacked model (``stacked``).
Imports ``advimb.config``, ``advimb.devices``, ``advimb.data.imbalance`` (validation splits)
and ``advimb.attacks.core`` (adversarial training), nothing of the study, results or report."""

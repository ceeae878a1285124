"""From stored artifacts to numbers: the one reader of a run's per-image results (``reader``),
bootstrap intervals (``stats``), each quantity defined once (``metrics``), the tables
(``tables``, ``sweep``, ``experiment_tables``), the paper's claims (``claims``) and the paper's
numbers with the setting they belong to (``reference``). Imports the config, data scenarios and
artifacts, never models, training or the study: it needs no torch."""

"""The report of a run folder, built from its artifacts and tables only: what the page shows
(``build``), the figures (``figures``, all of matplotlib), the page (``html``) and the number
formats (``text``). Imports ``advimb.results`` and ``advimb.config``, never the study."""

"""Running a study: the run folder (``runfolder``), the study as small picklable jobs
(``jobs``), planned for a config (``plan``, ``experiments``), run by the local executor
(``executor``) or Dask (``cluster``), from one entry point (``run.run_study``). It may import
every stage below it (config, data, models, training, attacks) and builds the tables from
``advimb.results`` at the end; ``advimb.results`` and ``advimb.report`` never import it."""

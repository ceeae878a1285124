"""Rebuild a run folder's scenario records (``scenarios/<slug>.json``) with today's code, from
the run's config, its dataset and its stored selections: for run folders whose records an
earlier version wrote wrongly (before 2026-12-07 a long-tail ``ldam`` scenario's record named
the configured selection, ``random``, not LDAM-DRW's draws that chose its images). Each
selection is made again and compared with the stored indices first; a record is rewritten only
where the images are the same, so nothing a run computed changes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from advimb import artifacts
from advimb.devices import resolve_runtime
from advimb.errors import UserError
from advimb.results.reader import read_config
from advimb.study import lock
from advimb.study.jobs.train import TrainJob
from advimb.study.plan import plan
from advimb.study.runfolder import check_dataset


def rebuild_scenario_records(run_dir: str | Path, data_dir: str | Path | None = None) -> list[Path]:
    """Rewrite every scenario record of ``run_dir`` that differs from what today's code writes
    for it; returns the rewritten files. ``data_dir``: where the run's dataset is now (default:
    the config's ``data.dir``). Raises :class:`UserError` (nothing written) when the folder is
    not a run folder, its data is another, it is in use, or a stored selection is not the one
    today's code makes."""
    from advimb.data.sources import load_dataset

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    if cfg is None:
        raise UserError(
            f"{run_dir} is not a run folder (no readable config.toml); give the folder `advimb run --out` wrote"
        )
    data = cfg.data if data_dir is None else dataclasses.replace(cfg.data, dir=str(data_dir))
    cfg = dataclasses.replace(
        cfg,
        data=data,
        train=dataclasses.replace(cfg.train, device="cpu", stack="off"),
        eval=dataclasses.replace(cfg.eval, group_attacks="off"),
    )
    ds = load_dataset(cfg.data)
    check_dataset(run_dir, ds.fingerprint)
    jobs = [p for j in plan(resolve_runtime(cfg), ds) for p in j.parts() if isinstance(p, TrainJob)]
    new: dict[Path, dict] = {}
    for job in jobs:
        layout, slug = job.layout(run_dir), job.scenario_slug(job.scenario)
        if not layout.scenario(slug).is_file():
            continue  # not trained yet: its record will be written when it is
        sel = job.select(ds)
        with np.load(layout.scenario(slug)) as z:
            same = all(np.array_equal(z[k], v) for k, v in (("indices", sel.indices), ("train", sel.split.train)))
        if not same:
            raise UserError(
                f"{layout.scenario(slug)}: today's code selects other images for {job.scenario.name(ds.classes)} "
                "than this run did; its records are left as they are"
            )
        path = layout.scenario(slug, "json")
        record = job.record(ds, sel)
        if not path.is_file() or artifacts.read_json(path) != record:
            new[path] = record
    if new:
        with lock.hold(run_dir, "rebuild-scenario-records"):
            for path, record in new.items():
                artifacts.write_json(path, record)
    return sorted(new)

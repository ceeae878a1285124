"""The whole study: resolve data, open the run folder, plan jobs, execute, build tables."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advimb import artifacts
from advimb.attacks.evaluate import attack_kwargs
from advimb.config.sections import ExperimentConfig
from advimb.data.dataset import eval_subset
from advimb.data.imbalance import check_counts, class_counts, target_classes
from advimb.data.sources import load_dataset
from advimb.errors import UserError
from advimb.log import log
from advimb.models import build_model
from advimb.results.pairs import parse_pair
from advimb.results.tables import build_tables
from advimb.study import lock
from advimb.study.checks import check_names
from advimb.study.executor import LocalExecutor
from advimb.study.jobs.train import TrainJob
from advimb.study.plan import plan
from advimb.study.runfolder import check_run_folder, close_stale_invocations, now, open_run, update_manifest


def train_jobs(jobs) -> list[TrainJob]:
    """Every TrainJob, including the members of stacked groups."""
    return [p for j in jobs for p in j.parts() if isinstance(p, TrainJob)]


def preflight(cfg: ExperimentConfig, ds, jobs, pair=None) -> None:
    """Every check that can fail on bad input, before anything is written (raises UserError):
    the names, the model for these images, the attack's classes, the attacked subset, every
    scenario's counts against the data (no selection made), the report's pair."""
    check_names(cfg)
    check_forward(cfg, ds)
    attack_kwargs(cfg.attack, ds.classes)
    eval_subset(ds, cfg.eval.test_per_class)
    for job in train_jobs(jobs):
        check_counts(
            ds.y_train,
            class_counts(job.scenario, ds.num_classes, cfg.imbalance),
            ds.classes,
            job.scenario.name(ds.classes),
        )
    if pair is not None:
        parse_pair(pair, ds.classes, [ds.classes[c] for c in target_classes(cfg.imbalance, ds.classes)])


def check_forward(cfg: ExperimentConfig, ds) -> None:
    """The model builds and classifies two of these images into the dataset's classes (an
    outside model may not fit their size or channels): a one-line error before anything is
    written."""
    import torch

    name = cfg.model.name
    try:
        with torch.no_grad():
            out = build_model(cfg.model, ds.num_classes, ds.image_shape).eval()(torch.zeros(2, *ds.image_shape))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any model the user names may fail on these images: one line, exit 2
        raise UserError(
            f"model {name!r} cannot classify {'x'.join(map(str, ds.image_shape))} images "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
            "choose another model or set data.resize / data.pad"
        ) from None
    if tuple(out.shape) != (2, ds.num_classes):
        raise UserError(
            f"model {name!r} returns outputs of shape {tuple(out.shape)} for 2 images; "
            f"advimb needs logits of shape (2, {ds.num_classes}) (one per class)"
        )


def open_executor(cfg: ExperimentConfig):
    """The executor ``cfg.executor.name`` names, as a context manager (Dask imported only when asked for)."""
    if cfg.executor.name == "dask":
        from advimb.study.cluster import DaskExecutor

        return DaskExecutor(cfg)
    return LocalExecutor()


def run_study(
    cfg: ExperimentConfig,
    out: str | Path,
    progress: bool = True,
    argv: list[str] | None = None,
    pair=None,
    after: Callable[[Path], Any] | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the study ``cfg`` into run folder ``out``; return the summary.
    Everything is checked (device, data, config against a folder's earlier run, every
    scenario's counts, models, attacks, the report's ``pair``, that no other live invocation
    holds the folder) before anything is written into ``out``. The folder's lock
    (:mod:`advimb.study.lock`) is held from the first write to the end, ``after(run_dir)``
    (the report) included; its result is the summary's ``after``. Another holder: a
    :class:`UserError` naming it, or with ``wait`` a wait until it ends. ``train.threads``
    applies to this call only (the caller's thread count is restored); left at 0 (auto) on the
    local executor, the study shares this process's cores with the other advimb studies on
    them (:class:`advimb.devices.CoreShare`), re-counted at every job and epoch."""
    import torch

    from advimb.devices import share_cores

    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        if cfg.executor.name != "local":  # the Dask workers run the jobs, with their own threads
            return _run_study(cfg, out, progress, argv, pair, after, wait)
        with share_cores(adapt=not cfg.train.threads):
            return _run_study(cfg, out, progress, argv, pair, after, wait)
    finally:
        torch.set_num_threads(threads)


def _run_study(
    cfg: ExperimentConfig,
    out: str | Path,
    progress: bool,
    argv: list[str] | None,
    pair,
    after: Callable[[Path], Any] | None,
    wait: bool,
) -> dict[str, Any]:
    argv = argv if argv is not None else sys.argv
    artifacts.check_writable_dir(out)
    lock.check_free(out, wait)  # fail fast, before loading anything
    inv_id = uuid.uuid4().hex[:12]
    with contextlib.ExitStack() as held:  # the folder's lock: from the first write to the end
        with open_executor(cfg) as ex:
            cfg = ex.resolve(cfg)  # device checked; precision "auto" -> what the device runs natively
            ds = load_dataset(cfg.data, progress, fresh=True)  # the files as they are now
            check_run_folder(out, cfg, ds.fingerprint)
            jobs = plan(cfg, ds)
            preflight(cfg, ds, jobs, pair)
            run_dir = artifacts.ensure_writable_dir(out)  # the first write into the run folder
            held.enter_context(lock.hold(run_dir, inv_id, argv, wait))
            check_run_folder(run_dir, cfg, ds.fingerprint)  # again: a holder we waited for may have written
            t0 = time.perf_counter()
            stats = _execute(ex, cfg, ds, jobs, run_dir, inv_id, argv, progress)
        summary = build_tables(run_dir)
        wall = time.perf_counter() - t0
        update_manifest(
            run_dir,
            status="complete",
            finished=now(),
            invocation={
                "id": inv_id,
                "finished": now(),
                "status": "complete",
                "wall_seconds": round(wall, 1),
                "jobs_run": stats["run"],
                "jobs_skipped": stats["skipped"],
                "jobs_recomputed": stats["recomputed"],
                "job_seconds": stats["seconds"],
            },
        )
        done = after(run_dir) if after is not None else None
    return {"run_dir": run_dir, "wall_seconds": wall, "stats": stats, "summary": summary, "after": done}


def _execute(
    ex, cfg: ExperimentConfig, ds, jobs, run_dir: Path, inv_id: str, argv: list[str], progress: bool
) -> dict[str, Any]:
    """Write the config and the manifest's invocation (the folder's lock held), run the jobs."""
    import os
    import platform

    open_run(run_dir, cfg)
    for old in close_stale_invocations(run_dir):
        log(f"an earlier invocation ({old}) ended without recording it (killed?); marked interrupted")
    env = ex.environment(cfg)
    n_jobs = sum(len(j.parts()) for j in jobs)
    seeds = {f"{j.scenario.name(ds.classes)}{j.tag}": j.seeds() for j in train_jobs(jobs)}
    update_manifest(
        run_dir,
        dataset=ds.summary(),
        seed=cfg.seed,
        seeds=seeds,
        environment=env,
        jobs=n_jobs,
        status="running",
        invocation={
            "id": inv_id,
            "argv": argv,
            "started": now(),
            "status": "running",
            "executor": ex.describe(),
            "pid": os.getpid(),
            "host": platform.node(),
        },
    )
    log(
        f"{cfg.preset} study: {n_jobs} jobs on {ds.name} ({ds.origin}), device {env['device']} "
        f"({cfg.train.precision}), {ex.name} executor, run folder {run_dir}"
    )
    try:
        return ex.run(jobs, run_dir, progress)
    except BaseException as e:
        update_manifest(
            run_dir,
            status="interrupted",
            invocation={"id": inv_id, "finished": now(), "status": f"stopped: {type(e).__name__}"},
        )
        raise

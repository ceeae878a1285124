"""Executors only schedule jobs; what a job does is in :mod:`advimb.study.jobs`.

The local executor runs the plan in order in this process (every job follows its
dependencies in ``plan``'s order), skipping jobs whose artifacts are done and recomputing
any whose stored result is corrupt or was made by another job. The Dask executor
(``advimb.study.cluster``, imported only when asked for) submits the same jobs as tasks.
Both resolve ``auto`` settings where the jobs will run and report that hardware.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advimb.config.sections import ExperimentConfig
from advimb.devices import describe, fair_threads, resolve_device, resolve_runtime
from advimb.log import log
from advimb.study.context import enter_study, leave_study
from advimb.study.jobs.base import Job
from advimb.study.runfolder import environment


def runtime_environment(cfg: ExperimentConfig) -> dict[str, Any]:
    """Versions, commit and hardware of this process for ``cfg``'s device (manifest)."""
    dev = resolve_device(cfg.train.device)
    return {**environment(str(dev)), **describe(dev)}


def pending(jobs: Sequence[Job], run_dir: Path) -> tuple[dict[str, Any], list[tuple[Job, int]]]:
    """Check every job's stored result: counts (skipped / recomputed) and the jobs to run,
    each with how many of its parts are unfinished (a group counts its members)."""
    stats: dict[str, Any] = {"run": 0, "skipped": 0, "recomputed": 0, "seconds": {}}
    todo = []
    total = 0
    for job in jobs:
        parts = job.parts()
        total += len(parts)
        n = 0
        for part in parts:
            st = part.status(run_dir)
            if st == "done":
                stats["skipped"] += 1
                continue
            n += 1
            if st != "missing":
                log(f"{st}; recomputing {part.name}")
                stats["recomputed"] += 1
        if n:
            todo.append((job, n))
    if stats["skipped"]:
        log(f"{stats['skipped']} of {total} jobs already done in {run_dir}; continuing")
    return stats, todo


class LocalExecutor:
    """Every job in this process, in plan order."""

    name = "local"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        leave_study()  # the study's tensors on its device go with it (a notebook runs many)

    def resolve(self, cfg: ExperimentConfig) -> ExperimentConfig:
        return resolve_runtime(cfg)

    def environment(self, cfg: ExperimentConfig) -> dict[str, Any]:
        return runtime_environment(cfg)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def run(self, jobs: Sequence[Job], run_dir: Path, progress: bool = True) -> dict[str, Any]:
        return run_local(jobs, run_dir, progress)


def run_local(jobs: Sequence[Job], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Run every unfinished job; return counts of run / skipped / recomputed jobs (a group
    counts its members: a stacked training group of ten is ten jobs)."""
    from tqdm.auto import tqdm

    enter_study(str(Path(run_dir).resolve()))  # the jobs below share its context
    stats, todo = pending(jobs, run_dir)
    bar = tqdm(total=sum(n for _, n in todo), desc="study", unit="job", disable=not progress, position=0)
    for job, n in todo:
        fair_threads()  # this study's share of the cores, re-counted at every job
        bar.set_postfix_str(job.name)
        t0 = time.perf_counter()
        job.run(run_dir, progress=progress)
        stats["seconds"][job.name] = round(time.perf_counter() - t0, 2)
        stats["run"] += n
        bar.update(n)
    bar.close()
    return stats

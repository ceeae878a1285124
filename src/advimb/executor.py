"""Executors only schedule jobs; what a job does is in ``jobs.py``.

The local executor runs the plan in order in this process (every job follows its
dependencies in ``plan``'s order), skipping jobs whose artifacts are done and recomputing
any whose stored result is corrupt or was made by another job.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

from advimb.jobs import Job


def log(msg: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"advimb: {msg}", file=sys.stderr)


def run_local(jobs: Sequence[Job], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Run every unfinished job; return counts of run / skipped / recomputed jobs (a group
    counts its members: a stacked training group of ten is ten jobs)."""
    from tqdm.auto import tqdm

    stats = {"run": 0, "skipped": 0, "recomputed": 0, "seconds": {}}
    todo = []
    total = 0
    for job in jobs:
        parts = job.parts()
        total += len(parts)
        pending = 0
        for part in parts:
            st = part.status(run_dir)
            if st == "done":
                stats["skipped"] += 1
                continue
            pending += 1
            if st != "missing":
                log(f"{st}; recomputing {part.name}")
                stats["recomputed"] += 1
        if pending:
            todo.append((job, pending))
    if stats["skipped"]:
        log(f"{stats['skipped']} of {total} jobs already done in {run_dir}; continuing")
    bar = tqdm(total=sum(n for _, n in todo), desc="study", unit="job", disable=not progress, position=0)
    for job, pending in todo:
        bar.set_postfix_str(job.name)
        t0 = time.perf_counter()
        job.run(run_dir, progress=progress)
        stats["seconds"][job.name] = round(time.perf_counter() - t0, 2)
        stats["run"] += pending
        bar.update(pending)
    bar.close()
    return stats

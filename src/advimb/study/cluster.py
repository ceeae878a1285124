"""The study's jobs as Dask distributed tasks (``--executor dask``; ``pip install "advimb[dask]"``).

advimb writes no scheduler of its own: every job of the plan is one task (``client.submit``),
a job that reads a model gets the future of the job that trains it as an argument, so Dask
runs it after that one, and independent jobs run in parallel on whatever workers the
scheduler has (a LocalCluster that advimb starts on 127.0.0.1, or a cluster the user
started by hand, with dask-jobqueue on SLURM/PBS or dask-kubernetes).

Artifacts go straight to the run folder, which every worker must see (shared storage).
They are written atomically and each job's marker records the job's hash and the sha256 of
the bytes *this* task wrote, so a retried or duplicated task never leaves a mixed or
half-written result: a file replaced by another task's different bytes fails its check and
is recomputed. A task that raises is retried ``executor.retries`` times; a task whose worker
dies is rescheduled by Dask (bounded by ``distributed.scheduler.allowed-failures``); a
driver that dies is restarted with the same command and continues from what is stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advimb.errors import UserError
from advimb.log import log
from advimb.study.executor import pending, runtime_environment
from advimb.study.jobs.base import Job

if TYPE_CHECKING:
    from distributed import Client, LocalCluster


def run_job(job: Job, run_dir: str, *deps: Any) -> dict[str, Any]:
    """The task: run ``job`` unless its artifacts are already done (a retry or a duplicate
    finds them so). ``deps`` are the results of the jobs it depends on (unused: passing
    their futures is how Dask learns the order)."""
    from advimb.devices import torch_threads
    from advimb.study.context import enter_study

    enter_study(str(Path(run_dir).resolve()))
    path = Path(run_dir)
    if all(p.status(path) == "done" for p in job.parts()):
        return {"job": job.name, "seconds": 0.0, "skipped": True, "pid": os.getpid()}
    t0 = time.perf_counter()
    with torch_threads(job.config.train.threads):  # the worker's own count again after the job
        job.run(path, progress=False)
    return {"job": job.name, "seconds": round(time.perf_counter() - t0, 2), "skipped": False, "pid": os.getpid()}


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError(
            'executor "dask" needs Dask distributed: pip install "advimb[dask]" (or pip install distributed)'
        ) from None
    return distributed


class DaskExecutor:
    """Connects to (or starts) a Dask cluster for the duration of a ``with`` block."""

    name = "dask"

    def __init__(self, cfg: Any) -> None:
        self.ecfg = cfg.executor
        self.device_name = cfg.train.device
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None
        self.address = ""

    # ------------------------------------------------------------------ connection
    def __enter__(self) -> DaskExecutor:
        distributed = _import_distributed()
        e = self.ecfg
        address = e.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS", "")
        try:
            if address:
                self.client = distributed.Client(address, timeout=e.connect_timeout)
            elif e.scheduler_file:
                if not Path(e.scheduler_file).is_file():
                    raise UserError(
                        f"Dask scheduler file {e.scheduler_file} does not exist; start a "
                        "scheduler with dask scheduler --scheduler-file FILE, or leave "
                        "executor.scheduler_file empty to start a local cluster"
                    )
                self.client = distributed.Client(scheduler_file=e.scheduler_file, timeout=e.connect_timeout)
            else:
                self.cluster = self._local_cluster(distributed)
                self.client = distributed.Client(self.cluster)
        except (OSError, TimeoutError) as err:
            where = address or e.scheduler_file
            raise UserError(
                f"cannot reach the Dask scheduler at {where} ({err}); start it "
                "(dask scheduler) or check executor.scheduler"
            ) from None
        self.address = self.client.scheduler.address
        return self

    def _client(self) -> Client:
        """The connected client (a bug to ask for it outside the ``with`` block)."""
        if self.client is None:
            raise RuntimeError("DaskExecutor used outside its with block: no Dask client")
        return self.client

    def _local_cluster(self, distributed):
        import torch

        from advimb.devices import resolve_device, usable_cores

        cuda = resolve_device(self.device_name).type == "cuda"
        cores = usable_cores()
        n = self.ecfg.workers or (max(1, torch.cuda.device_count()) if cuda else max(1, cores // 2))
        threads = max(1, cores // n)
        log(f"starting a Dask LocalCluster on 127.0.0.1: {n} worker process(es), {threads} torch thread(s) each")
        return distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            resources={"GPU": 1} if cuda else None,
            env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
        )

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    # ------------------------------------------------------------------ where jobs run
    def _resources(self, cfg: Any) -> dict[str, int] | None:
        """``{"GPU": 1}`` for every task when the jobs may use a GPU and the workers declare
        GPUs (so one task holds one GPU at a time), else nothing."""
        if self.ecfg.resources == "none" or cfg.train.device == "cpu":
            return None
        workers = self._client().scheduler_info()["workers"].values()
        if any(w.get("resources", {}).get("GPU") for w in workers):
            return {"GPU": 1}
        if cfg.train.device.startswith("cuda"):
            log(
                "no Dask worker declares a GPU resource, so tasks are not limited to one per GPU; "
                "start workers with --resources GPU=1"
            )
        return None

    def _on_worker(self, fn, *args: Any, cfg: Any = None) -> Any:
        return self._client().submit(fn, *args, pure=False, resources=self._resources(cfg)).result()

    def resolve(self, cfg: Any) -> Any:
        from advimb.devices import resolve_runtime

        return self._on_worker(resolve_runtime, cfg, cfg=cfg)

    def environment(self, cfg: Any) -> dict[str, Any]:
        return self._on_worker(runtime_environment, cfg, cfg=cfg)

    def describe(self) -> dict[str, Any]:
        workers = self._client().scheduler_info()["workers"]
        return {
            "name": self.name,
            "scheduler": self.address,
            "workers": len(workers),
            "local_cluster": self.cluster is not None,
            "retries": self.ecfg.retries,
        }

    # ------------------------------------------------------------------ the plan
    def run(self, jobs: Sequence[Job], run_dir: Path, progress: bool = True) -> dict[str, Any]:
        """Submit every unfinished job; wait for all; the same counts as ``run_local``."""
        from distributed import as_completed
        from tqdm.auto import tqdm

        stats, todo = pending(jobs, run_dir)
        if not todo:
            return stats
        resources = self._resources(todo[0][0].config)
        by_part: dict[str, Any] = {}  # key of every part -> the future of the task that makes it
        futures = {}
        for job, n in todo:
            deps = list(dict.fromkeys(by_part[k] for k in job.deps if k in by_part))
            fut = self._client().submit(
                run_job,
                job,
                str(Path(run_dir).resolve()),
                *deps,
                key=f"advimb-{job.kind}-{job.key}",
                pure=False,
                retries=self.ecfg.retries,
                resources=resources,
            )
            futures[fut] = (job, n)
            for p in job.parts():
                by_part[p.key] = fut
        workers = len(self._client().scheduler_info()["workers"])
        log(f"{len(futures)} tasks submitted to the Dask scheduler at {self.address} ({workers} workers)")
        bar = tqdm(total=sum(n for _, n in todo), desc="study (dask)", unit="job", disable=not progress, position=0)
        try:
            for fut in as_completed(list(futures)):
                job, n = futures[fut]
                res = fut.result()  # re-raises a task's error here, after its retries
                stats["seconds"][job.name] = res["seconds"]
                stats["run"] += n
                bar.set_postfix_str(job.name)
                bar.update(n)
        finally:
            bar.close()
            for fut in futures:  # an interrupted driver leaves nothing queued for its jobs
                fut.release()
        return stats

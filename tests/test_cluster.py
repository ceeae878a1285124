"""The study on a real Dask cluster, on 127.0.0.1 only: the same tables as the local
executor, a worker killed mid-run, a driver killed mid-run. The cluster (a ``dask scheduler``
and two ``dask worker`` processes under one nanny) is started here and stopped at the end
of the module; every wait is bounded.

Every run here, local or Dask, uses one torch thread per job (``train.threads=1``): the
number of threads changes the order of float reductions in the convolutions, and RMSProp
turns such rounding into different weights, so bit-identical tables need equal thread
counts (as they need the same device)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for

from advimb.study.run import run_study

TABLES = ["table1.csv", "clean_target_accuracy.csv", "relative_difference.csv", "flip_rates.csv", "clean_accuracy.csv"]


def _tables(run):
    return {t: (Path(run) / "tables" / t).read_text() for t in TABLES}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and 2 single-threaded workers (one nanny) bound to 127.0.0.1; yields the
    scheduler file. Everything runs in its own process group and is killed at the end."""
    from distributed import Client

    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(d / "log.txt", "w")  # noqa: SIM115 - the servers write into it for the whole session
    common = {"env": env, "start_new_session": True, "stdout": log, "stderr": subprocess.STDOUT}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
                "--idle-timeout",
                "900",
            ],
            **common,
        )
    ]
    try:
        wait_for(sched_file.exists, 60, "the scheduler file")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    "--scheduler-file",
                    str(sched_file),
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--death-timeout",
                    "120",
                ],
                **common,
            )
        )
        with Client(scheduler_file=str(sched_file), timeout=30) as c:
            c.wait_for_workers(2, timeout=90)
            assert c.scheduler.address.startswith("tcp://127.0.0.1:")
            assert all(w.startswith("tcp://127.0.0.1:") for w in c.scheduler_info()["workers"])
        yield sched_file
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)


@pytest.fixture(scope="module")
def one_thread_cfg(smoke_cfg):
    import dataclasses

    return dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, threads=1))


@pytest.fixture(scope="module")
def local_ref(one_thread_cfg, tmp_path_factory):
    """The smoke study on the local executor, one thread per job: the reference tables."""
    return run_study(one_thread_cfg, tmp_path_factory.mktemp("local-ref"), progress=False)["run_dir"]


def _dask_cfg(cfg, sched_file):
    import dataclasses

    return dataclasses.replace(
        cfg, executor=dataclasses.replace(cfg.executor, name="dask", scheduler_file=str(sched_file))
    )


def _driver(out, sched_file, *extra):
    return [
        sys.executable,
        "-m",
        "advimb",
        "run",
        "--preset",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        "--no-report",
        "--set",
        "train.threads=1",
        "--executor",
        "dask",
        "--scheduler-file",
        str(sched_file),
        *extra,
    ]


ENV = {**os.environ, "ADVIMB_DATA": ""}


@pytest.mark.determinism
def test_dask_study_equals_the_local_one(local_ref, one_thread_cfg, dask_cluster, tmp_path):
    res = run_study(_dask_cfg(one_thread_cfg, dask_cluster), tmp_path / "run", progress=False)
    assert res["stats"]["run"] == 72
    assert _tables(res["run_dir"]) == _tables(local_ref)
    inv = json.loads((Path(res["run_dir"]) / "manifest.json").read_text())["invocations"][-1]
    assert inv["executor"]["name"] == "dask" and inv["executor"]["workers"] == 2
    assert inv["executor"]["scheduler"].startswith("tcp://127.0.0.1:")
    # a rerun finds everything done; the local executor may continue a Dask run and vice versa
    again = run_study(one_thread_cfg, tmp_path / "run", progress=False)
    assert again["stats"]["run"] == 0 and again["stats"]["skipped"] == 72


def test_a_dask_driver_is_refused_on_a_folder_another_invocation_holds(one_thread_cfg, dask_cluster, tmp_path):
    """The lock is the driver's: a Dask driver on a folder held by another live invocation
    stops with one line naming it, before it submits anything."""
    from advimb.errors import UserError
    from advimb.study.lock import hold

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom advimb.study.lock import hold\n"
            "with hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"in use by another advimb invocation, pid {holder.pid} "):
            run_study(_dask_cfg(one_thread_cfg, dask_cluster), run, progress=False)
        assert sorted(p.name for p in run.iterdir()) == ["run.lock"]
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with hold(run):  # taken over from the killed holder
        pass


def test_a_killed_worker_does_not_change_the_results(local_ref, dask_cluster, tmp_path):
    """SIGKILL the worker process that is running a task, mid-study: Dask reschedules its
    tasks (its nanny starts a fresh worker) and the study ends with the local tables."""
    from distributed import Client

    out = tmp_path / "run"
    drv = subprocess.Popen(
        _driver(out, dask_cluster), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with Client(scheduler_file=str(dask_cluster), timeout=30) as c:

            def busy_worker():
                busy = [w for w, keys in c.processing().items() if keys]
                return busy[0] if busy and len(list(out.glob("models/*/meta.json"))) >= 3 else None

            wait_for(lambda: busy_worker() is not None, 120, "a worker busy with a task after 3 models")
            victim = busy_worker()
            pid = c.run(os.getpid, workers=[victim])[victim]
            done_at_kill = len(list(out.glob("models/*/meta.json")))
            os.kill(pid, signal.SIGKILL)
            _, stderr = drv.communicate(timeout=300)
            assert drv.returncode == 0, stderr
            assert done_at_kill < 21, "the kill should land mid-study"
            wait_for(lambda: len(c.scheduler_info()["workers"]) == 2, 60, "the nanny to restart the worker")
            assert victim not in c.scheduler_info()["workers"]
        assert f"Worker process {pid} was killed by signal 9" in (dask_cluster.parent / "log.txt").read_text()
    finally:
        if drv.poll() is None:
            drv.kill()
    assert _tables(out) == _tables(local_ref)


def test_a_killed_driver_resumes_without_recomputing(local_ref, dask_cluster, tmp_path):
    """SIGKILL the driver mid-study; the same command again finishes the study, recomputes
    nothing that was finished, and ends with the local tables."""
    out = tmp_path / "run"
    cmd = _driver(out, dask_cluster)
    drv = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list(out.glob("models/*/meta.json"))) >= 6, 120, "6 trained models")
    finally:
        drv.send_signal(signal.SIGKILL)
        drv.wait(timeout=30)
    done = {
        p: p.stat().st_mtime_ns
        for p in out.glob("**/*.json")
        if p.parent.name != "tables" and p.name not in ("manifest.json",) and json.loads(p.read_text()).get("job_key")
    }
    assert 6 <= len(done) < 72, "the kill should land mid-study"
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert "already done" in r.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # nothing finished was redone
    assert not list(out.rglob("*.tmp"))
    assert _tables(out) == _tables(local_ref)


def test_dask_local_cluster_from_the_cli(local_ref, tmp_path):
    """--executor dask with no scheduler: advimb starts (and stops) its own LocalCluster on
    127.0.0.1; the tables equal the local executor's."""
    out = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "advimb",
            "run",
            "--preset",
            "smoke",
            "--out",
            str(out),
            "--no-progress",
            "--no-report",
            "--set",
            "train.threads=1",
            "--executor",
            "dask",
            "--set",
            "executor.workers=2",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "starting a Dask LocalCluster on 127.0.0.1: 2 worker process(es)" in r.stderr
    inv = json.loads((out / "manifest.json").read_text())["invocations"][-1]
    assert inv["executor"]["local_cluster"] and inv["executor"]["scheduler"].startswith("tcp://127.0.0.1:")
    assert _tables(out) == _tables(local_ref)


@pytest.mark.parametrize(
    "argv,msg",
    [
        (
            ["--scheduler", "tcp://127.0.0.1:9", "--set", "executor.connect_timeout=2"],
            "cannot reach the Dask scheduler at tcp://127.0.0.1:9",
        ),
        (
            ["--scheduler-file", "/nonexistent/scheduler.json"],
            "Dask scheduler file /nonexistent/scheduler.json does not exist",
        ),
        (["--set", "executor.retries=-1"], "executor.retries: must be in [0, 20]"),
    ],
)
def test_bad_cluster_input_is_one_line(tmp_path, capsys, argv, msg):
    from advimb.cli import main

    assert (
        main(["run", "--preset", "smoke", "--no-progress", "--out", str(tmp_path / "o"), "--executor", "dask", *argv])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("advimb: error:") and msg in err and "\n" not in err


def test_the_local_executor_never_imports_dask(tmp_path):
    code = (
        "import sys; from advimb.config.presets import resolve_config; from advimb.study.run import run_study; "
        "import dataclasses; c = resolve_config('smoke', env={}); "
        "c = dataclasses.replace(c, train=dataclasses.replace(c.train, max_epochs=1)); "
        f"run_study(c, {str(tmp_path / 'run')!r}, progress=False); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]; "
        "assert not bad, bad; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_run_study_restores_the_callers_thread_count(one_thread_cfg, tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the study asks for 1
    try:
        run_study(one_thread_cfg, tmp_path / "run", progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _neighbour(tmp_path, cores):
    """A live process registered in the core share under ``tmp_path`` with ``cores``."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    root = tmp_path / "share"
    root.mkdir(exist_ok=True)
    (root / str(p.pid)).write_text(",".join(map(str, sorted(cores))))
    return p, root


def test_the_core_share_counts_live_studies_on_these_cores_and_forgets_ended_ones(tmp_path):
    """Two studies that each take every core oversubscribe them (a quarter of the rate alone each,
    benchmarks/fair_share.py); each takes its share instead: its cores over the live studies
    whose cores overlap its own."""
    import os

    from advimb.devices import CoreShare

    cores = os.sched_getaffinity(0)
    p, root = _neighbour(tmp_path, cores)
    try:
        (root / "999999999").write_text("0")  # a study that ended without removing its file
        (root / "notapid").write_text("0")
        other = root / "1"  # pid 1 is alive; its cores (none of ours) do not overlap
        other.write_text(str(max(cores) + 1000))
        with CoreShare(root) as share:
            assert (root / str(os.getpid())).exists()
            assert share.studies() == 2
            assert share.threads() == max(1, len(cores) // 2)
            assert not (root / "999999999").exists()
        assert not (root / str(os.getpid())).exists()
    finally:
        p.kill()
        p.wait()
    with CoreShare(root) as share:  # the neighbour has ended: every core again
        assert share.studies() == 1 and share.threads() == len(cores)


def test_a_study_beside_another_takes_its_share_and_records_it(smoke_cfg, tmp_path, monkeypatch):
    """``train.threads`` auto: every epoch's thread count is this process's share of its cores,
    recorded beside the model's history (meta.json ``epoch_threads``); a fixed ``train.threads``
    keeps its count (and restores the caller's)."""
    import dataclasses
    import os
    import tempfile

    import torch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cores = os.sched_getaffinity(0)
    p, _ = _neighbour(tmp_path, cores)
    os.replace(tmp_path / "share", tmp_path / f"advimb-cores-{os.getuid()}")
    before = torch.get_num_threads()
    try:
        run_dir = run_study(smoke_cfg, tmp_path / "run", progress=False)["run_dir"]
        fixed = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, threads=len(cores)))
        fixed_dir = run_study(fixed, tmp_path / "fixed", progress=False)["run_dir"]
    finally:
        p.kill()
        p.wait()
    assert torch.get_num_threads() == before

    def threads(d):
        return set(json.loads((d / "models" / "balanced" / "meta.json").read_text())["epoch_threads"])

    assert threads(run_dir) == {max(1, len(cores) // 2)}
    assert threads(fixed_dir) == {len(cores)}


def test_usable_cores_are_the_affinity_mask_not_the_machine():
    import os

    from advimb.devices import usable_cores

    mask = os.sched_getaffinity(0)
    assert usable_cores() == len(mask)
    os.sched_setaffinity(0, {min(mask)})
    try:
        assert usable_cores() == 1
    finally:
        os.sched_setaffinity(0, mask)


def test_a_dask_task_runs_with_the_jobs_threads_and_puts_back_the_workers(tmp_path):
    """``run_job`` (a Dask task) sets the job's ``train.threads`` for the job alone: the worker
    runs other studies' jobs after it, with its own count."""
    import types

    import torch

    from advimb.study.cluster import run_job

    seen = []

    class Job:
        name = "probe"
        config = types.SimpleNamespace(train=types.SimpleNamespace(threads=1))

        def parts(self):
            return [types.SimpleNamespace(status=lambda path: "missing")]

        def run(self, path, progress):
            seen.append(torch.get_num_threads())
            raise RuntimeError("inside")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"):  # a failing job puts the count back too
            run_job(Job(), str(tmp_path))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_worker_holds_one_studys_device_copies_at_a_time(smoke_cfg, tmp_path):
    """A Dask worker serves many studies: the first task of another study releases the last
    one's device copies of its data; tasks of the same study keep them."""
    import torch

    from advimb.data.sources import load_dataset
    from advimb.study import context
    from advimb.study.jobs.base import device_arrays

    ds = load_dataset(smoke_cfg.data)
    a = context.enter_study(str(tmp_path / "a"))
    first = device_arrays(ds, torch.device("cpu"))
    assert a.held() == 1 and context.current_study() is a
    assert context.enter_study(str(tmp_path / "a")) is a  # the same study: kept
    assert a.held() == 1 and device_arrays(ds, torch.device("cpu")) is first
    b = context.enter_study(str(tmp_path / "b"))  # another study: released
    assert b is not a and a.held() == 0 and b.held() == 0
    context.leave_study()  # the study ends: a fresh, empty context
    assert context.current_study().run_dir == "" and b.held() == 0

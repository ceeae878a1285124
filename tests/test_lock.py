"""One study per run folder at a time (advimb.study.lock): a second invocation on a folder
that a live one holds is refused in one line naming the holder (exit 2) or, with --wait,
waits for it; a lock left by a killed process is taken over; the lock is re-entrant within a
process and a finished folder holds no lock file. Every subprocess here is bounded in time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for

from advimb.errors import UserError
from advimb.study import lock

SMOKE = [sys.executable, "-m", "advimb", "run", "--preset", "smoke", "--no-progress", "--no-report"]
HOLDER = """
import sys, time
from advimb.study.lock import hold
with hold(sys.argv[1], "holder", ["holder"]):
    print("held", flush=True)
    time.sleep(120)
"""


def _env():
    return {**os.environ, "ADVIMB_DATA": ""}


def _start_holder(folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_is_reentrant_and_leaves_no_file(tmp_path):
    with lock.hold(tmp_path, "a", ["test"]) as previous:
        assert previous is None
        rec = json.loads((tmp_path / "run.lock").read_text())
        assert rec["pid"] == os.getpid() and rec["invocation"] == "a"
        with lock.hold(tmp_path):  # the same process: no self-deadlock
            pass
        assert (tmp_path / "run.lock").exists()
        assert lock.holder(tmp_path) is None  # it is ours
    assert not (tmp_path / "run.lock").exists()


def test_a_live_holder_is_named_and_a_killed_ones_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    proc = _start_holder(run)
    try:
        rec = lock.holder(run)
        assert rec["pid"] == proc.pid and rec["argv"] == ["holder"]
        with pytest.raises(UserError, match=rf"is in use by another advimb invocation, pid {proc.pid} on host "):
            lock.check_free(run)
        with pytest.raises(UserError, match=rf"pid {proc.pid}"), lock.hold(run):
            pass
        # the CLI: one line, exit 2, nothing written into the folder
        r = subprocess.run(
            [*SMOKE, "--out", str(run)], env=_env(), capture_output=True, text=True, timeout=120, check=False
        )
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("advimb: error: ") and f"pid {proc.pid}" in lines[0]
        assert "--wait" in lines[0]
        assert sorted(p.name for p in run.iterdir()) == ["run.lock"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert json.loads((run / "run.lock").read_text())["pid"] == proc.pid  # the dead holder's record stays
    assert lock.holder(run) is None  # ... but nobody holds the lock
    r = subprocess.run(
        [*SMOKE, "--out", str(run)], env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of {run} from pid {proc.pid}" in r.stderr
    assert not (run / "run.lock").exists() and (run / "tables" / "table1.csv").exists()


def test_a_second_invocation_on_a_running_study_is_refused_or_waits(tmp_path):
    """Two real invocations of one study on one folder: while the first trains, the second
    stops with one line naming it (exit 2) and the third, with --wait, waits for it and then
    finds every job done."""
    run = tmp_path / "run"
    cmd = [*SMOKE, "--out", str(run), "--set", "train.max_epochs=30", "--set", "train.patience=30"]
    first = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:

        def held_by_first():
            try:
                return json.loads((run / "run.lock").read_text())["pid"] == first.pid
            except (OSError, ValueError, KeyError):
                return False

        wait_for(held_by_first, 120, "the first invocation to hold the folder")
        second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120, check=False)
        assert first.poll() is None, "the first invocation ended too soon for this test"
        assert second.returncode == 2, second.stderr
        assert f"is in use by another advimb invocation, pid {first.pid} on host" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        third = subprocess.run([*cmd, "--wait"], env=_env(), capture_output=True, text=True, timeout=600, check=False)
        assert third.returncode == 0, third.stderr
        assert f"is in use by pid {first.pid}" in third.stderr and "waiting for it to finish" in third.stderr
        assert "72 of 72 jobs already done" in third.stderr
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    invs = json.loads((run / "manifest.json").read_text())["invocations"]
    assert [i["status"] for i in invs] == ["complete", "complete"]  # the refused one left no trace
    assert invs[0]["pid"] == first.pid and invs[1]["jobs_run"] == 0
    assert not (run / "run.lock").exists()


def test_advimb_tables_and_report_take_the_lock_too(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    proc = _start_holder(run)
    try:
        for sub in (["tables", str(run)], ["report", str(run)]):
            r = subprocess.run(
                [sys.executable, "-m", "advimb", *sub],
                env=_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert r.returncode == 2 and f"pid {proc.pid}" in r.stderr, (sub, r.stderr)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    r = subprocess.run(
        [sys.executable, "-m", "advimb", "tables", str(run)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr

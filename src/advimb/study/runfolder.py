"""The run folder's own records: the resolved config (``config.toml``), the manifest
(versions, commit, device, seeds, dataset fingerprint, every invocation and its status) and
the checks that a rerun into a folder continues the same study. Where each artifact lives is
:class:`advimb.layout.RunLayout`'s to say.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from advimb import __version__, artifacts
from advimb.config.io import dump_toml, from_dict, load_toml
from advimb.config.sections import ExperimentConfig
from advimb.errors import UserError
from advimb.layout import RunLayout


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> dict[str, Any]:
    """The commit of the advimb source tree, if it is a git checkout (else None)."""
    src = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=src, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            check=False,
            cwd=src,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha or None, "dirty": bool(dirty) if sha else None}


def environment(device: str) -> dict[str, Any]:
    import numpy
    import torch
    import torchvision

    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name()})"
    return {
        "advimb": __version__,
        **git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": dev,
        "torch_threads": torch.get_num_threads(),
    }


def check_run_folder(out: str | Path, cfg: ExperimentConfig, fingerprint: str) -> Path:
    """Check, writing nothing, that ``out`` can hold the study ``cfg`` on the dataset with
    ``fingerprint``: a writable (or creatable) folder, empty or holding the same study (same
    science config, same data). Raises :class:`UserError`; returns the folder's path."""
    run_dir = artifacts.check_writable_dir(out)
    cfg_path = RunLayout(run_dir).config
    if cfg_path.exists():
        try:
            old = from_dict(ExperimentConfig, load_toml(cfg_path)).science_dict()
        except UserError:
            old = None
        new = cfg.science_dict()
        if old is not None and old != new:
            diffs = _diff(old, new)
            raise UserError(
                f"{run_dir} holds a run with a different config (differs in {', '.join(diffs[:4])}); "
                "rerun with the same settings to resume, or choose another --out"
            )
    check_dataset(run_dir, fingerprint)
    return run_dir


def open_run(out: str | Path, cfg: ExperimentConfig) -> Path:
    """Create or reopen run folder ``out`` and write ``cfg`` into it (after
    :func:`check_run_folder` has passed, and every other check)."""
    run_dir = artifacts.ensure_writable_dir(out)
    artifacts.write_text(RunLayout(run_dir).config, dump_toml(cfg))
    return run_dir


def close_stale_invocations(run_dir: Path) -> list[str]:
    """Mark the invocations that the manifest still lists as ``running`` as interrupted and
    remove the temporary files they left behind; returns their ids. Called by the holder of
    the folder's lock (:mod:`advimb.study.lock`): any other invocation that still reads as
    running has ended without recording it (killed with SIGKILL, or its machine died), since
    a live one would hold the lock."""
    path = RunLayout(run_dir).manifest
    if not path.exists():
        return []
    m = artifacts.read_json(path)
    closed = []
    for inv in m.get("invocations", []):
        if inv.get("status") != "running":
            continue
        where = "" if inv.get("host") in (None, platform.node()) else f" on host {inv['host']}"
        inv["status"] = f"interrupted: its process{where} ended without recording an end (killed?)"
        closed.append(inv.get("id", "?"))
    if closed:
        artifacts.write_json(path, m)
    for tmp in Path(run_dir).rglob(".*.tmp"):  # artifacts.atomic_path's names: nobody else writes now
        tmp.unlink(missing_ok=True)
    return closed


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def update_manifest(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``manifest.json`` (``invocation`` is appended to a list)."""
    path = RunLayout(run_dir).manifest
    m: dict[str, Any] = artifacts.read_json(path) if path.exists() else {"created": now(), "invocations": []}
    inv = fields.pop("invocation", None)
    if inv is not None:
        invs = m.setdefault("invocations", [])
        if invs and invs[-1].get("id") == inv.get("id"):
            invs[-1].update(inv)
        else:
            invs.append(inv)
    m.update(fields)
    artifacts.write_json(path, m)
    return m


def check_dataset(run_dir: Path, fingerprint: str) -> None:
    path = RunLayout(run_dir).manifest
    if path.exists():
        old = artifacts.read_json(path).get("dataset", {}).get("fingerprint")
        if old and old != fingerprint:
            raise UserError(
                f"{run_dir} was run on a dataset with fingerprint {old[:12]}..., but this data is "
                f"{fingerprint[:12]}...; use the same data to resume, or choose another --out"
            )

"""Publish a finished run folder here, the way ``paper-h200`` is published.

    python docs/reproduction/publish.py ~/runs/h2-balval-cat cpu-balval-cat

copies the run folder into ``docs/reproduction/NAME`` less what is not redistributed or not
needed to rebuild it: the model weights and training checkpoints (``*.pt``), the lock, and
the example images in every attack artifact (``eval/attack/``, ``experiments/*/``,
``sweep/*/``: CIFAR-10's images; every other array of those files is kept as it is). It writes ``provenance.json`` (the source folder, the machine, and
the size and sha256 of every file of the source with what was done to it), then rebuilds the
tables and the report with the current advimb. The tests check the published folder against
its ``provenance.json`` and its jobs' markers.

    python docs/reproduction/publish.py --rebuild-records longtail-cpu

rebuilds a published folder's scenario records with today's code (:func:`rebuild_records`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: arrays of an attack npz that hold dataset images (not redistributed here)
IMAGE_ARRAYS = ("example_clean", "example_adversarial")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The CPU features that decide the kernels torch takes (AVX2, AVX-512, bf16, AMX)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags.split(":", 1)[1].split() if f.startswith(("avx", "amx")) or f == "fma")


def _holds_images(p: Path) -> bool:
    """Is ``p`` an attack artifact with example images (the grid's, an experiment's, a sweep's)?"""
    with np.load(p) as a:
        return bool(set(IMAGE_ARRAYS) & set(a.files))


def publish(src: Path, name: str, root: Path = HERE) -> Path:
    from advimb import artifacts

    manifest = json.loads((src / "manifest.json").read_text())
    last = manifest["invocations"][-1]
    if last.get("status") != "complete":
        raise SystemExit(f"{src}: its last invocation is {last.get('status')!r}, not complete; finish it first")
    dst = root / name
    if dst.exists():
        raise SystemExit(f"{dst} exists; remove it first")
    files = {}
    for p in sorted(q for q in src.rglob("*") if q.is_file()):
        rel = p.relative_to(src).as_posix()
        rec = {**artifacts.file_record(p)}
        if p.suffix in (".pt", ".pth", ".tmp") or rel == "run.lock" or rel.split("/")[0] in ("tables", "report"):
            rec["published"] = (
                "dropped (weights, checkpoints and the lock are not published; tables and report are rebuilt)"
            )
        elif p.suffix == ".npz" and _holds_images(p):
            with np.load(p) as a:
                kept = {k: a[k] for k in a.files if k not in IMAGE_ARRAYS}
                removed = sorted(set(a.files) - set(kept))
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            artifacts.write_npz(dst / rel, **kept)
            rec["published"] = f"arrays {', '.join(removed)} removed (dataset images); the others as they were"
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst / rel)
            rec["published"] = "as it was"
        files[rel] = rec
    env = manifest.get("environment", {})
    prov = {
        "source": str(src),
        "published": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_name(),
            "cpu_flags": cpu_flags(),
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "torch": env.get("torch"),
        },
        "files": files,
    }
    (dst / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    for cmd in ("tables", "report"):
        subprocess.run([sys.executable, "-m", "advimb", cmd, str(dst)], check=True)
    return dst


def rebuild_records(name: str, data_dir: Path | None = None, root: Path = HERE) -> list[str]:
    """Rebuild the published folder's scenario records with today's code
    (:func:`advimb.study.records.rebuild_scenario_records`) and say so in its provenance: each
    rewritten file keeps its source's size and sha256 and gains ``rebuilt`` (its own, the
    function and the commit)."""
    from advimb import artifacts
    from advimb.study.records import rebuild_scenario_records
    from advimb.study.runfolder import git_commit

    dst = root / name
    prov = json.loads((dst / "provenance.json").read_text())
    changed = rebuild_scenario_records(dst, data_dir)
    commit = git_commit().get("commit", "unknown")
    for path in changed:
        rel = path.relative_to(dst).as_posix()
        prov["files"][rel]["published"] = (
            "record rebuilt by advimb.study.records.rebuild_scenario_records (an earlier version recorded "
            "the configured selection, not the one used); the source's size and sha256 are above"
        )
        prov["files"][rel]["rebuilt"] = {**artifacts.file_record(path), "commit": commit}
    (dst / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    return [p.relative_to(dst).as_posix() for p in changed]  # no table or figure reads a record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, nargs="?", help="a finished run folder")
    ap.add_argument("name", help="the published folder's name under docs/reproduction/")
    ap.add_argument(
        "--rebuild-records",
        action="store_true",
        help="rebuild the published folder NAME's scenario records with today's code instead (no SRC)",
    )
    ap.add_argument("--data-dir", type=Path, help="with --rebuild-records: where the run's dataset is")
    args = ap.parse_args()
    if args.rebuild_records:
        print("\n".join(rebuild_records(args.name, args.data_dir)) or "every record is as today's code writes it")
        return 0
    if args.src is None:
        ap.error("give SRC (a finished run folder) and NAME, or --rebuild-records NAME")
    print(publish(args.src.expanduser().resolve(), args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

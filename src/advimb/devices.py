"""Where and in what precision the study runs: device, bf16 support, batch sizes, and the
one conversion of stored images to model input (:func:`to_float`). A leaf: imports only
``advimb.errors``.

``auto`` settings are resolved here, once, before a run folder is written, so the resolved
values (not ``auto``) go into ``config.toml`` and into every job's key: a run resumed on
hardware that would resolve differently is refused instead of silently mixing results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import torch

from advimb.config.sections import ExperimentConfig
from advimb.errors import UserError

#: default attack / evaluation batch per device type when the config says 0 (auto): big
#: batches amortise launches on a GPU; on a CPU 500 images already keep every core busy
AUTO_BATCH = {"cuda": 4096, "cpu": 500}


def resolve_device(name: str, check: bool = True) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cpu``, ``cuda`` and
    ``cuda:N`` as given once checked: a name PyTorch does not parse, another device type or
    (with ``check``, where the jobs run) a GPU this machine does not have is a
    :class:`UserError` (one line), never a traceback. ``check=False`` is for a process that
    only plans jobs for other machines (a Dask head node without a GPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"device {name!r} is not a device name; use auto, cpu, cuda or cuda:N (--device)") from None
    if dev.type == "cuda" and check:
        if not torch.cuda.is_available():
            raise UserError(
                f"device {name!r}: no CUDA GPU is visible to PyTorch on this machine "
                "(torch.cuda.is_available() is False); use --device cpu or --device auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                f"(cuda:0-cuda:{torch.cuda.device_count() - 1}); choose one of them"
            )
    elif dev.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r}: advimb runs on cpu or cuda (auto picks cuda when a GPU is visible)")
    return dev


def bf16_native(device: torch.device) -> bool:
    """Does ``device`` run bf16 matrix work natively (so autocast pays)?

    CUDA: compute capability >= 8.0 (Ampere and later). CPU: AMX tiles, or AVX-512 BF16 on
    an AMD CPU, where oneDNN's bf16 convolutions are faster than its fp32 ones (measured,
    BENCHMARKS.md: 1.9x on an AMD EPYC with AVX-512 BF16); an Intel Xeon with AVX-512 BF16 but
    no AMX trained the paper's model 0.73x as fast in bf16 (the quick preset's widths 0.90x), and
    without either bf16 is emulated and slower still."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        if bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()):
            return True
        return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()) and cpu_vendor() == "AuthenticAMD"
    return False


def cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``; empty where unknown)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where :func:`bf16_native`, else ``fp32``."""
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    return torch.bfloat16 if resolve_precision(precision, device) == "bf16" else None


def auto_batch(batch_size: int, device: torch.device) -> int:
    return batch_size or AUTO_BATCH.get(device.type, 500)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: ``taskset``, a cgroup's
    cpuset, a SLURM allocation), not every core of the machine that ``os.cpu_count`` counts."""
    return max(1, len(_affinity()))  # without an affinity API (macOS, Windows): every core


class CoreShare:
    """The advimb studies that run on this machine's cores, so that each can take its share.

    PyTorch's CPU kernels run one OpenMP team of ``torch.get_num_threads()`` threads; two
    studies that each take every core oversubscribe them, and every barrier then waits for a
    thread the scheduler has parked (measured, BENCHMARKS.md: two studies side by side on 2
    cores each kept a quarter of its rate alone; one thread each kept 0.61). Each study
    registers its process here (a file named by its pid, holding its affinity mask, in a
    per-user folder of the temporary directory); :meth:`CoreShare.threads` is this process's cores
    divided by the live studies whose cores overlap them (itself included). Files of processes
    that have ended are removed when counted."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        import tempfile
        from pathlib import Path

        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / f"advimb-cores-{os.getuid()}"
        self.cores = frozenset(_affinity())
        self.file = self.root / str(os.getpid())

    def __enter__(self) -> CoreShare:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.file.write_text(",".join(map(str, sorted(self.cores))))
        except OSError:  # a read-only temporary directory: the study runs, sharing with nobody
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.unlink(missing_ok=True)

    def studies(self) -> int:
        """The live registered studies whose cores overlap this process's (at least 1: itself)."""
        n = 0
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return 1
        for f in entries:
            try:
                pid, cores = int(f.name), {int(c) for c in f.read_text().split(",") if c}
            except (OSError, ValueError):
                continue
            if pid != os.getpid() and not _alive(pid):
                f.unlink(missing_ok=True)
                continue
            n += bool(cores & self.cores) or pid == os.getpid()
        return max(1, n)

    def threads(self) -> int:
        return max(1, len(self.cores) // self.studies())


_SHARE: CoreShare | None = None


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that pid: alive
        return True
    return True


class share_cores:  # a context manager, named like contextlib's
    """Register this process's study in :class:`CoreShare` for the ``with`` block; with
    ``adapt`` (``train.threads = 0``, auto), :func:`fair_threads` gives it its share of the
    cores at every job and every epoch. A fixed ``train.threads`` registers (so the studies
    beside it count it) but keeps its thread count."""

    def __init__(self, adapt: bool, root: str | os.PathLike[str] | None = None) -> None:
        self.adapt, self.share = adapt, CoreShare(root)

    def __enter__(self) -> CoreShare:
        global _SHARE
        self.share.__enter__()
        self.before = _SHARE
        if self.adapt:
            _SHARE = self.share
        return self.share

    def __exit__(self, *exc: object) -> None:
        global _SHARE
        _SHARE = self.before
        self.share.__exit__()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU threads set to ``n`` (0: left as they are) for the ``with`` block, and the
    caller's count put back after it (a Dask worker runs many studies' jobs)."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def fair_threads() -> int:
    """Set torch's CPU threads to this study's share of its cores (:class:`CoreShare`) where
    the running study adapts; return the thread count now in use. Called between jobs and
    between epochs (a thread count changes float rounding, so it stays fixed within an epoch
    and is recorded in the epoch's history)."""
    if _SHARE is not None:
        n = _SHARE.threads()
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
    return torch.get_num_threads()


def resolve_runtime(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` (an ExperimentConfig) with every ``auto`` and every runtime setting resolved,
    once, where the jobs run (the executor calls this on a worker): the device (``auto`` ->
    ``cuda`` or ``cpu``), ``train.precision``, ``train.stack`` and ``train.compile`` (on for
    CUDA), ``train.threads``
    (0 -> this process's torch threads), ``eval.group_attacks`` (on with the local executor,
    off with Dask: one task per attack job), and the batch sizes (0 -> ``AUTO_BATCH``). Jobs and
    ``plan`` read these values and resolve nothing themselves; ``config.toml`` records them."""
    device = resolve_device(cfg.train.device)
    train = dataclasses.replace(
        cfg.train,
        device=str(device),
        precision=resolve_precision(cfg.train.precision, device),
        stack=_on_for_cuda(cfg.train.stack, device),
        compile=_on_for_cuda(cfg.train.compile, device),
        threads=cfg.train.threads or torch.get_num_threads(),
    )
    grouped = cfg.eval.group_attacks
    if grouped == "auto":
        grouped = "off" if cfg.executor.name == "dask" else "on"
    ev = dataclasses.replace(cfg.eval, group_attacks=grouped, batch_size=auto_batch(cfg.eval.batch_size, device))
    attack = dataclasses.replace(cfg.attack, batch_size=auto_batch(cfg.attack.batch_size, device))
    return dataclasses.replace(cfg, train=train, eval=ev, attack=attack)


def _on_for_cuda(value: str, device: torch.device) -> str:
    """An ``auto`` speed switch resolved: on for CUDA, off elsewhere."""
    return value if value != "auto" else ("on" if device.type == "cuda" else "off")


def check_resolved(cfg: ExperimentConfig) -> None:
    """A bug, not bad input, when a config reaches planning or a job without its runtime settings
    resolved (:func:`resolve_runtime`)."""
    if "auto" in (
        cfg.train.device,
        cfg.train.precision,
        cfg.train.stack,
        cfg.train.compile,
        cfg.eval.group_attacks,
    ) or not (cfg.eval.batch_size and cfg.attack.batch_size and cfg.train.threads):
        raise ValueError(
            "this config's runtime settings are not resolved; pass it through advimb.devices.resolve_runtime first"
        )


def describe(device: torch.device) -> dict[str, Any]:
    """What the manifest records about the hardware's speed-relevant features."""
    d: dict[str, Any] = {"bf16_native": bf16_native(device), "torch_interop_threads": torch.get_num_interop_threads()}
    if device.type == "cpu":
        d["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return d


def to_float(xb: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [0, 1]. The permuted view of NHWC memory is already
    channels_last; ``contiguous`` keeps that layout or makes the standard one."""
    x = xb.permute(0, 3, 1, 2).float().div_(255.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)

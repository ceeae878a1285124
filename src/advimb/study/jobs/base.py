"""The study as small, picklable jobs: ``job.run(run_dir)`` writes the job's artifacts.

Three kinds: :class:`~advimb.study.jobs.train.TrainJob` (one scenario's training set and model),
:class:`~advimb.study.jobs.evaluate.CleanEvalJob` (a model on the clean test set) and
:class:`~advimb.study.jobs.evaluate.AttackJob` (one
class's test images attacked with one model's gradient, classified by one or more models);
``plan.plan`` lists them for a study. Every
job has a ``key``: a hash of everything that determines its result (the science part of
the config, the dataset fingerprint, the scenario, the keys of the models it uses). Its
completion marker (a JSON file, written last and atomically) records that key and the
size and sha256 of the job's other files, so a finished job is skipped on rerun and a
corrupt or foreign artifact is detected and recomputed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from advimb import artifacts
from advimb.config.sections import ExperimentConfig
from advimb.config.seeds import stable_hash
from advimb.data.dataset import Dataset
from advimb.data.imbalance import Scenario
from advimb.data.sources import load_dataset
from advimb.layout import RunLayout
from advimb.log import log
from advimb.models import build_model
from advimb.study.context import current_study
from advimb.training.defences import get_defence


def device_arrays(ds: Dataset, device: torch.device) -> dict[str, torch.Tensor]:
    """The dataset as uint8 tensors on ``device``, held by the current study's context
    (:class:`advimb.study.context.StudyContext`) and shared by its jobs in this process."""
    return current_study().arrays(ds, device)


def load_weights(
    cfg: ExperimentConfig, ds: Dataset, layout: RunLayout, s: Scenario, device: torch.device
) -> torch.nn.Module:
    """Scenario ``s``'s trained model as the study evaluates it (:func:`trained_model`)."""
    weights = layout.model(s.slug(ds.classes)) / "weights.pt"
    return trained_model(cfg, ds.num_classes, ds.image_shape, weights, device, s.defence)


def trained_model(
    cfg: ExperimentConfig,
    num_classes: int,
    image_shape: tuple[int, int, int],
    weights: Path,
    device: torch.device,
    defence: str = "",
) -> torch.nn.Module:
    """The model of ``cfg`` with the trained ``weights`` (its input normalisation included), in
    eval mode on ``device``, in the memory format it was evaluated in; with ``defence``'s
    classifier head and test-time correction where it declares them
    (:meth:`advimb.training.defences.Defence.evaluated`)."""
    c, h, w = image_shape  # as a 3-tuple, whatever sequence it came as
    model = build_model(cfg.model, num_classes, (c, h, w))
    if defence:
        model = get_defence(defence).evaluated(model, num_classes)
    model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    model.to(device)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    return model.eval()


class Checkpoint:
    """The resume helper of every training job: a ``train_state.pt`` saved after each epoch
    (atomically, with the job's key and any ``tags``), loaded back only when it is that job's
    (same key and tags); a partial or foreign file is ignored and training starts again.
    ``every`` > 0: save at most once per that many seconds (a stack of many models, whose
    epochs end at many different steps), so an interruption loses at most that much work."""

    def __init__(self, path: Path, key: str, every: float = 0.0, **tags: Any) -> None:
        self.path, self.stamp, self.every = Path(path), {"job_key": key, **tags}, every
        self.last = -math.inf

    def load(self, device: torch.device, name: str) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 - a partial or foreign file (torch.load raises many kinds)
            log(f"checkpoint {self.path} is unreadable ({type(e).__name__}); {name} starts again")
            return None
        if any(state.get(k) != v for k, v in self.stamp.items()):
            return None
        log(f"resuming {name} after {state.get('where') or 'epoch ' + str(state['epoch'])} (checkpoint {self.path})")
        return state

    def save(self, state: dict[str, Any]) -> None:
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        with artifacts.atomic_path(self.path) as tmp:
            torch.save({**state, **self.stamp}, tmp)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class ArtifactRace(RuntimeError):
    """A job's files changed between writing them and writing its marker (another task
    wrote the same job): the executor retries the job."""


@dataclass(frozen=True)
class Job:
    """``replicate`` k > 0 (``experiments.seeds``): the job's artifacts live in
    ``replicates/<k>/`` of the run folder, and its ``config.seed`` is the replicate's."""

    config: ExperimentConfig
    classes: tuple[str, ...]
    fingerprint: str
    replicate: int = 0

    kind = "job"

    def layout(self, run_dir: Path) -> RunLayout:
        """Where this job's replicate keeps its artifacts."""
        return RunLayout(run_dir, self.replicate)

    @property
    def tag(self) -> str:
        """`` [seed k]`` for replicate k > 0, to tell the jobs of replicates apart in logs."""
        return f" [seed {self.replicate}]" if self.replicate else ""

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def deps(self) -> tuple[str, ...]:
        """Keys of the jobs whose artifacts this one reads."""
        return ()

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def parts(self) -> tuple[Job, ...]:
        """The jobs whose artifacts this one writes: itself, or a group's members."""
        return (self,)

    @property
    def key(self) -> str:
        return stable_hash({"kind": self.kind, "fingerprint": self.fingerprint, **self.spec()})

    def marker(self, run_dir: Path) -> Path:
        raise NotImplementedError

    def status(self, run_dir: Path) -> str:
        """``done``, ``missing`` or a one-line reason why the stored result is unusable."""
        m = self.marker(run_dir)
        if not m.exists():
            return "missing"
        try:
            meta = artifacts.read_json(m)
        except (OSError, ValueError):
            return f"{m} is unreadable"
        if meta.get("job_key") != self.key:
            return f"{m} was made by a different job (key {meta.get('job_key')} != {self.key})"
        for rel, rec in meta.get("files", {}).items():
            if not artifacts.verify_record(Path(run_dir) / rel, rec):
                return f"{Path(run_dir) / rel} is missing or corrupt (size/sha256 mismatch)"
        return "done"

    def _finish(self, run_dir: Path, meta: dict[str, Any], files: list[Path]) -> None:
        """Write the marker (last): the job's key and the size and sha256 of the bytes this
        task wrote to each file. If a concurrent duplicate has meanwhile replaced a file
        with other bytes, the check fails, the job counts as unfinished and is recomputed."""
        m = self.marker(run_dir)
        meta = {
            "job": self.name,
            "job_key": self.key,
            **meta,
            "files": {str(f.relative_to(run_dir)): artifacts.written_record(f) for f in files},
        }
        artifacts.write_json(m, meta)
        st = self.status(run_dir)
        if st != "done":
            raise ArtifactRace(f"{self.name}: {st} right after writing it (a duplicate task?)")

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    # shared helpers
    def dataset(self, progress: bool = False) -> Dataset:
        ds = load_dataset(self.config.data, progress)
        if ds.fingerprint != self.fingerprint:
            raise RuntimeError("dataset changed under a running study")  # a bug or a race
        return ds

    def scenario_slug(self, s: Scenario) -> str:
        return s.slug(self.classes)


#: the kind of job a group's members are
M = TypeVar("M", bound=Job)


@dataclass(frozen=True)
class GroupJob(Job, Generic[M]):
    """Jobs run together as one (a stacked training group, a batched attack group). Each
    member writes exactly what it would write alone (its own marker and key), so the group
    is done when its members are, and a rerun runs only the unfinished ones."""

    members: tuple[M, ...] = ()

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for m in self.members for k in m.deps))

    def spec(self) -> dict[str, Any]:
        return {"members": [m.key for m in self.members]}

    def parts(self) -> tuple[M, ...]:
        return self.members

    def todo(self, run_dir: Path) -> list[M]:
        return [m for m in self.members if m.status(run_dir) != "done"]

    def status(self, run_dir: Path) -> str:
        bad = [st for st in (m.status(run_dir) for m in self.members) if st != "done"]
        if not bad:
            return "done"
        return "missing" if all(b == "missing" for b in bad) else bad[0]

"""Evaluation jobs: a model on the clean test set (:class:`CleanEvalJob`), one class's test
images attacked with one model's gradient and classified by one or more models
(:class:`AttackJob`), and their batched groups (:class:`CleanEvalGroupJob`, :class:`AttackGroupJob`,
:func:`run_attacks`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advimb import artifacts
from advimb.attacks.evaluate import (
    attack_images,
    attack_spec,
    clean_metrics,
    minimal_eps,
    predict,
    predict_stacked,
)
from advimb.config.seeds import derive_seed
from advimb.data.dataset import Dataset, eval_subset
from advimb.data.imbalance import Scenario
from advimb.devices import resolve_device
from advimb.layout import GRID
from advimb.scenario import Gradient, Kind
from advimb.study.jobs.base import GroupJob, Job, device_arrays, load_weights


@dataclass(frozen=True)
class CleanEvalJob(Job):
    scenario: Scenario = Scenario(Kind.BALANCED)  # noqa: RUF009 - a frozen (immutable) default
    model_key: str = ""
    kind = "clean"

    @property
    def name(self) -> str:
        return f"clean {self.scenario.name(self.classes)}{self.tag}"

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.model_key,)

    def spec(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name(self.classes), "model_key": self.model_key}

    def marker(self, run_dir: Path) -> Path:
        return self.layout(run_dir).clean(self.scenario_slug(self.scenario))

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        cfg = self.config
        ds = self.dataset()
        device = resolve_device(cfg.train.device)
        model = load_weights(cfg, ds, self.layout(run_dir), self.scenario, device)
        pred, _ = predict(model, device_arrays(ds, device)["x_test"], cfg.eval.batch_size, cfg.train.channels_last)
        return self.record(run_dir, ds, pred)

    def record(self, run_dir: Path, ds: Dataset, pred: np.ndarray) -> dict[str, Any]:
        """Write this job's artifacts from the model's labels for the whole test set."""
        idx = np.arange(len(ds.y_test))  # the full test set, whatever eval.test_per_class says
        metrics = clean_metrics(ds.y_test[idx], pred, ds.num_classes)
        npz = self.marker(run_dir).with_suffix(".npz")
        artifacts.write_npz(npz, test_indices=idx, predictions=pred.astype(np.int16))
        info = {"model": self.scenario.name(ds.classes), "classes": list(ds.classes), **metrics}
        self._finish(run_dir, info, [npz])
        return info


@dataclass(frozen=True)
class CleanEvalGroupJob(GroupJob[CleanEvalJob]):
    """The clean evaluations of the study's stacked models, batched across models: every
    model classifies each test batch in one vmap-ed pass (``predict_stacked``), and each
    member writes what it would write alone."""

    members: tuple[CleanEvalJob, ...] = ()
    kind = "clean_group"

    @property
    def name(self) -> str:
        return f"clean {len(self.members)} models batched{self.tag}"

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        cfg, todo = self.config, self.todo(run_dir)
        ds = self.dataset()
        device = resolve_device(cfg.train.device)
        models = [load_weights(m.config, ds, m.layout(run_dir), m.scenario, device) for m in todo]
        preds: np.ndarray | list[np.ndarray] = (
            predict_stacked(models, device_arrays(ds, device)["x_test"], cfg.eval.batch_size) if todo else []
        )
        infos = [m.record(run_dir, ds, p) for m, p in zip(todo, preds)]
        return {"members": [i["model"] for i in infos]}


@dataclass(frozen=True)
class AttackJob(Job):
    """The test images of ``target`` attacked with ``gradient``'s gradient and classified
    by every model in ``evaluated`` (the gradient model itself = same-model attack)."""

    gradient: Scenario = Scenario(Kind.BALANCED)  # noqa: RUF009 - a frozen (immutable) default
    target: int = 0
    evaluated: tuple[Scenario, ...] = ()
    model_keys: tuple[str, ...] = ()
    subdir: str = GRID
    min_eps_max: float = 0.0
    kind = "attack"

    @property
    def name(self) -> str:
        return f"attack {self.classes[self.target]} with {self.gradient.name(self.classes)}{self.tag}"

    @property
    def deps(self) -> tuple[str, ...]:
        return self.model_keys

    def spec(self) -> dict[str, Any]:
        d = self.config.science_dict()
        spec = {
            "gradient": self.gradient.name(self.classes),
            "target": self.target,
            "evaluated": [s.name(self.classes) for s in self.evaluated],
            "model_keys": list(self.model_keys),
            "attack": attack_spec(self.config.attack),
            "test_per_class": d["eval"]["test_per_class"],
            "examples": d["eval"]["examples"],
        }
        if self.min_eps_max > 0:
            spec["min_eps_max"] = self.min_eps_max
        return spec

    def seed(self) -> int:
        """Seed of a random start (PGD): one per gradient model and class."""
        return derive_seed(self.config.seed, "attack", self.gradient.name(self.classes), self.target)

    def marker(self, run_dir: Path) -> Path:
        return self.layout(run_dir).attack(self.subdir, self.scenario_slug(self.gradient), self.classes[self.target])

    def test_indices(self, ds: Dataset) -> np.ndarray:
        idx = eval_subset(ds, self.config.eval.test_per_class)
        return idx[ds.y_test[idx] == self.target]

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        return run_attacks([self], run_dir, progress=False)[0]

    def record(
        self,
        run_dir: Path,
        ds: Dataset,
        idx: np.ndarray,
        x_u8: torch.Tensor,
        x_adv: torch.Tensor,
        preds: dict[Scenario, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
        models: ModelCache,
    ) -> dict[str, Any]:
        """Write this job's artifacts from its adversarial images ``x_adv`` and, per evaluated
        model, (clean labels, clean probabilities, adversarial labels, adversarial
        probabilities) of its images."""
        cfg = self.config
        k = min(cfg.eval.examples, len(idx))
        arrays: dict[str, np.ndarray] = {
            "test_indices": idx,
            "example_clean": x_u8[:k].cpu().numpy(),
            "example_adversarial": x_adv[:k].cpu().numpy(),
        }
        combos = []
        for s in self.evaluated:
            p_clean, pr_clean, p_adv, pr_adv = preds[s]
            slug = self.scenario_slug(s)
            arrays[f"pred_clean__{slug}"] = p_clean.astype(np.int16)
            arrays[f"pred_adv__{slug}"] = p_adv.astype(np.int16)
            arrays[f"example_prob_clean__{slug}"] = pr_clean[:k]
            arrays[f"example_prob_adv__{slug}"] = pr_adv[:k]
            if self.min_eps_max > 0:
                y = torch.full((len(idx),), self.target, dtype=torch.long, device=x_u8.device)
                me = minimal_eps(
                    models.get(s),
                    models.get(self.gradient),
                    x_u8,
                    y,
                    cfg.attack,
                    ds.classes,
                    self.min_eps_max,
                    cfg.eval.batch_size,
                    cfg.train.channels_last,
                )
                arrays[f"min_eps__{slug}"] = me
            combos.append(self._combination(s, ds, len(idx)))
        npz = self.marker(run_dir).with_suffix(".npz")
        artifacts.write_npz(npz, **arrays)
        linf = float((x_adv - x_u8.permute(0, 3, 1, 2).float() / 255).abs().amax()) if len(idx) else 0.0
        info = {"classes": list(ds.classes), "attack": cfg.to_dict()["attack"], "linf": linf, "combinations": combos}
        self._finish(run_dir, info, [npz])
        return info

    def _combination(self, s: Scenario, ds: Dataset, n: int) -> dict[str, Any]:
        """What one evaluated model's entry in the artifact says: which combination its
        predictions in the npz are (``pred_clean__<slug>``, ``pred_adv__<slug>``, and
        ``min_eps__<slug>`` up to ``min_eps_max``). Every number is derived from them, in
        :mod:`advimb.results.metrics`."""
        entry = {
            "class": ds.classes[self.target],
            "class_index": self.target,
            "gradient_model": self.gradient.name(ds.classes),
            "evaluated_model": s.name(ds.classes),
            "model_kind": s.kind,
            "gradient": (Gradient.SAME if s == self.gradient else Gradient.BALANCED).value,
            "n": n,
        }
        if self.min_eps_max > 0:
            entry["min_eps_max"] = self.min_eps_max
        return entry


class ModelCache:
    """Each trained model loaded once per attack group."""

    def __init__(self, job: Job, ds: Dataset, run_dir: Path, device: torch.device) -> None:
        self.job, self.ds, self.run_dir, self.device = job, ds, run_dir, device
        self.models: dict[Scenario, torch.nn.Module] = {}

    def get(self, s: Scenario) -> torch.nn.Module:
        if s not in self.models:
            self.models[s] = load_weights(self.job.config, self.ds, self.job.layout(self.run_dir), s, self.device)
        return self.models[s]


def run_attacks(jobs: list[AttackJob], run_dir: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Run attack jobs of one grid point together: each model is loaded once and does its
    work for every job while it is loaded (attacking with its gradient, classifying clean and
    adversarial images). Each job's images still go through the attack and every classifier
    in exactly the batches the job forms alone (its own images in its own order,
    ``attack.batch_size`` / ``eval.batch_size`` at a time; a class's clean images classified
    once for the jobs that share them), so the same tensors reach the same kernels and each
    job's artifacts are bit for bit what it writes alone, on any CPU code path: grouping
    changes which process does the work and how often a model is loaded, never the
    arithmetic. (Concatenating the jobs' images into bigger batches would not: BLAS libraries
    such as MKL may sum in another order for another batch size.)"""
    from tqdm.auto import tqdm

    first = jobs[0]
    cfg = first.config
    if any(j.config != cfg or j.subdir != first.subdir for j in jobs):
        raise ValueError("run_attacks: the jobs must share one config and folder")  # a bug
    ds = first.dataset()
    device = resolve_device(cfg.train.device)
    cl, bs = cfg.train.channels_last, cfg.eval.batch_size
    arr = device_arrays(ds, device)
    models = ModelCache(first, ds, run_dir, device)
    idx = {j: j.test_indices(ds) for j in jobs}
    sel = {j: torch.from_numpy(idx[j]).to(device) for j in jobs}
    grads = list(dict.fromkeys(j.gradient for j in jobs))
    evaluated = list(dict.fromkeys(s for j in jobs for s in j.evaluated))
    bar = tqdm(
        total=len(grads) + len(evaluated),
        desc=f"{len(jobs)} attack jobs ({first.subdir})",
        unit="model",
        leave=False,
        disable=not progress,
        mininterval=0.5,
    )
    x_adv: dict[AttackJob, torch.Tensor] = {}
    for g in grads:  # each gradient model attacks its jobs' images, job by job
        for j in (j for j in jobs if j.gradient == g):
            x_adv[j] = attack_images(
                models.get(g), arr["x_test"][sel[j]], arr["y_test"][sel[j]], cfg.attack, ds.classes, cl, seed=j.seed()
            )
        bar.update(1)
    preds: dict[AttackJob, dict[Scenario, tuple]] = {j: {} for j in jobs}
    for s in evaluated:  # each evaluated model classifies its jobs' images, job by job
        clean: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in (j for j in jobs if s in j.evaluated):
            if j.target not in clean:  # a class's clean images: once, as its first job would
                clean[j.target] = predict(models.get(s), arr["x_test"][sel[j]], bs, cl)
            preds[j][s] = (*clean[j.target], *predict(models.get(s), x_adv[j], bs, cl))
        bar.update(1)
    bar.close()
    return [j.record(run_dir, ds, idx[j], arr["x_test"][sel[j]], x_adv[j], preds[j], models) for j in jobs]


@dataclass(frozen=True)
class AttackGroupJob(GroupJob[AttackJob]):
    """The attack jobs of one grid point (``eval.group_attacks``), run together by
    :func:`run_attacks`."""

    members: tuple[AttackJob, ...] = ()
    kind = "attack_group"

    @property
    def name(self) -> str:
        return f"attack {len(self.members)} jobs ({self.members[0].subdir}){self.tag}"

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        todo = self.todo(run_dir)
        infos = run_attacks(todo, run_dir, progress) if todo else []
        return {"members": [m.name for m in todo], "combinations": sum(len(i["combinations"]) for i in infos)}

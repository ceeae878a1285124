"""Training jobs: one scenario's model (:class:`TrainJob`) and the study's stackable models trained
as one stacked model (:class:`TrainGroupJob`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advimb import artifacts
from advimb.config.seeds import derive_seed
from advimb.data.dataset import Dataset
from advimb.data.imbalance import (
    Scenario,
    class_counts,
    select_indices,
    selection_of,
    validation_is_split,
)
from advimb.devices import auto_batch, resolve_device
from advimb.models import build_model
from advimb.scenario import Kind
from advimb.study.jobs.base import Checkpoint, GroupJob, Job, device_arrays
from advimb.training.defences import Corrected, Regime, attach_head, get_defence
from advimb.training.fit import fit
from advimb.training.policy import (
    Prepared,
    ScenarioSelection,
    augments,
    normalisation,
    robust_validation,
    selects_robust,
    validation_data,
    validation_split,
)


@dataclass(frozen=True)
class TrainJob(Job):
    scenario: Scenario = Scenario(Kind.BALANCED)  # noqa: RUF009 - a frozen (immutable) default
    kind = "train"

    @property
    def name(self) -> str:
        return f"train {self.scenario.name(self.classes)}{self.tag}"

    def spec(self) -> dict[str, Any]:
        d = self.config.science_dict()
        train = dict(d["train"])
        if train.get("precision") == "fp32":  # added later; fp32 is what older keys meant
            train.pop("precision")
        data = {k: v for k, v in d["data"].items() if not (k in ("resize", "pad") and v == 0)}  # added later too
        counts = class_counts(self.scenario, len(self.classes), self.config.imbalance)
        if validation_is_split(counts, train["validation"], train["val_fraction"]):
            train["validation"] = "split"  # the same held-out images, so the same model (and key)
        spec = {
            "scenario": self.scenario.name(self.classes),
            "seed": d["seed"],
            "imbalance": d["imbalance"],
            "model": d["model"],
            "train": train,
            "data": data,
        }
        if self.scenario.defence:
            spec["defence"] = self.defence_spec()
        if self.scenario.kind == "counts":  # what defines your own count vector: its counts, resolved
            spec["counts"] = counts
        return spec

    def defence_spec(self) -> dict[str, Any]:
        """What defines the scenario's defence (``experiments``' settings that apply to it)."""
        e = self.config.experiments
        return get_defence(self.scenario.defence).spec(
            e.adv_eps or self.config.attack.eps, e.adv_scope, e.adv_steps, self.scenario.target is not None
        )

    def regime(self, y_train: torch.Tensor, num_classes: int) -> Regime:
        """The training regime of the scenario's defence (the paper's plain one without)."""
        if not self.scenario.defence:
            return Regime()
        return get_defence(self.scenario.defence).regime(
            self.defence_spec(), y_train, num_classes, self.scenario.target
        )

    def marker(self, run_dir: Path) -> Path:
        return self.layout(run_dir).model(self.scenario_slug(self.scenario)) / "meta.json"

    @property
    def selects_robust(self) -> bool:
        """Is the model's checkpoint chosen by robust validation accuracy (:func:`selects_robust`)?"""
        return selects_robust(self.config.train, self.scenario.defence)

    def robust_accuracy(self, val: tuple[torch.Tensor, torch.Tensor]) -> Callable[[torch.nn.Module], float]:
        """The robust validation accuracy that picks its checkpoint (:func:`robust_validation`),
        with the experiments' adversarial-training eps and steps and its own seed."""
        e, cfg = self.config.experiments, self.config
        return robust_validation(
            val,
            e.adv_eps or cfg.attack.eps,
            e.adv_steps,
            derive_seed(cfg.seed, "val_robust", self.scenario.name(self.classes)),
            auto_batch(cfg.eval.batch_size, val[0].device),
            cfg.train.channels_last,
        )

    def seeds(self) -> dict[str, int]:
        # a defended model shares data, split, initialisation and order with its undefended
        # twin, so the two differ by the defence alone (a paired comparison)
        name = dataclasses.replace(self.scenario, defence="").name(self.classes)
        base = self.config.seed
        return {
            "selection": base,
            "validation": derive_seed(base, "val", name),
            "init": derive_seed(base, "init", name),
            "train": derive_seed(base, "train", name),
        }

    def select(self, ds: Dataset) -> ScenarioSelection:
        """The scenario's training and validation indices (into the training arrays)."""
        cfg = self.config
        counts = class_counts(self.scenario, ds.num_classes, cfg.imbalance)
        seeds = self.seeds()
        idx = select_indices(
            ds.y_train,
            counts,
            selection=selection_of(self.scenario, cfg.imbalance),
            seed=seeds["selection"],
            classes=ds.classes,
            scenario_name=self.scenario.name(ds.classes),
        )
        split = validation_split(idx, ds.y_train, cfg, seeds["validation"])
        return ScenarioSelection(counts, idx, split)

    def prepare(self, run_dir: Path, ds: Dataset, device: torch.device) -> Prepared:
        """Select and store the scenario's indices; build the initial model and what it trains
        with (the training policy of :mod:`advimb.training.policy`)."""
        cfg = self.config
        sel = self.select(ds)
        self._write_selection(run_dir, ds, sel)
        arr = device_arrays(ds, device)
        tr = torch.from_numpy(sel.split.train).to(device)
        val = validation_data(cfg, arr, torch.from_numpy(sel.split.val).to(device))
        mean, std = normalisation(cfg, arr["x_train"][tr])
        init = self.seeds()["init"]
        model = build_model(cfg.model, ds.num_classes, ds.image_shape, seed=init, mean=mean, std=std)
        regime = self.regime(torch.from_numpy(ds.y_train[sel.split.train]), ds.num_classes)
        if regime.head is not None:  # the defence's classifier head in place of the model's
            model = attach_head(model, regime.head, ds.num_classes, seed=derive_seed(init, "head"))
        model.to(device)
        if cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)
        return Prepared(sel, tr, val, model, augments(cfg, self.scenario.kind, regime), regime)

    def _write_selection(self, run_dir: Path, ds: Dataset, sel: ScenarioSelection) -> None:
        """The scenario's indices (npz) and what they hold (json, :meth:`TrainJob.record`)."""
        tr, val, unused = sel.split
        slug, layout = self.scenario_slug(self.scenario), self.layout(run_dir)
        extra = {"held_out_unused": unused} if self.config.train.validation == "balanced" else {}
        artifacts.write_npz(layout.scenario(slug), indices=sel.indices, train=tr, val=val, **extra)
        artifacts.write_json(layout.scenario(slug, "json"), self.record(ds, sel))

    def record(self, ds: Dataset, sel: ScenarioSelection) -> dict[str, Any]:
        """What the scenario's selection holds (``scenarios/<slug>.json``): its counts, the sizes
        of its parts, per class, the selection rule that chose them and the seeds."""
        cfg, (tr, val, unused) = self.config, sel.split
        return {
            "scenario": self.scenario.name(ds.classes),
            "counts": dict(zip(ds.classes, sel.counts)),
            "n_selected": len(sel.indices),
            "n_train": len(tr),
            "n_val": len(val),
            "train_per_class": np.bincount(ds.y_train[tr], minlength=ds.num_classes).tolist(),
            "val_per_class": np.bincount(ds.y_train[val], minlength=ds.num_classes).tolist(),
            "n_held_out_unused": len(unused),
            "selection": selection_of(self.scenario, cfg.imbalance),  # what chose them, not the setting
            "validation": cfg.train.validation,
            "seeds": self.seeds(),
        }

    def finish(
        self,
        run_dir: Path,
        ds: Dataset,
        prep: Prepared,
        result: Any,
        device: torch.device,
        seconds: float,
        stacked: int = 1,
    ) -> dict[str, Any]:
        """Write the trained model's artifacts and the job marker."""
        cfg = self.config
        slug, layout = self.scenario_slug(self.scenario), self.layout(run_dir)
        mdir = layout.model(slug)
        weights = mdir / "weights.pt"
        state = {k: v.detach().cpu() for k, v in result.state_dict.items()}
        if prep.regime.correction is not None:  # saved as evaluated: the bare model inside its correction
            state = Corrected.saved(state, prep.regime.correction)
        with artifacts.atomic_path(weights) as tmp:
            torch.save(state, tmp)
        cols = list(result.history[0]) if result.history else []
        csv = ",".join(cols) + "\n" + "".join(",".join(f"{row[c]:.6g}" for c in cols) + "\n" for row in result.history)
        artifacts.write_text(mdir / "history.csv", csv)
        info = {
            "scenario": self.scenario.name(ds.classes),
            "kind": self.scenario.kind,
            "target": None if self.scenario.target is None else ds.classes[self.scenario.target],
            "counts": prep.sel.counts,
            "seeds": self.seeds(),
            "best_epoch": result.best_epoch,
            "stopped_epoch": result.stopped_epoch,
            "steps": result.steps,
            "early_stopped": result.stopped_epoch < cfg.train.max_epochs,
            "history": result.history,
            "augment": prep.augment,
            "regime": prep.regime.record(),
            "replicate": self.replicate,
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "epoch_threads": result.threads,
            "stacked_with": stacked,
            "seconds": seconds,
        }
        self._finish(run_dir, info, [weights, mdir / "history.csv", layout.scenario(slug)])
        return info

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        cfg, t0 = self.config, time.time()
        ds = self.dataset(progress)
        device = resolve_device(cfg.train.device)
        prep = self.prepare(run_dir, ds, device)
        arr = device_arrays(ds, device)
        x_tr, y_tr = arr["x_train"][prep.train_idx], arr["y_train"][prep.train_idx]
        ckpt = Checkpoint(self.layout(run_dir).model(self.scenario_slug(self.scenario)) / "train_state.pt", self.key)
        result = fit(
            prep.model,
            (x_tr, y_tr),
            prep.val,
            cfg.train,
            seed=self.seeds()["train"],
            augment=prep.augment,
            regime=prep.regime,
            resume=ckpt.load(device, self.name),
            on_epoch_end=ckpt.save,
            desc=self.name,
            progress=progress,
            robust=self.robust_accuracy(prep.val) if self.selects_robust else None,
        )
        info = self.finish(run_dir, ds, prep, result, device, time.time() - t0)
        ckpt.remove()
        return info


#: seconds between a stack's checkpoints (its models' epochs end at many different steps)
CHECKPOINT_EVERY = 30.0


@dataclass(frozen=True)
class TrainGroupJob(GroupJob[TrainJob]):
    """TrainJobs of one architecture (any training-set sizes, any replicates) trained together
    as one stacked model of one shape (``advimb.training.stacked``)."""

    members: tuple[TrainJob, ...] = ()
    kind = "train_group"

    @property
    def name(self) -> str:
        return f"train {len(self.members)} models stacked{self.tag}"

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        from advimb.training.stacked import fit_stacked

        cfg, t0 = self.config, time.time()
        todo = self.todo(run_dir)
        ds = self.dataset(progress)
        device = resolve_device(cfg.train.device)
        preps = [m.prepare(run_dir, ds, device) for m in todo]
        arr = device_arrays(ds, device)
        # the checkpoint is this group's only while the same members are unfinished
        ckpt = Checkpoint(
            self.layout(run_dir).stack(self.key) / "train_state.pt",
            self.key,
            every=CHECKPOINT_EVERY,
            todo=[m.key for m in todo],
        )
        results = fit_stacked(
            [p.model for p in preps],
            arr["x_train"],
            arr["y_train"],
            [p.train_idx for p in preps],
            [p.val for p in preps],
            cfg.train,
            seeds=[m.seeds()["train"] for m in todo],
            augment=[p.augment for p in preps],
            regimes=[p.regime for p in preps],
            on_epoch_end=ckpt.save,
            resume=ckpt.load(device, self.name),
            desc=self.name,
            progress=progress,
        )
        secs = time.time() - t0
        infos = [
            m.finish(run_dir, ds, p, r, device, secs / len(todo), stacked=len(todo))
            for m, p, r in zip(todo, preps, results)
        ]
        ckpt.remove()
        return {"members": [i["scenario"] for i in infos], "seconds": secs}

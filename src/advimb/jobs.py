"""The study as small, picklable jobs: ``job.run(run_dir)`` writes the job's artifacts.

Three kinds: :class:`TrainJob` (one scenario's training set and model),
:class:`CleanEvalJob` (a model on the clean test set) and ``attack_jobs.AttackJob`` (one
class's test images attacked with one model's gradient, classified by one or more models);
``plan.plan`` lists them for a study. Every
job has a ``key``: a hash of everything that determines its result (the science part of
the config, the dataset fingerprint, the scenario, the keys of the models it uses). Its
completion marker (a JSON file, written last and atomically) records that key and the
size and sha256 of the job's other files, so a finished job is skipped on rerun and a
corrupt or foreign artifact is detected and recomputed.
"""

from __future__ import annotations

import dataclasses

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advimb import artifacts
from advimb.config import ExperimentConfig, derive_seed, stable_hash, to_dict
from advimb.data import Dataset, load_dataset
from advimb.devices import auto_batch, resolve_device
from advimb.evaluate import clean_metrics, predict
from advimb.imbalance import Scenario, class_counts, select_indices, stratified_split
from advimb.models import build_model
from advimb.train import Regime, balanced_weights, fit

# ----------------------------------------------------------------------------- run folder


def _log(msg: str) -> None:
    from advimb.executor import log

    log(msg)


def model_dir(run_dir: Path, slug: str) -> Path:
    return Path(run_dir) / "models" / slug


@functools.lru_cache(maxsize=2)
def _device_arrays(fingerprint: str, device: str, ds: Dataset) -> dict[str, torch.Tensor]:
    """The dataset as uint8 tensors on ``device``, shared by every job of a process."""
    dev = torch.device(device)
    return {
        "x_train": torch.from_numpy(ds.x_train).to(dev), "y_train": torch.from_numpy(ds.y_train).to(dev),
        "x_test": torch.from_numpy(ds.x_test).to(dev), "y_test": torch.from_numpy(ds.y_test).to(dev),
    }


def device_arrays(ds: Dataset, device: torch.device) -> dict[str, torch.Tensor]:
    return _device_arrays(ds.fingerprint, str(device), ds)


def load_weights(cfg: ExperimentConfig, ds: Dataset, run_dir: Path, slug: str,
                 device: torch.device) -> torch.nn.Module:
    model = build_model(cfg.model, ds.num_classes, ds.image_shape)
    state = torch.load(model_dir(run_dir, slug) / "weights.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    return model.eval()


# ----------------------------------------------------------------------------- base


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

    def root(self, run_dir: Path) -> Path:
        """Where this job's replicate keeps its artifacts."""
        return Path(run_dir) / "replicates" / str(self.replicate) if self.replicate else Path(run_dir)

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

    def parts(self) -> tuple["Job", ...]:
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
        meta = {"job": self.name, "job_key": self.key, **meta,
                "files": {str(f.relative_to(run_dir)): artifacts.written_record(f) for f in files}}
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


@dataclass(frozen=True)
class GroupJob(Job):
    """Jobs run together as one (a stacked training group, a batched attack group). Each
    member writes exactly what it would write alone (its own marker and key), so the group
    is done when its members are, and a rerun runs only the unfinished ones."""

    members: tuple[Job, ...] = ()

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for m in self.members for k in m.deps))

    def spec(self) -> dict[str, Any]:
        return {"members": [m.key for m in self.members]}

    def parts(self) -> tuple[Job, ...]:
        return self.members

    def todo(self, run_dir: Path) -> list[Job]:
        return [m for m in self.members if m.status(run_dir) != "done"]

    def status(self, run_dir: Path) -> str:
        bad = [st for st in (m.status(run_dir) for m in self.members) if st != "done"]
        if not bad:
            return "done"
        return "missing" if all(b == "missing" for b in bad) else bad[0]


# ----------------------------------------------------------------------------- train


@dataclass(frozen=True)
class TrainJob(Job):
    scenario: Scenario = Scenario("balanced")
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
        spec = {"scenario": self.scenario.name(self.classes), "seed": d["seed"], "imbalance": d["imbalance"],
                "model": d["model"], "train": train, "data": data}
        if self.scenario.defence:
            spec["defence"] = self.defence_spec()
        return spec

    def defence_spec(self) -> dict[str, Any]:
        """What defines the scenario's defence (``experiments``' settings that apply to it)."""
        e, d = self.config.experiments, self.scenario.defence
        if d in ("fgsm_at", "pgd_at"):
            out = {"name": d, "eps": e.adv_eps or self.config.attack.eps,
                   "scope": e.adv_scope if self.scenario.target is not None else "all"}
            return {**out, "steps": e.adv_steps} if d == "pgd_at" else out
        return {"name": d}

    def regime(self, y_train: torch.Tensor, num_classes: int) -> Regime:
        """The training regime of the scenario's defence (the paper's plain one without)."""
        d = self.defence_spec() if self.scenario.defence else {"name": ""}
        if d["name"] == "class_weight":
            return Regime(class_weight=balanced_weights(y_train, num_classes))
        if d["name"] == "resample":
            return Regime(resample=True)
        if d["name"] in ("fgsm_at", "pgd_at"):
            scope = (self.scenario.target,) if d["scope"] == "minority" else ()
            return Regime(adversarial=d["name"][:-3], adv_eps=d["eps"], adv_steps=d.get("steps", 7),
                          adv_classes=scope)
        return Regime()

    def marker(self, run_dir: Path) -> Path:
        return model_dir(self.root(run_dir), self.scenario_slug(self.scenario)) / "meta.json"

    def seeds(self) -> dict[str, int]:
        # a defended model shares data, split, initialisation and order with its undefended
        # twin, so the two differ by the defence alone (a paired comparison)
        name = dataclasses.replace(self.scenario, defence="").name(self.classes)
        base = self.config.seed
        return {"selection": base, "validation": derive_seed(base, "val", name),
                "init": derive_seed(base, "init", name), "train": derive_seed(base, "train", name)}

    def select(self, ds: Dataset) -> dict[str, Any]:
        """The scenario's training and validation indices (into the training arrays)."""
        cfg = self.config
        counts = class_counts(self.scenario, ds.num_classes, cfg.imbalance)
        seeds = self.seeds()
        idx = select_indices(ds.y_train, counts, selection=cfg.imbalance.selection,
                             seed=seeds["selection"], classes=ds.classes,
                             scenario_name=self.scenario.name(ds.classes))
        if cfg.train.validation == "split":
            tr, val = stratified_split(idx, ds.y_train, cfg.train.val_fraction, seeds["validation"])
        else:  # the authors' leak: validate (early-stop) on the test set
            tr, val = idx, np.array([], dtype=np.int64)
        return {"counts": counts, "indices": idx, "train": tr, "val": val}

    def prepare(self, run_dir: Path, ds: Dataset, device: torch.device) -> dict[str, Any]:
        """Select and store the scenario's indices; build the initial model."""
        cfg = self.config
        sel = self.select(ds)
        slug = self.scenario_slug(self.scenario)
        scen_dir = self.root(run_dir) / "scenarios"
        artifacts.write_npz(scen_dir / f"{slug}.npz", indices=sel["indices"], train=sel["train"], val=sel["val"])
        artifacts.write_json(scen_dir / f"{slug}.json", {
            "scenario": self.scenario.name(ds.classes), "counts": dict(zip(ds.classes, sel["counts"])),
            "n_selected": len(sel["indices"]), "n_train": len(sel["train"]), "n_val": len(sel["val"]),
            "train_per_class": np.bincount(ds.y_train[sel["train"]], minlength=ds.num_classes).tolist(),
            "val_per_class": np.bincount(ds.y_train[sel["val"]], minlength=ds.num_classes).tolist(),
            "selection": cfg.imbalance.selection, "validation": cfg.train.validation, "seeds": self.seeds(),
        })
        arr = device_arrays(ds, device)
        tr = torch.from_numpy(sel["train"]).to(device)
        if cfg.train.validation == "split":
            va = torch.from_numpy(sel["val"]).to(device)
            x_val, y_val = arr["x_train"][va], arr["y_train"][va]
        else:  # the authors' leak: the whole test set
            x_val, y_val = arr["x_test"], arr["y_test"]
        mean = std = None
        if cfg.model.normalize == "per_channel":
            xf = arr["x_train"][tr].float().div(255)
            mean, std = xf.mean((0, 1, 2)).cpu(), xf.std((0, 1, 2)).cpu()
        model = build_model(cfg.model, ds.num_classes, ds.image_shape, seed=self.seeds()["init"], mean=mean, std=std)
        model.to(device)
        if cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)
        augment = cfg.train.augment == "hflip" or (
            cfg.train.augment == "hflip_except_over" and self.scenario.kind != "over")
        regime = self.regime(torch.from_numpy(ds.y_train[sel["train"]]), ds.num_classes)
        augment = augment or regime.resample  # re-sampled duplicates get random flips
        return {"sel": sel, "train_idx": tr, "val": (x_val, y_val), "model": model, "augment": augment,
                "regime": regime}

    def finish(self, run_dir: Path, ds: Dataset, prep: dict[str, Any], result: Any, device: torch.device,
               seconds: float, stacked: int = 1) -> dict[str, Any]:
        """Write the trained model's artifacts and the job marker."""
        cfg = self.config
        slug = self.scenario_slug(self.scenario)
        mdir = model_dir(self.root(run_dir), slug)
        weights = mdir / "weights.pt"
        with artifacts.atomic_path(weights) as tmp:
            torch.save({k: v.detach().cpu() for k, v in result.state_dict.items()}, tmp)
        cols = list(result.history[0]) if result.history else []
        csv = ",".join(cols) + "\n" + "".join(
            ",".join(f"{row[c]:.6g}" for c in cols) + "\n" for row in result.history)
        artifacts.write_text(mdir / "history.csv", csv)
        info = {"scenario": self.scenario.name(ds.classes), "kind": self.scenario.kind,
                "target": None if self.scenario.target is None else ds.classes[self.scenario.target],
                "counts": prep["sel"]["counts"], "seeds": self.seeds(), "best_epoch": result.best_epoch,
                "stopped_epoch": result.stopped_epoch, "steps": result.steps,
                "early_stopped": result.stopped_epoch < cfg.train.max_epochs,
                "history": result.history, "augment": prep["augment"], "regime": to_dict(prep["regime"]),
                "replicate": self.replicate, "device": str(device),
                "torch_threads": torch.get_num_threads(),
                "stacked_with": stacked, "seconds": seconds}
        self._finish(run_dir, info, [weights, mdir / "history.csv", self.root(run_dir) / "scenarios" / f"{slug}.npz"])
        return info

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        cfg, t0 = self.config, time.time()
        ds = self.dataset(progress)
        device = resolve_device(cfg.train.device)
        prep = self.prepare(run_dir, ds, device)
        arr = device_arrays(ds, device)
        x_tr, y_tr = arr["x_train"][prep["train_idx"]], arr["y_train"][prep["train_idx"]]
        mdir = model_dir(self.root(run_dir), self.scenario_slug(self.scenario))
        state_path = mdir / "train_state.pt"
        resume = None
        if state_path.exists():
            try:
                st = torch.load(state_path, map_location=device, weights_only=True)
                resume = st if st.get("job_key") == self.key else None
            except Exception:  # a partial or foreign file: start this model again
                resume = None
        if resume is not None:
            _log(f"resuming {self.name} after epoch {resume['epoch']} (checkpoint {state_path})")

        def checkpoint(state: dict[str, Any]) -> None:
            with artifacts.atomic_path(state_path) as tmp:
                torch.save({**state, "job_key": self.key}, tmp)

        result = fit(prep["model"], (x_tr, y_tr), prep["val"], cfg.train, seed=self.seeds()["train"],
                     augment=prep["augment"], regime=prep["regime"], resume=resume, on_epoch_end=checkpoint,
                     desc=self.name, progress=progress)
        info = self.finish(run_dir, ds, prep, result, device, time.time() - t0)
        state_path.unlink(missing_ok=True)
        return info


@dataclass(frozen=True)
class TrainGroupJob(GroupJob):
    """Several TrainJobs of one architecture and equal training-set size, trained together
    as one stacked model (``advimb.stacked``)."""

    members: tuple[TrainJob, ...] = ()
    kind = "train_group"

    @property
    def name(self) -> str:
        return f"train {len(self.members)} models stacked ({self.members[0].scenario.kind}){self.tag}"

    def marker(self, run_dir: Path) -> Path:  # never written: the members' markers say it all
        return model_dir(self.root(run_dir), f"_stack-{self.key}") / "meta.json"

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        from advimb.stacked import fit_stacked

        cfg, t0 = self.config, time.time()
        todo = self.todo(run_dir)
        ds = self.dataset(progress)
        device = resolve_device(cfg.train.device)
        preps = [m.prepare(run_dir, ds, device) for m in todo]
        arr = device_arrays(ds, device)
        state_path = model_dir(self.root(run_dir), f"_stack-{self.key}") / "train_state.pt"
        resume = None
        if state_path.exists():
            try:
                st = torch.load(state_path, map_location=device, weights_only=True)
                ok = st.get("job_key") == self.key and st.get("todo") == [m.key for m in todo]
                resume = st if ok else None
            except Exception:  # a partial or foreign file: start again
                resume = None
        if resume is not None:
            _log(f"resuming {self.name} after epoch {resume['epoch']} (checkpoint {state_path})")

        def checkpoint(state: dict[str, Any]) -> None:
            with artifacts.atomic_path(state_path) as tmp:
                torch.save({**state, "job_key": self.key, "todo": [m.key for m in todo]}, tmp)

        results = fit_stacked(
            [p["model"] for p in preps], arr["x_train"], arr["y_train"], [p["train_idx"] for p in preps],
            [p["val"] for p in preps], cfg.train, seeds=[m.seeds()["train"] for m in todo],
            augment=[p["augment"] for p in preps], on_epoch_end=checkpoint, resume=resume,
            desc=self.name, progress=progress)
        secs = time.time() - t0
        infos = [m.finish(run_dir, ds, p, r, device, secs / len(todo), stacked=len(todo))
                 for m, p, r in zip(todo, preps, results)]
        state_path.unlink(missing_ok=True)
        return {"members": [i["scenario"] for i in infos], "seconds": secs}


# ----------------------------------------------------------------------------- clean eval


@dataclass(frozen=True)
class CleanEvalJob(Job):
    scenario: Scenario = Scenario("balanced")
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
        return self.root(run_dir) / "eval" / "clean" / f"{self.scenario_slug(self.scenario)}.json"

    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        cfg = self.config
        ds = self.dataset()
        device = resolve_device(cfg.train.device)
        model = load_weights(cfg, ds, self.root(run_dir), self.scenario_slug(self.scenario), device)
        idx = np.arange(len(ds.y_test))  # the full test set, whatever eval.test_per_class says
        arr = device_arrays(ds, device)
        pred, _ = predict(model, arr["x_test"][torch.from_numpy(idx).to(device)], auto_batch(cfg.eval.batch_size, device),
                          cfg.train.channels_last)
        metrics = clean_metrics(ds.y_test[idx], pred, ds.num_classes)
        npz = self.marker(run_dir).with_suffix(".npz")
        artifacts.write_npz(npz, test_indices=idx, predictions=pred.astype(np.int16))
        info = {"model": self.scenario.name(ds.classes), "classes": list(ds.classes), **metrics}
        self._finish(run_dir, info, [npz])
        return info

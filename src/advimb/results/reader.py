"""The one reader of the paper grid's results in a run folder (every seed).

It reads the stored artifacts only (``config.toml``, ``manifest.json``, ``eval/attack/*.json``
with their ``.npz`` per-image predictions, ``eval/clean/*.json``, and the same under
``replicates/<k>/``), checks that the grid the config asks for is complete, and returns
typed per-image outcomes that :mod:`advimb.results.tables`, :mod:`advimb.results.claims` and the report
compute from. Run folders made by earlier versions of advimb read the same way (their
files have the same names and keys).

A run folder with results missing is refused with the list of what is missing, rather
than averaged over fewer classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.config.io import from_dict, load_toml
from advimb.config.sections import ExperimentConfig
from advimb.data.imbalance import (
    KINDS,  # noqa: F401 - the scenarios' kinds, re-exported for the report
    Scenario,
    parse_scenario,
    target_classes,
)
from advimb.errors import UserError
from advimb.layout import EXPERIMENTS, GRID, RunLayout, slug

#: Table 1's columns: (column name, model kind, gradient)
TABLE1_COLUMNS = (
    ("different_model_under", "under", "different_model"),
    ("different_model_over", "over", "different_model"),
    ("same_model_balanced", "balanced", "same_model"),
    ("same_model_under", "under", "same_model"),
    ("same_model_over", "over", "same_model"),
)


def model_name(kind: str, c: str) -> str:
    """The model of the grid with class ``c`` under- or over-sampled (``balanced`` for kind balanced)."""
    return "balanced" if kind == "balanced" else f"{kind}:{c}"


@dataclass(frozen=True)
class Cell:
    """One combination in one seed: the predicted label of each attacked test image of
    ``info["class"]`` by the evaluated model, before (``clean``) and after (``adv``) the
    attack; ``info`` is the combination's entry in the JSON artifact, ``source`` its npz."""

    clean: np.ndarray
    adv: np.ndarray
    source: str
    info: dict[str, Any]


@dataclass(frozen=True)
class CleanEval:
    """One model's clean evaluation on the full test set in one seed."""

    confusion: np.ndarray  # (C, C) counts, rows = true class
    source: str

    @property
    def n_per_class(self) -> np.ndarray:
        return self.confusion.sum(1)

    def correct(self, c: int) -> np.ndarray:
        """100 for each correctly classified test image of class ``c``, 0 otherwise, in no
        particular image order: the confusion counts are what every version of the artifact
        stores, and a bootstrap of one model's accuracy needs no more (it must not be paired
        with another model's: :meth:`advimb.results.metrics.GridMetrics.clean_class`)."""
        n, k = int(self.confusion[c].sum()), int(self.confusion[c, c])
        return np.r_[np.full(k, 100.0), np.zeros(n - k)]


@dataclass
class GridResults:
    """Every seed's outcomes of the paper's grid in a run folder."""

    run_dir: Path
    classes: tuple[str, ...]
    targets: list[str]
    seeds: int
    cells: dict[tuple[str, str, str], list[Cell]] = field(default_factory=dict)
    clean: dict[str, list[CleanEval]] = field(default_factory=dict)
    config: ExperimentConfig | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def cell(self, c: str, kind: str, grad: str) -> list[Cell]:
        return self.cells[(c, kind, grad)]

    def first(self, c: str, kind: str, grad: str) -> dict[str, Any]:
        """The first seed's combination entry (histograms, n, source) of a cell."""
        cell = self.cells[(c, kind, grad)][0]
        return {**cell.info, "source": cell.source.replace(".npz", ".json")}

    def attack_sources(self) -> list[str]:
        return sorted(
            {e.source for v in self.cells.values() for e in v}
            | {e.source.replace(".npz", ".json") for v in self.cells.values() for e in v}
        )

    def clean_sources(self) -> list[str]:
        return sorted({e.source for v in self.clean.values() for e in v})

    def seed(self, s: int) -> GridResults:
        """The results of seed ``s`` alone."""
        return GridResults(
            self.run_dir,
            self.classes,
            self.targets,
            1,
            {k: [v[s]] for k, v in self.cells.items()},
            {k: [v[s]] for k, v in self.clean.items()},
            self.config,
            self.manifest,
        )

    @property
    def n_attacked(self) -> int:
        """Attacked test images per class (the first seed's first cell)."""
        return len(next(iter(self.cells.values()))[0].adv)


def read_config(run_dir: Path) -> ExperimentConfig | None:
    """The run's resolved config, or None when ``config.toml`` is missing or unreadable."""
    path = RunLayout(run_dir).config
    if not path.exists():
        return None
    try:
        return from_dict(ExperimentConfig, load_toml(path))
    except UserError:
        return None


def _read_replicate(layout: RunLayout) -> tuple[tuple[str, ...] | None, dict, dict]:
    cells: dict[tuple[str, str, str], Cell] = {}
    classes = None
    for f in layout.attacks(GRID):
        d = artifacts.read_json(f)
        classes = tuple(d["classes"])
        npz = f.with_suffix(".npz")
        with np.load(npz) as z:
            for c in d["combinations"]:
                s = slug(c["evaluated_model"])
                cells[(c["class"], c["model_kind"], c["gradient"])] = Cell(
                    z[f"pred_clean__{s}"].astype(np.int64), z[f"pred_adv__{s}"].astype(np.int64), layout.rel(npz), c
                )
    clean = {}
    for f in layout.cleans():
        d = artifacts.read_json(f)
        classes = classes or tuple(d["classes"])
        clean[d["model"]] = CleanEval(np.asarray(d["confusion"], dtype=np.int64), layout.rel(f))
    return classes, cells, clean


def load_grid(run_dir: str | Path) -> GridResults:
    """Read the paper grid's results of every seed; raise :class:`UserError` when the run
    holds none, or when any combination or clean evaluation the config asks for is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; give the folder `advimb run --out` wrote")
    layout = RunLayout(run_dir)
    cfg = read_config(run_dir)
    manifest = artifacts.read_json(layout.manifest) if layout.manifest.exists() else {}
    n_seeds = cfg.experiments.seeds if cfg else len(layout.replicates())
    reps = [_read_replicate(layout.of(k)) for k in range(n_seeds)]
    classes = next((c for c, _, _ in reps if c), None)
    if classes is None or not reps[0][1]:
        raise UserError(f"{run_dir} holds no evaluation results yet; run `advimb run` into it first")
    if cfg is not None:
        targets = [classes[i] for i in target_classes(cfg.imbalance, classes)]
    else:  # no config: the classes that have results
        targets = [c for c in classes if any(k[0] == c for k in reps[0][1])]
    res = GridResults(run_dir, classes, targets, n_seeds, config=cfg, manifest=manifest)
    missing: list[str] = []
    for k, (_, cells, clean) in enumerate(reps):
        where = f" (seed {k}, replicates/{k})" if k else ""
        for c in targets:
            for _, kind, grad in TABLE1_COLUMNS:
                if (c, kind, grad) in cells:
                    res.cells.setdefault((c, kind, grad), []).append(cells[(c, kind, grad)])
                else:
                    model = model_name(kind, c)
                    gmodel = model if grad == "same_model" else "balanced"
                    missing.append(f"{c} images attacked with {gmodel}'s gradient, classified by {model}{where}")
        for model in ["balanced", *(f"{kind}:{c}" for kind in ("under", "over") for c in targets)]:
            if model in clean:
                res.clean.setdefault(model, []).append(clean[model])
            else:
                missing.append(f"clean evaluation of {model} ({layout.of(k).rel(layout.of(k).clean(slug(model)))})")
    if missing:
        argv = (manifest.get("invocations") or [{}])[-1].get("argv")
        how = f" ({' '.join(argv)})" if argv else ""
        raise UserError(
            f"{run_dir} is incomplete: {len(missing)} result(s) of the grid its config asks for are missing "
            f"(first: {'; '.join(missing[:3])}); finish it with the command that made it{how}, which continues "
            "where it stopped - tables and report need every class, rather than averages over fewer"
        )
    return res


class Outcomes:
    """Per-image predictions of every stored combination - the grid's and the experiments' -
    per replicate, found by (evaluated scenario, gradient scenario, class); each npz is read
    once, when first asked for, and every artifact read is recorded in ``used``."""

    def __init__(self, run_dir: Path) -> None:
        self.layout = RunLayout(run_dir)
        self.layouts = self.layout.replicates()
        self.index: list[dict[tuple[Scenario, Scenario, str], Path]] = []
        self.clean: list[dict[Scenario, tuple[float, Path]]] = []
        self.classes: tuple[str, ...] = ()
        self.folders: dict[Scenario, str] = {}
        self.used: set[str] = set()
        for lay in self.layouts:
            idx = {}
            for folder in (GRID, *EXPERIMENTS.values()):
                for f in lay.attacks(folder):
                    d = artifacts.read_json(f)
                    self.classes = tuple(d["classes"])
                    for c in d["combinations"]:
                        ev = parse_scenario(c["evaluated_model"], self.classes)
                        idx[(ev, parse_scenario(c["gradient_model"], self.classes), c["class"])] = f.with_suffix(".npz")
                        if lay.replicate == 0:
                            self.folders.setdefault(ev, folder)
            self.index.append(idx)
            self.clean.append(
                {
                    parse_scenario(d["model"], tuple(d["classes"])): (100 * d["accuracy"], f)
                    for f in lay.cleans()
                    for d in [artifacts.read_json(f)]
                }
            )
        self._npz: dict[Path, dict[str, np.ndarray]] = {}

    def models(self, experiment: str) -> list[Scenario]:
        """The models evaluated in an experiment's folder (``EXPERIMENTS``), in name order."""
        return sorted(
            (s for s, f in self.folders.items() if f == EXPERIMENTS[experiment]), key=lambda s: s.name(self.classes)
        )

    def counts(self, s: Scenario) -> list[int] | None:
        """Training images per class of ``s`` (its ``scenarios/<slug>.json``)."""
        f = self.layout.scenario(s.slug(self.classes), "json")
        if not f.exists():
            return None
        self.used.add(self.layout.rel(f))
        return [int(v) for v in artifacts.read_json(f)["counts"].values()]

    def values(self, evaluated: Scenario, gradient: Scenario, cls: str, which: str = "adv") -> list[np.ndarray] | None:
        """100 * (prediction == ``cls``) per attacked image, one array per replicate; None
        when a replicate lacks the combination."""
        out = []
        for idx in self.index:
            path = idx.get((evaluated, gradient, cls))
            if path is None:
                return None
            if path not in self._npz:
                with np.load(path) as z:
                    self._npz[path] = {k: z[k] for k in z.files if k.startswith("pred_")}
            self.used.add(self.layout.rel(path))
            pred = self._npz[path][f"pred_{which}__{evaluated.slug(self.classes)}"]
            out.append(100.0 * (pred == self.classes.index(cls)))
        return out

    def clean_accuracy(self, s: Scenario) -> float:
        """Overall clean test accuracy (%), mean over replicates (NaN unless every one has it)."""
        found = [c[s] for c in self.clean if s in c]
        self.used.update(self.layout.rel(f) for _, f in found)
        return float(np.mean([a for a, _ in found])) if len(found) == len(self.clean) else float("nan")

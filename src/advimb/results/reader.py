"""The one reader of a run folder's results: the paper grid's, the experiments' and the sweeps'.

:class:`Outcomes` reads the stored artifacts only (``config.toml``, ``manifest.json``,
``eval/attack/*.json`` with their ``.npz`` per-image predictions, ``experiments/*/``,
``sweep/*/``, ``eval/clean/*.json``, and the same under ``replicates/<k>/``) into per-image
outcomes keyed by :class:`~advimb.data.imbalance.Scenario`: a :class:`Combination` per
(evaluated model, gradient model, class) and a :class:`CleanEval` per model. Scenario names are
parsed here, where the artifacts are read, and nowhere else. :func:`load_grid` checks that the
grid the config asks for is complete and returns a :class:`GridResults`, the grid's view of
the same outcomes, which :mod:`advimb.results.tables`, :mod:`advimb.results.claims` and the
report compute from through :mod:`advimb.results.metrics`. Every number is derived there from
the predictions (summaries earlier versions also stored are not read, so their run folders
read the same way). A run folder with results missing is refused with the list of what is
missing, rather than averaged over fewer classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advimb import artifacts
from advimb.config.io import from_dict, load_toml
from advimb.config.sections import ExperimentConfig
from advimb.data.imbalance import (
    BALANCED,  # also the report's
    KINDS,  # noqa: F401 - the scenarios' kinds, re-exported for the report
    Scenario,
    parse_scenario,
    target_classes,
)
from advimb.errors import UserError
from advimb.layout import EXPERIMENTS, GRID, RunLayout
from advimb.scenario import Gradient, Kind

#: Table 1's columns: (column name, model kind, gradient)
TABLE1_COLUMNS = (
    ("different_model_under", Kind.UNDER, Gradient.BALANCED),
    ("different_model_over", Kind.OVER, Gradient.BALANCED),
    ("same_model_balanced", Kind.BALANCED, Gradient.SAME),
    ("same_model_under", Kind.UNDER, Gradient.SAME),
    ("same_model_over", Kind.OVER, Gradient.SAME),
)

#: an attack's identity in the sweeps: (attack name, eps)
Point = tuple[str, float]
Key = tuple[Scenario, Scenario, str]


@dataclass(frozen=True)
class Combination:
    """The test images of class ``cls`` attacked with ``gradient``'s gradient and classified
    by ``evaluated``, in one seed: each image's predicted label before (``clean``) and after
    (``adv``) the attack, its minimal FGSM eps when the sweep measured it (``min_eps``, up to
    ``min_eps_max``), and the npz they were read from (``source``, relative to the run folder)."""

    evaluated: Scenario
    gradient: Scenario
    cls: str
    clean: np.ndarray
    adv: np.ndarray
    source: str
    min_eps: np.ndarray | None = None
    min_eps_max: float = 0.0

    @property
    def same_model(self) -> bool:
        return self.evaluated == self.gradient

    @property
    def n(self) -> int:
        return len(self.adv)


@dataclass(frozen=True)
class CleanEval:
    """One model's clean evaluation on the full test set in one seed."""

    confusion: np.ndarray  # (C, C) counts, rows = true class
    source: str

    @property
    def n_per_class(self) -> np.ndarray:
        return self.confusion.sum(1)

    @property
    def accuracy(self) -> float:
        """Share of the test set classified correctly (0-1)."""
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    def correct(self, c: int) -> np.ndarray:
        """100 for each correctly classified test image of class ``c``, 0 otherwise, in no
        particular image order: the confusion counts are what every version of the artifact
        stores, and a bootstrap of one model's accuracy needs no more (it must not be paired
        with another model's: :meth:`advimb.results.metrics.Metrics.clean_class`)."""
        n, k = int(self.confusion[c].sum()), int(self.confusion[c, c])
        return np.r_[np.full(k, 100.0), np.zeros(n - k)]


@dataclass(frozen=True)
class Replicate:
    """One seed's outcomes: its combinations per folder (:data:`GRID` and the experiments'),
    its clean evaluations, the long-tailed models' under each further attack (``variants``,
    by the attack's label) and (the first seed only) the sweeps' combinations per attack."""

    folders: dict[str, dict[Key, Combination]] = field(default_factory=dict)
    clean: dict[Scenario, CleanEval] = field(default_factory=dict)
    sweeps: dict[Point, dict[Key, Combination]] = field(default_factory=dict)
    variants: dict[str, dict[Key, Combination]] = field(default_factory=dict)

    def find(self, key: Key) -> Combination | None:
        """The combination in the last folder that has it (the experiments' over the grid's)."""
        found = None
        for combos in self.folders.values():
            found = combos.get(key, found)
        return found


def read_config(run_dir: Path) -> ExperimentConfig | None:
    """The run's resolved config, or None when ``config.toml`` is missing or unreadable."""
    path = RunLayout(run_dir).config
    if not path.exists():
        return None
    try:
        return from_dict(ExperimentConfig, load_toml(path))
    except UserError:
        return None


def _read_attack(layout: RunLayout, f: Path, out: dict[Key, Combination]) -> tuple[str, ...]:
    """The combinations of one attack artifact (``f`` and its npz) into ``out``; its classes."""
    d = artifacts.read_json(f)
    classes = tuple(d["classes"])
    npz = f.with_suffix(".npz")
    with np.load(npz) as z:
        for c in d["combinations"]:
            ev, grad = parse_scenario(c["evaluated_model"], classes), parse_scenario(c["gradient_model"], classes)
            s = ev.slug(classes)
            me = z[f"min_eps__{s}"] if f"min_eps__{s}" in z.files else None
            out[(ev, grad, c["class"])] = Combination(
                ev,
                grad,
                c["class"],
                z[f"pred_clean__{s}"].astype(np.int64),
                z[f"pred_adv__{s}"].astype(np.int64),
                layout.rel(npz),
                me,
                float(c.get("min_eps_max", 0.0)),
            )
    return classes


def _read_replicate(layout: RunLayout, sweeps: bool) -> tuple[tuple[str, ...], Replicate]:
    rep = Replicate()
    classes: tuple[str, ...] = ()
    for folder in (GRID, *EXPERIMENTS.values()):
        combos: dict[Key, Combination] = {}
        for f in layout.attacks(folder):
            classes = _read_attack(layout, f, combos)
        if combos:
            rep.folders[folder] = combos
    for label, folder in layout.variants().items():
        combos = {}
        for f in layout.attacks(folder):
            classes = _read_attack(layout, f, combos)
        rep.variants[label] = combos
    for f in layout.cleans():
        d = artifacts.read_json(f)
        classes = classes or tuple(d["classes"])
        rep.clean[parse_scenario(d["model"], tuple(d["classes"]))] = CleanEval(
            np.asarray(d["confusion"], dtype=np.int64), layout.rel(f)
        )
    for f in layout.sweeps() if sweeps else []:
        combos = {}
        classes = _read_attack(layout, f, combos)
        attack = artifacts.read_json(f)["attack"]
        rep.sweeps.setdefault((attack["name"], attack["eps"]), {}).update(combos)
    return classes, rep


class Outcomes:
    """Every stored outcome of a run, per replicate (seed), found by (evaluated scenario,
    gradient scenario, class)."""

    def __init__(
        self,
        run_dir: Path,
        classes: tuple[str, ...],
        replicates: list[Replicate],
        config: ExperimentConfig | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir, self.layout = Path(run_dir), RunLayout(run_dir)
        self.classes, self.replicates = classes, replicates
        self.config, self.manifest = config, manifest or {}

    @classmethod
    def read(cls, run_dir: str | Path) -> Outcomes:
        """Read every replicate of ``run_dir`` (as many as the config's seeds, or as are stored)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"run folder {run_dir} does not exist; give the folder `advimb run --out` wrote")
        layout = RunLayout(run_dir)
        cfg = read_config(run_dir)
        manifest = artifacts.read_json(layout.manifest) if layout.manifest.exists() else {}
        n_seeds = cfg.experiments.seeds if cfg else len(layout.replicates())
        read = [_read_replicate(layout.of(k), sweeps=k == 0) for k in range(n_seeds)]
        classes = next((c for c, _ in read if c), ())
        return cls(run_dir, classes, [r for _, r in read], cfg, manifest)

    def only(self, k: int) -> Outcomes:
        """The outcomes of replicate ``k`` alone."""
        return Outcomes(self.run_dir, self.classes, [self.replicates[k]], self.config, self.manifest)

    @property
    def seeds(self) -> int:
        return len(self.replicates)

    def name(self, s: Scenario) -> str:
        return s.name(self.classes)

    def models(self, experiment: str) -> list[Scenario]:
        """The models evaluated in an experiment's folder (``EXPERIMENTS``), in name order; a
        model the grid evaluates too belongs to the grid."""
        seen: dict[Scenario, str] = {}
        for folder, combos in self.replicates[0].folders.items():
            for ev, _, _ in combos:
                seen.setdefault(ev, folder)
        return sorted((s for s, f in seen.items() if f == EXPERIMENTS[experiment]), key=self.name)

    def counts(self, s: Scenario) -> tuple[list[int], str] | None:
        """Training images per class of ``s`` and the artifact they are read from
        (``scenarios/<slug>.json``); None when it is missing."""
        f = self.layout.scenario(s.slug(self.classes), "json")
        if not f.exists():
            return None
        return [int(v) for v in artifacts.read_json(f)["counts"].values()], self.layout.rel(f)

    def combinations(
        self,
        evaluated: Scenario,
        gradient: Scenario,
        cls: str,
        folder: str | None = None,
        attack: str = "",
        sweep: Point | None = None,
    ) -> list[Combination] | None:
        """One combination per replicate (of ``folder`` only, when given; under the further
        attack ``attack`` when given; of sweep point ``sweep``, first seed only, when given);
        None when a replicate lacks it."""
        key = (evaluated, gradient, cls)
        if sweep is not None:
            found = [self.replicates[0].sweeps.get(sweep, {}).get(key)] if self.replicates else [None]
        elif attack:
            found = [r.variants.get(attack, {}).get(key) for r in self.replicates]
        else:
            found = [r.find(key) if folder is None else r.folders.get(folder, {}).get(key) for r in self.replicates]
        if any(c is None for c in found):
            return None
        return [c for c in found if c is not None]

    def clean(self, s: Scenario) -> list[CleanEval] | None:
        """The clean evaluation of ``s`` per replicate; None when a replicate lacks it."""
        found = [r.clean.get(s) for r in self.replicates]
        if any(c is None for c in found):
            return None
        return [c for c in found if c is not None]

    def attacks(self) -> list[str]:
        """The further attacks on the long-tailed models (their labels), first seed."""
        return list(self.replicates[0].variants) if self.replicates else []

    def sweep_points(self) -> dict[Point, list[Combination]]:
        """The sweeps' combinations per (attack, eps), first seed (``sweep/<attack>-eps<eps>/``)."""
        return {p: list(c.values()) for p, c in self.replicates[0].sweeps.items()} if self.replicates else {}


def grid_models(kind: Kind, grad: Gradient, target: int) -> tuple[Scenario, Scenario]:
    """The (evaluated, gradient) models of a Table 1 cell: the model of ``kind`` with class
    ``target`` under- or over-sampled, attacked with its own or the balanced model's gradient."""
    evaluated = BALANCED if kind == Kind.BALANCED else Scenario(Kind(kind), target)
    return evaluated, evaluated if grad == Gradient.SAME else BALANCED


@dataclass
class GridResults:
    """The paper grid's view of a run's outcomes: its studied classes (``targets``), every
    seed's combination per Table 1 cell and every grid model's clean evaluation."""

    outcomes: Outcomes
    targets: list[str]

    @property
    def classes(self) -> tuple[str, ...]:
        return self.outcomes.classes

    @property
    def seeds(self) -> int:
        return self.outcomes.seeds

    @property
    def config(self) -> ExperimentConfig | None:
        return self.outcomes.config

    @property
    def manifest(self) -> dict[str, Any]:
        return self.outcomes.manifest

    @property
    def run_dir(self) -> Path:
        return self.outcomes.run_dir

    def models(self, kind: Kind, c: str) -> tuple[Scenario, Scenario]:
        """The (evaluated, gradient) models of kind ``kind`` for class ``c``, same-model."""
        return grid_models(kind, Gradient.SAME, self.classes.index(c))

    def model(self, kind: Kind, c: str) -> Scenario:
        """The grid's model of ``kind`` for class ``c`` (the balanced model for kind balanced)."""
        return self.models(kind, c)[0]

    def scenarios(self) -> list[Scenario]:
        """The grid's models: balanced, then the under- and the over-sampled ones in class order."""
        return [BALANCED, *(self.model(kind, c) for kind in (Kind.UNDER, Kind.OVER) for c in self.targets)]

    def cell(self, c: str, kind: Kind, grad: Gradient) -> list[Combination]:
        """Every seed's combination of Table 1's cell (class ``c``, ``kind``, ``grad``)."""
        ev, g = grid_models(kind, grad, self.classes.index(c))
        return [r.folders[GRID][(ev, g, c)] for r in self.outcomes.replicates]

    def clean(self, s: Scenario) -> list[CleanEval]:
        return [r.clean[s] for r in self.outcomes.replicates]

    def attack_sources(self) -> list[str]:
        cells = [e for c in self.targets for _, kind, grad in TABLE1_COLUMNS for e in self.cell(c, kind, grad)]
        return sorted({e.source for e in cells} | {e.source.replace(".npz", ".json") for e in cells})

    def clean_sources(self) -> list[str]:
        return sorted({e.source for s in self.scenarios() for e in self.clean(s)})

    def seed(self, s: int) -> GridResults:
        """The results of seed ``s`` alone."""
        return dataclasses.replace(self, outcomes=self.outcomes.only(s))

    @property
    def n_attacked(self) -> int:
        """Attacked test images per class (the first seed's first cell)."""
        _, kind, grad = TABLE1_COLUMNS[0]
        return self.cell(self.targets[0], kind, grad)[0].n


def _missing(res: GridResults) -> list[str]:
    """What the grid the config asks for lacks, one phrase per result."""
    missing: list[str] = []
    layout = res.outcomes.layout
    for k, rep in enumerate(res.outcomes.replicates):
        where = f" (seed {k}, replicates/{k})" if k else ""
        grid = rep.folders.get(GRID, {})
        for c in res.targets:
            for _, kind, grad in TABLE1_COLUMNS:
                ev, g = grid_models(kind, grad, res.classes.index(c))
                if (ev, g, c) not in grid:
                    missing.append(
                        f"{c} images attacked with {res.outcomes.name(g)}'s gradient, "
                        f"classified by {res.outcomes.name(ev)}{where}"
                    )
        for s in res.scenarios():
            if s not in rep.clean:
                clean = layout.of(k).clean(s.slug(res.classes))
                missing.append(f"clean evaluation of {res.outcomes.name(s)} ({layout.of(k).rel(clean)})")
    return missing


def load_grid(run_dir: str | Path, outcomes: Outcomes | None = None) -> GridResults:
    """The paper grid's results of every seed (from ``outcomes`` when the caller has read them);
    raise :class:`UserError` when the run holds none, or when any combination or clean
    evaluation the config asks for is missing."""
    run_dir = Path(run_dir)
    o = outcomes or Outcomes.read(run_dir)
    if not o.classes or not o.replicates or GRID not in o.replicates[0].folders:
        raise UserError(f"{run_dir} holds no evaluation results yet; run `advimb run` into it first")
    if o.config is not None:
        targets = [o.classes[i] for i in target_classes(o.config.imbalance, o.classes)]
    else:  # no config: the classes that have results
        found = {key[2] for key in o.replicates[0].folders[GRID]}
        targets = [c for c in o.classes if c in found]
    res = GridResults(o, targets)
    missing = _missing(res)
    if missing:
        argv = (o.manifest.get("invocations") or [{}])[-1].get("argv")
        how = f" ({' '.join(argv)})" if argv else ""
        raise UserError(
            f"{run_dir} is incomplete: {len(missing)} result(s) of the grid its config asks for are missing "
            f"(first: {'; '.join(missing[:3])}); finish it with the command that made it{how}, which continues "
            "where it stopped - tables and report need every class, rather than averages over fewer"
        )
    return res

"""Where every artifact of a run folder lives: the one place that knows the layout. A leaf:
jobs write through it, and the results reader, tables and report read through it.

    config.toml, manifest.json                the resolved config; provenance
    run.lock                                  the lock of the invocation writing into the folder
    scenarios/<slug>.npz|json                 a scenario's training indices; its counts
    models/<slug>/weights.pt|history.csv|meta.json   a trained model (meta.json: its job marker)
    models/_stack-<key>/                      a stacked training group's checkpoint
    eval/clean/<slug>.json|npz                a model on the clean test set
    eval/attack/<gradient>__<class>.json|npz  the paper's grid: one class attacked with one gradient
    sweep/<attack>-eps<eps>/                  attack and eps sweeps (first seed)
    experiments/{counts,long_tail,defences}/  the experiments beyond the paper
    experiments/long_tail-<attack>/           the long-tailed models under each further attack
    replicates/<k>/                           seed k > 0: all of the above but tables and report
    tables/, report/                          derived from the above, never the other way
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the paper's grid, relative to a replicate's folder
GRID = "eval/attack"
#: the experiments' folders, relative to a replicate's folder
EXPERIMENTS = {"counts": "experiments/counts", "long_tail": "experiments/long_tail", "defences": "experiments/defences"}


def variant_folder(label: str) -> str:
    """The folder of the long-tailed models under a further attack (``experiments.long_tail_attacks``),
    relative to a replicate's folder, e.g. ``experiments/long_tail-cw``."""
    return f"{EXPERIMENTS['long_tail']}-{label}"


def sweep_folder(attack: str, eps: float) -> str:
    """A sweep point's folder, relative to the run folder, e.g. ``sweep/pgd-eps0.02``."""
    return f"sweep/{attack}-eps{eps:g}"


def slug(model: str) -> str:
    """A model's name as a file name: ``under:cat`` -> ``under-cat``."""
    return model.replace(":", "-")


@dataclass(frozen=True)
class RunLayout:
    """The artifacts of one replicate of a run folder (``replicate`` 0: the run folder itself)."""

    run_dir: Path
    replicate: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))

    @property
    def root(self) -> Path:
        """This replicate's folder."""
        return self.run_dir / "replicates" / str(self.replicate) if self.replicate else self.run_dir

    def of(self, replicate: int) -> RunLayout:
        return RunLayout(self.run_dir, replicate)

    def replicates(self) -> list[RunLayout]:
        """The replicates that hold results, in seed order."""
        found = sorted(
            int(p.name) for p in (self.run_dir / "replicates").glob("*") if p.name.isdigit() and (p / "eval").is_dir()
        )
        return [self.of(0), *(self.of(k) for k in found)]

    def rel(self, path: Path) -> str:
        """``path`` relative to the run folder (how markers and sources name artifacts)."""
        return str(Path(path).relative_to(self.run_dir))

    # run-level files
    @property
    def config(self) -> Path:
        return self.run_dir / "config.toml"

    @property
    def manifest(self) -> Path:
        return self.run_dir / "manifest.json"

    @property
    def lock(self) -> Path:
        """Who writes into the run folder now (``advimb.study.lock``)."""
        return self.run_dir / "run.lock"

    @property
    def tables(self) -> Path:
        return self.run_dir / "tables"

    @property
    def report(self) -> Path:
        return self.run_dir / "report"

    # training
    def scenario(self, model_slug: str, ext: str = "npz") -> Path:
        return self.root / "scenarios" / f"{model_slug}.{ext}"

    def model(self, model_slug: str) -> Path:
        """A model's folder: ``weights.pt``, ``history.csv``, ``meta.json``, ``train_state.pt``."""
        return self.root / "models" / model_slug

    def stack(self, key: str) -> Path:
        """A stacked training group's folder (its checkpoint while it trains)."""
        return self.model(f"_stack-{key}")

    # evaluation
    def clean(self, model_slug: str, ext: str = "json") -> Path:
        return self.root / "eval" / "clean" / f"{model_slug}.{ext}"

    def attack(self, folder: str, gradient_slug: str, cls: str, ext: str = "json") -> Path:
        """One attack job's artifact in ``folder`` (:data:`GRID`, a sweep's or an experiment's)."""
        return self.root / folder / f"{gradient_slug}__{cls}.{ext}"

    def attacks(self, folder: str) -> list[Path]:
        """The attack jobs' JSON artifacts in ``folder``."""
        return sorted((self.root / folder).glob("*.json"))

    def variants(self) -> dict[str, str]:
        """The further attacks on the long-tailed models this replicate holds: label -> folder."""
        prefix = variant_folder("")
        found = sorted(p.name for p in (self.root / "experiments").glob(f"{Path(prefix).name}*") if p.is_dir())
        return {name[len(Path(prefix).name) :]: f"experiments/{name}" for name in found}

    def cleans(self) -> list[Path]:
        return sorted((self.root / "eval" / "clean").glob("*.json"))

    def sweeps(self) -> list[Path]:
        """Every sweep point's attack artifacts (run folder only: sweeps run on the first seed)."""
        return sorted(self.run_dir.glob("sweep/*/*.json"))

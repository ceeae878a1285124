"""advimb from Python: :func:`run` a study (or resume it) and :func:`load` a finished one,
both returning :class:`Results`, whose tables are pandas DataFrames read from the run
folder's own artifacts. The same functions as the command line, the same checks: bad input
raises :class:`advimb.errors.UserError` with the one-line message the CLI prints, before
anything is written.

    import advimb
    res = advimb.run(preset="quick", data_dir="../shared/data", out="runs/quick",
                     overrides={"train.max_epochs": 2})
    res.table1                    # DataFrame, one row per class and the average
    res.claims                    # the paper's claims, tested
    advimb.load("runs/quick").clean_accuracy
    net = advimb.load_model("runs/quick", "under:truck")   # the trained nn.Module
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advimb.config.io import merge, nest
from advimb.config.sections import ExperimentConfig
from advimb.errors import UserError
from advimb.report.build import build_report, collect
from advimb.results.reader import read_config
from advimb.results.stats import N_BOOT, check_n_boot
from advimb.scenario import Scenario, parse_scenario
from advimb.study.checks import resolve_arguments
from advimb.study.lock import hold
from advimb.study.run import run_study

#: the tables of a run folder's ``tables/`` that :class:`Results` hands out, by attribute
TABLES = ("table1", "clean_accuracy", "clean_target_accuracy", "relative_difference", "flip_rates")


def build_config(
    preset: str | None = None,
    *,
    config_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    eps: float | str | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
) -> ExperimentConfig:
    """The resolved config a :func:`run` with these arguments would use (every name checked).

    ``overrides``: ``{"train.max_epochs": 2, "attack.name": "pgd"}`` (dotted keys, as the
    CLI's ``--set``) or nested tables (``{"train": {"max_epochs": 2}}``). The other keywords
    are ``advimb run``'s flags of the same names (``--data-dir``, ``--seeds``, ``--device``,
    ``--seed``, ``--eps``, ``--executor``, ``--scheduler``, ``--scheduler-file``)."""
    return resolve_arguments(
        preset,
        config_file,
        [_nest(overrides or {})],
        data_dir=data_dir,
        seeds=seeds,
        device=device,
        seed=seed,
        eps=eps,
        executor=executor,
        scheduler=scheduler,
        scheduler_file=scheduler_file,
    )


def run(
    preset: str | None = None,
    *,
    out: str | Path | None = None,
    config_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: int | None = None,
    device: str | None = None,
    report: bool = True,
    progress: bool = True,
    wait: bool = False,
    **arguments: Any,
) -> Results:
    """Run (or resume) the study into run folder ``out`` (default ``runs/<preset>``), build
    its tables and, with ``report``, its report; return its :class:`Results`. Arguments as
    :func:`build_config`; the same study, artifacts and checks as ``advimb run``. ``wait``:
    if another invocation is writing into ``out``, wait for it (else :class:`UserError`).
    ``arguments``: :func:`build_config`'s other keywords (``seed``, ``eps``, ``executor``, ...)."""
    cfg = build_config(
        preset,
        config_file=config_file,
        data_dir=data_dir,
        overrides=overrides,
        seeds=seeds,
        device=device,
        **arguments,
    )
    after = (lambda run_dir: build_report(run_dir)) if report else None
    res = run_study(cfg, out or f"runs/{cfg.preset}", progress=progress, argv=["advimb.run"], after=after, wait=wait)
    return Results(Path(res["run_dir"]))


def load(run_dir: str | Path) -> Results:
    """The results of a finished run folder (made by this or an earlier version)."""
    run_dir = Path(run_dir)
    if not (run_dir / "tables" / "summary.json").is_file():
        raise UserError(
            f"{run_dir} holds no finished study (no tables/summary.json); "
            "run it with advimb.run(...) or `advimb run`, or rebuild its tables with `advimb tables`"
        )
    return Results(run_dir)


def load_model(run_dir: str | Path, model: str | Scenario = "balanced", *, replicate: int = 0, device: str = "cpu"):
    """A trained model of a finished run folder as a ``torch.nn.Module`` in eval mode on
    ``device``, ready for any attack library: it takes images in [0, 1], ``(N, C, H, W)``
    float, and returns logits (its input normalisation, if any, is inside it), as the study
    evaluated and attacked it. ``model``: a :class:`~advimb.scenario.Scenario` or its name,
    ``balanced``, ``under:<class>``, ``over:<class>`` or an experiment's model
    (``under:cat+pgd_at``, ``longtail:ldam100``; a class by name or index); ``replicate``:
    the seed index of a ``--seeds N`` run (0: the first seed).

        net = advimb.load_model("runs/quick", "under:truck")
        adv = torchattacks.PGD(net, eps=8 / 255)(images, labels)
    """
    import torch

    from advimb.artifacts import read_json
    from advimb.layout import RunLayout
    from advimb.study.jobs.base import trained_model

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    manifest = RunLayout(run_dir).manifest
    if cfg is None or not manifest.is_file():
        raise UserError(
            f"{run_dir} is not a run folder (no readable config.toml and manifest.json); "
            "give the folder `advimb run --out` wrote"
        )
    layout = RunLayout(run_dir, replicate)
    data = read_json(manifest).get("dataset", {})
    classes = tuple(data["classes"])
    why = ""
    try:
        scenario = model if isinstance(model, Scenario) else parse_scenario(model, classes)
        folder, label = scenario.slug(classes), scenario.name(classes)
    except UserError as e:  # a models/ folder's own name, as earlier versions took it, or nothing
        folder, label, why = str(model), str(model), f" ({e})"
    weights = layout.model(folder) / "weights.pt"
    if not weights.is_file():
        found = sorted(read_json(p)["scenario"] for p in (layout.root / "models").glob("*/meta.json"))
        raise UserError(
            f"{run_dir} has no trained model {label!r}{why}"
            + (f" in replicate {replicate}" if replicate else "")
            + (f"; it has: {', '.join(found)}" if found else "; it has none yet (run the study first)")
        )
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UserError(f"device {device!r} is not a torch device ({e}); use cpu, cuda or cuda:N") from None
    # what the model is, from what the study recorded (a folder's name says it too, but not parsed)
    defence = parse_scenario(read_json(weights.parent / "meta.json")["scenario"], classes).defence
    return trained_model(cfg, len(classes), tuple(data["image_shape"]), weights, dev, defence)


@dataclass(frozen=True)
class Results:
    """A run folder's results. Tables (``table1``, ``clean_accuracy``,
    ``clean_target_accuracy``, ``relative_difference``, ``flip_rates``) are DataFrames read
    from ``tables/*.csv``; ``summary`` is ``tables/summary.json``; ``claims`` the paper's
    claims as the report tests them; ``report_path`` the HTML report, if built."""

    run_dir: Path

    @property
    def table1(self):
        """Table 1: accuracy of the target class under attack, one row per class and the average."""
        return self.table("table1")

    @property
    def clean_accuracy(self):
        """Every model's clean test accuracy, overall and per class."""
        return self.table("clean_accuracy")

    @property
    def clean_target_accuracy(self):
        """Fig. 2: each studied class's clean accuracy (full test set) for the balanced model and the
        models with that class under- and over-sampled."""
        return self.table("clean_target_accuracy")

    @property
    def relative_difference(self):
        """Fig. 4: 100 x (clean - attacked) / clean accuracy, both on the attacked images."""
        return self.table("relative_difference")

    @property
    def flip_rates(self):
        """Fig. 6: the share of each class's attacked images predicted as each label, before and after
        the attack."""
        return self.table("flip_rates")

    def table(self, name: str):
        """One of the run's tables as a pandas DataFrame (a fresh copy each call)."""
        import pandas as pd

        path = self.run_dir / "tables" / f"{name}.csv"
        if not path.is_file():
            raise UserError(f"{path} does not exist; the tables are {', '.join(TABLES)}")
        return pd.read_csv(path)

    def beside(self, base: str | Path, n_boot: int = N_BOOT):
        """This run beside ``base`` (another run folder of the paper's grid) on this run's
        classes, as a pandas DataFrame: a row per quantity with each run's estimate, this run
        minus ``base`` (points, paired on the same test images where both attack them) with
        95% intervals, and the paper's value (:func:`advimb.results.compare.compare_runs`; the
        reproduction account's "beside" tables)."""
        import pandas as pd

        from advimb.results.compare import compare_runs

        check_n_boot(n_boot)
        rows, _ = compare_runs(self.run_dir, base, n_boot)
        return pd.DataFrame(
            [
                {
                    "quantity": r.quantity,
                    **r.base.columns("base"),
                    **r.run.columns("run"),
                    **r.difference.columns("difference"),
                    "paper": r.paper,
                }
                for r in rows
            ]
        )

    @property
    def config(self) -> ExperimentConfig | None:
        """The run's resolved config; None when ``config.toml`` is missing or unreadable."""
        return read_config(self.run_dir)

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "tables" / "summary.json").read_text())

    @property
    def report_path(self) -> Path | None:
        p = self.run_dir / "report" / "index.html"
        return p if p.is_file() else None

    @functools.cached_property
    def claims(self) -> dict[str, dict[str, Any]]:
        """The paper's claims by id (``C1`` ... ), each with its statement, verdict,
        comparisons and intervals: the report's, or computed the report's way when no
        report was built."""
        stored = self.run_dir / "report" / "results.json"
        if stored.is_file():
            raw = json.loads(stored.read_text())["claims"]
        else:  # computing them may write the tables (read_tables or build_tables): under the folder's lock
            with hold(self.run_dir, argv=["advimb.Results.claims"]):
                raw = collect(self.run_dir)["claims"]
        return {c["id"]: c for c in raw["claims"]}

    def build_report(self, pair: str | None = None, n_boot: int = N_BOOT) -> Path:
        """Build (or rebuild) the HTML report, holding the run folder's lock; returns its path."""
        check_n_boot(n_boot)  # before the lock is taken
        with hold(self.run_dir, argv=["advimb.Results.build_report"]):
            build_report(self.run_dir, pair, n_boot)
        self.__dict__.pop("claims", None)
        return self.run_dir / "report" / "index.html"

    def __repr__(self) -> str:
        return f"Results({str(self.run_dir)!r}: balanced clean accuracy {self.summary.get('balanced_clean_accuracy')}%)"


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"train.max_epochs": 2}`` -> ``{"train": {"max_epochs": 2}}`` (nested tables kept)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"override key {key!r} is not a setting name like 'train.max_epochs'")
        out = merge(out, nest(key, value))
    return out

"""Command-line interface (thin: it only fills the config and calls the stages).

advimb run --preset quick --data-dir ../shared/data --out runs/quick
advimb report runs/quick              # figures, HTML page, claims (run does this at the end)
advimb tables runs/quick
advimb config --preset quick          # print the resolved config as TOML
advimb list                           # presets, models, attacks
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from advimb import __version__
from advimb.errors import UserError
from advimb.results.stats import N_BOOT


def _study_args(sp: argparse.ArgumentParser) -> None:
    """The options that build a study's config (run, sweep, config)."""
    from advimb.config.presets import PRESETS

    sp.add_argument(
        "--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: paper, or the config file's preset)"
    )
    sp.add_argument("--config", metavar="FILE", help="TOML file setting any config field")
    sp.add_argument(
        "--data-dir",
        metavar="DIR",
        help="local dataset (CIFAR-10 batches, image folders or an archive); "
        "default $ADVIMB_DATA, else download CIFAR-10",
    )
    sp.add_argument("--seed", type=int, help="base seed (selection, split, init, order)")
    sp.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="independent replicates of every job (default 1); tables show means and 95%% intervals",
    )
    sp.add_argument("--eps", help="attack step on the [0, 1] scale, a number or a fraction (paper: 0.01; 8/255)")
    sp.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    sp.add_argument(
        "--executor",
        choices=("local", "dask"),
        help="who runs the jobs: local (default, this process) or dask (Dask distributed)",
    )
    sp.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default $DASK_SCHEDULER_ADDRESS; "
        "neither: start a local cluster)",
    )
    sp.add_argument("--scheduler-file", metavar="FILE", help="Dask scheduler file (dask scheduler --scheduler-file)")
    sp.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config field, e.g. --set train.max_epochs=5 (repeatable)",
    )


def _report_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--pair",
        metavar="A,B",
        help="class pair for Fig. 6 and claim C4 (default cat,dog, or the pair the balanced model confuses most)",
    )
    sp.add_argument("--n-boot", type=int, default=N_BOOT, help=f"bootstrap replicates (default {N_BOOT})")
    sp.add_argument(
        "--wait",
        action="store_true",
        help="if another advimb invocation is writing into the run folder, wait for it to finish "
        "(default: stop with a message naming it)",
    )


def _run_args(sp: argparse.ArgumentParser, out_help: str) -> None:
    """A command that runs a study into a run folder and reports on it (run, sweep)."""
    _study_args(sp)
    sp.add_argument("--out", metavar="DIR", help=out_help)
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    _report_args(sp)
    sp.add_argument("--no-report", action="store_true", help="stop after the tables; build no report")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="advimb",
        description=(
            "How class imbalance changes a CNN's vulnerability to adversarial inputs "
            "(Possas & Zhou, reproduced and generalised)."
        ),
    )
    p.add_argument("--version", action="version", version=f"advimb {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _run_args(
        sub.add_parser("run", help="run (or resume) the study into a run folder"), "run folder (default runs/<preset>)"
    )
    _study_args(sub.add_parser("config", help="print the resolved config as TOML"))
    sw = sub.add_parser("sweep", help="the study plus every attack at every eps (accuracy-vs-eps curves)")
    _run_args(sw, "run folder (default runs/<preset>; reuses its models)")
    sw.add_argument("--attacks", default="fgsm,bim,pgd", help="comma-separated (default fgsm,bim,pgd)")
    sw.add_argument(
        "--epsilons",
        default="0.0025,0.005,0.01,0.02,0.04",
        help="comma-separated eps values on the [0, 1] scale (default 0.0025,0.005,0.01,0.02,0.04)",
    )
    rp = sub.add_parser("report", help="build the report (figures, HTML, claims) of a run folder")
    rp.add_argument("run_dir")
    _report_args(rp)
    tp = sub.add_parser("tables", help="rebuild the tables of a run folder from its artifacts")
    tp.add_argument("run_dir")
    tp.add_argument("--wait", action="store_true", help="wait for another invocation writing into the folder")
    sub.add_parser("list", help="list presets, datasets, models, attacks, defences and long-tail profiles")
    return p


def _resolve(args: argparse.Namespace):
    from advimb.config.io import parse_assignment
    from advimb.study.checks import ARGUMENT_KEYS, resolve_arguments, sweep_overrides

    overrides: list[dict[str, Any]] = [parse_assignment(s) for s in args.sets]
    if getattr(args, "attacks", None) is not None:
        overrides.append(sweep_overrides(args.attacks, args.epsilons))
    # every name known to its registry, before anything else happens
    return resolve_arguments(
        args.preset, args.config, overrides, **{name: getattr(args, name, None) for name in ARGUMENT_KEYS}
    )


def _run(args: argparse.Namespace) -> int:
    from advimb.report.build import build_report, format_report_summary
    from advimb.results.tables import format_summary
    from advimb.study.run import run_study

    cfg = _resolve(args)
    out = args.out or f"runs/{cfg.preset}"
    if not args.no_report:
        _check_n_boot(args.n_boot)
    after = None if args.no_report else (lambda run_dir: build_report(run_dir, args.pair, args.n_boot))
    res = run_study(
        cfg,
        out,
        progress=not args.no_progress,
        argv=["advimb", *sys.argv[1:]],
        pair=None if args.no_report else args.pair,
        after=after,
        wait=args.wait,
    )
    st = res["stats"]
    done = f"done in {res['wall_seconds']:.0f} s ({st['run']} jobs run, {st['skipped']} already done)"
    if args.no_report:
        print(format_summary(res["run_dir"]))
        print(f"{done}; results in {res['run_dir']}/tables")
        return 0
    print(format_report_summary(res["after"]))
    print(f"{done}; report in {res['run_dir']}/report/index.html")
    return 0


def _check_n_boot(n: int) -> None:
    from advimb.results.stats import check_n_boot

    check_n_boot(n, "--n-boot")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from advimb.report.build import build_report, format_report_summary

    run_dir = Path(args.run_dir)
    _check_n_boot(args.n_boot)
    with _holding(run_dir, args.wait):
        print(format_report_summary(build_report(run_dir, args.pair, args.n_boot)))  # refuses a missing folder
    print(f"report in {run_dir}/report/index.html")
    return 0


def _tables(args: argparse.Namespace) -> int:
    from pathlib import Path

    from advimb.results.tables import build_tables, format_summary

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    with _holding(run_dir, args.wait):
        build_tables(run_dir)
    print(format_summary(run_dir))
    return 0


def _holding(run_dir, wait: bool):
    """The run folder's lock while a command rewrites its tables or report (nothing to lock,
    and nothing created, when the folder does not exist: the command itself says so)."""
    import contextlib

    from advimb.study.lock import hold

    return hold(run_dir, argv=["advimb", *sys.argv[1:]], wait=wait) if run_dir.is_dir() else contextlib.nullcontext()


def _list(_: argparse.Namespace) -> int:
    from advimb.attacks.core import attack_params, list_attacks
    from advimb.config.presets import PRESETS
    from advimb.data.imbalance import list_profiles
    from advimb.data.sources import list_sources
    from advimb.models import is_stackable, list_models
    from advimb.training.defences import get_defence, list_defences

    print("presets:")
    for name, p in PRESETS.items():
        print(f"  {name:9s} {p.description}\n  {'':9s} cost: {p.cost}")
        if p.departures:
            print(f"  {'':9s} departs from the paper's protocol:")
            print("".join(f"  {'':9s}   - {d}\n" for d in p.departures), end="")
    print("datasets (data.source): " + ", ".join(list_sources()))
    print(
        "models (model.name):    "
        + ", ".join(m + ("" if is_stackable(m) else " (not stackable)") for m in list_models())
        + "; or torchvision:<name>, timm:<name>, package.module:factory (one by one)"
    )
    print(
        "attacks (attack.name):  "
        + "; ".join(f"{a} ({', '.join(attack_params(a))})" for a in list_attacks())
        + "; or torchattacks:<Attack> with [attack.params]"
    )
    print(
        "defences (experiments.defences): " + "; ".join(f"{d}: {get_defence(d).description}" for d in list_defences())
    )
    print("long-tail profiles (experiments.long_tail = ['<profile>:<rho>']): " + ", ".join(list_profiles()))
    return 0


def _config(args: argparse.Namespace) -> int:
    from advimb.config.io import dump_toml

    print(dump_toml(_resolve(args)), end="")
    return 0


def _terminate(signum, frame):  # SIGTERM (kill, SLURM, timeout) stops like Ctrl-C
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    args = _parser().parse_args(argv)
    handler = {"run": _run, "sweep": _run, "report": _report, "tables": _tables, "list": _list, "config": _config}[
        args.command
    ]
    # SIGTERM stops like Ctrl-C for as long as the command runs, whoever calls main(); the
    # caller's handler is put back after it (signals can be set in the main thread only)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return handler(args)
    except UserError as e:
        print(f"advimb: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nadvimb: interrupted; finished work is saved - rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)

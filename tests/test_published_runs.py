"""Every run published with ``docs/reproduction/publish.py`` (a ``provenance.json`` beside its
artifacts): it holds no weights, each file is what its provenance and its jobs' markers
recorded, the current advimb recognises every finished job, rebuilds the committed tables
exactly and builds the committed report. (``paper-h200``, published before that script, has
its own tests: test_reproduction.py.)"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "docs" / "reproduction"
PUBLISHED = sorted(p.parent.name for p in HERE.glob("*/provenance.json"))
IMAGE_ARRAYS = {"example_clean", "example_adversarial"}
#: whether each published run is in the paper's setting (the report sets the paper's numbers
#: beside it) or not (it says why not): decided here for every folder, so a new one must be too
IN_PAPER_SETTING = {"paper-h200": True, "cpu-balval-cat": True, "cpu-faithful-cat": True, "longtail-cpu": False}


def test_the_reproduction_page_lists_every_published_folder():
    """The page's table of folders and the folders on disk are the same set (so a folder
    that the glob below would not find cannot go untested)."""
    listed = set(re.findall(r"^\| \[`([\w.-]+)/`\]", (HERE / "README.md").read_text(), re.MULTILINE))
    on_disk = {p.parent.name for p in HERE.glob("*/manifest.json")}
    assert listed == on_disk
    assert set(PUBLISHED) == on_disk - {"paper-h200"}
    assert set(IN_PAPER_SETTING) == on_disk


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_published_folder_is_its_provenance(name):
    from conftest import verified_marker_files

    from advimb.artifacts import file_record

    run = HERE / name
    files = [p for p in run.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 10_000_000
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".tmp")] and not (run / "run.lock").exists()
    prov = json.loads((run / "provenance.json").read_text())
    kept = {rel: rec for rel, rec in prov["files"].items() if not rec["published"].startswith("dropped")}
    here = {p.relative_to(run).as_posix() for p in files} - {"provenance.json"}
    assert set(kept) == {r for r in here if r.split("/")[0] not in ("tables", "report")}
    for rel, rec in kept.items():
        if rec["published"] == "as it was":
            assert file_record(run / rel) == {k: rec[k] for k in file_record(run / rel)}, rel
        elif rec["published"].startswith("record rebuilt"):  # a scenario record rebuilt by today's code
            assert rel.startswith("scenarios/") and rel.endswith(".json"), rel
            assert file_record(run / rel) == {k: rec["rebuilt"][k] for k in file_record(run / rel)}, rel
        else:  # an attack npz (the grid's, an experiment's) less its example images
            assert rel.endswith(".npz") and "removed (dataset images)" in rec["published"], rel
            with np.load(run / rel) as a:
                assert not IMAGE_ARRAYS & set(a.files) and "test_indices" in a.files, rel
    assert verified_marker_files(run) >= 2 * len(list(run.glob("models/*/meta.json")))


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_current_code_recognises_every_finished_job(name):
    from advimb.config.io import from_dict, load_toml
    from advimb.config.sections import ExperimentConfig
    from advimb.devices import resolve_runtime
    from advimb.study.plan import plan

    run = HERE / name
    cfg = from_dict(ExperimentConfig, load_toml(run / "config.toml"))
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, device="cpu", stack="off"),
        eval=dataclasses.replace(cfg.eval, group_attacks="off"),
    )
    ds = json.loads((run / "manifest.json").read_text())["dataset"]

    class Data:
        classes, fingerprint = tuple(ds["classes"]), ds["fingerprint"]
        num_classes, image_shape = len(ds["classes"]), tuple(ds["image_shape"])

    jobs = [p for j in plan(resolve_runtime(cfg), Data()) for p in j.parts()]
    assert jobs
    for job in jobs:
        assert json.loads(job.marker(run).read_text())["job_key"] == job.key, job.name


@pytest.mark.parametrize("name", PUBLISHED)
def test_tables_and_report_rebuild_to_the_committed_ones(name, tmp_path):
    from advimb.report.build import build_report
    from advimb.results.tables import build_tables

    src = HERE / name
    run = tmp_path / name
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("report", "tables"))
    build_tables(run)
    committed = sorted(p.name for p in (src / "tables").iterdir())
    assert sorted(p.name for p in (run / "tables").iterdir()) == committed
    for f in committed:
        assert (run / "tables" / f).read_bytes() == (src / "tables" / f).read_bytes(), f
    res = build_report(run)
    old = json.loads((src / "report" / "results.json").read_text())
    for key in (
        "table1",
        "claims",
        "clean_target_accuracy",
        "relative_difference",
        "flip_rates",
        "pair",
        "paper_comparison",
        "balanced_clean_accuracy",
        "figures_not_drawn",
    ):
        assert old.get(key) == json.loads(json.dumps(res.get(key))), key
    comparison = res["paper_comparison"]
    assert comparison["shown"] == IN_PAPER_SETTING[name], comparison["reasons"]
    assert bool(comparison["reasons"]) != comparison["shown"], comparison


def test_a_run_beside_itself_differs_by_nothing_where_paired():
    """account.py's comparison of a later run with the published one: beside itself, every
    paired difference (the same test images) is exactly 0 with a zero-width interval, and the
    unpaired one (the balanced model's whole test set) has a real interval around 0."""
    import sys

    sys.path.insert(0, str(HERE))
    import account

    text = account.beside(HERE / "paper-h200")
    rows = [r for r in text.splitlines() if r.startswith("| ") and "quantity" not in r]
    assert len(rows) == 1 + 10 * 8
    paired = [r for r in rows if not r.startswith("| balanced model")]
    assert all("| +0.0 [+0.0, +0.0] |" in r for r in paired)
    (whole,) = [r for r in rows if r.startswith("| balanced model")]
    assert "| +0.0 [" in whole and "| +0.0 [+0.0, +0.0] |" not in whole

"""The published paper-scale run (docs/reproduction/paper-h200), made on one H200 by an earlier
version of advimb (commit 585f2a0): its artifacts are the run's own bytes, the current
advimb reads the folder, recognises every finished job, rebuilds the committed tables
exactly, builds the report beside the paper, and the READMEs' numbers are the artifacts'."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "docs" / "reproduction" / "paper-h200"


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "paper-h200"
    shutil.copytree(RUN, out, ignore=shutil.ignore_patterns("report"))
    return out


def test_the_published_folder_is_small_and_holds_no_weights():
    files = [p for p in RUN.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 10_000_000
    assert not [p for p in files if p.suffix in (".pt", ".pth")]


def test_every_committed_artifact_is_the_archives(reproduction_archive):
    """Every committed file but the rebuilt tables and report is the archive's, byte for byte,
    except the attack npz, whose arrays are the archive's less the example images (the dataset's
    images are not redistributed here); and each job's marker still verifies the files it
    recorded that are unchanged (clean predictions, training histories)."""
    import io
    import tarfile

    import numpy as np

    committed = {
        str(p.relative_to(RUN))
        for p in RUN.rglob("*")
        if p.is_file() and p.relative_to(RUN).parts[0] not in ("tables", "report")
    }
    assert len(committed) == 167
    seen = set()
    with tarfile.open(reproduction_archive) as tar:
        for member in tar:
            rel = member.name.split("/", 1)[1] if "/" in member.name else ""
            if rel not in committed:
                continue
            data = tar.extractfile(member).read()
            seen.add(rel)
            if rel.startswith("eval/attack/") and rel.endswith(".npz"):
                with np.load(io.BytesIO(data)) as orig, np.load(RUN / rel) as mine:
                    assert set(orig.files) - set(mine.files) == {"example_clean", "example_adversarial"}
                    assert set(mine.files) <= set(orig.files)
                    for k in mine.files:
                        assert np.array_equal(orig[k], mine[k]), (rel, k)
            else:
                assert (RUN / rel).read_bytes() == data, rel
    assert seen == committed
    from conftest import verified_marker_files

    assert verified_marker_files(RUN) == 21 + 21  # clean predictions, histories


def test_the_current_code_recognises_every_finished_job():
    """An earlier version's run folder stays readable: the job keys the current advimb computes
    from the folder's config.toml and dataset fingerprint are the ones its markers recorded, so
    `advimb run` into a complete copy (with its weights) would skip all 72 jobs."""
    import dataclasses

    from advimb.config.io import from_dict, load_toml
    from advimb.config.sections import ExperimentConfig
    from advimb.devices import resolve_runtime
    from advimb.study.plan import plan

    cfg = from_dict(ExperimentConfig, load_toml(RUN / "config.toml"))
    # where it ran is not part of any key: plan as on this machine, one job per model
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, device="cpu", stack="off"),
        eval=dataclasses.replace(cfg.eval, group_attacks="off"),
    )
    ds = json.loads((RUN / "manifest.json").read_text())["dataset"]

    class Data:  # what planning needs of the dataset: its classes and fingerprint
        classes, fingerprint = tuple(ds["classes"]), ds["fingerprint"]
        num_classes, image_shape = len(ds["classes"]), tuple(ds["image_shape"])

    jobs = [p for j in plan(resolve_runtime(cfg), Data()) for p in j.parts()]
    assert len(jobs) == 72
    for job in jobs:
        assert json.loads(job.marker(RUN).read_text())["job_key"] == job.key, job.name


def test_tables_rebuild_to_the_committed_ones(tmp_path):
    from advimb.results.tables import build_tables

    run = _copy(tmp_path)
    shutil.rmtree(run / "tables")
    build_tables(run)
    committed = sorted(p.name for p in (RUN / "tables").iterdir())
    assert sorted(p.name for p in (run / "tables").iterdir()) == committed
    for name in committed:
        assert (run / "tables" / name).read_bytes() == (RUN / "tables" / name).read_bytes(), name


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from advimb.report.build import build_report, format_report_summary

    run = _copy(tmp_path_factory.mktemp("published"))
    res = build_report(run)
    return run, res, format_report_summary(res)


def test_the_report_sets_the_paper_beside_this_run(report):
    run, res, term = report
    assert res["paper_comparison"] == {**res["paper_comparison"], "shown": True, "reasons": []}
    t1 = res["table1"]
    assert t1["cells_within_10_points"] == [28, 50]
    assert t1["average"]["paper"]["different_model_under"] == 53.8
    assert t1["average"]["measured"]["different_model_under"] == pytest.approx(28.97, abs=0.01)
    shown = {c["id"]: c["shown_as"] for c in res["claims"]["claims"]}
    assert shown == {
        "C1": "direction reproduced",
        "C2": "direction reproduced",
        "C3": "direction reproduced",
        "C4a": "direction reproduced",
        "C4b": "inconclusive",
    }
    c1 = res["claims"]["claims"][0]
    assert {x["quantity"]: x["inside"] for x in c1["magnitude"]} == {
        "same_model_balanced_accuracy_percent": False,
        "same_model_under_accuracy_percent": False,
        "same_model_over_accuracy_percent": False,
    }
    assert res["balanced_clean_accuracy"]["value"] == 73.1
    assert "(this run / paper)" in term and "28 of 50 cells within 10 points" in term
    html = (run / "report" / "index.html").read_text()
    for words in ("Notes on the paper", "25.8%", "14.2%", "magnitude: this run vs the paper", "28 of 50 cells"):
        assert words in html


def test_the_committed_report_is_the_current_one(report):
    """The committed results.json is what the current advimb builds from the committed
    artifacts (but for when and where it was built)."""
    _, res, _ = report
    committed = json.loads((RUN / "report" / "results.json").read_text())
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
        assert committed[key] == json.loads(json.dumps(res[key])), key
    assert [f["id"] for f in committed["figures"]] == [f["id"] for f in res["figures"]]
    for f in committed["figures"]:
        for path in f["files"].values():
            assert (RUN / "report" / path).is_file()
    # no dataset image is published: Fig. 3 is not drawn from this copy, and says why
    assert [f["id"] for f in committed["figures_not_drawn"]] == ["fig3"]
    assert not list((RUN / "report" / "figures").glob("fig3*"))


def test_the_readmes_numbers_are_the_artifacts():
    r = subprocess.run(
        [sys.executable, str(REPO / "docs" / "reproduction" / "account.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    main = (REPO / "README.md").read_text()
    assert "<!-- account:headline paper-h200 -->" in main and "docs/reproduction/README.md" in main


@pytest.mark.browser
def test_the_published_page_renders(chromium, tmp_path):
    from conftest import render_in_chromium

    problems, broken, n_images, width = render_in_chromium(
        chromium, RUN / "report" / "index.html", tmp_path / "page.png"
    )
    assert not problems and not broken and n_images == 6 and width <= 1366


def test_a_study_of_some_classes_is_set_beside_the_paper_for_the_cells_it_measures(tmp_path, capsys):
    """The published folder read as a study of cat and dog only (its config's imbalance.classes):
    still the paper's setting, so its ten cells are set beside the paper's, the averages are
    the paper's over the same two classes, the report names the eight classes it does not
    study, and no note that needs all ten classes (the paper's stated 14.17%) is made."""
    from advimb.report.build import build_report, format_report_summary

    run = _copy(tmp_path)
    cfg = (run / "config.toml").read_text()
    assert cfg.count("\nclasses = []\n") == 1
    (run / "config.toml").write_text(cfg.replace("\nclasses = []\n", '\nclasses = ["cat", "dog"]\n'))
    res = build_report(run)
    t1 = res["table1"]
    assert res["paper_comparison"]["shown"] and [r["class"] for r in t1["rows"]] == ["cat", "dog"]
    assert t1["cells_within_10_points"][1] == 10
    assert t1["classes_not_studied"] == ["airplane", "automobile", "bird", "deer", "frog", "horse", "ship", "truck"]
    assert t1["average"]["paper"]["different_model_under"] == (21 + 47) / 2
    c3 = next(c for c in res["claims"]["claims"] if c["id"] == "C3")
    assert not any("14.17" in n for n in c3["notes"])
    term = format_report_summary(res)
    assert "not studied by this run: the rows of airplane, automobile" in term and "(40 cells of Table 1)" in term
    html = (run / "report" / "index.html").read_text()
    assert "Not studied by this run: the rows of" in html and "(40 cells)" in html

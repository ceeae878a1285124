"""A small study end to end on the real CIFAR-10 copy (../shared/data or $ADVIMB_TEST_DATA).

Fails (does not skip) when the data is missing, unless pytest runs with --no-real-data."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from advimb.config.io import parse_assignment
from advimb.config.presets import resolve_config
from advimb.data.dataset import CIFAR10_CLASSES
from advimb.data.sources import load_dataset
from advimb.study.run import run_study

pytestmark = pytest.mark.realdata


def test_small_study_on_real_cifar10(real_data_dir, tmp_path):
    sets = [
        "imbalance.classes=['cat', 'ship']",
        "imbalance.majority_count=100",
        "imbalance.minority_count=20",
        "model.widths=[8, 16, 16]",
        "train.max_epochs=2",
        "eval.test_per_class=50",
    ]
    cfg = resolve_config(
        "quick", overrides=[{"data": {"dir": str(real_data_dir)}}] + [parse_assignment(s) for s in sets], env={}
    )
    res = run_study(cfg, tmp_path / "run", progress=False)
    run = Path(res["run_dir"])
    ds = load_dataset(cfg.data)
    assert ds.classes == CIFAR10_CLASSES and len(ds.y_train) == 50_000 and len(ds.y_test) == 10_000
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    # 5 models (balanced, under/over cat and ship), 2 x 5 combinations
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "balanced",
        "over-cat",
        "over-ship",
        "under-cat",
        "under-ship",
    ]
    counts = json.loads((run / "scenarios" / "under-cat.json").read_text())["counts"]
    assert counts["cat"] == 20 and counts["dog"] == 100 and sum(counts.values()) == 920
    table = (run / "tables" / "table1.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == ["cat", "ship", "average"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["fingerprint"] == ds.fingerprint
    clean = json.loads((run / "eval" / "clean" / "balanced.json").read_text())
    assert sum(clean["n_per_class"]) == 10_000  # clean accuracy on the full test set
    assert clean["accuracy"] > 0.15  # learnt something real (chance: 0.10)


@pytest.mark.slow
def test_the_quick_preset_gives_every_claim_a_verdict_off_the_floor(real_data_dir, tmp_path, capsys):
    """The README's main command, as a user runs it (minutes: the slowest test). Its models are
    far enough from the floor that every claim gets a verdict, on the terminal and on the
    page's "At a glance": the balanced model at least 55% clean, the under-sampled models on
    their own class at least 15% on average and at least 5% (the floor) for the class whose
    under-sampled model C4 reads. Each departure from the paper is a reason on the terminal, and the
    paper's numbers are not set beside this reduced setting."""
    from advimb.cli import main
    from advimb.results.claims import FLOOR, FLOOR_PERCENT

    out = tmp_path / "quick"
    assert main(["run", "--preset", "quick", "--data-dir", str(real_data_dir), "--out", str(out), "--no-progress"]) == 0
    term = capsys.readouterr().out
    res = json.loads((out / "report" / "results.json").read_text())
    assert res["balanced_clean_accuracy"]["value"] >= 55, res["balanced_clean_accuracy"]
    under = res["claims"]["clean_target_accuracy_percent"]["under"]["value"]
    assert under >= 15, f"the under-sampled models predict their class on only {under}% of clean images"
    a, b = res["claims"]["pair"]  # C4 reads the under:a model: a studied class and what it is taken for
    assert {a, b} == {"automobile", "truck"}, (a, b)
    own = json.loads((out / "eval" / "clean" / f"under-{a}.json").read_text())["per_class_accuracy"]
    own_a = own[CIFAR10_CLASSES.index(a)] * 100
    assert own_a >= FLOOR_PERCENT, f"under:{a} predicts {a} for {own_a:.1f}% of the clean {a} images"
    shown = {c["id"]: c["shown_as"] for c in res["claims"]["claims"]}
    assert set(shown) == {"C1", "C2", "C3", "C4a", "C4b"} and FLOOR not in shown.values(), shown
    assert all(c["verdict"] in ("reproduced", "not reproduced", "inconclusive") for c in res["claims"]["claims"])
    assert "FLOOR EFFECT" not in term and "Floor effect" not in term
    for cid, s in shown.items():
        assert re.search(rf"^  {cid}\s+{s.upper()}", term, re.MULTILINE), (cid, s)
    assert res["paper_comparison"]["shown"] is False and res["table1"]["average"]["paper"] == {}
    for reason in res["paper_comparison"]["reasons"]:
        assert reason in term
    assert "the training counts are 2,500 / 500" in term and "augmented with 'hflip'" in term
    assert "not studied by this run: the rows of airplane, bird, cat, deer, dog, frog, horse, ship (40 cells" in term
    html = (out / "report" / "index.html").read_text()
    glance = html.split("<h2>At a glance</h2>")[1].split("<h2>")[0]
    for cid, s in shown.items():
        row = re.split(rf"href=[\"']#{cid}[\"']", glance)[1].split("</tr>")[0]
        assert f">{s}<" in row and "floor effect" not in row, (cid, row)

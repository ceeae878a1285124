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
    sets = ["imbalance.classes=['cat', 'ship']", "imbalance.majority_count=100", "imbalance.minority_count=20",
            "model.widths=[8, 16, 16]", "train.max_epochs=2", "eval.test_per_class=50"]
    cfg = resolve_config("quick", overrides=[{"data": {"dir": str(real_data_dir)}}]
                         + [parse_assignment(s) for s in sets], env={})
    res = run_study(cfg, tmp_path / "run", progress=False)
    run = Path(res["run_dir"])
    ds = load_dataset(cfg.data)
    assert ds.classes == CIFAR10_CLASSES and len(ds.y_train) == 50_000 and len(ds.y_test) == 10_000
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    # 5 models (balanced, under/over cat and ship), 2 x 5 combinations
    assert sorted(p.name for p in (run / "models").iterdir()) == ["balanced", "over-cat", "over-ship", "under-cat", "under-ship"]
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
def test_the_quick_preset_shows_its_floor_effect_at_a_glance(real_data_dir, tmp_path, capsys):
    """The README's main command, as a user runs it: the quick preset's under-sampled models
    hardly ever predict their class on clean images (0.7% when measured), so the terminal and
    the page's "At a glance" show "floor effect", not a green "direction reproduced"; and the
    paper's numbers are not set beside this reduced setting (minutes: the slowest test)."""
    from advimb.cli import main

    out = tmp_path / "quick"
    assert main(["run", "--preset", "quick", "--data-dir", str(real_data_dir), "--out", str(out),
                 "--no-progress"]) == 0
    term = capsys.readouterr().out
    res = json.loads((out / "report" / "results.json").read_text())
    under = res["claims"]["clean_target_accuracy_percent"]["under"]["value"]
    assert under < 5, f"the under-sampled models predict their class on {under}% of clean images"
    shown = {c["id"]: c["shown_as"] for c in res["claims"]["claims"]}
    assert shown["C1"] == shown["C3"] == "floor effect"
    assert "C1   FLOOR EFFECT" in term and "Floor effect: the under-sampled models predict their own class" in term
    assert "no comparison with the paper: the training counts are 500 / 100" in term
    html = (out / "report" / "index.html").read_text()
    glance = html.split("<h2>At a glance</h2>")[1].split("<h2>")[0]
    c1_row = re.split(r"href=[\"']#C1[\"']", glance)[1].split("</tr>")[0]
    assert 'v-floor-effect">floor effect' in c1_row and "direction reproduced" not in c1_row
    assert "Floor effect: the under-sampled models predict their own class for only" in c1_row
    assert res["paper_comparison"]["shown"] is False and res["table1"]["average"]["paper"] == {}

"""A small study end to end on the real CIFAR-10 copy (../shared/data or $ADVIMB_TEST_DATA).

Fails (does not skip) when the data is missing, unless pytest runs with --no-real-data."""

import json
from pathlib import Path

import numpy as np
import pytest

from advimb.config import parse_assignment
from advimb.data import CIFAR10_CLASSES, load_dataset
from advimb.presets import resolve_config
from advimb.study import run_study

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


def test_a_floor_effect_is_shown_as_such_at_a_glance(real_data_dir, tmp_path):
    """Like the quick preset, a reduced study on real CIFAR-10 whose under-sampled models
    (20 images of their class against 100 of the others, 2 epochs) hardly ever predict their
    class: the page's "At a glance" shows "floor effect", not a green "direction reproduced",
    and the paper's numbers are not set beside this reduced setting."""
    from advimb.report import build_report

    sets = ["imbalance.classes=['cat', 'dog', 'ship']", "imbalance.majority_count=100",
            "imbalance.minority_count=20", "model.widths=[8, 16, 16]", "train.max_epochs=2",
            "eval.test_per_class=100"]
    cfg = resolve_config("quick", overrides=[{"data": {"dir": str(real_data_dir)}}]
                         + [parse_assignment(s) for s in sets], env={})
    run = Path(run_study(cfg, tmp_path / "run", progress=False)["run_dir"])
    res = build_report(run, n_boot=200)
    under = res["claims"]["clean_target_accuracy_percent"]["under"]["value"]
    assert under < 5, f"the under-sampled models predict their class on {under}% of clean images"
    c1 = res["claims"]["claims"][0]
    assert c1["shown_as"] == "floor effect" and c1["floor_effect"].startswith("Floor effect")
    html = (run / "report" / "index.html").read_text()
    glance = html.split("<h2>At a glance</h2>")[1].split("<h2>")[0]
    assert glance.count('class="verdict v-floor-effect"') >= 3 and "v-direction-reproduced" not in glance.split(
        "C2")[0]
    assert "Floor effect: the under-sampled models predict their own class for only" in glance
    assert res["paper_comparison"]["shown"] is False

"""The one reader of a run folder and the one place each number is derived: a scenario's kind
is an enum that still finds its string's entries, and the numbers derived from the stored
predictions are the numbers earlier versions stored beside them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from advimb.data.imbalance import BALANCED, Scenario, parse_scenario
from advimb.errors import UserError
from advimb.layout import GRID, slug
from advimb.results.metrics import GridMetrics, Metrics, combination_summary
from advimb.results.reader import Combination, Outcomes, load_grid
from advimb.results.stats import Bootstrap
from advimb.scenario import Kind

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "reproduction" / "paper-h200"


def test_a_scenario_kind_is_an_enum_that_finds_its_string():
    s = Scenario("under", 3)
    assert s.kind is Kind.UNDER and s == Scenario(Kind.UNDER, 3)
    assert hash(Kind.UNDER) == hash("under") and {"under": 1}[s.kind] == 1 and {Kind.OVER: 2}["over"] == 2
    assert s.name(tuple("abcdefghij")) == "under:d" and parse_scenario("under:d", tuple("abcdefghij")) == s
    assert repr(Scenario("balanced")) == repr(BALANCED) and "kind='balanced'" in repr(BALANCED)
    with pytest.raises(ValueError):
        Scenario("sideways")


def test_combination_summary_follows_its_definitions():
    s = Scenario("under", 1)
    clean, adv = np.array([1, 1, 1, 0, 2]), np.array([1, 0, 2, 0, 2])
    me = np.array([0.01, np.inf, 0.03, 0.5, 0.5])
    out = combination_summary(Combination(s, s, "b", clean, adv, "x.npz", me, 0.04), label=1)
    assert out["n"] == 5 and out["n_clean_correct"] == 3
    assert out["clean_accuracy"] == 3 / 5 and out["adversarial_accuracy"] == 1 / 5
    assert out["success_rate"] == 2 / 3  # of the 3 correct before, 2 are wrong after
    # minimal eps over the images correct before (0.01, inf, 0.03): 2 of 3 flippable
    assert out["min_eps_flippable_share"] == 2 / 3 and out["min_eps_mean"] == pytest.approx(0.02)
    none_correct = combination_summary(Combination(s, s, "b", np.zeros(3, int), np.zeros(3, int), "x.npz"), 1)
    assert np.isnan(none_correct["success_rate"]) and "min_eps_mean" not in none_correct


def test_numbers_derived_from_predictions_are_the_ones_earlier_versions_stored():
    """The published run was made when the attack job also stored per-combination numbers;
    the reader derives every one of them again from the predictions, and they agree."""
    o = Outcomes.read(PUBLISHED)
    checked = 0
    for f in sorted((PUBLISHED / GRID).glob("*.json")):
        for c in json.loads(f.read_text())["combinations"]:
            ev, grad = parse_scenario(c["evaluated_model"], o.classes), parse_scenario(c["gradient_model"], o.classes)
            (comb,) = o.combinations(ev, grad, c["class"]) or []
            derived = combination_summary(comb, c["class_index"])
            for k in ("n", "clean_accuracy", "adversarial_accuracy", "n_clean_correct"):
                assert derived[k] == c[k], (f.name, k)
            assert np.isclose(derived["success_rate"], c["success_rate"], equal_nan=True)
            assert np.bincount(comb.adv, minlength=10).tolist() == c["adversarial_histogram"]
            checked += 1
    assert checked == 10 * 5  # every Table 1 cell of the published run


def test_metrics_by_scenario_are_the_grid_metrics_and_the_raw_predictions():
    o = Outcomes.read(PUBLISHED)
    grid = load_grid(PUBLISHED, o)
    boot = Bootstrap(n_boot=100)
    by_scenario, by_cell = Metrics(o, boot), GridMetrics(grid, boot)
    cat = o.classes.index("cat")
    under = Scenario("under", cat)
    with np.load(PUBLISHED / GRID / "balanced__cat.npz") as z:  # transfer: the balanced model's gradient
        raw = 100 * float((z[f"pred_adv__{slug('under:cat')}"] == cat).mean())
    assert by_scenario.accuracy(under, BALANCED, "cat")[0] == pytest.approx(raw)
    assert by_cell.accuracy("cat", "under", "different_model")[0] == pytest.approx(raw)
    assert grid.scenarios()[:2] == [BALANCED, Scenario("under", 0)] and len(grid.scenarios()) == 21
    # a combination nobody stored is undefined, not an error and not zero
    assert np.isnan(by_scenario.accuracy(Scenario("over", cat, defence="pgd_at"), BALANCED, "cat")[0])
    assert "eval/attack/balanced__cat.npz" in by_scenario.used


def test_an_incomplete_grid_is_refused_with_what_is_missing(tmp_path):
    run = tmp_path / "run"
    (run / GRID).mkdir(parents=True)
    for f in PUBLISHED.glob("*.*"):
        (run / f.name).write_bytes(f.read_bytes())
    for f in (PUBLISHED / GRID).glob("balanced__*"):
        if "__cat" not in f.name:
            (run / GRID / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError, match=r"is incomplete: .* \(first: airplane images attacked with under:airplane"):
        load_grid(run)

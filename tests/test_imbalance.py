import numpy as np
import pytest

from advimb.config.sections import ImbalanceConfig
from advimb.data.imbalance import (
    Scenario,
    class_counts,
    paper_scenarios,
    parse_scenario,
    select_indices,
    stratified_split,
)
from advimb.errors import UserError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LABELS = np.repeat(np.arange(10), 50)[np.random.default_rng(0).permutation(500)]
CFG = ImbalanceConfig(majority_count=40, minority_count=8)


def test_paper_grid_has_21_scenarios():
    s = paper_scenarios(ImbalanceConfig(), CLASSES)
    assert len(s) == 21 and s[0] == Scenario("balanced")
    assert [x.name(CLASSES) for x in s[1:3]] == ["under:airplane", "under:automobile"]


@pytest.mark.parametrize(
    "text,kind,target",
    [("balanced", "balanced", None), ("under:cat", "under", 3), ("over:3", "over", 3), ("under:0", "under", 0)],
)
def test_parse_scenario(text, kind, target):
    assert parse_scenario(text, CLASSES) == Scenario(kind, target)


@pytest.mark.parametrize(
    "text,msg",
    [
        ("under:zebra", "unknown class 'zebra'"),
        ("over:10", "out of range"),
        ("sideways:cat", "unknown scenario"),
        ("under", "needs a class"),
        ("balanced:cat", "takes no class"),
    ],
)
def test_parse_scenario_errors(text, msg):
    with pytest.raises(UserError, match=msg):
        parse_scenario(text, CLASSES)


@pytest.mark.parametrize("selection", ["random", "first"])
@pytest.mark.parametrize("scenario", [Scenario("balanced"), Scenario("under", 3), Scenario("over", 5)])
def test_exact_class_counts(selection, scenario):
    counts = class_counts(scenario, 10, CFG)
    idx = select_indices(LABELS, counts, selection=selection, seed=1, classes=CLASSES)
    got = np.bincount(LABELS[idx], minlength=10)
    assert got.tolist() == counts
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    expected = {
        "balanced": [40] * 10,
        "under": [40, 40, 40, 8, 40, 40, 40, 40, 40, 40],
        "over": [8, 8, 8, 8, 8, 40, 8, 8, 8, 8],
    }[scenario.kind]
    assert got.tolist() == expected


def test_random_selection_is_seeded_and_nested():
    a = select_indices(LABELS, [40] * 10, selection="random", seed=3, classes=CLASSES)
    b = select_indices(LABELS, [40] * 10, selection="random", seed=3, classes=CLASSES)
    c = select_indices(LABELS, [40] * 10, selection="random", seed=4, classes=CLASSES)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    small = select_indices(
        LABELS, class_counts(Scenario("under", 3), 10, CFG), selection="random", seed=3, classes=CLASSES
    )
    assert set(small) <= set(a)  # the 8 cats of under:cat are among the 40 of balanced


def test_first_selection_drops_the_first_images_like_the_authors():
    idx = select_indices(LABELS, [8] * 10, selection="first", seed=0, classes=CLASSES)
    cats = np.flatnonzero(LABELS == 3)
    assert np.array_equal(idx[LABELS[idx] == 3], cats[-8:])


def test_too_few_images_is_a_user_error():
    with pytest.raises(UserError, match="class 'airplane' has 50 training images but scenario under:cat asks for 60"):
        select_indices(LABELS, [60] * 10, selection="random", seed=0, classes=CLASSES, scenario_name="under:cat")


def test_stratified_split():
    idx = select_indices(
        LABELS, class_counts(Scenario("under", 3), 10, CFG), selection="random", seed=0, classes=CLASSES
    )
    tr, val = stratified_split(idx, LABELS, 0.25, seed=0)
    assert not set(tr) & set(val) and sorted([*tr, *val]) == sorted(idx)
    assert np.bincount(LABELS[val], minlength=10).tolist() == [10, 10, 10, 2, 10, 10, 10, 10, 10, 10]
    _, val2 = stratified_split(idx, LABELS, 0.25, seed=0)
    assert np.array_equal(val, val2)


def test_a_scenario_that_leaves_a_class_empty_is_refused():
    from advimb.data.imbalance import select_indices
    from advimb.errors import UserError

    labels = np.repeat(np.arange(3), 5)
    with pytest.raises(UserError, match="leaves class 'b' with no training images"):
        select_indices(labels, [5, 0, 5], selection="random", seed=0, classes=("a", "b", "c"), scenario_name="x")


def test_balanced_subset_keeps_the_smallest_classes_count_of_every_class():
    from advimb.data.imbalance import balanced_subset, validation_is_split

    labels = np.repeat(np.arange(3), [10, 4, 7])
    val = np.arange(len(labels))
    kept = balanced_subset(val, labels, seed=1)
    assert np.bincount(labels[kept]).tolist() == [4, 4, 4] and set(kept) <= set(val)
    assert np.array_equal(kept, balanced_subset(val, labels, seed=1))  # seeded
    assert not np.array_equal(kept, balanced_subset(val, labels, seed=2))
    even = np.array([0, 1, 2, 10, 11, 12])
    assert np.array_equal(balanced_subset(even, labels, seed=1), even)  # already balanced: itself
    assert validation_is_split([5000] * 10, "balanced", 0.1)
    assert not validation_is_split([1000] + [5000] * 9, "balanced", 0.1)
    assert validation_is_split([1000] + [5000] * 9, "split", 0.1)

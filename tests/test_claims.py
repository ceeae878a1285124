"""Statistics and verdict logic on constructed results whose answers are known."""

import json

import numpy as np
import pytest

from advimb.claims import Outcomes, check_claims, default_pair
from advimb.report import reference
from advimb.stats import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Bootstrap,
    Estimate,
    verdict,
)

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ----------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("intervals,expected", [
    ([(5, 1, 9)], REPRODUCED),
    ([(5, 1, 9), (3, 0.5, 6)], REPRODUCED),
    ([(5, 1, 9), (1, -2, 4)], INCONCLUSIVE),      # one interval contains 0
    ([(0, 0, 0)], INCONCLUSIVE),                   # a degenerate tie: no evidence either way
    ([(5, 1, 9), (-4, -7, -1)], NOT_REPRODUCED),  # one comparison goes the other way
    ([(-4, -7, -1), (1, -2, 4)], NOT_REPRODUCED),
    ([(float("nan"),) * 3], INCONCLUSIVE),         # could not be measured
    ([], INCONCLUSIVE),
])
def test_verdict(intervals, expected):
    assert verdict([Estimate(*i) for i in intervals]) == expected


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_of_a_proportion_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    x = (rng.random(1000) < 0.3).astype(float)
    b = Bootstrap(n_boot=2000, seed=0)
    est = b.interval(*b.mean([x], key="c"))
    half = 1.96 * np.sqrt(x.mean() * (1 - x.mean()) / len(x))
    assert est.lo < x.mean() < est.hi
    assert abs((est.hi - est.lo) / 2 - half) < 0.2 * half


def test_bootstrap_is_paired_and_deterministic():
    rng = np.random.default_rng(2)
    x = rng.random(500)
    b = Bootstrap(n_boot=500, seed=3)
    _, r1 = b.mean([x], key="cat")
    _, r2 = b.mean([x + 1.0], key="cat")  # same images -> same resample: the difference is exactly 1
    assert np.allclose(r2 - r1, 1.0)
    _, r3 = Bootstrap(n_boot=500, seed=3).mean([x], key="cat")
    assert np.array_equal(r1, r3)
    _, r4 = b.mean([x], key="dog")  # another class: an independent draw
    assert not np.array_equal(r1, r4)


def test_seeds_widen_the_interval():
    """Two seeds that disagree: the two-level bootstrap covers the spread between them."""
    rng = np.random.default_rng(4)
    a = (rng.random(1000) < 0.2).astype(float)
    c = (rng.random(1000) < 0.4).astype(float)
    b = Bootstrap(n_boot=2000, seed=0)
    one = b.interval(*b.mean([a], key="x"))
    two = b.interval(*b.mean([a, c], key="x"))
    assert two.hi - two.lo > 2 * (one.hi - one.lo)
    assert two.lo < 0.3 < two.hi


# ----------------------------------------------------------------------------- claims


def _outcomes(acc, n=400, cat_to_dog=0.45, clean=None, seed=0):
    """Constructed per-image predictions with the given accuracy under attack per
    (model kind, gradient); wrong predictions of a cat go to dog with ``cat_to_dog``."""
    rng = np.random.default_rng(seed)
    clean = clean or {"balanced": 0.8, "under": 0.5, "over": 0.95}
    oc = Outcomes(CIFAR)
    for t, c in enumerate(CIFAR):
        for (kind, grad), p in acc.items():
            adv = np.where(rng.random(n) < p, t, (t + 1 + rng.integers(0, 9, n)) % 10)
            if c == "cat" and kind == "under":  # a fixed share of the perturbed cats becomes dog
                k = int(cat_to_dog * n)
                adv[:k] = CIFAR.index("dog")
            cl = np.where(rng.random(n) < clean[kind], t, (t + 1) % 10)
            oc.cells[(c, kind, grad)] = [{"clean": cl, "adv": adv, "source": f"eval/attack/{kind}__{c}.npz"}]
    return oc


PAPERLIKE = {("balanced", "same_model"): 0.26, ("under", "same_model"): 0.14, ("over", "same_model"): 0.44,
             ("under", "different_model"): 0.54, ("over", "different_model"): 0.83}


def _verdicts(res):
    return {c["id"]: c["verdict"] for c in res["claims"]}


def test_claims_reproduced_on_paperlike_results():
    res = check_claims(_outcomes(PAPERLIKE), reference(), boot=Bootstrap(n_boot=500))
    assert _verdicts(res) == {"C1": REPRODUCED, "C2": REPRODUCED, "C3": REPRODUCED, "C4": REPRODUCED}
    c1 = res["claims"][0]
    assert c1["measured"]["same_model_under_accuracy_percent"]["lo"] < 14 < \
        c1["measured"]["same_model_under_accuracy_percent"]["hi"] + 1
    assert c1["paper"]["same_model_under_accuracy_percent"] == pytest.approx(14.17)
    assert c1["paper"]["same_model_balanced_accuracy_percent"] == pytest.approx(25.8)
    c3 = res["claims"][2]
    assert any("25.8%" in n and "14.17%" in n for n in c3["notes"])  # the paper's inconsistency
    c4 = res["claims"][3]
    assert c4["pair"] == ["cat", "dog"]
    assert 40 < c4["measured"]["under_cat_perturbed_cat_predicted_dog_percent"]["value"] < 50
    assert c4["paper_value_in_interval"]["under_cat_perturbed_cat_predicted_dog_percent"] is False
    json.dumps(res)  # JSON-ready


def test_claims_not_reproduced_when_the_order_is_reversed():
    rev = {**PAPERLIKE, ("under", "same_model"): 0.60, ("under", "different_model"): 0.30}
    v = _verdicts(check_claims(_outcomes(rev, cat_to_dog=0.0), reference(), boot=Bootstrap(n_boot=500)))
    assert v["C1"] == NOT_REPRODUCED   # under-sampled models are the *least* vulnerable here
    assert v["C3"] == NOT_REPRODUCED   # transfer is stronger than same-model for them
    assert v["C4"] == NOT_REPRODUCED   # no perturbed cat goes to dog


def test_claims_inconclusive_when_the_difference_is_within_noise():
    close = {**PAPERLIKE, ("under", "same_model"): 0.25, ("balanced", "same_model"): 0.26}
    res = check_claims(_outcomes(close, n=30, seed=5), reference(), boot=Bootstrap(n_boot=500))
    c1 = res["claims"][0]
    lo, hi = c1["comparisons"][0]["lo"], c1["comparisons"][0]["hi"]
    assert lo < 0 < hi
    assert c1["verdict"] == INCONCLUSIVE


def test_floor_effect_is_noted():
    res = check_claims(_outcomes(PAPERLIKE, clean={"balanced": 0.8, "under": 0.01, "over": 0.95}),
                       reference(), boot=Bootstrap(n_boot=200))
    assert any("Floor effect" in n for n in res["claims"][0]["notes"])


def test_default_pair():
    assert default_pair(CIFAR) == ("cat", "dog")
    cm = np.eye(3) * 10
    cm[2, 0] = 7
    assert default_pair(("a", "b", "c"), cm) == ("c", "a")


def test_reference_table_matches_the_papers_text():
    """The shipped Table 1 reproduces the averages the paper states (53.8% different-model
    under-sampled) and shows that its stated 25.8% is the balanced column's average."""
    ref = reference()
    cols = ref["table1_columns"]
    mean = {c: np.mean([v[i] for v in ref["table1_percent"].values()]) for i, c in enumerate(cols)}
    assert list(ref["table1_percent"]) == list(CIFAR)
    assert mean["different_model_under"] == pytest.approx(ref["text"]["different_model_under_average_percent"])
    assert mean["same_model_balanced"] == pytest.approx(ref["text"]["same_model_under_average_percent_as_stated"])
    assert mean["same_model_under"] == pytest.approx(14.17)


def test_several_seeds_get_a_paired_t_test_per_comparison():
    """Three seeds, each paper-like: every comparison gets a paired t-test over seeds whose
    per-seed values are the one-seed estimates, and the interval is the two-level one."""
    from scipy import stats

    seeds = [_outcomes(PAPERLIKE, n=200, seed=s) for s in range(3)]
    oc = Outcomes(CIFAR, {k: [s.cells[k][0] for s in seeds] for k in seeds[0].cells})
    assert oc.n_seeds == 3 and oc.seed(1).cells[("cat", "under", "same_model")][0] is seeds[1].cells[
        ("cat", "under", "same_model")][0]
    res = check_claims(oc, reference(), boot=Bootstrap(n_boot=300))
    assert res["seeds"] == 3 and "two-level" in res["claims"][0]["interval"]
    comp = res["claims"][0]["comparisons"][0]  # balanced - under
    t = comp["seed_test"]
    singles = [check_claims(s, reference(), boot=Bootstrap(n_boot=100))["claims"][0]["comparisons"][0]["value"]
               for s in seeds]
    assert t["per_seed"] == pytest.approx(singles, abs=0.01) and t["df"] == 2
    ref = stats.ttest_1samp(singles, 0.0)
    assert t["t"] == pytest.approx(ref.statistic, abs=1e-2) and t["p"] == pytest.approx(ref.pvalue, rel=1e-2)
    assert t["p"] < 0.05  # ~12 pp in every seed
    one = check_claims(seeds[0], reference(), boot=Bootstrap(n_boot=100))
    assert "seed_test" not in one["claims"][0]["comparisons"][0]

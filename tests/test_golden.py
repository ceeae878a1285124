"""Golden values: seeds, hashes, selections and job keys pinned to what advimb computes today,
so that a refactor which changes any of them (and with it every run folder's resumability and
every result) fails here first. The published paper-scale run (tests/test_reproduction.py)
pins the keys of a real run folder as well."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from advimb.config.io import parse_assignment
from advimb.config.presets import resolve_config
from advimb.config.seeds import derive_seed, stable_hash
from advimb.data.imbalance import select_indices, stratified_split
from advimb.data.sources import load_dataset
from advimb.devices import resolve_runtime
from advimb.study.plan import plan


def test_derive_seed_golden():
    assert derive_seed(0, "init", "balanced") == 1983369781
    assert derive_seed(7, "replicate", 1) == 169414086
    assert derive_seed(0, "select", 3) == 471821256


def test_stable_hash_golden():
    assert stable_hash({"a": 1, "b": [1, 2.5, "x"]}) == "33b6b831cabb9add"
    assert stable_hash({"kind": "train"}, n=8) == "1c8392ad"


def test_select_indices_and_split_golden():
    labels = np.repeat(np.arange(4), 25)[np.random.default_rng(0).permutation(100)]
    classes = ("a", "b", "c", "d")
    idx = select_indices(labels, [20, 5, 20, 20], selection="random", seed=3, classes=classes)
    assert len(idx) == 65 and idx[:8].tolist() == [0, 2, 3, 4, 6, 7, 8, 10]
    assert hashlib.sha256(idx.tobytes()).hexdigest()[:16] == "0f686ce817d6f92c"
    first = select_indices(labels, [20, 5, 20, 20], selection="first", seed=3, classes=classes)
    assert first[:8].tolist() == [12, 15, 16, 17, 19, 20, 21, 22]
    assert stratified_split(idx, labels, 0.1, 5)[1].tolist() == [7, 10, 41, 72, 74, 76, 93]


@pytest.fixture(scope="module")
def smoke_data():
    cfg = resolve_config("smoke", env={})
    return cfg, load_dataset(cfg.data)


def _keys(cfg, ds) -> dict[tuple[str, str, str], str]:
    jobs = plan(resolve_runtime(cfg), ds)
    return {
        (type(j).__name__, j.name, getattr(j, "subdir", "")): j.key
        for j in [*jobs, *(m for g in jobs if g.parts() != (g,) for m in g.parts())]
    }


def test_the_synthetic_dataset_golden(smoke_data):
    assert smoke_data[1].fingerprint[:16] == "5660e573c4472bde"


@pytest.mark.parametrize("mode", ["off", "on"])
def test_one_job_key_of_each_kind_golden(smoke_data, mode):
    cfg, ds = smoke_data
    cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, stack=mode), eval=dataclasses.replace(cfg.eval, group_attacks=mode)
    )
    keys = _keys(cfg, ds)
    assert keys[("TrainJob", "train balanced", "")] == "3e4d3a3b56c44c07"
    assert keys[("CleanEvalJob", "clean balanced", "")] == "d30c168fcae9cc64"
    if mode == "off":
        assert keys[("AttackJob", "attack class0 with balanced", "eval/attack")] == "ad44309049b9c1f0"
    else:
        # one stack for the study (issue 15): the group's key changed, its members' did not
        assert keys[("TrainGroupJob", "train 21 models stacked", "")] == "2db6ddd88ac5391a"
        assert keys[("AttackGroupJob", "attack 30 jobs (eval/attack)", "")] == "24077c139794cb22"


def test_experiment_and_sweep_job_keys_golden(smoke_data):
    cfg, ds = smoke_data
    sets = [
        "attack.name='pgd'",
        "sweep.epsilons=[0.02]",
        "experiments.defences=['pgd_at']",
        "experiments.defence_classes=['class3']",
        "experiments.long_tail=['exp:10']",
        "experiments.counts=[5]",
        "experiments.count_classes=['class3']",
    ]
    cfg = resolve_config(
        "smoke",
        overrides=[parse_assignment(s) for s in sets] + [{"train": {"stack": "off"}, "eval": {"group_attacks": "off"}}],
        env={},
    )
    keys = _keys(cfg, ds)
    assert keys[("TrainJob", "train under:class3@5", "")] == "8efad70056d204cc"
    assert keys[("TrainJob", "train longtail:exp10", "")] == "dcd99bb8bbfd4ce5"
    assert keys[("TrainJob", "train under:class3+pgd_at", "")] == "c367aa94303f06f0"
    a = "attack class3 with balanced"
    assert keys[("AttackJob", a, "eval/attack")] == "d934770b57c6f9a2"
    assert keys[("AttackJob", a, "sweep/pgd-eps0.02")] == "df28953861f01126"
    assert keys[("AttackJob", a, "experiments/counts")] == "276e53ef836441df"
    assert keys[("AttackJob", a, "experiments/long_tail")] == "b4ba6b33443bdc26"
    assert keys[("AttackJob", a, "experiments/defences")] == "154c075af39f1942"
    assert keys[("AttackJob", "attack class3 with under:class3+pgd_at", "experiments/defences")] == "dc7d3b6d5aa5234c"

"""Every way a preset departs from the paper's protocol is named: in the preset, in
``advimb list``, in the README's preset table, and among the report's reasons why a run is
not in the paper's setting."""

from pathlib import Path

import pytest

from advimb.cli import main
from advimb.config.io import nest, to_dict
from advimb.config.presets import PRESETS, resolve_config
from advimb.data.dataset import CIFAR10_CLASSES
from advimb.results.reference import paper_setting

#: the manifest's summary of the whole CIFAR-10
CIFAR10 = {
    "classes": list(CIFAR10_CLASSES),
    "image_shape": [3, 32, 32],
    "train_per_class": [5000] * 10,
    "test_per_class": [1000] * 10,
}
#: settings that choose how a run executes, not what it computes (or, for ``imbalance.classes``,
#: which of the paper's cells it measures: the report names the classes it does not study)
NOT_SCIENCE = {
    "preset",
    "train.device",
    "train.threads",
    "train.channels_last",
    "train.stack",
    "train.compile",
    "train.precision",
    "imbalance.classes",
    "eval.examples",
}


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_leaves(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


@pytest.mark.parametrize("name", ["paper", "faithful"])
def test_the_protocol_presets_are_in_the_papers_setting(name):
    assert paper_setting(resolve_config(name, env={}), CIFAR10) == []
    assert PRESETS[name].departures == ()


def test_every_departure_of_the_quick_preset_is_a_reason_in_the_report():
    """Each setting in which ``quick`` differs from ``paper``, changed alone in the paper's
    config, makes the run leave the paper's setting with a reason of its own."""
    paper, quick = (_leaves(to_dict(resolve_config(n, env={}))) for n in ("paper", "quick"))
    differs = {k for k in quick if quick[k] != paper[k] and k not in NOT_SCIENCE}
    assert {"imbalance.majority_count", "train.lr", "train.augment", "model.normalize"} <= differs
    for key in sorted(differs):
        cfg = resolve_config("paper", overrides=[nest(key, quick[key])], env={})
        assert paper_setting(cfg, CIFAR10), f"{key} = {quick[key]!r} is not named as a departure"
    reasons = paper_setting(resolve_config("quick", env={}), CIFAR10)
    assert len(reasons) >= 4 and len(PRESETS["quick"].departures) >= len(reasons)


def test_advimb_list_and_the_readme_name_every_departure(capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = " ".join(readme.split("## Presets and what they cost")[1].split("\n## ")[0].split())
    assert main(["list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, p in PRESETS.items():
        for d in p.departures:
            assert d in out, (name, d)
            assert d in section, (name, d)

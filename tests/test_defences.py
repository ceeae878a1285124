"""A defence declares everything it changes, the classifier head and the test-time correction
included (what RoBal brings): a defence written outside advimb, registered here, trains with its
head, is saved with its correction, and is evaluated and handed out by ``advimb.load_model``
exactly as declared."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import advimb
from advimb.errors import UserError
from advimb.training.defences import DEFENCES, Corrected, Correction, Defence, Head, Regime, attach_head, log_prior


class NormedLinear(nn.Module):
    """A cosine-style classifier: the rows of W scaled to unit norm."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, in_features) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight / self.weight.norm(dim=1, keepdim=True))


@dataclass(frozen=True)
class Normed(Head):
    def build(self, in_features: int, num_classes: int) -> nn.Module:
        return NormedLinear(in_features, num_classes)


@dataclass(frozen=True)
class HeadAndPrior(Defence):
    """Its own head, and minus the log prior added to the logits at test time."""

    declares: ClassVar[frozenset[str]] = frozenset({"head", "correction"})

    def head(self) -> Head:
        return Normed()

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(head=self.head(), correction=Correction(tuple(-v for v in log_prior(y_train, num_classes))))


@pytest.fixture
def registered():
    DEFENCES.add("head_prior", HeadAndPrior("head_prior", "a test's head and prior correction"))
    yield
    DEFENCES._entries.pop("head_prior", None)


def test_a_defence_with_its_own_head_and_correction_is_evaluated_as_declared(registered, smoke_cfg, tmp_path):
    from advimb.data.sources import load_dataset
    from advimb.study.run import run_study

    d = DEFENCES.get("head_prior")
    assert not d.stackable and not DEFENCES.get("logit_adjust+head_prior").stackable
    cfg = dataclasses.replace(
        smoke_cfg,
        experiments=dataclasses.replace(smoke_cfg.experiments, defences=("head_prior",), defence_classes=("class3",)),
    )
    run = Path(run_study(cfg, tmp_path / "run", progress=False)["run_dir"])
    state = torch.load(run / "models" / "under-class3+head_prior" / "weights.pt", weights_only=True)
    assert "offsets" in state and all(k in ("scale", "offsets") or k.startswith("model.") for k in state)
    net = advimb.load_model(run, "under:class3+head_prior")
    assert isinstance(net, Corrected) and isinstance(list(net.model.modules())[-1], NormedLinear)
    ds = load_dataset(cfg.data)
    with np.load(run / "scenarios" / "under-class3+head_prior.npz") as z:
        y_train = torch.from_numpy(ds.y_train[z["train"]])
    prior = torch.bincount(y_train, minlength=10).double() / len(y_train)  # by hand: -log n_c / N
    assert torch.allclose(net.offsets.double(), -prior.log(), atol=1e-6)
    x = torch.from_numpy(ds.x_test).permute(0, 3, 1, 2).float().div(255)
    with torch.no_grad():
        pred = net(x).argmax(1).numpy()
        bare = net.model(x).argmax(1).numpy()
    stored = np.load(run / "eval" / "clean" / "under-class3+head_prior.npz")["predictions"]
    assert np.array_equal(pred, stored)  # the study evaluated the corrected model
    assert not np.array_equal(bare, stored)  # and the correction changes what it predicts
    meta = json.loads((run / "models" / "under-class3+head_prior" / "meta.json").read_text())
    assert meta["regime"]["head"] == {"kind": "Normed"} and len(meta["regime"]["correction"]["offsets"]) == 10


def test_a_head_needs_a_linear_classifier():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    out = attach_head(model, Normed(), 3, seed=1)
    assert isinstance(out[1], NormedLinear) and out[1].weight.shape == (3, 12)
    again = attach_head(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), Normed(), 3, seed=1)
    assert torch.equal(out[1].weight, again[1].weight)  # seeded
    with pytest.raises(UserError, match="needs a model whose classifier is an nn.Linear"):
        attach_head(nn.Sequential(nn.Conv2d(3, 3, 1)), Normed(), 3)


def test_two_defences_that_set_one_thing_are_refused(registered):
    class Other(HeadAndPrior):
        pass

    DEFENCES.add("head_prior2", Other("head_prior2"))
    try:
        with pytest.raises(UserError, match="head_prior and head_prior2 both set the training correction"):
            DEFENCES.get("head_prior+head_prior2")
    finally:
        DEFENCES._entries.pop("head_prior2", None)

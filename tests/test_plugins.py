"""Outside models by name (torchvision, the user's own factory) and the Python API: the study
end to end with them on small data, and one-line errors before anything is written."""

from __future__ import annotations

import textwrap

import pytest
import torch

import advimb
from advimb.cli import main
from advimb.errors import UserError

TINY = {"train.max_epochs": 1}


def _user_module(tmp_path, monkeypatch, name="mymodels"):
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("""
        import torch
        from torch import nn

        def build(num_classes, image_shape):
            c, h, w = image_shape
            return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten(), nn.Linear(32, num_classes))

        def not_a_model(num_classes, image_shape):
            return "a string"

        def counts(num_classes):  # numpy integers are counts too
            import numpy as np

            return np.array([50 - 4 * i for i in range(num_classes)])
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:build"


def test_the_readme_python_example_runs_as_printed(tmp_path, monkeypatch):
    """The README's "From Python" example, run as printed (in a fresh folder)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", block, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example, run as printed
    res = scope["res"]
    assert list(res.table1.columns[:2]) == ["class", "different_model_under"]
    assert len(res.table1) == 11 and res.table1["class"].iloc[-1] == "average"
    assert set(res.claims) >= {"C1", "C2", "C3"}
    assert res.report_path is not None and res.report_path.is_file()
    again = advimb.load(res.run_dir)
    assert again.clean_accuracy.equals(res.clean_accuracy)
    assert again.summary == res.summary


def test_a_user_model_and_a_torchvision_model_run_the_study(tmp_path, monkeypatch):
    factory = _user_module(tmp_path, monkeypatch)
    for name in (factory, "torchvision:squeezenet1_1"):
        res = advimb.run(
            "smoke",
            out=tmp_path / name.replace(":", "_"),
            overrides={**TINY, "model.name": name},
            report=False,
            progress=False,
        )
        assert res.config.model.name == name
        t1 = res.table1
        assert len(t1) == 11 and t1.drop(columns="class").notna().all().all()
        assert 0 <= res.summary["balanced_clean_accuracy"] <= 100


def test_an_outside_model_is_wrapped_like_advimbs_own(tmp_path, monkeypatch):
    from advimb.config.sections import ModelConfig
    from advimb.models import build_model, is_stackable

    factory = _user_module(tmp_path, monkeypatch)
    m = build_model(ModelConfig(name=factory), 5, (1, 16, 16), seed=0)
    assert m(torch.rand(3, 1, 16, 16)).shape == (3, 5)
    assert hasattr(m, "normalize") and not is_stackable(factory)
    tv = build_model(ModelConfig(name="torchvision:resnet18"), 7, (1, 32, 32), seed=0)
    assert tv.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 7)  # 1 channel repeated to the 3 it expects
    tm = build_model(ModelConfig(name="timm:resnet10t"), 4, (1, 28, 28), seed=0)  # timm: the test extra has it
    assert tm.eval()(torch.rand(2, 1, 28, 28)).shape == (2, 4)


@pytest.mark.parametrize(
    "name, message",
    [
        ("torchvision:resnet19", "torchvision"),
        ("nosuchmodule_xyz:build", "does not import"),
        ("mymodels:nothing", "has no callable 'nothing'"),
        ("timm:no_such_net", "timm"),
        ("vgg_unknown", "unknown model"),
    ],
)
def test_bad_model_names_are_one_line_errors_before_anything_is_written(tmp_path, monkeypatch, capsys, name, message):
    _user_module(tmp_path, monkeypatch)
    import torchvision  # noqa: F401 - a dependency: a missing one fails, never skips

    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--set", f"model.name='{name}'"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advimb: error:") and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()
    with pytest.raises(UserError, match=message.split("'")[0]):
        advimb.run("smoke", out=out, overrides={"model.name": name})
    assert not out.exists()


def test_a_model_that_cannot_classify_the_images_stops_before_anything_is_written(tmp_path, monkeypatch, capsys):
    _user_module(tmp_path, monkeypatch)
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--set", "model.name='mymodels:not_a_model'"]) == 2
    assert "returned str, not a torch.nn.Module" in capsys.readouterr().err
    assert not out.exists()


def test_load_refuses_a_folder_without_results(tmp_path):
    with pytest.raises(UserError, match="holds no finished study"):
        advimb.load(tmp_path)


def test_overrides_take_dotted_keys_and_nested_tables():
    a = advimb.build_config("smoke", overrides={"train.max_epochs": 3, "attack": {"eps": 0.02}})
    assert a.train.max_epochs == 3 and a.attack.eps == 0.02 and a.preset == "smoke"
    with pytest.raises(UserError):
        advimb.build_config("smoke", overrides={"train.no_such_setting": 1})


def test_a_torchattacks_attack_by_name_runs_the_study_like_advimbs_own(tmp_path):
    """torchattacks:FGSM through the adapter gives the study advimb's own FGSM gives (the two
    differ only where a gradient entry is at rounding level), with its key from its params."""
    import torchattacks  # noqa: F401 - the test extra: a missing oracle fails, never skips

    own = advimb.run("smoke", out=tmp_path / "own", overrides=TINY, report=False, progress=False)
    ta = advimb.run(
        "smoke",
        out=tmp_path / "ta",
        overrides={**TINY, "attack.name": "torchattacks:FGSM"},
        report=False,
        progress=False,
    )
    a, b = own.table1.drop(columns="class"), ta.table1.drop(columns="class")
    assert (a - b).abs().max().max() <= 1.0, (a - b).abs().max()
    assert own.clean_accuracy.equals(ta.clean_accuracy)  # the same models


def test_autoattack_and_pgd_from_torchattacks_at_a_tiny_size():
    """AutoAttack (standard) and PGD through the adapter: seeded (the same images twice),
    inside the eps ball and [0, 1], the model's mode restored."""
    import torchattacks  # noqa: F401 - the test extra: a missing oracle fails, never skips

    from advimb.attacks.evaluate import attack_images, attack_kwargs
    from advimb.config.sections import AttackConfig, ModelConfig
    from advimb.models import build_model

    model = build_model(ModelConfig(widths=(4, 8, 8), fc=16), 10, (3, 16, 16), seed=0).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 16, 16, 3), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (6,), generator=g)
    classes = tuple(f"c{i}" for i in range(10))
    for name, params in (
        ("torchattacks:AutoAttack", {"norm": "Linf", "version": "standard"}),
        ("torchattacks:PGD", {"steps": 3, "random_start": True}),
    ):
        cfg = AttackConfig(name=name, eps=8 / 255, params=params, batch_size=4)
        assert attack_kwargs(cfg, classes)["num_classes"] == 10
        one = attack_images(model, x, y, cfg, classes, seed=3)
        two = attack_images(model, x, y, cfg, classes, seed=3)
        assert torch.equal(one, two) and model.training
        clean = x.permute(0, 3, 1, 2).float() / 255
        assert (one - clean).abs().max() <= 8 / 255 + 1e-6 and one.min() >= 0 and one.max() <= 1


def test_apgd_plus_apgdt_is_torchattacks_multiattack_of_the_two():
    """``torchattacks:APGD+APGDT`` (RoBal's "AA": AutoAttack's APGD-CE and APGD-T) is
    torchattacks' MultiAttack of the two, each given the parameters it takes (``loss`` only
    APGD, ``n_classes`` only APGDT), under the same seed; a parameter neither takes is refused."""
    import torchattacks

    from advimb.attacks.plugins import check_plugin, plugin_attack
    from advimb.config.sections import ModelConfig
    from advimb.models import build_model

    model = build_model(ModelConfig(widths=(4, 8, 8), fc=16), 10, (3, 16, 16), seed=0).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)
    params = {"norm": "Linf", "steps": 4, "loss": "ce", "n_restarts": 1}
    check_plugin("torchattacks:APGD+APGDT", params)
    ours = plugin_attack("torchattacks:APGD+APGDT")(model, x, y, eps=8 / 255, params=params, num_classes=10, seed=5)
    torch.manual_seed(5)
    parts = [
        torchattacks.APGD(model, norm="Linf", eps=8 / 255, steps=4, loss="ce", n_restarts=1, seed=5),
        torchattacks.APGDT(model, norm="Linf", eps=8 / 255, steps=4, n_restarts=1, n_classes=10, seed=5),
    ]
    theirs = torchattacks.MultiAttack(parts)(x, y)
    assert torch.equal(ours, theirs)
    alone = plugin_attack("torchattacks:APGD")(model, x, y, eps=8 / 255, params=params, num_classes=10, seed=5)
    assert (model(alone).argmax(1) == y).sum() >= (model(ours).argmax(1) == y).sum()  # APGD-T adds, never removes
    with pytest.raises(UserError, match="attack.params.stepz: torchattacks:APGD\\+APGDT takes no such argument"):
        check_plugin("torchattacks:APGD+APGDT", {"stepz": 3})


def test_autoattack_runs_the_study_end_to_end_at_a_tiny_size(tmp_path):
    """torchattacks:AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) through the study at a
    tiny size (one class's three models, same-model and transfer, 2 test images per class),
    channels_last models included. One class, not the whole grid: the standard version's
    Square attack spends 5,000 queries on every image it has not fooled, 395 s for the grid in CI."""
    import torchattacks  # noqa: F401 - the test extra: a missing oracle fails, never skips

    over = {
        **TINY,
        "eval.test_per_class": 2,
        "imbalance.classes": ["class3"],
        "attack.name": "torchattacks:AutoAttack",
        "attack.eps": 0.03,
        "attack.params": {"norm": "Linf", "version": "standard"},
    }
    res = advimb.run("smoke", out=tmp_path / "aa", overrides=over, report=False, progress=False)
    assert res.config.attack.params == {"norm": "Linf", "version": "standard"}
    assert list(res.table1["class"]) == ["class3", "average"]
    avg = res.table1.iloc[-1]
    assert all(0 <= avg[c] <= 100 for c in res.table1.columns[1:])


@pytest.mark.parametrize(
    "sets, message",
    [
        (["attack.name='torchattacks:NoSuchAttack'"], "has no attack 'NoSuchAttack'"),
        (["attack.name='torchattacks:PGD'", "attack.params={stepz=3}"], "attack.params.stepz: torchattacks:PGD takes"),
        (["attack.name='torchattacks:PGD'", "attack.target='class1'"], "untargeted"),
        (["data.source='torchvision:ImageNet'"], "advimb reads torchvision's"),
    ],
)
def test_bad_torchattacks_settings_are_one_line_errors(tmp_path, capsys, sets, message):
    import torchattacks  # noqa: F401 - the test extra: a missing oracle fails, never skips

    out = tmp_path / "run"
    argv = ["run", "--preset", "smoke", "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


FASHION = "/usr/share/datasets/fashion-mnist"


def test_fashion_mnist_through_torchvision_from_local_idx_files(tmp_path, monkeypatch, request):
    """torchvision:FashionMNIST read by torchvision's loader from Debian's idx files (1
    channel, 28 x 28, padded to 32 for the VGG), the study end to end on two target classes;
    class names from the dataset, made file-system-safe."""
    import os
    from pathlib import Path

    if request.config.getoption("--no-real-data") or os.environ.get("ADVIMB_NO_REAL_DATA") == "1":
        pytest.skip(f"real data declared absent (--no-real-data); expected Fashion-MNIST at {FASHION}")
    if not Path(FASHION, "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"{FASHION} is missing: apt-get install dataset-fashion-mnist (.ci/run does), or run pytest --no-real-data",
            pytrace=False,
        )
    monkeypatch.setenv("ADVIMB_CACHE", str(tmp_path / "cache"))
    over = {
        "data.source": "torchvision:FashionMNIST",
        "data.dir": FASHION,
        "data.pad": 2,
        "imbalance.majority_count": 40,
        "imbalance.minority_count": 8,
        "imbalance.classes": ["Shirt", "Ankle_boot"],
        "eval.test_per_class": 20,
        "train.max_epochs": 1,
    }
    res = advimb.run("smoke", out=tmp_path / "fm", overrides=over, report=False, progress=False)
    t1 = res.table1
    assert list(t1["class"][:-1]) == ["Shirt", "Ankle_boot"]
    ca = res.clean_accuracy
    assert len(ca) == 5 and {"T-shirt_top", "Ankle_boot"} <= set(ca.columns)  # 5 models, 10 classes
    import json

    man = json.loads((res.run_dir / "manifest.json").read_text())["dataset"]
    assert man["image_shape"] == [1, 32, 32] and man["source_image_shape"] == [1, 28, 28]
    assert man["classes"][0] == "T-shirt_top" and "re-compressed" in man["origin"]


def test_your_own_count_vectors_are_scenarios_with_the_long_tail_tables(tmp_path, monkeypatch):
    """[[imbalance.scenarios]]: a count vector and a factory of the user's code, each one model,
    every class attacked (own gradient and the balanced model's), in tables/long_tail.csv."""
    import json

    _user_module(tmp_path, monkeypatch)
    mine = [50, 40, 30, 20, 10, 5, 5, 5, 5, 5]
    over = {
        **TINY,
        "imbalance.scenarios": [{"name": "mine", "counts": mine}, {"name": "fromcode", "factory": "mymodels:counts"}],
    }
    res = advimb.run("smoke", out=tmp_path / "run", overrides=over, report=False, progress=False)
    lt = res.table("long_tail")
    assert set(lt["profile"]) == {"counts:mine", "counts:fromcode"}
    assert list(lt[lt["profile"] == "counts:mine"]["train_count"]) == mine
    assert list(lt[lt["profile"] == "counts:fromcode"]["train_count"]) == [50 - 4 * i for i in range(10)]
    meta = json.loads((res.run_dir / "scenarios" / "counts-mine.json").read_text())
    assert sum(meta["train_per_class"]) + sum(meta["val_per_class"]) == sum(mine)
    assert res.config.imbalance.scenarios[0].counts == tuple(mine)  # the run folder's config.toml


@pytest.mark.determinism
def test_grouping_attack_jobs_changes_nothing_for_torchattacks(tmp_path):
    """A torchattacks attack with a random start (PGD) gives each job the same images whether
    the jobs run grouped or one by one: each job is attacked alone, from its own seed."""
    import numpy as np
    import torchattacks  # noqa: F401 - the test extra: a missing oracle fails, never skips

    over = {
        **TINY,
        "eval.test_per_class": 4,
        "attack.name": "torchattacks:PGD",
        "attack.params": {"steps": 2, "random_start": True},
    }
    runs = [
        advimb.run("smoke", out=tmp_path / g, overrides={**over, "eval.group_attacks": g}, report=False, progress=False)
        for g in ("on", "off")
    ]
    files = sorted(p.relative_to(runs[0].run_dir) for p in (runs[0].run_dir / "eval" / "attack").glob("*.npz"))
    assert len(files) == 30
    for f in files:
        a, b = (np.load(r.run_dir / f) for r in runs)
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), f
    assert runs[0].table1.equals(runs[1].table1)


def test_a_counts_scenario_takes_no_count_override():
    from advimb.data.imbalance import parse_scenario

    assert parse_scenario("counts:mine", ("a", "b")).label == "mine"
    with pytest.raises(UserError, match="has its own counts"):
        parse_scenario("counts:mine@5", ("a", "b"))


@pytest.mark.parametrize(
    "scenarios, message",
    [
        ([{"name": "short", "counts": [5, 5]}], "expected 10 non-negative integer counts"),
        ([{"name": "bad name", "counts": [5] * 10}], "must be letters, digits"),
        ([{"name": "both", "counts": [5] * 10, "factory": "x:y"}], "either counts"),
        ([{"name": "toomany", "counts": [500] * 10}], "toomany"),
    ],
)
def test_bad_count_vectors_are_one_line_errors(tmp_path, scenarios, message):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=message):
        advimb.run("smoke", out=out, overrides={"imbalance.scenarios": scenarios})
    assert not out.exists()

"""Bad input: one line on stderr, exit status 2, no traceback, nothing computed lost."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advimb.cli import main


def _err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _images(
    root, classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"), n=3
):
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for j in range(n):
                Image.fromarray(np.full((32, 32, 3), j * 40, np.uint8)).save(root / split / c / f"{j}.png")
    return root


SMOKE = ["run", "--preset", "smoke", "--no-progress"]


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--eps", "2"], "config attack.eps: 2.0 is outside [0, 1]"),
        (["--set", "train.epochs=3"], "unknown config key train.epochs; known keys in [train]:"),
        (["--set", "imbalance.classes=['zebra']"], "unknown class 'zebra'; classes are: class0"),
        (
            ["--set", "imbalance.majority_count=100000"],
            "class 'class0' has 60 training images but scenario balanced asks for 100000",
        ),
        (["--preset", "turbo"], "unknown preset 'turbo'; choose one of: smoke, quick, paper, faithful"),
        (["--set", "model.name=resnet"], "unknown model 'resnet'"),
    ],
)
def test_bad_settings(capsys, tmp_path, extra, msg):
    code, err = _err(capsys, [*SMOKE, "--out", str(tmp_path / "o"), *extra])
    assert code == 2 and err.startswith("advimb: error: ") and msg in err and "\n" not in err


def test_missing_data_dir(capsys, tmp_path):
    code, err = _err(
        capsys,
        [
            "run",
            "--preset",
            "quick",
            "--no-progress",
            "--data-dir",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert code == 2 and "does not exist; check --data-dir or ADVIMB_DATA" in err and "\n" not in err


def test_data_dir_without_layout(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = _err(
        capsys,
        [
            "run",
            "--preset",
            "quick",
            "--no-progress",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert code == 2 and "no dataset found in" in err and "\n" not in err


def test_corrupt_image(capsys, tmp_path):
    root = _images(tmp_path / "data")
    (root / "test" / "dog" / "1.png").write_bytes(b"\x89PNG broken")
    code, err = _err(
        capsys, ["run", "--preset", "quick", "--no-progress", "--data-dir", str(root), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "cannot decode image" in err and "dog/1.png" in err and "\n" not in err


def test_too_few_images_for_the_counts(capsys, tmp_path):
    root = _images(tmp_path / "data")
    code, err = _err(
        capsys,
        [
            "run",
            "--preset",
            "quick",
            "--no-progress",
            "--data-dir",
            str(root),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "eval.test_per_class=1",
        ],
    )
    assert code == 2 and "class 'airplane' has 3 training images but scenario balanced asks for 2500" in err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _err(capsys, [*SMOKE, "--out", str(blocker / "run")])
    assert code == 2 and "output folder" in err and "is not writable" in err and "\n" not in err


def test_bad_config_file(capsys, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nmax_epoch = 3\n")
    code, err = _err(capsys, [*SMOKE, "--config", str(f), "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown config key train.max_epoch" in err


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "advimb", *SMOKE, "--eps", "-1", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "advimb: error: config attack.eps: -1.0 is outside [0, 1]; eps is on the [0, 1] pixel scale (paper: 0.01)"
    ]


def test_list_and_config(capsys):
    from advimb.attacks.core import list_attacks
    from advimb.config.presets import PRESETS
    from advimb.models import list_models
    from advimb.training.defences import list_defences

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    # every name a user can give, from the registries themselves
    for name in [*PRESETS, *list_models(), *list_attacks(), *list_defences()]:
        assert name in out, name
    assert main(["config", "--preset", "faithful"]) == 0
    assert 'validation = "test"' in capsys.readouterr().out


def test_sigterm_stops_cleanly_and_the_rerun_finishes(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "advimb", *SMOKE, "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("models/*/meta.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "Traceback" not in err
    assert "interrupted; finished work is saved - rerun the same command to resume" in err
    assert '"status": "interrupted"' in (out / "manifest.json").read_text()
    assert not list(out.rglob("*.tmp"))
    assert subprocess.run(cmd, capture_output=True, timeout=300, check=False).returncode == 0
    assert (out / "tables" / "table1.csv").exists()


# ----------------------------------------------------------------------------- nothing written before every check


def _gray(root, classes=("zero", "one", "two", "three"), n=8, size=28):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for j in range(n):
                a = rng.integers(0, 40, (size, size)).astype(np.uint8)
                a[3 + 5 * i : 7 + 5 * i, 4:24] = 220  # a bar whose row tells the class
                Image.fromarray(a, mode="L").save(root / split / c / f"{j}.png")
    return root


FOLDER = [
    "run",
    "--preset",
    "smoke",
    "--no-progress",
    "--set",
    "data.source='folder'",
    "--n-boot",
    "200",
    "--set",
    "imbalance.majority_count=6",
    "--set",
    "imbalance.minority_count=2",
]


def test_grayscale_28x28_runs_end_to_end_with_one_channel_after_data_pad(capsys, tmp_path):
    import json

    import torch

    data, out = _gray(tmp_path / "digits"), tmp_path / "run"
    code, err = _err(capsys, [*FOLDER, "--data-dir", str(data), "--out", str(out)])
    assert code == 2 and "images are 28x28: set data.pad = 2 (28x28 -> 32x32) or data.resize = 32" in err
    assert "\n" not in err and not out.exists()
    assert main([*FOLDER, "--data-dir", str(data), "--out", str(out), "--set", "data.pad=2"]) == 0
    state = torch.load(out / "models" / "balanced" / "weights.pt", weights_only=True)
    assert state["features.0.weight"].shape[1] == 1  # the model sees one channel
    with np.load(out / "eval" / "attack" / "balanced__one.npz") as z:
        assert z["example_adversarial"].shape[1:] == (1, 32, 32)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["image_shape"] == [1, 32, 32] and manifest["dataset"]["source_image_shape"] == [
        1,
        28,
        28,
    ]
    assert (out / "report" / "figures" / "fig3_adversarial_examples.png").is_file()


def test_one_class_folder_exits_2_and_writes_nothing(capsys, tmp_path):
    data = _images(tmp_path / "data", classes=("cat",))
    code, err = _err(capsys, [*FOLDER, "--data-dir", str(data), "--out", str(tmp_path / "o")])
    assert code == 2 and "holds 1 class (cat)" in err and "needs at least two" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "device,msg",
    [("gpu", "device 'gpu' is not a device name; use auto, cpu, cuda or cuda:N"), ("cuda:99", "device 'cuda:99': ")],
)
def test_bad_device_is_one_line(capsys, tmp_path, device, msg):
    code, err = _err(capsys, [*SMOKE, "--device", device, "--out", str(tmp_path / "o")])
    assert code == 2 and err.startswith(f"advimb: error: {msg}") and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "bad,msg",
    [
        (["--set", "model.name='vgg_paperr'"], "unknown model 'vgg_paperr'"),
        (["--set", "imbalance.majority_count=1000"], "asks for 1000"),
        (["--pair", "class3,zebra"], "unknown class 'zebra' in --pair"),
        (["--pair", "class7,class3"], "'class7' is not a studied class"),
        (["--pair", "class3"], "must name two classes"),
        (["--n-boot", "5"], "--n-boot 5 is too small"),
        (["--set", "attack.name='fgsmm'"], "unknown attack"),
    ],
)
def test_a_refused_run_leaves_out_as_it_was_and_the_corrected_command_runs(capsys, tmp_path, bad, msg):
    out, small = tmp_path / "o", [*SMOKE, "--set", "imbalance.classes=['class3', 'class5']"]
    code, err = _err(capsys, [*small, "--out", str(out), *bad])
    assert code == 2 and msg in err and "\n" not in err
    assert not out.exists(), "a refused run wrote into --out"
    assert main([*small, "--out", str(out), "--no-report"]) == 0
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    code, err = _err(capsys, [*small, "--out", str(out), *bad])  # refused again: the finished run is untouched
    assert code == 2 and err.startswith("advimb: error: ") and "\n" not in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_artifacts_respect_the_umask(tmp_path, umask, mode):
    import os

    old = os.umask(umask)
    try:
        assert (
            main([*SMOKE, "--out", str(tmp_path / "o"), "--n-boot", "100", "--set", "imbalance.classes=['class3']"])
            == 0
        )
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    assert len(files) > 30
    wrong = {
        str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o777 != mode
    }
    assert not wrong, wrong


def test_advimb_list_and_the_readme_give_the_same_cost_for_each_preset(capsys):
    from advimb.config.presets import PRESETS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Presets and what they cost")[1].split("\n## ")[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[3].strip()
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(PRESETS)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, p in PRESETS.items():
        assert rows[name] == p.cost, name
        assert f"cost: {p.cost}" in out

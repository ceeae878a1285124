"""Bad input: one line on stderr, exit status 2, no traceback, nothing computed lost."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from advimb.cli import main


def _err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _images(root, classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"), n=3):
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for j in range(n):
                Image.fromarray(np.full((32, 32, 3), j * 40, np.uint8)).save(root / split / c / f"{j}.png")
    return root


SMOKE = ["run", "--preset", "smoke", "--no-progress"]


@pytest.mark.parametrize("extra,msg", [
    (["--eps", "2"], "config attack.eps: 2.0 is outside [0, 1]"),
    (["--set", "train.epochs=3"], "unknown config key train.epochs; known keys in [train]:"),
    (["--set", "imbalance.classes=['zebra']"], "unknown class 'zebra'; classes are: class0"),
    (["--set", "imbalance.majority_count=100000"], "class 'class0' has 60 training images but scenario balanced asks for 100000"),
    (["--preset", "turbo"], "unknown preset 'turbo'; choose one of: smoke, quick, paper, faithful"),
    (["--set", "model.name=resnet"], "unknown model 'resnet'"),
])
def test_bad_settings(capsys, tmp_path, extra, msg):
    code, err = _err(capsys, [*SMOKE, "--out", str(tmp_path / "o"), *extra])
    assert code == 2 and err.startswith("advimb: error: ") and msg in err and "\n" not in err


def test_missing_data_dir(capsys, tmp_path):
    code, err = _err(capsys, ["run", "--preset", "quick", "--no-progress", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert code == 2 and "does not exist; check --data-dir or ADVIMB_DATA" in err and "\n" not in err


def test_data_dir_without_layout(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = _err(capsys, ["run", "--preset", "quick", "--no-progress", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert code == 2 and "no dataset found in" in err and "\n" not in err


def test_corrupt_image(capsys, tmp_path):
    root = _images(tmp_path / "data")
    (root / "test" / "dog" / "1.png").write_bytes(b"\x89PNG broken")
    code, err = _err(capsys, ["run", "--preset", "quick", "--no-progress", "--data-dir", str(root), "--out", str(tmp_path / "o")])
    assert code == 2 and "cannot decode image" in err and "dog/1.png" in err and "\n" not in err


def test_too_few_images_for_the_counts(capsys, tmp_path):
    root = _images(tmp_path / "data")
    code, err = _err(capsys, ["run", "--preset", "quick", "--no-progress", "--data-dir", str(root), "--out", str(tmp_path / "o"),
                              "--set", "eval.test_per_class=1"])
    assert code == 2 and "class 'airplane' has 3 training images but scenario balanced asks for 500" in err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _err(capsys, [*SMOKE, "--out", str(blocker / "run")])
    assert code == 2 and "output folder" in err and "is not writable" in err and "\n" not in err


def test_bad_config_file(capsys, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\nmax_epoch = 3\n')
    code, err = _err(capsys, [*SMOKE, "--config", str(f), "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown config key train.max_epoch" in err


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "advimb", *SMOKE, "--eps", "-1", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["advimb: error: config attack.eps: -1.0 is outside [0, 1]; eps is on the [0, 1] pixel scale (paper: 0.01)"]


def test_list_and_config(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "quick" in out and "vgg_paper" in out and "fgsm" in out
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
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    assert (out / "tables" / "table1.csv").exists()

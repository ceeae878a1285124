"""End to end on the synthetic smoke preset: artifacts, tables, determinism, resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from advimb.devices import resolve_runtime
from advimb.study.run import run_study

TABLES = [
    "table1.csv",
    "table1.md",
    "clean_target_accuracy.csv",
    "relative_difference.csv",
    "flip_rates.csv",
    "clean_accuracy.csv",
    "summary.json",
]


def _tables(run_dir):
    return {t: (Path(run_dir) / "tables" / t).read_text() for t in TABLES}


def test_smoke_study_writes_every_artifact(smoke_run):
    run = Path(smoke_run["run_dir"])
    assert len(list((run / "models").glob("*/weights.pt"))) == 21
    assert len(list((run / "eval" / "clean").glob("*.json"))) == 21
    combos = [c for f in (run / "eval" / "attack").glob("*.json") for c in json.loads(f.read_text())["combinations"]]
    assert len(combos) == 50
    kinds = sorted((c["model_kind"], c["gradient"]) for c in combos)
    assert kinds.count(("balanced", "same_model")) == 10
    for k in ("under", "over"):
        assert kinds.count((k, "same_model")) == 10 and kinds.count((k, "different_model")) == 10
    for c in combos:  # the artifact names its predictions; it stores no number derived from them
        assert c["n"] == 20 and not {"adversarial_accuracy", "clean_accuracy", "adversarial_histogram"} & set(c)
    for t in TABLES:
        assert (run / "tables" / t).stat().st_size > 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["dataset"]["fingerprint"] and manifest["environment"]["torch"] == torch.__version__
    assert set(manifest["seeds"]) >= {"balanced", "under:class3", "over:class5"}
    assert (run / "config.toml").read_text().startswith('preset = "smoke"')


def test_scenario_artifacts_hold_exact_counts(smoke_run):
    run = Path(smoke_run["run_dir"])
    info = json.loads((run / "scenarios" / "under-class3.json").read_text())
    assert info["counts"]["class3"] == 10 and info["counts"]["class0"] == 50
    with np.load(run / "scenarios" / "under-class3.npz") as z:
        assert len(z["indices"]) == 9 * 50 + 10
        assert sorted(np.concatenate([z["train"], z["val"]])) == sorted(z["indices"])
    meta = json.loads((run / "models" / "under-class3" / "meta.json").read_text())
    assert meta["counts"][3] == 10 and len(meta["history"]) == meta["stopped_epoch"]
    hist = (run / "models" / "under-class3" / "history.csv").read_text().splitlines()
    assert hist[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"


def test_checkpoints_load_with_weights_only(smoke_run):
    run = Path(smoke_run["run_dir"])
    state = torch.load(run / "models" / "balanced" / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_table1_layout(smoke_run):
    lines = (Path(smoke_run["run_dir"]) / "tables" / "table1.csv").read_text().splitlines()
    cols = [
        "different_model_under",
        "different_model_over",
        "same_model_balanced",
        "same_model_under",
        "same_model_over",
    ]
    assert lines[0] == "class," + ",".join(f"{c},{c}_lo,{c}_hi" for c in cols)
    assert len(lines) == 1 + 10 + 1 and lines[-1].startswith("average,")
    md = (Path(smoke_run["run_dir"]) / "tables" / "table1.md").read_text()
    assert "95% percentile bootstrap (2,000 replicates; test images resampled within each class)" in md.splitlines()[0]
    readme = (Path(smoke_run["run_dir"]) / "tables" / "README.md").read_text()
    assert "**both on the attacked images**" in readme and "full test set" in readme


def test_tables_come_from_artifacts_only(smoke_run, tmp_path):
    """Delete the models: the tables can still be rebuilt, identically."""
    from advimb.results.tables import build_tables

    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    before = _tables(run)
    shutil.rmtree(run / "models")
    shutil.rmtree(run / "tables")
    build_tables(run)
    assert _tables(run) == before


@pytest.mark.determinism
def test_same_seed_same_results_and_rerun_skips_everything(smoke_run, smoke_cfg, tmp_path):
    res = run_study(smoke_cfg, tmp_path / "again", progress=False)
    assert _tables(res["run_dir"]) == _tables(smoke_run["run_dir"])
    res2 = run_study(smoke_cfg, tmp_path / "again", progress=False)
    assert res2["stats"]["run"] == 0 and res2["stats"]["skipped"] == 72


def test_different_seed_changes_results(smoke_run, smoke_cfg, tmp_path):
    import dataclasses

    res = run_study(dataclasses.replace(smoke_cfg, seed=1), tmp_path / "seed1", progress=False)
    assert _tables(res["run_dir"])["clean_accuracy.csv"] != _tables(smoke_run["run_dir"])["clean_accuracy.csv"]


def test_corrupt_artifact_is_detected_and_recomputed(smoke_run, smoke_cfg, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    w = run / "models" / "over-class2" / "weights.pt"
    w.write_bytes(w.read_bytes()[:100])
    res = run_study(smoke_cfg, run, progress=False)
    assert res["stats"]["recomputed"] == 1 and res["stats"]["run"] == 1
    assert "over-class2/weights.pt is missing or corrupt" in capsys.readouterr().err
    assert _tables(run) == _tables(smoke_run["run_dir"])


@pytest.mark.determinism
@pytest.mark.slow
def test_interrupted_run_resumes_to_identical_results(smoke_run, tmp_path):
    """Kill the CLI with SIGKILL mid-study, rerun the same command, compare tables."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "advimb", "run", "--preset", "smoke", "--out", str(out), "--no-progress"]
    env = {**os.environ, "ADVIMB_DATA": ""}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("models/*/meta.json"))) < 8:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("models/*/meta.json")}
    assert 8 <= len(done_before) < 21, "the kill should land mid-study"
    assert not (out / "tables").exists()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert "already done" in r.stderr
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("models/*/meta.json")}
    assert all(after[k] == v for k, v in done_before.items())  # finished work was not redone
    invs = json.loads((out / "manifest.json").read_text())["invocations"]
    assert len(invs) == 2 and invs[1]["status"] == "complete"
    assert invs[0]["status"].startswith("interrupted"), "the killed invocation still reads as running"
    assert "marked interrupted" in r.stderr
    assert f"took over the lock of {out} from pid {proc.pid}" in r.stderr  # the killed holder's lock
    assert not (out / "run.lock").exists()
    assert not list(out.rglob("*.tmp"))
    assert _tables(out) == _tables(smoke_run["run_dir"])


def test_rerun_with_another_config_is_refused_and_keeps_results(smoke_run, smoke_cfg, tmp_path):
    import dataclasses

    from advimb.errors import UserError

    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    files = sorted(p for p in run.rglob("*") if p.is_file())
    other = dataclasses.replace(smoke_cfg, attack=dataclasses.replace(smoke_cfg.attack, eps=0.02))
    with pytest.raises(UserError, match=r"different config \(differs in attack.eps: 0.01 -> 0.02\)"):
        run_study(other, run, progress=False)
    assert sorted(p for p in run.rglob("*") if p.is_file()) == files


@pytest.mark.parametrize(
    "mode,executor,grouped",
    [("auto", "local", True), ("off", "local", False), ("auto", "dask", False), ("on", "dask", True)],
)
def test_jobs_are_small_and_picklable(smoke_cfg, mode, executor, grouped):
    import dataclasses
    import pickle

    from advimb.data.sources import load_dataset
    from advimb.study.jobs.evaluate import AttackGroupJob
    from advimb.study.plan import plan

    cfg = dataclasses.replace(
        smoke_cfg,
        eval=dataclasses.replace(smoke_cfg.eval, group_attacks=mode),
        executor=dataclasses.replace(smoke_cfg.executor, name=executor),
    )
    jobs = plan(resolve_runtime(cfg), load_dataset(cfg.data))
    # grouped: the 30 attack jobs (50 combinations) are one AttackGroupJob
    assert len(jobs) == 21 + 21 + (1 if grouped else 30)
    assert sum(len(j.parts()) for j in jobs) == 72
    assert any(isinstance(j, AttackGroupJob) for j in jobs) == grouped
    keys = {j.key for j in jobs}
    assert len(keys) == len(jobs)
    for j in jobs:
        blob = pickle.dumps(j)
        assert len(blob) < 20_000 and pickle.loads(blob).key == j.key
        assert all(d in keys for d in j.deps)
        # every dependency comes earlier in the plan
        assert all(d in {x.key for x in jobs[: jobs.index(j)]} for d in j.deps)


@pytest.mark.determinism
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_grouped_attacks_write_what_single_jobs_write(smoke_run, smoke_cfg, tmp_path, attack):
    """eval.group_attacks runs the 30 attack jobs in big batches (each model loaded once, the
    balanced model's images of all ten classes attacked in one pass); every job's artifacts
    are bit for bit what the job writes alone, PGD's seeded random starts included."""
    import dataclasses

    from advimb.data.sources import load_dataset
    from advimb.study.jobs.evaluate import AttackJob, run_attacks
    from advimb.study.plan import plan

    cfg = dataclasses.replace(
        smoke_cfg,
        attack=dataclasses.replace(smoke_cfg.attack, name=attack, eps=0.03),
        eval=dataclasses.replace(smoke_cfg.eval, group_attacks="off"),
    )
    jobs = [j for j in plan(resolve_runtime(cfg), load_dataset(cfg.data)) if isinstance(j, AttackJob)]
    runs = {}
    for mode in ("single", "grouped"):
        run = tmp_path / mode
        shutil.copytree(Path(smoke_run["run_dir"]) / "models", run / "models")
        if mode == "single":
            for j in jobs:
                j.run(run)
        else:
            run_attacks(jobs, run, progress=False)
        assert all(j.status(run) == "done" for j in jobs)
        runs[mode] = run
    for j in jobs:
        a = json.loads(j.marker(runs["single"]).read_text())
        b = json.loads(j.marker(runs["grouped"]).read_text())
        assert a["combinations"] == b["combinations"], j.name
        with (
            np.load(j.marker(runs["single"]).with_suffix(".npz")) as za,
            np.load(j.marker(runs["grouped"]).with_suffix(".npz")) as zb,
        ):
            assert sorted(za.files) == sorted(zb.files)
            for f in za.files:
                assert np.array_equal(za[f], zb[f]), (j.name, f)


def test_any_image_folder_dataset_runs_the_study(tmp_path):
    """Three classes of 16x16 PNGs: the same study, 7 models and 15 combinations."""
    from PIL import Image

    from advimb.config.io import parse_assignment
    from advimb.config.presets import resolve_config

    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 10)):
        for i, c in enumerate(("circle", "square", "stripe")):
            (tmp_path / "shapes" / split / c).mkdir(parents=True)
            for j in range(n):
                img = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
                img[..., i] += 150
                Image.fromarray(img).save(tmp_path / "shapes" / split / c / f"{j}.png")
    sets = [
        "data.source=folder",
        "imbalance.classes=[]",
        "imbalance.majority_count=20",
        "imbalance.minority_count=5",
        "model.widths=[4, 8, 8]",
        "model.fc=16",
        "train.max_epochs=2",
        "train.lr=1e-3",
        "eval.test_per_class=0",
    ]
    cfg = resolve_config(
        "quick", overrides=[{"data": {"dir": str(tmp_path / "shapes")}}] + [parse_assignment(s) for s in sets], env={}
    )
    res = run_study(cfg, tmp_path / "run", progress=False)
    run = Path(res["run_dir"])
    assert len(list((run / "models").glob("*/weights.pt"))) == 7
    lines = (run / "tables" / "table1.csv").read_text().splitlines()
    assert [x.split(",")[0] for x in lines[1:]] == ["circle", "square", "stripe", "average"]
    assert json.loads((run / "manifest.json").read_text())["dataset"]["classes"] == ["circle", "square", "stripe"]


def test_precision_auto_is_resolved_into_the_run_config(smoke_cfg, tmp_path):
    """train.precision='auto' becomes what the device runs natively before anything is
    written; the run folder records the resolved value, and a rerun asking for the other
    precision is refused (results would mix)."""
    import dataclasses

    from advimb.config.io import load_toml
    from advimb.devices import bf16_native, resolve_device, resolve_precision
    from advimb.errors import UserError

    cpu = resolve_device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    expected = "bf16" if bf16_native(cpu) else "fp32"
    assert resolve_precision("auto", cpu) == expected
    cfg = dataclasses.replace(
        smoke_cfg, train=dataclasses.replace(smoke_cfg.train, precision="auto", device="cpu", max_epochs=1)
    )
    res = run_study(cfg, tmp_path / "run", progress=False)
    run = Path(res["run_dir"])
    assert load_toml(run / "config.toml")["train"]["precision"] == expected
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["environment"]["bf16_native"] == bf16_native(cpu)
    other = "fp32" if expected == "bf16" else "bf16"
    with pytest.raises(UserError, match=f"train.precision: '{expected}' -> '{other}'"):
        run_study(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=other)), run, progress=False)


def test_a_file_replaced_by_a_duplicate_task_is_caught(smoke_run, smoke_cfg, tmp_path, monkeypatch):
    """Markers record the bytes *this* task wrote: if a duplicate task (another thread here,
    another worker on a cluster) replaces a file with other bytes before the marker is
    written, the job raises ArtifactRace, counts as unfinished, and a rerun repairs it."""
    import threading

    from advimb import artifacts
    from advimb.data.sources import load_dataset
    from advimb.study.jobs.base import ArtifactRace
    from advimb.study.jobs.evaluate import CleanEvalJob
    from advimb.study.plan import plan

    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    job = next(j for j in plan(resolve_runtime(smoke_cfg), load_dataset(smoke_cfg.data)) if isinstance(j, CleanEvalJob))
    npz = job.marker(run).with_suffix(".npz")
    real = artifacts.write_json

    def duplicate_writes_first(path, obj):
        if Path(path) == job.marker(run):  # the other task's npz lands just before our marker
            t = threading.Thread(target=artifacts.write_npz, args=(npz,), kwargs={"other": np.arange(3)})
            t.start()
            t.join()
        real(path, obj)

    monkeypatch.setattr(artifacts, "write_json", duplicate_writes_first)
    with pytest.raises(ArtifactRace, match="missing or corrupt"):
        job.run(run)
    monkeypatch.setattr(artifacts, "write_json", real)
    assert job.status(run) != "done"
    job.run(run)
    assert job.status(run) == "done"


# ----------------------------------------------------------------------------- protocol switches end to end


def _run(tmp_path, name, *sets, preset="smoke"):
    from advimb.cli import main

    out = tmp_path / name
    args = [
        "run",
        "--preset",
        preset,
        "--no-progress",
        "--no-report",
        "--out",
        str(out),
        "--set",
        "imbalance.classes=['class3', 'class5']",
    ]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return out


def test_validation_on_the_test_set_early_stops_on_it(tmp_path):
    """train.validation = 'test' (the authors' leak): no validation split, and the kept
    epoch's validation accuracy is the kept model's clean test accuracy."""
    run = _run(tmp_path, "leak", "train.validation='test'")
    info = json.loads((run / "scenarios" / "under-class3.json").read_text())
    assert info["validation"] == "test" and info["n_val"] == 0 and info["n_train"] == info["n_selected"]
    for slug in ("balanced", "under-class3"):
        meta = json.loads((run / "models" / slug / "meta.json").read_text())
        best = meta["history"][meta["best_epoch"] - 1]
        clean = json.loads((run / "eval" / "clean" / f"{slug}.json").read_text())
        assert best["val_accuracy"] == pytest.approx(clean["accuracy"], abs=1e-6)


def test_balanced_validation_holds_out_alike_from_every_class(smoke_run, tmp_path):
    """train.validation = 'balanced': split's training images, and of its held-out images as
    many per class as the smallest class has (the rest recorded as unused); the balanced
    scenario is split exactly, so its model and job key are split's."""
    from advimb.config.presets import resolve_config
    from advimb.data.sources import load_dataset
    from advimb.study.jobs.train import TrainJob
    from advimb.study.plan import plan

    run = _run(tmp_path, "balval", "train.validation='balanced'")
    split = Path(smoke_run["run_dir"])
    for slug, minority in (("under-class3", 1), ("over-class5", 1), ("balanced", 5)):
        info = json.loads((run / "scenarios" / f"{slug}.json").read_text())
        assert info["validation"] == "balanced" and info["val_per_class"] == [minority] * 10, slug
        ref = json.loads((split / "scenarios" / f"{slug}.json").read_text())
        assert info["train_per_class"] == ref["train_per_class"]  # the same training images
        assert info["n_held_out_unused"] == ref["n_val"] - info["n_val"]
        with np.load(run / "scenarios" / f"{slug}.npz") as a, np.load(split / "scenarios" / f"{slug}.npz") as b:
            assert np.array_equal(a["train"], b["train"])
            assert set(a["val"]) | set(a["held_out_unused"]) == set(b["val"])
    a = json.loads((run / "models" / "balanced" / "meta.json").read_text())
    b = json.loads((split / "models" / "balanced" / "meta.json").read_text())
    assert a["history"] == [{**h, "seconds": a["history"][i]["seconds"]} for i, h in enumerate(b["history"])]
    keys = {}
    for v in ("split", "balanced"):
        cfg = resolve_runtime(resolve_config("smoke", overrides=[{"train": {"validation": v}}], env={}))
        keys[v] = {
            p.scenario.name(p.classes): p.key
            for j in plan(cfg, load_dataset(cfg.data))
            for p in j.parts()
            if isinstance(p, TrainJob)
        }
    assert keys["split"]["balanced"] == keys["balanced"]["balanced"]
    assert keys["split"]["under:class3"] != keys["balanced"]["under:class3"]


def test_per_channel_normalisation_uses_the_training_sets_statistics(tmp_path):
    from advimb.config.presets import resolve_config
    from advimb.data.sources import load_dataset

    run = _run(tmp_path, "norm", "model.normalize='per_channel'")
    ds = load_dataset(resolve_config("smoke", env={}).data)
    with np.load(run / "scenarios" / "under-class3.npz") as z:
        x = ds.x_train[z["train"]].astype(np.float64) / 255
    state = torch.load(run / "models" / "under-class3" / "weights.pt", weights_only=True)
    assert np.allclose(state["normalize.mean"].flatten().numpy(), x.mean((0, 1, 2)), atol=1e-5)
    assert np.allclose(state["normalize.std"].flatten().numpy(), x.std((0, 1, 2), ddof=1), atol=1e-4)


def test_hflip_except_over_flips_all_but_the_over_sampled_models(tmp_path):
    run = _run(tmp_path, "flips", "train.augment='hflip_except_over'")
    augment = {p.parent.name: json.loads(p.read_text())["augment"] for p in run.glob("models/*/meta.json")}
    assert augment == {
        "balanced": True,
        "under-class3": True,
        "under-class5": True,
        "over-class3": False,
        "over-class5": False,
    }


def test_the_faithful_preset_end_to_end(tmp_path):
    """The authors' protocol at smoke scale: their VGG (dropout), the test set as validation,
    first-N selection, flips except for over-sampled models, sign(0) = +1 and no clipping."""
    run = _run(
        tmp_path,
        "faithful",
        "data.source='synthetic'",
        "imbalance.majority_count=50",
        "imbalance.minority_count=10",
        "model.widths=[4, 8, 8]",
        "model.fc=16",
        "train.max_epochs=2",
        "train.precision='fp32'",
        preset="faithful",
    )
    cfg = (run / "config.toml").read_text()
    assert 'preset = "faithful"' in cfg and 'name = "vgg_authors"' in cfg and 'sign_zero = "plus"' in cfg
    assert json.loads((run / "scenarios" / "under-class3.json").read_text())["selection"] == "first"
    state = torch.load(run / "models" / "balanced" / "weights.pt", weights_only=True)
    assert state["features.0.weight"].shape[0] == 4
    attack = json.loads((run / "eval" / "attack" / "balanced__class3.json").read_text())
    assert attack["attack"]["clip"] is False and attack["attack"]["sign_zero"] == "plus"
    with np.load(run / "eval" / "attack" / "balanced__class3.npz") as z:
        x = z["example_clean"].astype(np.float64).transpose(0, 3, 1, 2) / 255
        delta = z["example_adversarial"] - x
    assert np.allclose(np.abs(delta), 0.01, atol=1e-5)  # every pixel moved by eps: sign(0) = +1, no clip
    assert (run / "tables" / "table1.csv").exists()


def test_grad_label_and_target_come_from_the_config(tmp_path):
    """attack.target makes the attack targeted (descent on the target's loss) and
    attack.grad_label picks the label whose loss is ascended; both reach the attack and its key."""
    from advimb.attacks.evaluate import attack_kwargs, attack_spec
    from advimb.config.sections import AttackConfig

    classes = tuple(f"class{i}" for i in range(10))
    assert attack_kwargs(AttackConfig(target="class5"), classes)["target"] == 5
    assert attack_kwargs(AttackConfig(grad_label="class2"), classes)["grad_label"] == 2
    assert attack_spec(AttackConfig(target="class5"))["target"] == "class5"
    plain, targeted = _run(tmp_path, "plain"), _run(tmp_path, "targeted", "attack.target='class5'")
    a = json.loads((plain / "eval" / "attack" / "balanced__class3.json").read_text())
    b = json.loads((targeted / "eval" / "attack" / "balanced__class3.json").read_text())
    assert b["attack"]["target"] == "class5" and a["job_key"] != b["job_key"]
    to5 = {
        name: int((np.load(run / "eval" / "attack" / "balanced__class3.npz")["pred_adv__balanced"] == 5).sum())
        for name, run in (("plain", plain), ("targeted", targeted))
    }
    assert to5["targeted"] > to5["plain"]  # the targeted attack sends more cat-like class3 images to class5


def test_a_run_folder_refuses_a_different_dataset(tmp_path, capsys):
    """The same config on data whose content changed (one image replaced) is refused with the
    two fingerprints, and the finished run is untouched."""
    from PIL import Image

    from advimb.cli import main

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for j in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{j}.png")
    args = [
        "run",
        "--preset",
        "smoke",
        "--no-progress",
        "--no-report",
        "--data-dir",
        str(root),
        "--set",
        "data.source='folder'",
        "--set",
        "imbalance.majority_count=8",
        "--set",
        "imbalance.minority_count=2",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 0
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "a" / "0.png")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "was run on a dataset with fingerprint" in err and "use the same data to resume" in err and "\n" not in err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()} == files


def test_advimb_tables_rebuilds_the_tables(smoke_run, tmp_path, capsys):
    from advimb.cli import main

    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    before = _tables(run)
    shutil.rmtree(run / "tables")
    assert main(["tables", str(run)]) == 0
    out = capsys.readouterr().out
    assert _tables(run) == before
    assert out.startswith("Table 1 - accuracy (%)") and "balanced model, clean test accuracy" in out
    assert main(["tables", str(tmp_path / "none")]) == 2


def test_scenario_records_rebuild_with_todays_code_and_only_where_the_images_are_the_same(smoke_run, tmp_path):
    """``rebuild_scenario_records``: a record an earlier version wrote wrongly is rewritten (and
    only it), a second pass rewrites nothing, and a stored selection today's code does not make
    stops it before anything is written."""
    import json
    import shutil

    import numpy as np
    import pytest

    from advimb.errors import UserError
    from advimb.study.records import rebuild_scenario_records

    run = tmp_path / "run"
    shutil.copytree(smoke_run["run_dir"], run)
    wrong = run / "scenarios" / "under-class3.json"
    truth = json.loads(wrong.read_text())
    wrong.write_text(json.dumps({**truth, "selection": "first"}))
    assert rebuild_scenario_records(run) == [wrong]
    assert json.loads(wrong.read_text()) == truth
    assert rebuild_scenario_records(run) == []
    npz = run / "scenarios" / "over-class1.npz"
    with np.load(npz) as z:
        arrays = dict(z)
    np.savez(npz, **{**arrays, "indices": arrays["indices"][::-1]})
    wrong.write_text(json.dumps({**truth, "selection": "first"}))
    with pytest.raises(UserError, match="selects other images for over:class1"):
        rebuild_scenario_records(run)
    assert json.loads(wrong.read_text())["selection"] == "first"  # nothing written

"""The report: figures, results.json, the page and its rendering in headless Chromium.

Built from a smoke-sized study on a 10-class image folder that uses CIFAR-10's class
names (synthetic gratings saved as PNGs): the cat/dog analysis is exercised, and the paper's
numbers must NOT be shown (it is not CIFAR-10, nor the paper's counts); from a 4-class
64x64 folder named cat/dog/ship/truck; and from the synthetic smoke run. The report beside
the paper is tested on the published paper-scale run (tests/test_reproduction.py).
"""

import csv
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advimb.cli import main
from advimb.layout import slug

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FIGURES = {"table1", "fig1", "fig2", "fig3", "fig4", "fig6", "fig6b"}


@pytest.fixture(scope="module")
def cifar_named_run(tmp_path_factory):
    """`advimb run` (the CLI) on a CIFAR-named image folder: ends with a report."""
    from advimb.config.sections import SyntheticConfig
    from advimb.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("cifar-named")
    ds = make_synthetic(SyntheticConfig(classes=10, train_per_class=30, test_per_class=12, seed=1))
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / "data" / split / CIFAR[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i}.png")
    out = root / "run"
    code = main(
        [
            "run",
            "--preset",
            "smoke",
            "--no-progress",
            "--data-dir",
            str(root / "data"),
            "--set",
            "data.source='folder'",
            "--set",
            "imbalance.majority_count=25",
            "--set",
            "imbalance.minority_count=5",
            "--n-boot",
            "200",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def _results(run: Path) -> dict:
    def no_nan(x):
        raise AssertionError(f"results.json holds {x}: not strict JSON")

    return json.loads((run / "report" / "results.json").read_text(), parse_constant=no_nan)


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def _local_refs(html: str) -> list[str]:
    p = _Refs()
    p.feed(html)
    return [r for r in p.refs if not r.startswith("#")]


def test_run_ends_with_a_report(cifar_named_run, capsys):
    rep = cifar_named_run / "report"
    assert (rep / "index.html").is_file() and (rep / "results.json").is_file()
    res = _results(cifar_named_run)
    assert {f["id"] for f in res["figures"]} == FIGURES and res["figures_not_drawn"] == []
    assert res["table1"]["paper_comparable"] is False and res["paper_comparison"]["shown"] is False
    reasons = " ".join(res["paper_comparison"]["reasons"])
    assert "data.source is 'folder'" in reasons and "25 / 5 per majority / minority class" in reasons
    assert [r["class"] for r in res["table1"]["rows"]] == list(CIFAR)
    cat = next(r for r in res["table1"]["rows"] if r["class"] == "cat")
    assert cat["paper"] == {} and cat["difference"] == {}
    with open(cifar_named_run / "tables" / "table1.csv", newline="") as f:  # the page shows the table's numbers
        row = next(r for r in csv.DictReader(f) if r["class"] == "cat")
    for col, value in cat["measured"].items():
        assert value == pytest.approx(float(row[col]), abs=0.051), col
        assert cat["ci"][col] == pytest.approx([float(row[f"{col}_lo"]), float(row[f"{col}_hi"])], abs=0.051), col
    assert [c["id"] for c in res["claims"]["claims"]] == ["C1", "C2", "C3", "C4a", "C4b"]

    def sign_test(comparisons):  # the claims' rule, written out: every interval of a predicted-positive difference
        if not comparisons or any(x["lo"] is None for x in comparisons):
            return "not measurable"
        if any(x["hi"] < 0 for x in comparisons):
            return "not reproduced"
        return "reproduced" if all(x["lo"] > 0 for x in comparisons) else "inconclusive"

    for c in res["claims"]["claims"]:
        assert c["verdict"] == sign_test(c["comparisons"])
        shown = {"reproduced": "direction reproduced", "not reproduced": "direction not reproduced"}
        assert c["shown_as"] == ("floor effect" if c["floor_effect"] else shown.get(c["verdict"], c["verdict"]))
        assert c["magnitude"] == [] and c["magnitude_note"].startswith("no comparison with the paper")
    assert res["pair"]["classes"] == ["cat", "dog"]
    assert res["run"]["attack_words"] == "FGSM, eps 0.01, ascent on the true label"


def test_every_number_traces_to_an_artifact(cifar_named_run):
    """Table 1 in results.json equals the stored combinations; sources exist."""
    res = _results(cifar_named_run)
    for f in res["figures"]:
        for s in f["sources"]:
            assert s.startswith("advimb/") or (cifar_named_run / s).is_file(), s
    for f in sorted((cifar_named_run / "eval" / "attack").glob("*.json")):
        with np.load(f.with_suffix(".npz")) as z:  # the stored per-image predictions
            for c in json.loads(f.read_text())["combinations"]:
                col = f"{c['gradient']}_{c['model_kind']}"
                row = next(r for r in res["table1"]["rows"] if r["class"] == c["class"])
                pred = z[f"pred_adv__{slug(c['evaluated_model'])}"]
                assert row["measured"][col] == pytest.approx(100 * float((pred == c["class_index"]).mean()), abs=0.01)


def test_figures_are_valid_images_of_a_sensible_size(cifar_named_run):
    rep = cifar_named_run / "report"
    for f in _results(cifar_named_run)["figures"]:
        png = rep / f["files"]["png"]
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            w, h = im.size
            assert 500 <= w <= 4000 and 250 <= h <= 6000, (png.name, im.size)
            assert len(np.unique(np.asarray(im.convert("L")))) > 10, f"{png.name} looks blank"
        ET.parse(rep / f["files"]["svg"])  # well-formed SVG
        assert (rep / f["files"]["pdf"]).read_bytes()[:5] == b"%PDF-"


def test_page_references_only_files_that_exist(cifar_named_run):
    rep = cifar_named_run / "report"
    html = (rep / "index.html").read_text()
    refs = _local_refs(html)
    assert refs, "the page references no files"
    for r in refs:
        assert "://" not in r, f"the page reaches outside its folder: {r}"
        assert (rep / r).is_file(), f"the page references a missing file: {r}"
    for f in _results(cifar_named_run)["figures"]:
        assert f["files"]["png"] in refs
    for word in (
        "C1",
        "C4a",
        "C4b",
        "Configuration",
        "Manifest",
        "No comparison with the paper",
        "attack: FGSM, eps 0.01, ascent on the true label",
        "sign test",
    ):
        assert word in html
    for word in ("Notes on the paper", "25.8%", "this run beside the paper", '"eps": 0.01'):
        assert word not in html


def test_report_command_and_bad_input(cifar_named_run, capsys, tmp_path):
    assert main(["report", str(cifar_named_run), "--n-boot", "200", "--pair", "automobile,truck"]) == 0
    out = capsys.readouterr().out
    assert "Table 1" in out and "C1 " in out and "C4a " in out and "C4b " in out
    assert "no comparison with the paper: " in out and " / " not in out.split("Table 1")[1].split("average")[0]
    assert _results(cifar_named_run)["pair"]["classes"] == ["automobile", "truck"]
    for argv, msg in (
        (["report", str(tmp_path / "nope")], "does not exist"),
        (["report", str(cifar_named_run), "--pair", "cat,zebra"], "unknown class 'zebra'"),
        (["report", str(cifar_named_run), "--n-boot", "5"], "too small"),
        (["report", str(cifar_named_run), "--pair", "cat,dog,bird"], "must name two classes"),
        (["report", str(tmp_path)], "holds no evaluation results"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("advimb: error:") and msg in err and "\n" not in err


def test_report_of_a_non_cifar_run(smoke_run):
    from advimb.report.build import build_report

    res = build_report(smoke_run["run_dir"], n_boot=200)
    assert res["table1"]["paper_comparable"] is False
    assert res["table1"]["average"]["paper"] == {}
    assert "not CIFAR-10's ten" in " ".join(res["paper_comparison"]["reasons"])
    html = (Path(smoke_run["run_dir"]) / "report" / "index.html").read_text()
    assert "No comparison with the paper" in html and "not CIFAR-10&#39;s ten" in html


def test_four_classes_named_like_cifar_get_no_paper_comparison(tmp_path, capsys):
    """cat/dog/ship/truck at 64x64: the names match CIFAR-10's, the setting does not, so the
    paper's numbers are shown nowhere - page, results.json, terminal - and each says why."""
    classes = ("cat", "dog", "ship", "truck")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        for i, c in enumerate(classes):
            d = tmp_path / "data" / split / c
            d.mkdir(parents=True)
            for j in range(n):
                img = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
                img[8 * i : 8 * i + 16, :, i % 3] = 230
                Image.fromarray(img).save(d / f"{j}.png")
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--preset",
                "smoke",
                "--no-progress",
                "--data-dir",
                str(tmp_path / "data"),
                "--set",
                "data.source='folder'",
                "--set",
                "imbalance.majority_count=10",
                "--set",
                "imbalance.minority_count=3",
                "--n-boot",
                "200",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    term = capsys.readouterr().out
    res = _results(out)
    assert res["paper_comparison"]["shown"] is False and res["table1"]["paper_comparable"] is False
    reasons = " ".join(res["paper_comparison"]["reasons"])
    assert "cat, dog, ship, truck (4), not CIFAR-10's ten" in reasons and "3x64x64" in reasons
    assert all(r["paper"] == {} for r in [*res["table1"]["rows"], res["table1"]["average"]])
    assert all(c["magnitude"] == [] for c in res["claims"]["claims"])
    assert "advimb/reference/possas_zhou.json" not in res["table1"]["sources"]
    assert "no comparison with the paper: the dataset's classes are cat, dog, ship, truck (4)" in term
    assert "(this run / paper)" not in term
    html = (out / "report" / "index.html").read_text()
    assert "No comparison with the paper" in html and "Notes on the paper" not in html


# ----------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_page_renders_in_headless_chromium(cifar_named_run, chromium, tmp_path):
    from conftest import render_in_chromium

    shot = tmp_path / "report.png"
    problems, broken, n_images, width = render_in_chromium(chromium, cifar_named_run / "report" / "index.html", shot)
    assert not problems, problems
    assert not broken, f"images that did not load: {broken}"
    assert n_images == len(FIGURES)
    assert width <= 1366, "the page scrolls sideways on a laptop screen"
    with Image.open(shot) as im:
        assert im.size[0] == 1366 and im.size[1] > 3000


def test_a_run_folder_with_missing_results_is_reported_not_averaged(smoke_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(smoke_run["run_dir"], run)
    (run / "eval" / "attack" / "under-class3__class3.json").unlink()
    (run / "eval" / "clean" / "over-class7.json").unlink()
    before = (run / "tables" / "table1.csv").read_text()
    for argv in (["tables", str(run)], ["report", str(run), "--n-boot", "200"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "is incomplete: 2 result(s) of the grid its config asks for are missing" in err
        assert "class3 images attacked with under:class3's gradient, classified by under:class3" in err
        assert "clean evaluation of over:class7" in err and "\n" not in err
    assert (run / "tables" / "table1.csv").read_text() == before  # nothing rebuilt over fewer classes


def test_a_figure_that_cannot_be_drawn_says_why(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--preset",
                "smoke",
                "--no-progress",
                "--out",
                str(out),
                "--n-boot",
                "200",
                "--set",
                "eval.examples=0",
                "--set",
                "imbalance.classes=['class3', 'class5']",
            ]
        )
        == 0
    )
    res = _results(out)
    assert [f["id"] for f in res["figures_not_drawn"]] == ["fig3"]
    assert "eval.examples = 0" in res["figures_not_drawn"][0]["reason"]
    assert "fig3" not in {f["id"] for f in res["figures"]}
    html = (out / "report" / "index.html").read_text()
    assert "Fig. 3: adversarial examples</b> is not drawn: the run stored no example images" in html
    assert sorted(res["pair"]["classes"]) == ["class3", "class5"]  # chosen among the studied classes


def test_an_undefined_average_says_why():
    from advimb.report.html import _rel_avg

    res = {
        "relative_difference": {
            "average": {"under": None, "balanced": 61.234},
            "undefined": {"under": ["cat", "dog"], "balanced": []},
        }
    }
    assert _rel_avg(res, "balanced") == "61.2%"
    assert _rel_avg(res, "under") == "undefined: clean accuracy 0 for cat, dog"

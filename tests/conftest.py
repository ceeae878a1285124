"""Shared fixtures. Real-data tests read CIFAR-10 from ``$ADVIMB_TEST_DATA`` or
``../shared/data`` beside the repository; when it is missing they FAIL with a message
saying where to put it, unless the run says the data is absent (``--no-real-data`` or
``ADVIMB_NO_REAL_DATA=1``), in which case they are skipped with that reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--no-real-data", action="store_true", help="the real CIFAR-10 copy is absent: skip real-data tests (reported)"
    )
    parser.addoption("--no-browser", action="store_true", help="Chromium is absent: skip the browser test (reported)")


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Decoded-array cache for the whole session (ADVIMB_CACHE wins when set)."""
    if not os.environ.get("ADVIMB_CACHE"):
        os.environ["ADVIMB_CACHE"] = str(tmp_path_factory.mktemp("advimb-cache"))
    yield os.environ["ADVIMB_CACHE"]


@pytest.fixture(scope="session")
def real_data_dir(request) -> Path:
    path = Path(os.environ.get("ADVIMB_TEST_DATA", DEFAULT_DATA))
    if path.is_dir() and any(path.iterdir()):
        return path
    if request.config.getoption("--no-real-data") or os.environ.get("ADVIMB_NO_REAL_DATA") == "1":
        pytest.skip(f"real CIFAR-10 declared absent (--no-real-data); expected at {path}")
    pytest.fail(
        f"real CIFAR-10 not found at {path}: put cifar10-jpeg.tar.xz (or CIFAR-10 in any "
        "supported layout) there or set ADVIMB_TEST_DATA=DIR; if the data is absent on purpose, "
        "run pytest --no-real-data",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def smoke_cfg():
    from advimb.config.presets import resolve_config

    return resolve_config("smoke", env={})


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, smoke_cfg):
    """One smoke study, shared by the tests that only read its artifacts."""
    from advimb.study.run import run_study

    out = tmp_path_factory.mktemp("smoke-run")
    res = run_study(smoke_cfg, out, progress=False, argv=["test"])
    return res


@pytest.fixture(scope="session")
def chromium(request) -> str:
    """Path of headless Chromium for the browser tests; fails (does not skip) when it is
    missing unless the run says so (``--no-browser`` / ``ADVIMB_NO_BROWSER=1``)."""
    import shutil

    path = os.environ.get("ADVIMB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if request.config.getoption("--no-browser") or os.environ.get("ADVIMB_NO_BROWSER") == "1":
        pytest.skip("Chromium declared absent (--no-browser)")
    pytest.fail(
        "Chromium not found: install Debian's chromium (apt-get install chromium, as .ci/run does) or "
        "set ADVIMB_CHROMIUM=/path/to/chromium; if it is absent on purpose, run pytest --no-browser",
        pytrace=False,
    )


def render_in_chromium(exe: str, page: Path, shot: Path) -> tuple[list[str], list[str], int, int]:
    """Open ``page`` in headless Chromium (laptop viewport), screenshot it (screen and
    print media); returns (console errors/warnings, failed or network requests and page
    errors), images that did not load, the number of images and the page's scroll width."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = browser.new_page(viewport={"width": 1366, "height": 768})
            pg.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
            )
            pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            pg.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            pg.on(
                "request",
                lambda r: problems.append(f"network request: {r.url}") if not r.url.startswith("file://") else None,
            )
            pg.goto(Path(page).resolve().as_uri(), wait_until="load")
            broken = pg.evaluate(
                "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
            )
            n_images = pg.evaluate("document.images.length")
            width = pg.evaluate("document.documentElement.scrollWidth")
            pg.screenshot(path=str(shot), full_page=True)
            pg.emulate_media(media="print")  # the print stylesheet applies without errors
            pg.screenshot(path=str(shot.with_name(shot.stem + "-print.png")), full_page=True)
        finally:
            browser.close()
    return problems, broken, n_images, width


@pytest.fixture(scope="session")
def reproduction_archive(request) -> Path:
    """The archive the published paper-scale run folder comes from (../shared/reproduction),
    to check the committed copy against; fails when missing unless the run declares the
    shared data absent (``--no-real-data``)."""
    path = Path(
        os.environ.get(
            "ADVIMB_REPRODUCTION_ARCHIVE",
            REPO.parent / "shared" / "reproduction" / "h200-paper-2026-11-26" / "run-without-weights.tgz",
        )
    )
    if path.is_file():
        return path
    if request.config.getoption("--no-real-data") or os.environ.get("ADVIMB_NO_REAL_DATA") == "1":
        pytest.skip(f"shared data declared absent (--no-real-data); expected the archive at {path}")
    pytest.fail(
        f"the published run's archive is not at {path}: put ../shared beside the repository or set "
        "ADVIMB_REPRODUCTION_ARCHIVE=FILE; if it is absent on purpose, run pytest --no-real-data",
        pytrace=False,
    )


def wait_for(cond, timeout: float, what: str) -> None:
    """Poll ``cond`` until true; fail the test after ``timeout`` seconds, saying what it waited for."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def verified_marker_files(run: Path) -> int:
    """Check every file the run's clean-evaluation and model markers recorded and that is still
    in the folder against its recorded size and sha256; return how many were checked."""
    import json

    from advimb.artifacts import verify_record

    checked = 0
    for marker in sorted(run.glob("eval/clean/*.json")) + sorted(run.glob("models/*/meta.json")):
        for rel, rec in json.loads(marker.read_text())["files"].items():
            if (run / rel).exists():
                assert verify_record(run / rel, rec), rel
                checked += 1
    return checked

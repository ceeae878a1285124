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
    parser.addoption("--no-real-data", action="store_true",
                     help="the real CIFAR-10 copy is absent: skip real-data tests (reported)")
    parser.addoption("--no-browser", action="store_true",
                     help="Chromium is absent: skip the browser test (reported)")


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
        "run pytest --no-real-data", pytrace=False)


@pytest.fixture(scope="session")
def smoke_cfg():
    from advimb.presets import resolve_config

    return resolve_config("smoke", env={})


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, smoke_cfg):
    """One smoke study, shared by the tests that only read its artifacts."""
    from advimb.study import run_study

    out = tmp_path_factory.mktemp("smoke-run")
    res = run_study(smoke_cfg, out, progress=False, argv=["test"])
    return res

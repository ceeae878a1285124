"""The package's code, its tests, benchmarks and docs scripts pass ruff's lint and are in
``ruff format``'s layout (``[tool.ruff]`` in pyproject.toml), and ``mypy`` finds no type error in
``src/`` (``[tool.mypy]``), so CI (which runs pytest) catches what a linter and a type checker
catch as it happens. The same checks run before each commit with ``pre-commit install``
(.pre-commit-config.yaml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ["src", "tests", "benchmarks", "docs"]


def _run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_ruff_finds_nothing_in_the_code():
    res = _run("ruff", "check", "--no-cache", *CODE)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_code_is_in_ruff_formats_layout():
    res = _run("ruff", "format", "--check", "--no-cache", *CODE)
    assert res.returncode == 0, "run `ruff format src tests benchmarks docs`:\n" + res.stdout + res.stderr


def test_mypy_finds_no_type_error_in_the_package():
    res = _run("mypy", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr

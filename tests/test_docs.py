"""The documentation site's pages that are generated from the code are current, and every page
under docs/ is in the site's navigation (``mkdocs build --strict`` in .ci/run fails on a broken
link, anchor or a page left out of the navigation; these tests need no mkdocs)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_configuration_reference_is_generated_from_the_current_config():
    res = subprocess.run(
        [sys.executable, "docs/reference/gen_config.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_configuration_reference_names_every_key_of_every_section():
    from dataclasses import fields, is_dataclass

    from advimb.config.sections import ExperimentConfig

    page = (ROOT / "docs" / "reference" / "config.md").read_text()

    def walk(obj, prefix):
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                assert f"## `[{prefix}{f.name}]`" in page, f"section [{prefix}{f.name}] missing"
                walk(value, f"{prefix}{f.name}.")
            else:
                assert f"| `{f.name}`" in page, f"key {prefix}{f.name} missing"

    walk(ExperimentConfig(), "")
    assert "`random`, `first`" in page  # a closed setting lists its choices (imbalance.selection)
    assert "quick: `2500`" in page  # and the presets that set it (imbalance.majority_count)


def test_every_page_under_docs_is_in_the_sites_navigation():
    nav = set(re.findall(r":\s*([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE))
    pages = {
        str(p.relative_to(ROOT / "docs"))
        for p in (ROOT / "docs").rglob("*.md")
        if "tables" not in p.relative_to(ROOT / "docs").parts
    }
    assert pages == nav, f"in docs/ but not in mkdocs.yml's nav: {pages - nav}; in the nav only: {nav - pages}"

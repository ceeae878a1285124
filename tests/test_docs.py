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


def _guide() -> str:
    return " ".join(p.read_text() for p in sorted((ROOT / "docs" / "guide").glob("*.md")))


def test_the_guide_names_every_registered_name():
    """Every model, attack, defence, data source, long-tail profile and preset a user can name is
    named in the guide (so a new registry entry comes with its page line)."""
    from advimb.attacks.core import ATTACKS
    from advimb.config.presets import PRESETS
    from advimb.data.imbalance import PROFILES
    from advimb.data.sources import SOURCES
    from advimb.models import MODELS
    from advimb.training.defences import DEFENCES

    guide = _guide()
    sets = {
        "models": MODELS.names(),
        "attacks": ATTACKS.names(),
        "defences": DEFENCES.names(),
        "sources": SOURCES.names(),
        "profiles": PROFILES.names(),
        "presets": list(PRESETS),
    }
    missing = {
        k: [n for n in v if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", guide)] for k, v in sets.items()
    }
    assert not any(missing.values()), missing
    assert all(len(v) >= 3 for v in sets.values())  # the registries are the real ones, not empty


def test_the_guide_and_readme_name_every_command_line_option():
    import argparse

    from advimb.cli import _parser

    text = _guide() + (ROOT / "README.md").read_text()
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = {
        cmd: [o for a in sp._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
        for cmd, sp in sub.choices.items()
    }
    missing = {
        cmd: [o for o in opts if not re.search(re.escape(o) + r"(?![\w-])", text)] for cmd, opts in missing.items()
    }
    assert set(missing) >= {"run", "sweep", "report", "tables", "list"}
    assert not any(missing.values()), missing


def test_the_development_guide_names_every_module():
    """docs/guide/development.md's map of the package names every module of every folder."""
    page = (ROOT / "docs" / "guide" / "development.md").read_text()
    tree = page[page.index("advimb/\n") :].split("```")[0]
    src = ROOT / "src" / "advimb"
    modules = {p.stem for p in src.rglob("*.py") if not p.stem.startswith("__")}
    missing = sorted(m for m in modules if not re.search(rf"(?<![\w]){m}(?![\w])", tree))
    assert len(modules) > 50 and not missing, missing

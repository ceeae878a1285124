"""The package's shape: no import cycle between its modules (imports inside functions count),
the layers of the pipeline imported only downwards, files short enough to read in one sitting
and functions that fit on a screen."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "advimb"

#: each package and the advimb packages it may import (its layer and the ones below)
LAYERS = {
    "errors": set(),
    "registry": {"errors"},
    "log": set(),
    "layout": set(),
    "artifacts": {"errors"},
    "devices": {"errors", "config"},
    "config": {"errors", "registry"},
    "scenario": {"config", "errors", "layout"},
    "data": {"config", "errors", "registry", "log", "layout", "artifacts", "devices", "scenario"},
    "models": {"config", "errors", "registry"},
    "attacks": {"config", "errors", "registry", "devices", "data"},
    "training": {"config", "errors", "registry", "log", "devices", "data", "attacks", "models", "scenario"},
    "results": {"config", "errors", "artifacts", "layout", "data", "scenario"},
    "study": {
        "config",
        "errors",
        "log",
        "layout",
        "artifacts",
        "devices",
        "data",
        "models",
        "attacks",
        "training",
        "results",
        "scenario",
    },
    "report": {"config", "errors", "artifacts", "layout", "results", "scenario"},
    "cli": {"config", "errors", "study", "results", "report", "models", "attacks", "data", "training", "scenario"},
    "api": {"config", "errors", "artifacts", "layout", "study", "results", "report", "scenario"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("advimb") and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and t != "advimb":
                    edges[m].add(t)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    mods = _modules()
    assert len(mods) > 40
    assert _cycle(_imports(mods)) is None


def test_layers_import_only_downwards():
    edges = _imports(_modules())
    wrong = []
    for m, targets in edges.items():
        layer = m.split(".")[1] if m != "advimb" else None
        if layer not in LAYERS:
            continue
        for t in targets:
            other = t.split(".")[1]
            if other != layer and other not in LAYERS[layer]:
                wrong.append(f"{m} imports {t}")
    assert not wrong, wrong


def test_the_results_and_the_report_need_no_torch():
    """Tables, claims and the report read stored artifacts only: building them imports no
    torch (so `advimb report` is light, and no model can sneak in)."""
    import subprocess
    import sys

    code = (
        "import sys, advimb.results.tables, advimb.results.claims, advimb.report.build; "
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr or r.stdout


def test_files_read_in_one_sitting_and_functions_fit_on_a_screen():
    long_files, long_functions = [], []
    for m, p in _modules().items():
        text = p.read_text()
        if len(text.splitlines()) > 400:
            long_files.append(m)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{m}.{node.name}")
    assert not long_files and not long_functions, (long_files, long_functions)


def test_every_package_says_what_it_owns():
    for p in SRC.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and len(doc) > 80, p

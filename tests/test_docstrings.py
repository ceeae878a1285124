"""Every cross-reference in the package's docstrings and comments names something that exists:
``:mod:``/``:func:``/``:class:``/... roles, ````advimb.x.y```` literals and ````name.py````
file names. A module renamed or removed without its mentions fails here."""

import importlib
import pkgutil
import re
from pathlib import Path

import advimb

SRC = Path(advimb.__file__).parent
ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|obj|exc):`~?([A-Za-z_][\w.]*)`")
LITERAL = re.compile(r"``(advimb(?:\.[A-Za-z_]\w*)+)``")
FILE = re.compile(r"``([a-z_]\w*\.py)``")
#: where a reference outside advimb points (resolved by import like advimb's own)
OUTSIDE = ("torch", "torchvision", "numpy", "pandas", "dask", "distributed", "torchattacks", "foolbox")


def _modules() -> list[str]:
    return ["advimb"] + [
        m.name for m in pkgutil.walk_packages(advimb.__path__, "advimb.") if m.name != "advimb.__main__"
    ]  # importing it runs the CLI


def _resolve(dotted: str, context) -> bool:
    """``dotted`` as a module, or an attribute path under one, or (undotted or relative) a name
    in ``context``'s namespace."""
    parts = dotted.split(".")
    if parts[0] == "advimb" or parts[0] in OUTSIDE:
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for p in parts[i:]:
                    obj = getattr(obj, p)
            except AttributeError:
                return False
            return True
        return False
    obj = context
    try:
        for p in parts:
            obj = getattr(obj, p)
    except AttributeError:
        return False
    return True


def test_every_docstring_reference_resolves():
    files = {p.name for p in SRC.rglob("*.py")}
    broken = []
    for name in _modules():
        mod = importlib.import_module(name)
        path = Path(mod.__file__)
        text = path.read_text()
        rel = path.relative_to(SRC.parent)
        for ref in ROLE.findall(text):
            if not _resolve(ref, mod):
                broken.append(f"{rel}: :role:`{ref}`")
        for ref in LITERAL.findall(text):
            if not _resolve(ref, mod):
                broken.append(f"{rel}: ``{ref}``")
        for ref in FILE.findall(text):
            if ref not in files:
                broken.append(f"{rel}: ``{ref}``")
    assert not broken, "references to nothing:\n" + "\n".join(broken)

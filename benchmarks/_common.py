"""What every benchmark script does with its result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(res: dict[str, Any], path: str | None, digits: int = 2) -> None:
    """Print ``res`` as one JSON line (floats rounded) and append it, unrounded, to ``path``."""
    print(json.dumps({k: (round(v, digits) if isinstance(v, float) else v) for k, v in res.items()}))
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(res) + "\n")


def trained_models(metas: list[Path]) -> list[tuple[int, int]]:
    """(training images, epochs trained) of each model whose ``models/<model>/meta.json`` is
    in ``metas``, from that file and its replicate's ``scenarios/<model>.json``."""
    out = []
    for meta in sorted(metas):
        scen = meta.parent.parent.parent / "scenarios" / f"{meta.parent.name}.json"
        out.append((json.loads(scen.read_text())["n_train"], json.loads(meta.read_text())["stopped_epoch"]))
    return out

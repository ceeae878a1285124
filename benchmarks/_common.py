"""What every benchmark script does with its result."""

from __future__ import annotations

import json
from typing import Any


def emit(res: dict[str, Any], path: str | None, digits: int = 2) -> None:
    """Print ``res`` as one JSON line (floats rounded) and append it, unrounded, to ``path``."""
    print(json.dumps({k: (round(v, digits) if isinstance(v, float) else v) for k, v in res.items()}))
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(res) + "\n")

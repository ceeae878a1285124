"""Seeds and hashes: one 31-bit seed per (base seed, labels) and the stable hash of JSON-able
values that job keys are made of. A leaf: imports nothing of advimb.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def derive_seed(base: int, *parts: Any) -> int:
    """A 31-bit seed derived from ``base`` and any labels: independent streams per job."""
    blob = json.dumps([base, *parts], default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF

"""One line of progress or warning for the user, printed above any progress bar. A leaf."""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"advimb: {msg}", file=sys.stderr)

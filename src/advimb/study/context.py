"""What the jobs of one study share in one process: :class:`StudyContext`.

A study's jobs all read the same dataset; on an accelerator each would otherwise copy it to
the device again. The context of the study this process runs now holds those copies, so
they live exactly as long as the study: the local executor leaves its study's context when
the study ends, and a Dask worker (which serves many studies) enters a new context at the
first task of another study, so it holds one study's tensors at a time. Loading the files
is cached apart, per process and by the files' sizes and mtimes
(:class:`advimb.data.cache.DatasetMemo`): that cache is about the files, not about a study,
and a notebook's second study on the same data reuses it.
"""

from __future__ import annotations

import torch

from advimb.data.dataset import Dataset

#: the dataset's arrays a job reads from the device
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


class StudyContext:
    """One study's shared state in this process: its run folder and the dataset's copies on
    each device its jobs used (at most ``size`` of them; beyond, the oldest goes)."""

    def __init__(self, run_dir: str = "", size: int = 2) -> None:
        self.run_dir = run_dir
        self.size = size
        self._arrays: dict[tuple[str, str], dict[str, torch.Tensor]] = {}

    def arrays(self, ds: Dataset, device: torch.device) -> dict[str, torch.Tensor]:
        """``ds`` as uint8 tensors on ``device``, copied there once for the study."""
        key = (ds.fingerprint, str(device))
        if key not in self._arrays:
            if len(self._arrays) >= self.size:
                self._arrays.pop(next(iter(self._arrays)))
            self._arrays[key] = {name: torch.from_numpy(getattr(ds, name)).to(device) for name in ARRAYS}
        return self._arrays[key]

    def held(self) -> int:
        """How many device copies of a dataset this context holds."""
        return len(self._arrays)

    def release(self) -> None:
        """Drop the device copies (the next job copies its data again)."""
        self._arrays.clear()


_CURRENT = [StudyContext()]


def current_study() -> StudyContext:
    """The context of the study this process runs now."""
    return _CURRENT[0]


def enter_study(run_dir: str) -> StudyContext:
    """This process runs a job of ``run_dir``'s study next: its context, a new one where that
    is another study than the last one's (whose device copies are released first)."""
    if _CURRENT[0].run_dir != run_dir:
        leave_study()
        _CURRENT[0] = StudyContext(run_dir)
    return _CURRENT[0]


def leave_study() -> None:
    """The study has ended here: its device copies go (a notebook runs many studies)."""
    _CURRENT[0].release()
    _CURRENT[0] = StudyContext()

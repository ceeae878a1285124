"""Every bit-identity and tolerance claim (the tests marked ``determinism``) rerun under other
CPU code paths of the libraries underneath, so that a claim that holds on one code path only
fails on every machine, not only on the one whose CPU takes the other path.

The libraries pick their kernels by CPU: MKL (the BLAS behind ``nn.Linear``) and oneDNN (the
convolutions) dispatch on the instruction sets and vendor, PyTorch's own vectorised kernels
(softmax, reductions, element-wise) on the instruction sets. An AMD EPYC and an Intel Xeon of
this machine kind take different paths; the variables below force other paths on any x86-64
CPU (read when each library starts, hence a fresh process per path):

- ``MKL_CBWR=COMPATIBLE``: MKL's conditional-numerical-reproducibility "compatible" path. On an
  AMD EPYC (AVX2) it sums a batch of 300 in another order than three batches of 100, as MKL's
  default path does on an Intel Xeon with AMX (which failed the grouped-attack test there);
- ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN's oldest convolution kernels;
- ``ATEN_CPU_CAPABILITY=default``: PyTorch's kernels without AVX2 / AVX-512.

Each variable must change the arithmetic here (the probe below), or the rerun would test
nothing; the claims are then rerun once with all three set (with the default run of the suite,
two code paths of every library). The claims rerun are the tests marked ``determinism`` and not ``slow``: grouped vs one
by one attack jobs (FGSM, PGD, torchattacks), resumed vs uninterrupted training (one by one
and stacked), stacked vs one by one, Dask vs local, the attacks against torchattacks and
Foolbox. Two slow ones run on the default path only, for CI's time: compiled vs eager (a
tolerance; about 2 minutes of compiling per path) and the study killed with SIGKILL and
resumed (end to end; its training resumes through the same checkpoints as the resume tests
rerun here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: each variable alone must change the arithmetic (the probe); the claims are rerun once with
#: all three set, so that every library underneath takes another path than the default run's
#: (one rerun rather than one per library: CI's time)
VARIABLES = {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}
CODE_PATHS = {"mkl-compatible+onednn-sse41+aten-default": VARIABLES}

#: a model's softmax over 300 images at once and in three batches of 100, and an input
#: gradient (FGSM's): their digests, and whether the two batchings agree bit for bit; at two
#: threads whatever the environment sets, so that the probe asks the same question everywhere
PROBE = """
import hashlib, torch
torch.set_num_threads(2)  # MKL's batch-size dependence below was seen at 2 threads (not at 1 on an Intel Xeon)
from advimb.config.sections import ModelConfig
from advimb.models import build_model
m = build_model(ModelConfig(widths=(16, 32, 64)), 10, (3, 32, 32), seed=0).eval().to(memory_format=torch.channels_last)
x = torch.rand(300, 3, 32, 32, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    a = torch.softmax(m(x), 1)
    b = torch.cat([torch.softmax(m(x[i:i + 100]), 1) for i in range(0, 300, 100)])
xg = x[:100].clone().requires_grad_(True)
torch.nn.functional.cross_entropy(m(xg), torch.zeros(100, dtype=torch.long), reduction="sum").backward()
h = lambda t: hashlib.sha256(t.detach().numpy().tobytes()).hexdigest()[:16]
print(h(a), h(xg.grad), torch.equal(a, b))
"""


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "PYTEST_"))
    }
    return {**env, **extra}


def _probe(extra: dict[str, str]) -> tuple[str, str, bool]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE], env=_env(extra), capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr
    a, g, same = r.stdout.split()
    return a, g, same == "True"


@pytest.fixture(scope="module")
def default_probe():
    return _probe({})


@pytest.mark.parametrize("var", list(VARIABLES))
def test_each_code_path_variable_changes_the_arithmetic(var, default_probe):
    probs, grad, _ = _probe({var: VARIABLES[var]})
    assert (probs, grad) != default_probe[:2], f"{var}={VARIABLES[var]} changed no float result here"


def test_mkls_compatible_path_sums_another_batch_size_in_another_order():
    """Why grouped attack jobs no longer batch across jobs: here, as on an Intel Xeon's default
    path, one batch of 300 and three of 100 give different probabilities."""
    assert _probe({"MKL_CBWR": "COMPATIBLE"})[2] is False


@pytest.mark.slow
@pytest.mark.parametrize("path", list(CODE_PATHS))
def test_determinism_claims_hold_on_every_cpu_code_path(path, tmp_path):
    extra = CODE_PATHS[path]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "determinism and not slow",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "t"),
            "-x",
            "tests",
        ],
        cwd=REPO,
        env=_env(extra),
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    tail = "\n".join(r.stdout.splitlines()[-25:])
    assert r.returncode == 0, f"determinism claims fail under {extra}:\n{tail}\n{r.stderr[-2000:]}"
    assert " passed" in tail and "skipped" not in tail.split("\n")[-1], tail

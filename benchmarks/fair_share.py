"""Does a study share the machine fairly? Training images/s of the ``faithful`` preset's model
(the authors' VGG, batch 32, the resolved precision) in one process alone and in two processes
side by side on the same cores, in each mode.

    python benchmarks/fair_share.py --seconds 20 --json benchmarks/results/fair_share.jsonl

Each process is a fresh ``python`` that imports advimb and trains the model on random uint8
images for ``--seconds``, counting the images of the steps that finished; an "epoch" here is
2,048 images. Modes (``--modes``):

- ``oversubscribed``: every process takes every core (torch's default thread count) with
  libgomp's default wait: advimb before issue 34.
- ``passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep at once).
- ``shared``: each process registers in :class:`advimb.devices.CoreShare` and takes its share
  of the cores (:func:`advimb.devices.fair_threads`) at every epoch, as a study does.

A fair share of two processes is half the rate alone each; the sum against the rate alone
says what sharing costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import os, sys, time, json
import torch
import torch.nn.functional as F
from advimb.api import build_config
from advimb.devices import fair_threads, resolve_runtime, share_cores, to_float
from advimb.models import build_model

cfg = resolve_runtime(build_config("faithful", device="cpu"))
model = build_model(cfg.model, 10, (3, 32, 32), seed=0).to(memory_format=torch.channels_last)
opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (2048, 32, 32, 3), dtype=torch.uint8, generator=g)
y = torch.randint(0, 10, (2048,), generator=g)
bs, seconds = cfg.train.batch_size, float(sys.argv[1])
dtype = torch.bfloat16 if cfg.train.precision == "bf16" else None
model.train()
shared = os.environ.get("FAIR_SHARE_MODE") == "shared"
share = share_cores(adapt=True)
if shared:
    share.__enter__()
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.01)
t0, n, i, used = time.perf_counter(), 0, 0, set()
while time.perf_counter() - t0 < seconds:
    j = (i * bs) % (2048 - bs)
    if j < bs:  # an epoch begins
        used.add(fair_threads())
    xb, yb = to_float(x[j:j + bs]), y[j:j + bs]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
        loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    n += bs
    i += 1
wall = time.perf_counter() - t0
if shared:
    share.__exit__()
print(json.dumps({"images": n, "seconds": wall, "images_per_s": n / wall,
                  "threads": sorted(used), "precision": cfg.train.precision}))
"""


MODES = ("oversubscribed", "passive", "shared")


def run(mode: str, copies: int, seconds: float) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["FAIR_SHARE_MODE"] = mode
    if mode == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    start = time.time() + 8  # every process imported and built before the clock starts
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(seconds), str(start)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(copies)
    ]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--json", default=None, help="append each result as a JSON line")
    a = ap.parse_args()
    from pathlib import Path

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown")
    modes = a.modes.split(",")
    if set(modes) - set(MODES):
        ap.error(f"unknown mode(s) {sorted(set(modes) - set(MODES))}; choose from {', '.join(MODES)}")
    import torch

    for mode in modes:
        one = run(mode, 1, a.seconds)[0]
        two = run(mode, 2, a.seconds)
        alone, pair = one["images_per_s"], [r["images_per_s"] for r in two]
        res = {
            "mode": mode,
            "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__,
            "precision": one["precision"],
            "alone_threads": one["threads"],
            "pair_threads": [r["threads"] for r in two],
            "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)),
            "alone_images_per_s": round(alone, 1),
            "pair_images_per_s": [round(p, 1) for p in pair],
            "pair_share_of_alone": [round(p / alone, 3) for p in pair],
            "pair_sum_over_alone": round(sum(pair) / alone, 3),
            "seconds": a.seconds,
        }
        print(json.dumps(res))
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()

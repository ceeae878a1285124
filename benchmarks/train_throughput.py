"""Training throughput: a naive loop (one model after another, advimb.train.fit) against
advimb's stacked trainer (advimb.stacked.fit_stacked), same models, data and device.

    python benchmarks/train_throughput.py --models 10 --images 2048 --widths 16,32,64
    python benchmarks/train_throughput.py --device cuda --models 21 --images 8192 --bf16

Prints images/s of each (training images processed per second, all models together) and
the ratio; one epoch per model after one warm-up epoch. Random uint8 images (speed does not
depend on content). Writes a JSON line with --json FILE.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from _common import emit  # benchmarks/ is on sys.path when a script runs

from advimb.config import ModelConfig, TrainConfig
from advimb.models import build_model
from advimb.stacked import fit_stacked
from advimb.train import fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=int, default=10)
    p.add_argument("--images", type=int, default=2048, help="training images per model")
    p.add_argument("--widths", default="32,64,128", help="conv widths (paper: 32,64,128)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in both trainers")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--json", help="append the result as a JSON line to this file")
    a = p.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    n_total = a.models * a.images + 512
    x = torch.randint(0, 256, (n_total, 32, 32, 3), dtype=torch.uint8, device=dev)
    y = torch.randint(0, 10, (n_total,), device=dev)
    idx = [torch.arange(i * a.images, (i + 1) * a.images, device=dev) for i in range(a.models)]
    val = (x[-512:], y[-512:])
    mcfg = ModelConfig(widths=tuple(int(w) for w in a.widths.split(",")))
    models = [build_model(mcfg, 10, (3, 32, 32), seed=i).to(dev) for i in range(a.models)]
    cfg = TrainConfig(max_epochs=1, batch_size=a.batch, channels_last=dev.type == "cpu",
                      precision="bf16" if a.bf16 else "fp32")
    res = {"device": str(dev), "torch": torch.__version__, "models": a.models, "images_per_model": a.images,
           "widths": a.widths, "batch": a.batch, "bf16": a.bf16, "threads": torch.get_num_threads()}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if not a.skip_naive:
        ms = [copy.deepcopy(m) for m in models]
        if cfg.channels_last:
            for m in ms:
                m.to(memory_format=torch.channels_last)
        fit(ms[0], (x[idx[0]], y[idx[0]]), val, cfg, seed=0, progress=False)  # warm-up
        sync()
        t = time.perf_counter()
        for i, m in enumerate(ms):
            fit(m, (x[idx[i]], y[idx[i]]), val, cfg, seed=i, progress=False)
        sync()
        res["naive_images_per_s"] = a.models * a.images / (time.perf_counter() - t)
    dtype = torch.bfloat16 if a.bf16 else None
    vals = [val] * a.models
    fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, vals, cfg, seeds=list(range(a.models)),
                augment=[False] * a.models, progress=False, autocast_dtype=dtype)  # warm-up
    sync()
    t = time.perf_counter()
    fit_stacked([copy.deepcopy(m) for m in models], x, y, idx, vals, cfg, seeds=list(range(a.models)),
                augment=[False] * a.models, progress=False, autocast_dtype=dtype)
    sync()
    res["stacked_images_per_s"] = a.models * a.images / (time.perf_counter() - t)
    if "naive_images_per_s" in res:
        res["speedup"] = res["stacked_images_per_s"] / res["naive_images_per_s"]
    emit(res, a.json, digits=1)


if __name__ == "__main__":
    main()

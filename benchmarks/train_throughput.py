"""Training throughput of three ways to train M models of one architecture, one epoch
each, on the same device, data and models:

- ``naive``: the textbook PyTorch loop, one model after another: a float32 NCHW
  ``TensorDataset`` through a shuffling ``DataLoader``, ``torch.optim.RMSprop``,
  ``loss.item()`` every step, float32, default memory format;
- ``fit``: advimb's one-by-one trainer (``advimb.training.fit.fit``: uint8 data resident on the
  device and scaled per batch there, channels_last, no host sync inside an epoch,
  ``--precision``);
- ``stacked``: advimb's stacked trainer (``advimb.training.stacked.fit_stacked``: all M models as
  one vmap-ed model of one shape, ``--precision``, ``--compile``).

``--sizes paper`` (with ``--models 21``) gives the models the paper study's training-set
sizes relative to ``--images``: one balanced model of ``--images``, ten under-sampled of
0.92x and ten over-sampled of 0.28x (45,000 / 41,400 / 12,600 at paper scale), so the stack
pads last batches and carries models that finished their epoch (the one stack of a study).

    python benchmarks/train_throughput.py --models 10 --images 640 --precision fp32
    python benchmarks/train_throughput.py --models 21 --images 640 --sizes paper --precision bf16
    python benchmarks/train_throughput.py --device cuda --models 21 --images 8192 --sizes paper --precision bf16 --compile on

Prints images/s of each (training images per second, all models together, validation of
512 images per epoch included in each) and the ratios to ``naive``; one warm-up epoch
first (its seconds, compiling included, as ``<trainer>_warmup_s``; each stacked run builds
and compiles its own step, as a study does once). Random uint8 images (speed does not
depend on content). ``--json FILE`` appends the result as a JSON line.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from _common import emit  # benchmarks/ is on sys.path when a script runs

from advimb.config.sections import ModelConfig, TrainConfig
from advimb.devices import resolve_precision
from advimb.models import build_model
from advimb.training.fit import fit
from advimb.training.stacked import fit_stacked


def naive_epoch(model, x, y, val, batch: int, device) -> None:
    """What a first PyTorch training script does: DataLoader over float tensors, .item()."""
    ds = torch.utils.data.TensorDataset(x.permute(0, 3, 1, 2).float().div(255).cpu(), y.cpu())
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
    model.train()
    total = 0.0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    model.eval()
    with torch.no_grad():
        xv = val[0].permute(0, 3, 1, 2).float().div(255)
        for i in range(0, len(xv), 500):
            F.cross_entropy(model(xv[i : i + 500]), val[1][i : i + 500]).item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=int, default=10)
    p.add_argument("--images", type=int, default=640, help="training images per model")
    p.add_argument("--widths", default="32,64,128", help="conv widths (paper: 32,64,128)")
    p.add_argument(
        "--sizes",
        default="equal",
        choices=("equal", "paper"),
        help="training-set sizes: all --images, or the paper study's (needs --models 21)",
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "bf16"),
        help="advimb's trainers (naive is always float32)",
    )
    p.add_argument("--compile", default="off", choices=("off", "on"), help="advimb's train.compile")
    p.add_argument("--skip", default="", help="comma-separated: naive,fit,stacked")
    p.add_argument("--json", help="append the result as a JSON line to this file")
    a = p.parse_args()
    dev = torch.device(a.device)
    skip = set(filter(None, a.skip.split(",")))
    torch.manual_seed(0)
    sizes = [a.images] * a.models
    if a.sizes == "paper":
        if a.models != 21:
            p.error("--sizes paper needs --models 21 (balanced, 10 under-sampled, 10 over-sampled)")
        sizes = [a.images] + [round(a.images * 0.92)] * 10 + [round(a.images * 0.28)] * 10
    n_total = sum(sizes) + 512
    x = torch.randint(0, 256, (n_total, 32, 32, 3), dtype=torch.uint8, device=dev)
    y = torch.randint(0, 10, (n_total,), device=dev)
    starts = [sum(sizes[:i]) for i in range(a.models)]
    idx = [torch.arange(s0, s0 + n, device=dev) for s0, n in zip(starts, sizes)]
    val = (x[-512:], y[-512:])
    mcfg = ModelConfig(widths=tuple(int(w) for w in a.widths.split(",")))
    models = [build_model(mcfg, 10, (3, 32, 32), seed=i).to(dev) for i in range(a.models)]
    precision = resolve_precision(a.precision, dev)
    cfg = TrainConfig(max_epochs=1, batch_size=a.batch, precision=precision, compile=a.compile)
    res = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "models": a.models,
        "images_per_model": a.images,
        "sizes": a.sizes,
        "widths": a.widths,
        "batch": a.batch,
        "precision": precision,
        "compile": a.compile,
        "threads": torch.get_num_threads(),
    }

    def timed(name, fn) -> float:
        t = time.perf_counter()
        fn(warmup=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        res[f"{name}_warmup_s"] = t1 - t
        fn(warmup=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return sum(sizes) / (time.perf_counter() - t1)

    def naive(warmup):
        for i, m in enumerate([copy.deepcopy(m) for m in models[: 1 if warmup else None]]):
            naive_epoch(m, x[idx[i]], y[idx[i]], val, a.batch, dev)

    def one_by_one(warmup):
        for i, m in enumerate([copy.deepcopy(m) for m in models[: 1 if warmup else None]]):
            m.to(memory_format=torch.channels_last)
            fit(m, (x[idx[i]], y[idx[i]]), val, cfg, seed=i, progress=False)

    def stacked(warmup):
        fit_stacked(
            [copy.deepcopy(m) for m in models],
            x,
            y,
            idx,
            [val] * a.models,
            cfg,
            seeds=list(range(a.models)),
            augment=[False] * a.models,
            progress=False,
        )

    for name, fn in (("naive", naive), ("fit", one_by_one), ("stacked", stacked)):
        if name not in skip:
            res[f"{name}_images_per_s"] = timed(name, fn)
    for name in ("fit", "stacked"):
        if f"{name}_images_per_s" in res and "naive_images_per_s" in res:
            res[f"{name}_vs_naive"] = res[f"{name}_images_per_s"] / res["naive_images_per_s"]
    if "fit_images_per_s" in res and "stacked_images_per_s" in res:
        res["stacked_vs_fit"] = res["stacked_images_per_s"] / res["fit_images_per_s"]
    emit(res, a.json, digits=2)


if __name__ == "__main__":
    main()

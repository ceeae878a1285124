"""FGSM throughput: advimb.attacks.fgsm against torchattacks.FGSM on the same model and
images (the paper's VGG, random weights and images: speed does not depend on them).

    python benchmarks/attack_throughput.py --images 2000 --batch 500
    python benchmarks/attack_throughput.py --device cuda --images 20000 --batch 5000

Three ways, each on the same images, timed in alternation (best of ``--repeats`` each):
``torchattacks`` (its FGSM on the float NCHW model), ``advimb`` (``advimb.attacks.fgsm`` on the
same model and tensors), ``torchattacks_channels_last`` (its FGSM on the channels_last model
and inputs) and ``advimb_study`` (``advimb.attacks.evaluate.attack_images`` as the study runs it:
uint8 images scaled on the device, the same channels_last model). Prints images/s
of each and how many output pixels differ from torchattacks' (see the comment in main).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from _common import emit  # benchmarks/ is on sys.path when a script runs

from advimb.attacks.core import fgsm
from advimb.attacks.evaluate import attack_images
from advimb.config.sections import AttackConfig, ModelConfig
from advimb.models import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--widths", default="32,64,128")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="append the result as a JSON line to this file")
    a = p.parse_args()
    import torchattacks

    dev = torch.device(a.device)
    model = build_model(ModelConfig(widths=tuple(int(w) for w in a.widths.split(","))), 10, (3, 32, 32), seed=0)
    model = model.to(dev).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.images, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (a.images,), generator=g).to(dev)
    ta = torchattacks.FGSM(model, eps=0.01)

    def run(fn):
        out = [fn(x[i : i + a.batch], y[i : i + a.batch]) for i in range(0, a.images, a.batch)]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return torch.cat(out)

    ours = lambda xb, yb: fgsm(model, xb, yb, eps=0.01)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x_u8 = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # NHWC, as the study stores it
    acfg = AttackConfig(eps=0.01, batch_size=a.batch)

    def study(xb, yb):  # the whole set in one call; attack_images batches it itself
        return attack_images(cl_model, x_u8, y, acfg, tuple(str(i) for i in range(10)))

    res = {
        "device": str(dev),
        "torch": torch.__version__,
        "images": a.images,
        "batch": a.batch,
        "widths": a.widths,
        "threads": torch.get_num_threads(),
    }
    # also the warm-up; torchattacks averages the loss over the batch (advimb sums it), which
    # can flip the sign of a gradient entry that is at rounding level: count such pixels
    diff = (run(ours) - run(ta)).abs()
    study(None, None)
    ta_cl = torchattacks.FGSM(cl_model, eps=0.01)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run_cl(fn):  # torchattacks given the same channels_last model and inputs as the study
        out = [fn(x_cl[i : i + a.batch], y[i : i + a.batch]) for i in range(0, a.images, a.batch)]
        return torch.cat(out)

    run_cl(ta_cl)
    ways = {
        "torchattacks": lambda: run(ta),
        "advimb": lambda: run(ours),
        "torchattacks_channels_last": lambda: run_cl(ta_cl),
        "advimb_study": lambda: study(None, None),
    }
    best = {k: float("inf") for k in ways}
    for _ in range(a.repeats):
        for name, fn in ways.items():
            t = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - t)
    for name in ways:
        res[f"{name}_images_per_s"] = a.images / best[name]
    res["ratio"] = res["advimb_images_per_s"] / res["torchattacks_images_per_s"]
    res["study_ratio"] = res["advimb_study_images_per_s"] / res["torchattacks_channels_last_images_per_s"]
    res["pixels_differing"] = int((diff > 1e-6).sum())
    res["pixels"] = diff.numel()
    emit(res, a.json)


if __name__ == "__main__":
    main()

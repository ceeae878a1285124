"""FLOPs of the paper's VGG and the device's measured peak, to put throughputs in context.

    python benchmarks/flops.py                       # CPU
    python benchmarks/flops.py --device cuda

Counts forward FLOPs per 32x32 image with torch.utils.flop_counter (a multiply-add = 2
FLOPs); a training step costs about 3x the forward (forward + input and weight gradients).
The peak is the best of a few large matrix multiplications and of a large 3x3
convolution (channels_last, oneDNN/cuDNN), in float32 and bfloat16: on some CPUs the BLAS
behind the matmul is slower than oneDNN's convolutions, so the matmul alone understates
what the device reaches.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import emit  # benchmarks/ is on sys.path when a script runs
from torch.utils.flop_counter import FlopCounterMode

from advimb.config.sections import ModelConfig
from advimb.models import build_model


def model_flops(widths: tuple[int, ...]) -> int:
    model = build_model(ModelConfig(widths=widths), 10, (3, 32, 32), seed=0).eval()
    with FlopCounterMode(display=False) as fc:
        model(torch.rand(1, 3, 32, 32))
    return fc.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        t = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def conv_peak(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> float:
    """FLOP/s of a 3x3, 128 -> 128 channel convolution on 64 images of 32x32 (channels_last)."""
    n, c, hw = 64, 128, 32
    x = torch.randn(n, c, hw, hw, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device, dtype).to(memory_format=torch.channels_last)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats + 1):
            t = time.perf_counter()
            conv(x).sum().item()
            best = min(best, time.perf_counter() - t)
    return 2 * n * c * c * 9 * hw * hw / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="append the result as a JSON line to this file")
    a = p.parse_args()
    dev = torch.device(a.device)
    n = 2048 if dev.type == "cpu" else 8192
    res = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "forward_flops_per_image": {
            w: model_flops(tuple(int(v) for v in w.split(","))) for w in ("32,64,128", "16,32,64")
        },
        "matmul_fp32_flops": matmul_peak(dev, torch.float32, n),
        "matmul_bf16_flops": matmul_peak(dev, torch.bfloat16, n),
        "conv_fp32_flops": conv_peak(dev, torch.float32),
        "conv_bf16_flops": conv_peak(dev, torch.bfloat16),
    }
    for dt in ("fp32", "bf16"):
        res[f"peak_{dt}_flops"] = max(res[f"matmul_{dt}_flops"], res[f"conv_{dt}_flops"])
    emit(res, a.json, digits=1)


if __name__ == "__main__":
    main()

"""The tensor operations of :mod:`advimb.training.stacked`: the stack's image layout, its
validation sets padded into one tensor, and RMSProp over all stacked models at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def stack_to_float(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, B, H, W, C)`` -> float ``(M, B, C, H, W)`` in [0, 1]."""
    return x_u8.permute(0, 1, 4, 2, 3).float().div_(255)


def stackable(model: nn.Module) -> bool:
    """Batch norm keeps running statistics in place, which vmap-ed training cannot update
    per model: such models train one by one."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def has_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def stack_validation(
    val: Sequence[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Every model's validation set in one ``(M, V, ...)`` tensor, padded to the longest with
    masked images; one set shared by all (the test set) is not copied M times. Returns the
    images, labels, mask and each model's validation size."""
    m, nv = len(val), [len(v[1]) for v in val]
    if all(v[0] is val[0][0] and v[1] is val[0][1] for v in val):
        xv = val[0][0].to(device).unsqueeze(0).expand(m, *val[0][0].shape)
        return xv, val[0][1].to(device).unsqueeze(0).expand(m, -1), torch.ones(m, nv[0], device=device), nv
    vmax, shape = max(nv), val[0][0].shape[1:]
    xv = torch.zeros(m, vmax, *shape, dtype=torch.uint8, device=device)
    yv = torch.zeros(m, vmax, dtype=torch.long, device=device)
    vmask = torch.zeros(m, vmax, device=device)
    for i, (x, y) in enumerate(val):
        xv[i, : len(y)], yv[i, : len(y)], vmask[i, : len(y)] = x, y, 1
    return xv, yv, vmask, nv


def rmsprop_(
    params: dict[str, torch.Tensor],
    sq: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    lr: float,
    rho: float,
    eps: float,
) -> None:
    """torch.optim.RMSprop's update (alpha = rho) in place, as foreach ops: a handful of kernel
    launches for all parameters of all models (a stopped model's zero gradient leaves its
    weights exactly where they are)."""
    keys = list(params)
    p_l, s_l, g_l = [params[k] for k in keys], [sq[k] for k in keys], [grads[k] for k in keys]
    torch._foreach_mul_(s_l, rho)
    torch._foreach_addcmul_(s_l, g_l, g_l, value=1 - rho)
    denom = torch._foreach_sqrt(s_l)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(p_l, g_l, denom, value=-lr)

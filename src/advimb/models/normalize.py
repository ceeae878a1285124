"""The input normalisation every model holds inside (so attacks see images in [0, 1])."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std per channel; identity with the default buffers (paper: none)."""

    mean: torch.Tensor  # buffers (register_buffer): torch types them as Tensor | Module
    std: torch.Tensor

    def __init__(self, channels: int, mean=None, std=None) -> None:
        super().__init__()
        self.register_buffer(
            "mean",
            torch.as_tensor(mean if mean is not None else [0.0] * channels, dtype=torch.float32).view(1, -1, 1, 1),
        )
        self.register_buffer(
            "std", torch.as_tensor(std if std is not None else [1.0] * channels, dtype=torch.float32).view(1, -1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

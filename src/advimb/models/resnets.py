"""The residual networks: advimb's small ResNet (``resnet_small``) and the architectures of the
long-tailed adversarial-robustness papers (``../shared/LONGTAIL.md``):
ResNet-18 in its CIFAR form (He et al. 2016 as Kuang Liu's pytorch-cifar and the AT papers
build it: a 3x3 stem of stride 1, no max-pool), PreActResNet-18 (He et al. 2016b, the
adversarial-training papers' default) and WideResNet-28-10 / -34-10 (Zagoruyko & Komodakis
2016, as in TRADES). Every one takes images in [0, 1] with advimb's normalisation layer first,
and holds batch norm, so each trains one model at a time (no stacking). The papers' networks are
fixed: they ignore the config's ``widths`` and ``fc``.
"""

from __future__ import annotations

import torch
from torch import nn

from advimb.models.normalize import Normalize


class BasicBlock(nn.Module):
    """He et al. (2016) basic residual block: two 3x3 convs with batch norm, identity or
    1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(StridedPointwise(c_in, c_out, stride), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as the subsampled input through a 1x1
    convolution of stride 1: the same function and parameters as ``nn.Conv2d(c_in, c_out, 1,
    stride, bias=False)``. oneDNN's AVX2 kernel for the weight gradient of a strided 1x1
    convolution on channels_last inputs with 2-7 input channels returns a different gradient
    at every call, hangs or crashes (seen with torch 2.14.1 on an AMD EPYC without AVX-512);
    the unstrided kernel is correct (``tests/test_models.py``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        return nn.functional.conv2d(x[:, :, :: s[0], :: s[1]], self.weight)


class ResNet(nn.Module):
    """A small CIFAR ResNet: a 3x3 stem, three stages of ``blocks`` basic blocks of
    ``widths`` channels (strides 1, 2, 2), global average pooling, a linear classifier.
    ``blocks = 1`` is ResNet-8, ``3`` is He et al.'s ResNet-20 (widths 16/32/64)."""

    def __init__(self, num_classes: int, image_shape=(3, 32, 32), widths=(16, 32, 64), blocks: int = 1) -> None:
        super().__init__()
        c = image_shape[0]
        self.normalize = Normalize(c)
        self.stem = nn.Sequential(
            nn.Conv2d(c, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        c = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(c, w, 2 if i > 0 and b == 0 else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.stem(self.normalize(x))))


def resnet_small(num_classes: int, image_shape=(3, 32, 32), widths=(32, 64, 128), fc=512) -> nn.Module:
    """A second architecture to check the effect beyond VGG: ResNet-8 (one basic block per
    stage, batch norm) with the config's ``widths``; ``fc`` is unused (global pooling).
    Batch norm makes it train one model at a time (no stacking)."""
    return ResNet(num_classes, image_shape, widths, blocks=1)


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv twice, the shortcut taken after the first
    BN-ReLU when it projects; ``dropout`` between the convolutions (WideResNet)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = StridedPointwise(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + skip


class CifarResNet(nn.Module):
    """A four-stage CIFAR ResNet (strides 1, 2, 2, 2) of ``blocks`` blocks per stage: a 3x3
    stem of stride 1 (no max-pool), global average pooling, a linear classifier; ``preact``:
    pre-activation blocks and a final BN-ReLU."""

    def __init__(
        self,
        num_classes: int,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        preact: bool = False,
    ) -> None:
        super().__init__()
        c = image_shape[0]
        self.normalize = Normalize(c)
        stem: list[nn.Module] = [nn.Conv2d(c, 64, 3, 1, 1, bias=False)]
        if not preact:
            stem += [nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        layers: list[nn.Module] = []
        c = 64
        for i, (w, n) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            for b in range(n):
                stride = 2 if i > 0 and b == 0 else 1
                layers.append(PreActBlock(c, w, stride) if preact else BasicBlock(c, w, stride))
                c = w
        if preact:
            layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.stem(self.normalize(x))))


class WideResNet(nn.Module):
    """WideResNet-``depth``-``k`` (three stages of (depth - 4) / 6 pre-activation blocks of
    16k, 32k, 64k channels, a 16-channel 3x3 stem), as TRADES' wideresnet.py."""

    def __init__(
        self, num_classes: int, image_shape: tuple[int, int, int] = (3, 32, 32), depth: int = 28, k: int = 10
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WideResNet's depth is 6n + 4, got {depth}")  # a bug: the registry fixes it
        n = (depth - 4) // 6
        self.normalize = Normalize(image_shape[0])
        self.stem = nn.Conv2d(image_shape[0], 16, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        c = 16
        for i, w in enumerate((16 * k, 32 * k, 64 * k)):
            for b in range(n):
                layers.append(PreActBlock(c, w, 2 if i > 0 and b == 0 else 1))
                c = w
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.stem(self.normalize(x))))


def resnet18_cifar(num_classes: int, image_shape=(3, 32, 32), widths=(), fc=0) -> nn.Module:
    """ResNet-18, CIFAR form (11.2 M parameters for 10 classes)."""
    return CifarResNet(num_classes, image_shape)


def preact_resnet18(num_classes: int, image_shape=(3, 32, 32), widths=(), fc=0) -> nn.Module:
    """PreActResNet-18 (11.2 M parameters for 10 classes)."""
    return CifarResNet(num_classes, image_shape, preact=True)


def wrn_28_10(num_classes: int, image_shape=(3, 32, 32), widths=(), fc=0) -> nn.Module:
    """WideResNet-28-10 (36.5 M parameters)."""
    return WideResNet(num_classes, image_shape, 28, 10)


def wrn_34_10(num_classes: int, image_shape=(3, 32, 32), widths=(), fc=0) -> nn.Module:
    """WideResNet-34-10 (46.2 M parameters)."""
    return WideResNet(num_classes, image_shape, 34, 10)

"""Model registry. Every model takes images in [0, 1], ``(N, C, H, W)``, and returns
logits ``(N, num_classes)``; any normalisation lives inside the model (``Normalize``).
Besides the registry's names, ``model.name`` takes ``torchvision:<name>``, ``timm:<name>``
and ``package.module:factory`` (:mod:`advimb.models.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from advimb.config.sections import ModelConfig
from advimb.errors import UserError
from advimb.models.normalize import Normalize
from advimb.models.plugins import is_plugin, plugin_builder
from advimb.registry import Registry


class ModelEntry(NamedTuple):
    """A registered model: its builder ``fn(num_classes, image_shape, widths, fc)`` and whether
    many copies can train as one stacked model (``advimb.training.stacked``)."""

    build: Callable[..., nn.Module]
    stackable: bool


def _plugin_entry(name: str) -> ModelEntry:
    return ModelEntry(plugin_builder(name), False)  # outside models train one by one


#: the models: the registry's, and outside models (torchvision:<name>, timm:<name>, module:factory)
MODELS: Registry[ModelEntry] = Registry(
    "unknown model {name!r}; choose one of: {names}, or torchvision:<name>, timm:<name>, package.module:factory",
    is_plugin=is_plugin,
    plugin=_plugin_entry,
)


def register_model(name: str, stackable: bool = True):
    """Register a model builder ``fn(num_classes, image_shape, widths, fc) -> nn.Module``.
    ``stackable``: whether many copies can train as one stacked model (``advimb.training.
    stacked``); a model with batch norm cannot (its running statistics update in place)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(fn, stackable))
        return fn

    return deco


def list_models() -> list[str]:
    return MODELS.names()


def check_model(name: str) -> None:
    MODELS.check(name)


def is_stackable(name: str) -> bool:
    """What model ``name`` declared (:func:`register_model`); outside models train one by one."""
    return MODELS.get(name).stackable


def size_advice(h: int, w: int, multiple: int = 8) -> str:
    """The data setting that makes ``h`` x ``w`` images fit a model needing sides divisible
    by ``multiple``: ``data.pad`` when zeros on every side reach the next multiple, else
    ``data.resize``."""
    up = -(-max(h, w) // multiple) * multiple
    if h == w and (up - h) % 2 == 0:
        return f"set data.pad = {(up - h) // 2} ({h}x{w} -> {up}x{up}) or data.resize = {up}"
    return f"set data.resize = {up} ({h}x{w} -> {up}x{up})"


class VGG(nn.Module):
    """The paper's reduced VGG (Sec. 3.1): three blocks of 2, 3, 3 3x3 'same' convs,
    2x2 max-pool after each, FC-512 with ReLU, linear output (softmax is in the loss).

    ``inner_relu[b]``: ReLU after every conv of block b (paper text) or only after its
    last conv (the authors' code, blocks 2-3). ``block_dropout`` after each block and
    ``fc_dropout`` after the FC layer (authors' code: 0.25 and 0.5).
    """

    def __init__(
        self,
        num_classes: int,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        widths: tuple[int, ...] = (32, 64, 128),
        depths: tuple[int, ...] = (2, 3, 3),
        fc: int = 512,
        inner_relu: tuple[bool, ...] = (True, True, True),
        block_dropout: float = 0.0,
        fc_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        if h % 8 or w % 8:
            raise UserError(
                f"the VGG needs image sides divisible by 8 (three 2x2 pools), but the images are "
                f"{h}x{w}: {size_advice(h, w)}, or use a size-agnostic model (model.name = 'resnet_small')"
            )
        self.normalize = Normalize(c)
        layers: list[nn.Module] = []
        for width, depth, relu_each in zip(widths, depths, inner_relu):
            for i in range(depth):
                layers.append(nn.Conv2d(c, width, 3, padding=1))
                c = width
                if relu_each or i == depth - 1:
                    layers.append(nn.ReLU(inplace=True))
            layers.append(nn.MaxPool2d(2))
            if block_dropout:
                layers.append(nn.Dropout(block_dropout))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(c * (h // 8) * (w // 8), fc), nn.ReLU(inplace=True)]
        if fc_dropout:
            head.append(nn.Dropout(fc_dropout))
        head.append(nn.Linear(fc, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


@register_model("vgg_paper")
def vgg_paper(num_classes: int, image_shape=(3, 32, 32), widths=(32, 64, 128), fc=512) -> nn.Module:
    """As the paper's text describes it: ReLU after every conv, no dropout."""
    return VGG(num_classes, image_shape, widths, fc=fc)


@register_model("vgg_authors")
def vgg_authors(num_classes: int, image_shape=(3, 32, 32), widths=(32, 64, 128), fc=512) -> nn.Module:
    """As the authors' Keras code ran it: blocks 2-3 are linear conv stacks with one ReLU
    after the third conv; Dropout(0.25) after each block, Dropout(0.5) after FC-512."""
    return VGG(
        num_classes, image_shape, widths, fc=fc, inner_relu=(True, False, False), block_dropout=0.25, fc_dropout=0.5
    )


def keras_init_(model: nn.Module) -> None:
    """Keras defaults: Glorot-uniform kernels, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(
    cfg: ModelConfig,
    num_classes: int,
    image_shape: tuple[int, int, int],
    seed: int | None = None,
    mean=None,
    std=None,
) -> nn.Module:
    """Build ``cfg.name`` from the registry; its initial weights drawn from ``seed`` when given
    (torch's CPU generator seeded inside a fork of it: the process's random state is left as it
    was, and equal seeds give equal weights)."""
    entry = MODELS.get(cfg.name)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if MODELS.is_plugin(cfg.name):
            model = entry.build(num_classes, tuple(image_shape))
        else:
            model = entry.build(num_classes, image_shape=image_shape, widths=tuple(cfg.widths), fc=cfg.fc)
        if cfg.init == "keras" and not MODELS.is_plugin(cfg.name):  # outside models keep their own initialisation
            keras_init_(model)
    if cfg.normalize == "per_channel" and mean is not None:
        norm = model.normalize
        if not isinstance(norm, Normalize):  # every built-in model, and the wrapper of outside ones, holds one
            raise TypeError(f"model {cfg.name!r}: .normalize is {type(norm).__name__}, not advimb's Normalize layer")
        norm.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        norm.std.copy_(torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
    return model


# the residual networks (batch norm: one model at a time): advimb's small one and the long-tail
# papers' architectures
from advimb.models import resnets
from advimb.models.resnets import BasicBlock, ResNet, StridedPointwise  # noqa: F401 - re-exported

for _name in ("resnet_small", "resnet18_cifar", "preact_resnet18", "wrn_28_10", "wrn_34_10"):
    register_model(_name, stackable=False)(getattr(resnets, _name))

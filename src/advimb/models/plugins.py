"""Models from outside the registry, by name (``model.name``):

- ``torchvision:<name>``: a ``torchvision.models`` constructor (``torchvision:resnet18``),
  built untrained for the dataset's classes;
- ``timm:<name>``: a ``timm.create_model`` model, when timm is installed
  (``pip install timm``), built untrained for the dataset's classes and channels;
- ``package.module:factory``: a callable of the user's code, ``factory(num_classes,
  image_shape) -> nn.Module`` (``image_shape`` is ``(C, H, W)``).

Every such model is wrapped as advimb's own are: it receives images in [0, 1] (``N, C, H,
W``) through a ``Normalize`` layer (identity unless ``model.normalize = "per_channel"``),
and 1-channel images are repeated to the 3 channels a torchvision model expects. They train
one by one (their batch norm, if any, keeps running statistics that a stacked model cannot);
``model.widths`` and ``model.fc`` do not apply to them. Names are checked (the module
imports, the constructor exists) when the config is built, before anything is written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from advimb.errors import UserError
from advimb.models.normalize import Normalize

PREFIXES = ("torchvision:", "timm:")


def is_plugin(name: str) -> bool:
    """Is ``name`` one of the forms above (rather than a registry name)?"""
    return name.startswith(PREFIXES) or (":" in name and not name.startswith(":"))


class Plugged(nn.Module):
    """An outside model behind advimb's input convention."""

    def __init__(self, net: nn.Module, channels: int, repeat_to: int = 0) -> None:
        super().__init__()
        self.normalize = Normalize(channels)
        self.repeat_to = repeat_to
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if self.repeat_to and x.shape[1] != self.repeat_to:
            x = x.expand(-1, self.repeat_to, -1, -1)
        return self.net(x)


def plugin_builder(name: str) -> Callable[[int, tuple[int, int, int]], nn.Module]:
    """``(num_classes, image_shape) -> model`` for a plug-in name; a one-line
    :class:`UserError` when the name does not resolve."""
    kind, _, rest = name.partition(":")
    if not rest:
        raise UserError(
            f"model.name {name!r}: give what follows the colon, e.g. torchvision:resnet18, "
            "timm:resnet18 or mypackage.models:build"
        )
    if kind == "torchvision":
        return _torchvision(rest)
    if kind == "timm":
        return _timm(rest)
    return _factory(kind, rest, name)


def _torchvision(arch: str) -> Callable[[int, tuple[int, int, int]], nn.Module]:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        close = [m for m in known if arch.lower()[:4] in m][:6]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UserError(
            f"model.name 'torchvision:{arch}': torchvision {torchvision.__version__} has no classification "
            f"model {arch!r}{hint}; see torchvision.models.list_models()"
        )

    def build(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
        net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        return Plugged(net, image_shape[0], repeat_to=3)

    return build


def _timm(arch: str) -> Callable[[int, tuple[int, int, int]], nn.Module]:
    try:
        import timm
    except ImportError:
        raise UserError(f"model.name 'timm:{arch}' needs timm, which is not installed: pip install timm") from None
    if not timm.is_model(arch):
        raise UserError(
            f"model.name 'timm:{arch}': timm {timm.__version__} has no model {arch!r}; see timm.list_models()"
        )

    def build(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
        net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=image_shape[0])
        return Plugged(net, image_shape[0])

    return build


def _factory(module: str, attr: str, name: str) -> Callable[[int, tuple[int, int, int]], nn.Module]:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - ImportError, or the module itself failing
        raise UserError(
            f"model.name {name!r}: module {module!r} does not import ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); is it on PYTHONPATH?"
        ) from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise UserError(
            f"model.name {name!r}: module {module!r} has no callable {attr!r} "
            "(expected factory(num_classes, image_shape) -> torch.nn.Module)"
        )

    def build(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
        net = fn(num_classes, tuple(image_shape))
        if not isinstance(net, nn.Module):
            raise UserError(
                f"model.name {name!r}: {attr}(num_classes, image_shape) returned "
                f"{type(net).__name__}, not a torch.nn.Module"
            )
        return Plugged(net, image_shape[0])

    return build

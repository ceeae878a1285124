"""The one registry type every open set uses (advimb.registry): lookups, the error that lists
the choices, plug-ins, order; and that each stage's registry is one."""

import pytest

from advimb.errors import UserError
from advimb.registry import Registry


def test_a_registered_entry_is_found_and_an_unknown_name_lists_the_choices():
    reg: Registry[int] = Registry("unknown thing {name!r}; choose one of: {names}")
    reg.add("b", 2)

    @reg.register("a")
    def a() -> int:
        return 1

    assert reg.get("b") == 2 and reg.get("a") is a
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and "a" in reg and "c" not in reg
    with pytest.raises(UserError, match=r"^unknown thing 'c'; choose one of: a, b$"):
        reg.get("c")
    with pytest.raises(UserError):
        reg.check("c")


def test_registration_order_is_kept_where_it_means_something():
    reg: Registry[int] = Registry("{name} {names}", sort=False)
    for name in ("z", "a", "m"):
        reg.add(name, 0)
    assert reg.names() == ["z", "a", "m"]


def test_a_plugin_name_is_resolved_by_its_rule_not_listed():
    reg: Registry[str] = Registry("{name} not in {names}", is_plugin=lambda n: n.startswith("x:"), plugin=str.upper)
    reg.add("own", "mine")
    assert reg.get("x:thing") == "X:THING" and reg.is_plugin("x:thing") and not reg.is_plugin("own")
    assert reg.names() == ["own"]
    with pytest.raises(ValueError):
        Registry("{name}", plugin=str.upper)


def test_every_open_set_of_the_package_is_a_registry():
    """Every module-level table of named entries in the package is a Registry: a plain dict
    keyed by names a user can give (a preset, a long-tail attack) would have its own error."""
    import importlib
    import pkgutil

    import advimb
    from advimb.attacks.core import ATTACKS
    from advimb.config.additive import LONG_TAIL_ATTACKS
    from advimb.config.presets import PRESETS
    from advimb.data.imbalance import PROFILES
    from advimb.data.sources import SOURCES
    from advimb.models import MODELS
    from advimb.training.defences import DEFENCES

    found = {}
    for info in pkgutil.walk_packages(advimb.__path__, "advimb."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name, value in vars(mod).items():
            if isinstance(value, Registry):
                found.setdefault(id(value), (info.name, name, value))
    registries = {v for _, _, v in found.values()}
    for reg in (ATTACKS, PROFILES, SOURCES, MODELS, DEFENCES, PRESETS, LONG_TAIL_ATTACKS):
        assert reg in registries and reg.names()
    assert len(registries) == 7, sorted((m, n) for m, n, _ in found.values())
    assert "fgsm" in ATTACKS and "vgg_paper" in MODELS and "cifar10" in SOURCES and "exp" in PROFILES
    assert DEFENCES.names()[0] == "class_weight"  # the defences' canonical order
    assert PRESETS.names()[:3] == ["smoke", "quick", "paper"] and "autoattack" in LONG_TAIL_ATTACKS
    assert MODELS.is_plugin("torchvision:resnet18") and ATTACKS.is_plugin("torchattacks:PGD")
    assert SOURCES.is_plugin("torchvision:FashionMNIST") and not MODELS.is_plugin("vgg_paper")
    with pytest.raises(UserError, match="unknown preset 'nope'; choose one of: smoke, quick, paper"):
        PRESETS["nope"]

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
    from advimb.attacks.core import ATTACKS
    from advimb.data.imbalance import PROFILES
    from advimb.data.sources import SOURCES
    from advimb.models import MODELS
    from advimb.training.regimes import DEFENCES

    for reg in (ATTACKS, PROFILES, SOURCES, MODELS, DEFENCES):
        assert isinstance(reg, Registry) and reg.names()
    assert "fgsm" in ATTACKS and "vgg_paper" in MODELS and "cifar10" in SOURCES and "exp" in PROFILES
    assert DEFENCES.names()[0] == "class_weight"  # the defences' canonical order
    assert MODELS.is_plugin("torchvision:resnet18") and ATTACKS.is_plugin("torchattacks:PGD")
    assert SOURCES.is_plugin("torchvision:FashionMNIST") and not MODELS.is_plugin("vgg_paper")

import pytest

from edgeft.errors import UnknownNameError
from edgeft.registry import Registry


def test_lookup_and_did_you_mean():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    assert reg.get("beta") == 2
    with pytest.raises(UnknownNameError, match=r"Did you mean 'alpha'\?.*Known: alpha, beta"):
        reg.get("alpah")


def test_double_registration_is_a_bug():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError):
        reg.register("a")(2)

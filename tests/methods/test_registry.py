"""The method registry: lookup, lazy built-ins, run-time registration, errors naming the cause."""

import pytest

from ecgssl.methods import registry
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.registry import (
    MethodUnavailableError,
    create_method,
    get_method_factory,
    list_methods,
    register_method,
)


def test_builtins_are_listed_and_build():
    assert {"jepa", "beat_ssl"} <= set(list_methods())
    method = create_method("beat_ssl", {"proj_hidden": 16, "proj_dim": 8},
                           {"name": "resnet1d_small"}, {"fs": 250.0})
    assert isinstance(method, SSLMethod)


def test_unknown_name_lists_known():
    with pytest.raises(KeyError, match="unknown method 'nope'.*jepa"):
        get_method_factory("nope")


def test_runtime_registration_and_type_check(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_method("not_a_method")
    def build(method_cfg, encoder_cfg, data_info):
        return object()

    assert "not_a_method" in list_methods()
    with pytest.raises(TypeError, match="not an SSLMethod"):
        create_method("not_a_method")
    with pytest.raises(ValueError, match="registered twice"):
        register_method("not_a_method")(lambda a, b, c: None)


def test_broken_builtin_module_is_named(monkeypatch):
    monkeypatch.setattr(registry, "_BUILTIN", {**registry._BUILTIN,
                                               "broken": "ecgssl.methods.does_not_exist"})
    with pytest.raises(MethodUnavailableError, match="broken.*does_not_exist"):
        get_method_factory("broken")

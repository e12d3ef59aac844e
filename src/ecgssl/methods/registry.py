"""A registry of pretraining methods, beside ``ecgssl.models.registry`` for encoders.

Every method registers one factory under its recipe name::

    from ecgssl.methods.registry import register_method

    @register_method("ts2vec")
    def build_ts2vec(method_cfg: dict, encoder_cfg: dict, data_info: dict) -> SSLMethod: ...

One signature for all factories (no introspection):

- ``method_cfg``: the recipe's ``method:`` section without ``name`` (unknown keys are the
  factory's error to raise);
- ``encoder_cfg``: the recipe's ``encoder:`` section (``name`` plus constructor overrides), for
  ``ecgssl.models.registry.create_encoder``;
- ``data_info``: ``{"leads": [...], "fs": Hz, "n_samples": int}`` of the store the method trains
  on (``{}`` when built without a store, e.g. in a unit test; factories supply defaults).

Built-in methods live in modules listed in ``_BUILTIN``; they are imported on first use, one by
one, so a method whose module fails to import is reported by name with the import error
(``MethodUnavailableError``) while the others still work.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

MethodFactory = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]

_REGISTRY: dict[str, MethodFactory] = {}

# recipe name -> module whose import registers it (imported lazily, see module doc).
_BUILTIN: dict[str, str] = {
    "jepa": "ecgssl.methods.jepa",
    "beat_ssl": "ecgssl.methods.beat_ssl",
    "ts2vec": "ecgssl.methods.ts2vec",
    "cmsc": "ecgssl.methods.cmsc",
    "st_mem": "ecgssl.methods.st_mem",
    "cpc": "ecgssl.methods.cpc",
}


class MethodUnavailableError(ImportError):
    """A registered method's module could not be imported (the message names it and why)."""


def register_method(name: str):
    """Decorator: register ``factory(method_cfg, encoder_cfg, data_info) -> SSLMethod``."""

    def wrap(fn: MethodFactory) -> MethodFactory:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"method {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def _import_builtin(name: str) -> None:
    module = _BUILTIN.get(name)
    if module is None or name in _REGISTRY:
        return
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise MethodUnavailableError(f"method {name!r} cannot be loaded: importing {module} "
                                     f"failed: {err}") from err
    if name not in _REGISTRY:
        raise MethodUnavailableError(f"method {name!r}: {module} imported but registered no "
                                     f"method of that name")


def list_methods() -> list[str]:
    """Names of every method, built-in and registered at run time."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def get_method_factory(name: str) -> MethodFactory:
    """The factory registered under ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        MethodUnavailableError: its module failed to import.
    """
    if name not in _REGISTRY and name not in _BUILTIN:
        raise KeyError(f"unknown method {name!r}; known: {list_methods()}")
    _import_builtin(name)
    return _REGISTRY[name]


def create_method(name: str, method_cfg: dict[str, Any] | None = None,
                  encoder_cfg: dict[str, Any] | None = None,
                  data_info: dict[str, Any] | None = None):
    """Build method ``name`` from its recipe sections (see the module doc for the arguments)."""
    from ecgssl.methods.base import SSLMethod

    factory = get_method_factory(name)
    method = factory(dict(method_cfg or {}), dict(encoder_cfg or {}), dict(data_info or {}))
    if not isinstance(method, SSLMethod):
        raise TypeError(f"method {name!r} factory returned {type(method).__name__}, "
                        f"not an SSLMethod")
    return method

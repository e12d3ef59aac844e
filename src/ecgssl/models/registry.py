"""A registry of named encoder configurations feeding one factory (``create_encoder``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str):
    """Decorator: register ``fn(**overrides) -> encoder`` under ``name``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def _load_builtin() -> None:
    # Importing the modules registers their configurations.
    from ecgssl.models import cnn, ts2vec_dilated, vit, vit_stmem  # noqa: F401
    from ecgssl.models.foundation import ecgfm, ecgfounder, hubert_ecg, merl, stmem  # noqa: F401


def list_encoders() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create_encoder(name: str, **overrides) -> nn.Module:
    """Build a registered encoder, e.g. ``create_encoder("vit_tiny", n_leads=8)``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**overrides)

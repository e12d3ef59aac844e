"""A registry of named encoder configurations feeding one factory (``create_encoder``).

Every registered encoder declares its capabilities as attributes (checked by
``tests/models/test_encoder_contract.py`` for every name in ``list_encoders()``):
``embed_dim`` (D), ``stride`` (input samples per ``forward_features`` step), ``pooled_dim``
(length of ``forward``'s output) and ``takes_lead_names`` (see ``takes_lead_names``).
"""

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


def takes_lead_names(module: nn.Module) -> bool:
    """Whether an encoder is called with ``leads=[names of x's rows]``: its declared
    ``takes_lead_names`` capability (True: ViT, any subset of its leads by name; False: CNNs,
    exactly the leads it was built for, called without names). A module that declares nothing
    is treated as False, so callers pass no names and require the spec's exact leads."""
    return bool(getattr(module, "takes_lead_names", False))


def has_time_features(module: nn.Module) -> bool:
    """Whether ``forward_features`` gives a time feature map (B, D, T') that segmentation heads
    and Beat-SSL's RoI pooling can read: the declared ``has_time_features`` capability (default
    True; False for HuBERT-ECG, whose tokens run over concatenated leads, and whose
    ``forward_features`` refuses)."""
    return bool(getattr(module, "has_time_features", True))


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

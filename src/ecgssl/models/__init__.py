"""Encoders: ViT with Cross-Pattern Attention, 1-D CNNs; one registry and one interface."""

from ecgssl.models.registry import (
    create_encoder,
    has_time_features,
    list_encoders,
    register_encoder,
    takes_lead_names,
)

__all__ = ["create_encoder", "has_time_features", "list_encoders", "register_encoder",
           "takes_lead_names"]

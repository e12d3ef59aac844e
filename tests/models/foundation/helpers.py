"""Reading the golden fixtures written by benchmarks/make_foundation_fixtures.py."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "foundation"


def load_fixture(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    path = FIXTURES / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["meta"])
    return tensors, meta


def group(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries under ``prefix.`` with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, atol: float = 1e-5) -> None:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    err = (ours - theirs).abs().max().item()
    assert err <= atol, f"max abs difference {err:.3g} > {atol}"

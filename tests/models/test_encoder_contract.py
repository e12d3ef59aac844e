"""The encoder contract (docs/architecture.md), checked for EVERY registered encoder.

Parametrised over ``list_encoders()`` at collection time (timm's tests/test_models.py style): an
encoder registered by a new module is tested the moment it is registered. Each is built small
through its overrides (``TINY``, matched by name prefix; an unknown name is built at its
registered size) and checked for: declared capabilities, forward / forward_features /
feature_pyramid shapes against ``stride``, backward reaching every parameter, lead names, and
export -> reload -> identical outputs. The registered size is built and run on a short input too.
"""

from __future__ import annotations

import pytest
import torch

from ecgssl.models import create_encoder, list_encoders
from ecgssl.train.export import export_encoder, load_encoder

N_LEADS = 4
# name prefix -> overrides that make the encoder small (unknown names: registered size).
TINY = {
    "vit_": {"width": 32, "depth": 1, "num_heads": 2, "n_patches": 8, "patch_size": 25},
    "resnet1d_": {"widths": (4, 8, 8, 16, 16), "depths": (1, 1, 1, 1), "kernel": 5,
                  "stem_kernel": 7},
    "unet1d": {"widths": (4, 8, 8, 16, 16), "kernel": 5},
}


def tiny_overrides(name: str) -> dict:
    return next((dict(v) for k, v in TINY.items() if name.startswith(k)), {})


def build(name: str, tiny: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_encoder(name, n_leads=N_LEADS, **(tiny_overrides(name) if tiny else {}))


def _length(enc, steps: int = 8) -> int:
    """An input length the encoder accepts: ``steps`` feature steps (at most its patches)."""
    return int(enc.stride) * min(steps, int(getattr(enc, "n_patches", steps)))


def _leads_kw(enc, n: int | None = None) -> dict:
    if not enc.takes_lead_names:
        return {}
    names = list(enc.lead_names)
    return {"leads": names if n is None else names[:n]}


@pytest.fixture(params=list_encoders())
def name(request):
    return request.param


def test_declares_its_capabilities(name):
    enc = build(name)
    assert isinstance(type(enc).takes_lead_names, bool), "declare takes_lead_names on the class"
    assert isinstance(enc.embed_dim, int) and enc.embed_dim > 0
    assert isinstance(enc.stride, int) and enc.stride > 0
    assert isinstance(enc.pooled_dim, int) and enc.pooled_dim in (enc.embed_dim,
                                                                   2 * enc.embed_dim)
    assert isinstance(enc.spec, dict) and enc.spec.get("pool", "mean") == enc.pool
    if enc.takes_lead_names:
        assert len(enc.lead_names) == N_LEADS


def test_shapes_follow_stride(name):
    enc = build(name).eval()
    t = _length(enc)
    x = torch.randn(2, N_LEADS, t)
    with torch.no_grad():
        pooled = enc(x, **_leads_kw(enc))
        feats = enc.forward_features(x, **_leads_kw(enc))
        pyramid = enc.feature_pyramid(x, **_leads_kw(enc))
    assert pooled.shape == (2, enc.pooled_dim) and torch.isfinite(pooled).all()
    assert feats.shape == (2, enc.embed_dim, t // enc.stride)
    assert isinstance(pyramid, list) and pyramid[-1].shape == feats.shape
    assert all(p.shape[0] == 2 and p.shape[-1] >= feats.shape[-1] for p in pyramid)


def test_backward_reaches_every_parameter(name):
    enc = build(name).train()
    x = torch.randn(3, N_LEADS, _length(enc))
    (enc(x, **_leads_kw(enc)) ** 2).mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    assert any(p.grad.abs().sum() > 0 for p in enc.parameters() if p.grad is not None)


@pytest.mark.parametrize("lead_name", [n for n in list_encoders()
                                       if build(n).takes_lead_names])
def test_lead_names_select_a_subset(lead_name):
    enc = build(lead_name).eval()
    x = torch.randn(2, 2, _length(enc))
    with torch.no_grad():
        out = enc(x, **_leads_kw(enc, 2))
    assert out.shape == (2, enc.pooled_dim)


def test_export_reload_gives_identical_outputs(name, tmp_path):
    enc = build(name).eval()
    t = _length(enc)
    leads = list(enc.lead_names) if enc.takes_lead_names else [f"lead{k}" for k in
                                                               range(N_LEADS)]
    store_config = {"fs": 250.0, "leads": leads, "n_samples": t, "hash": "h",
                    "preprocess": {"fs": 250.0}}
    export_encoder(enc, tmp_path / "enc", store_config, leads=leads)
    loaded, spec = load_encoder(tmp_path / "enc")
    assert type(loaded) is type(enc) and spec["encoder"]["name"] == name
    x = torch.randn(2, N_LEADS, t)
    with torch.no_grad():
        assert torch.equal(enc(x, **_leads_kw(enc)), loaded(x, **_leads_kw(loaded)))


def test_registered_size_builds_and_runs(name):
    enc = build(name, tiny=False).eval()
    x = torch.randn(1, N_LEADS, _length(enc, steps=2))
    with torch.no_grad():
        assert enc(x, **_leads_kw(enc)).shape == (1, enc.pooled_dim)

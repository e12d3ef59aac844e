"""The encoder contract (docs/architecture.md), checked for EVERY registered encoder.

Parametrised over ``list_encoders()`` at collection time (timm's tests/test_models.py style): an
encoder registered by a new module is tested the moment it is registered. Each is built small
through its overrides (``TINY``, matched by name prefix; an unknown name is built at its
registered size) and checked for: declared capabilities, forward / forward_features /
feature_pyramid shapes against ``stride``, backward reaching every parameter, lead names, and
export -> reload -> identical outputs. The registered size is built and run on a short input too.
"""

from __future__ import annotations

import copy

import pytest
import torch

from ecgssl.errors import SpecMismatchError
from ecgssl.models import create_encoder, has_time_features, list_encoders
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


_BUILT: dict = {}


def build(name: str, tiny: bool = True) -> torch.nn.Module:
    """A fresh copy of the encoder (built once per name and size): with ``N_LEADS`` leads, or
    its own fixed leads when it refuses another count (foundation models)."""
    if (name, tiny) not in _BUILT:
        torch.manual_seed(0)
        overrides = tiny_overrides(name) if tiny else {}
        try:
            try:
                _BUILT[name, tiny] = create_encoder(name, n_leads=N_LEADS, **overrides)
            except ValueError:  # a fixed lead set (e.g. the 12 leads a foundation model reads)
                _BUILT[name, tiny] = create_encoder(name, **overrides)
        except ImportError as err:  # an optional extra (pip install 'ecgssl[foundation]')
            pytest.skip(f"{name} needs an optional dependency that is not installed: {err}")
    return copy.deepcopy(_BUILT[name, tiny])


def _takes_names(name: str) -> bool:
    try:
        return build(name).takes_lead_names
    except pytest.skip.Exception:
        return False


def n_in(enc) -> int:
    """Input rows: the leads it was built for."""
    order = getattr(enc, "lead_order", None)
    return len(order) if order is not None else int(enc.n_leads)


def _length(enc, steps: int = 8) -> int:
    """An input length the encoder accepts: the fixed length a foundation model's card declares
    (the input it was pretrained on), else ``steps`` feature steps (at most its patches)."""
    card = getattr(enc, "card", None)
    if card is not None:
        return int(card.n_samples)
    return int(enc.stride) * min(steps, int(getattr(enc, "n_patches", steps)))


def _batch(enc, n: int) -> int:
    """Batch size: 1 for a full-size foundation model on its 10 s input (CPU time)."""
    return 1 if getattr(enc, "card", None) is not None else n


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
        assert len(enc.lead_names) == n_in(enc)


def test_shapes_follow_stride(name):
    enc = build(name).eval()
    t, b = _length(enc), _batch(enc, 2)
    x = torch.randn(b, n_in(enc), t)
    with torch.no_grad():
        pooled = enc(x, **_leads_kw(enc))
    if not has_time_features(enc):
        # declared: no time map; asking for one is a clear refusal, not a wrong shape
        assert pooled.shape == (b, enc.pooled_dim) and torch.isfinite(pooled).all()
        for fn in (enc.forward_features, enc.feature_pyramid):
            with pytest.raises(SpecMismatchError):
                fn(x, **_leads_kw(enc))
        return
    with torch.no_grad():
        feats = enc.forward_features(x, **_leads_kw(enc))
        pyramid = enc.feature_pyramid(x, **_leads_kw(enc))
    assert pooled.shape == (b, enc.pooled_dim) and torch.isfinite(pooled).all()
    # docs/architecture.md: T' = T // stride, or one more step where the encoder pads a last
    # partial step ("same"-padded strided convolutions: ECGFounder, MERL's ResNet).
    assert feats.shape[:2] == (b, enc.embed_dim)
    assert t // enc.stride <= feats.shape[-1] <= -(-t // enc.stride), (feats.shape, t)
    assert isinstance(pyramid, list) and pyramid[-1].shape == feats.shape
    assert all(p.shape[0] == b and p.shape[-1] >= feats.shape[-1] for p in pyramid)


def test_backward_reaches_every_parameter(name):
    enc = build(name).train()
    x = torch.randn(_batch(enc, 3), n_in(enc), _length(enc))
    (enc(x, **_leads_kw(enc)) ** 2).mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    assert any(p.grad.abs().sum() > 0 for p in enc.parameters() if p.grad is not None)


@pytest.mark.parametrize("lead_name", [n for n in list_encoders() if _takes_names(n)])
def test_lead_names_select_a_subset(lead_name):
    enc = build(lead_name).eval()
    x = torch.randn(2, 2, _length(enc))
    with torch.no_grad():
        out = enc(x, **_leads_kw(enc, 2))
    assert out.shape == (2, enc.pooled_dim)


def test_export_reload_gives_identical_outputs(name, tmp_path):
    enc = build(name).eval()
    t = _length(enc)
    leads = list(enc.lead_names) if enc.takes_lead_names else list(
        getattr(enc, "lead_order", None) or [f"lead{k}" for k in range(n_in(enc))])
    store_config = {"fs": 250.0, "leads": leads, "n_samples": t, "hash": "h",
                    "preprocess": {"fs": 250.0}}
    export_encoder(enc, tmp_path / "enc", store_config, leads=leads)
    loaded, spec = load_encoder(tmp_path / "enc")
    assert type(loaded) is type(enc) and spec["encoder"]["name"] == name
    x = torch.randn(_batch(enc, 2), n_in(enc), t)
    with torch.no_grad():
        assert torch.equal(enc(x, **_leads_kw(enc)), loaded(x, **_leads_kw(loaded)))


def test_registered_size_builds_and_runs(name):
    enc = build(name, tiny=False).eval()
    x = torch.randn(1, n_in(enc), _length(enc, steps=2))
    with torch.no_grad():
        assert enc(x, **_leads_kw(enc)).shape == (1, enc.pooled_dim)

"""The method contract (docs/architecture.md), checked for EVERY registered method.

Parametrised over ``list_methods()`` at collection time: a method registered in
``methods/registry._BUILTIN`` (or at run time) is tested the moment it is registered. Each is
built through ``create_method`` with small sections from ``TINY`` (an unknown name gets ``{}``
sections: the factory's defaults) and checked on store-like items: the collate runs and
pickles, the loss is a finite scalar with float metrics, every trainable parameter gets a
gradient and the others are exactly those it declares untrained (EMA targets), one optimiser
step lowers the loss of a fixed batch (same views, masks and seeds), and the exported encoder
reloads with identical outputs.
"""

from __future__ import annotations

import copy
import pickle
import random

import numpy as np
import pytest
import torch

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.registry import create_method, list_methods
from ecgssl.models.registry import takes_lead_names
from ecgssl.train.export import export_encoder, load_encoder
from tests.methods.samples import FS, T, store_items

DATA_INFO = {"leads": list(LEADS_12), "fs": float(FS), "n_samples": T}
# method -> (method_cfg, encoder_cfg): small sizes (unknown methods: {} and {}).
TINY = {
    "jepa": ({"predictor_embed_dim": 16, "predictor_depth": 1, "predictor_num_heads": 2},
             {"name": "vit_tiny", "width": 32, "depth": 1, "num_heads": 2, "n_patches": 20}),
    "beat_ssl": ({"proj_hidden": 32, "proj_dim": 16, "views": {"seed": 1}},
                 {"name": "resnet1d_small", "widths": [4, 8, 8, 16, 16], "kernel": 5,
                  "stem_kernel": 7}),
    "ts2vec": ({"max_length": 500, "min_overlap": 64},
               {"name": "ts2vec_dilated", "hidden": 8, "depth": 2, "out_dim": 16}),
    "cmsc": ({"proj_dim": 16}, {"name": "resnet1d_small", "widths": [4, 8, 8, 16, 16],
                                "kernel": 5, "stem_kernel": 7}),
    "st_mem": ({"decoder_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
               {"name": "vit_tiny_stmem", "width": 32, "depth": 1, "num_heads": 2,
                "n_patches": 20, "patch_size": 50}),
    "cpc": ({"context_dim": 16, "n_offsets": 4},
            {"name": "resnet1d_small", "widths": [4, 8, 8, 16, 16], "kernel": 5,
             "stem_kernel": 7}),
}


def store_items_full() -> list[dict]:
    """``tests.methods.samples.store_items`` plus the keys every store item carries."""
    return [it | {"lead_mask": np.ones(12, dtype=bool),
                  "valid_span": np.array([0, T], dtype=np.int64),
                  "labels": np.zeros(1, dtype=np.uint8),
                  # StoreDataset(ids=True) codes (methods with needs_ids): two windows a patient
                  "patient_code": np.int64(k // 2), "record_code": np.int64(k)}
            for k, it in enumerate(store_items())]


@pytest.fixture(scope="module")
def items():
    return store_items_full()


@pytest.fixture(params=list_methods())
def method_name(request):
    return request.param


def build(name: str):
    torch.manual_seed(0)
    method_cfg, encoder_cfg = TINY.get(name, ({}, {}))
    return create_method(name, copy.deepcopy(method_cfg), copy.deepcopy(encoder_cfg),
                         dict(DATA_INFO))


def _seed(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - collates may draw from the global numpy RNG
    torch.manual_seed(seed)


def fixed_batch_loss(method, items, state):
    """The loss of the same batch every call: collate (views) and masks from fixed seeds and
    the method's resume state ``state``."""
    method.load_state_for_resume(copy.deepcopy(state))
    _seed()
    batch = method.make_collate()(items)
    return method.training_step_loss(batch, 0, 100)


def test_collate_pickles_and_loss_is_finite(method_name, items):
    method = build(method_name).train()
    collate = pickle.loads(pickle.dumps(method.make_collate()))
    loss, metrics = method.training_step_loss(collate(items), 0, 100)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert metrics and all(isinstance(v, float) for v in metrics.values())
    missing = [m for m in method.spread_metrics if m not in metrics]
    assert not missing, f"{method_name} declares spread_metrics {missing} it does not log"
    stats = method.collapse_metrics(collate(items))
    assert all(np.isfinite(v) for v in stats.values())


def test_every_trained_parameter_gets_a_gradient(method_name, items):
    method = build(method_name).train()
    loss, _ = method.training_step_loss(method.make_collate()(items), 0, 100)
    loss.backward()
    frozen = {n for n, p in method.named_parameters() if not p.requires_grad}
    assert frozen == method.untrained_parameter_names(), \
        "parameters without requires_grad must be declared by untrained_parameter_names()"
    missing = [n for n, p in method.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{method_name}: no gradient reaches {missing}"
    grouped = {id(p) for g in method.param_groups(0.05) for p in g["params"]}
    assert grouped == {id(p) for p in method.parameters() if p.requires_grad}


def test_one_optimiser_step_lowers_a_fixed_batch_loss(method_name, items):
    method = build(method_name).train()
    state = copy.deepcopy(method.state_for_resume())
    opt = torch.optim.AdamW(method.param_groups(0.0), lr=1e-3)
    with torch.no_grad():
        again, _ = fixed_batch_loss(method, items, state)
    before, _ = fixed_batch_loss(method, items, state)
    assert float(again) == float(before), "the fixed batch is not fixed (unseeded randomness)"
    opt.zero_grad()
    before.backward()
    opt.step()
    method.after_optimizer_step(0, 100)
    with torch.no_grad():
        after, _ = fixed_batch_loss(method, items, state)
    assert float(after) < float(before), (float(before), float(after))


def test_exported_encoder_reloads_identically(method_name, tmp_path):
    method = build(method_name)
    enc = method.encoder.eval()
    leads = list(enc.lead_names) if takes_lead_names(enc) else list(LEADS_12)[:enc.n_leads]
    export_encoder(enc, tmp_path / "enc", {**DATA_INFO, "leads": leads, "hash": "h"},
                   leads=leads)
    loaded, _ = load_encoder(tmp_path / "enc")
    x = torch.randn(2, len(leads), T)
    kw = {"leads": leads} if takes_lead_names(enc) else {}
    with torch.no_grad():
        assert torch.equal(enc(x, **kw), loaded(x, **kw))

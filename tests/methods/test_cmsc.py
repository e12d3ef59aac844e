"""CMSC (CLOCS): the loss against a slow reference, segments, patient codes, a short pretraining."""

import math

import pytest
import torch
from torch import nn

from ecgssl.data.dataset import StoreDataset, default_collate
from ecgssl.methods.cmsc import CMSC, cmsc_pair_loss
from ecgssl.methods.registry import create_method
from tests.methods.pretrain_helpers import mean, pretrain_losses, tiny_store


def _ref_loss(va, vb, patient, tau):
    """L_AB + L_BA: -mean over same-patient pairs (i, k) of log softmax over the other view."""
    def cos(a, b):
        return float(a @ b) / (float(a.norm()) * float(b.norm()))

    n = va.shape[0]
    total = 0.0
    for a, b in ((va, vb), (vb, va)):
        terms = []
        for i in range(n):
            den = sum(math.exp(cos(a[i], b[j]) / tau) for j in range(n))
            for k in range(n):
                if patient[i] == patient[k]:
                    terms.append(-(cos(a[i], b[k]) / tau - math.log(den)))
        total += sum(terms) / len(terms)
    return total


def test_pair_loss_matches_the_reference():
    g = torch.Generator().manual_seed(0)
    va, vb = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(2))
    patient = [0, 0, 1, 2, 1]
    pos = torch.tensor([[p == q for q in patient] for p in patient])
    got = float(cmsc_pair_loss(va, vb, pos, temperature=0.2))
    assert got == pytest.approx(_ref_loss(va, vb, patient, 0.2), rel=1e-9)


class MeanEncoder(nn.Module):
    """Features = a linear map of each time step (stride 1); records what it was fed."""

    embed_dim, stride = 4, 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(12, 4, 1)
        self.seen = []

    def forward_features(self, x, leads=None):
        self.seen.append(x.detach().clone())
        return self.conv(x)


def test_windows_are_cut_into_consecutive_segments_in_one_pass():
    enc = MeanEncoder()
    m = CMSC(enc, n_segments=3, proj_dim=2)
    x = torch.randn(2, 12, 31)
    loss, metrics = m.training_step_loss({"signal": x, "patient_code": torch.tensor([4, 4])}, 0, 1)
    (fed,) = enc.seen
    assert fed.shape == (6, 12, 10) and metrics["unused_samples"] == 1.0
    assert torch.equal(fed[2:4], x[..., 10:20]) and torch.equal(fed[4:6], x[..., 20:30])
    assert metrics["positives_per_window"] == 2.0 and math.isfinite(float(loss))


def test_segments_are_whole_vit_patches():
    m = create_method("cmsc", {}, {"name": "vit_tiny", "depth": 1}, {})
    assert m.segment_length(2500) == 1250
    assert m.segment_length(2490) == 1200  # 1245 down to whole 50-sample patches


def test_missing_patient_codes_are_an_error_unless_not_patient_specific():
    x = torch.randn(3, 12, 64)
    with pytest.raises(ValueError, match="patient_code"):
        CMSC(MeanEncoder()).training_step_loss({"signal": x}, 0, 1)
    loss, metrics = CMSC(MeanEncoder(), patient_specific=False).training_step_loss(
        {"signal": x}, 0, 1)
    assert metrics["positives_per_window"] == 1.0 and math.isfinite(float(loss))


def test_the_store_dataset_gives_patient_and_record_codes(tmp_path):
    store = tiny_store(tmp_path / "store")
    plain = StoreDataset(store)
    assert "patient_code" not in plain[0]
    ds = StoreDataset(store, ids=True, fields=["signal"])
    batch = default_collate([ds[i] for i in range(len(ds))])
    # SyntheticSource: patient p{i // 2}, one record each.
    assert batch["patient_code"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert batch["record_code"].tolist() == list(range(8))
    assert ds.ids_report == {"windows_without_patient_id": 0, "patients": 4, "records": 8}


def test_a_short_pretraining_lowers_the_loss(tmp_path):
    store = tiny_store(tmp_path / "store")
    recipe = {"method": {"name": "cmsc", "proj_dim": 16},
              "encoder": {"name": "resnet1d_small", "widths": [8, 8, 16, 16, 32], "kernel": 5,
                          "stem_kernel": 7},
              "data": {"fs": 250, "n_samples": 2500},
              # At 2e-3 this tiny ResNet falls to ~0.5 and then collapses back to chance
              # (2 log 4) within 30 steps; 5e-4 falls steadily.
              "train": {"lr": 5e-4, "min_lr": 5e-4}}
    losses = pretrain_losses(recipe, store, tmp_path / "run", steps=30)
    assert mean(losses[-6:]) < 0.8 * mean(losses[:6])

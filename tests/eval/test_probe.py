"""Linear probe: learns a separable problem, selects C on validation only."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from ecgssl.eval.embeddings import (
    cached_embeddings,
    compute_embeddings,
    module_hash,
    open_store_signals,
)
from ecgssl.eval.probe import fit_logistic, linear_probe, linear_probe_cv, low_label_probe
from ecgssl.eval.splits import Split, patient_kfold


def _problem(rng, n=600, d=16, k=3):
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, k))
    y = ((x @ w + rng.normal(scale=1.5, size=(n, k))) > 0.5).astype(np.uint8)
    split = Split(train=np.arange(0, 400), val=np.arange(400, 500), test=np.arange(500, n))
    return x, y, split


def test_fit_logistic_matches_sklearn(rng):
    x, y, _ = _problem(rng, n=300, d=6, k=1)
    w, b = fit_logistic(x, y, c=0.1)
    ref = LogisticRegression(C=0.1, tol=1e-8, max_iter=1000).fit(x, y[:, 0])
    np.testing.assert_allclose(w[:, 0], ref.coef_[0], atol=2e-3)
    assert b[0] == pytest.approx(ref.intercept_[0], abs=2e-3)


def test_probe_beats_chance_and_selects_on_val_only(rng):
    x, y, split = _problem(rng)
    names = ["a", "b", "c"]
    res = linear_probe(x, y, split, class_names=names, n_boot=100)
    assert res.result.macro_auroc > 0.8
    assert res.best_c in res.val_auroc_by_c
    assert res.val_macro_auroc == max(res.val_auroc_by_c.values())
    # Scrambling the test labels changes the test metric but not anything chosen on validation.
    y2 = y.copy()
    y2[split.test] = rng.permutation(y2[split.test])
    res2 = linear_probe(x, y2, split, class_names=names, n_boot=100)
    assert res2.best_c == res.best_c
    assert res2.val_auroc_by_c == res.val_auroc_by_c
    assert res2.result.thresholds == res.result.thresholds
    assert res2.result.macro_auroc < 0.7
    # Random features: about chance.
    noise = rng.normal(size=x.shape).astype(np.float32)
    assert linear_probe(noise, y, split, n_boot=0).result.macro_auroc < 0.65


def test_low_label_and_cv(rng):
    x, y, split = _problem(rng)
    out = low_label_probe(x, y, split, fractions=(0.1, 1.0), n_subsets=2, n_boot=0,
                          c_grid=(0.01, 1.0))
    assert len(out[0.1]["runs"]) == 2 and len(out[1.0]["runs"]) == 1  # 100 % runs once
    assert out[0.1]["n_train"] == 40
    assert out[1.0]["macro_auroc"]["mean"] >= out[0.1]["macro_auroc"]["mean"] - 0.02
    cv = linear_probe_cv(x, y, patient_kfold(3, n_records=len(x), labels=y), n_boot=0,
                         c_grid=(0.1,))
    assert cv["macro_auroc"]["n"] == 3 and cv["macro_auroc"]["mean"] > 0.8


class _CountingEncoder(torch.nn.Module):
    """forward(x) -> (B, 4); counts calls; dropout shows whether eval mode is on."""

    embed_dim = 4

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 4)
        self.drop = torch.nn.Dropout(0.5)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.drop(self.lin(x.mean(dim=2)))


def test_embeddings_cached_by_hashes(tmp_path, rng):
    # (embeddings.py is exercised here: the frozen features feed the probe.)
    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "signals.npy", rng.normal(size=(10, 2, 32)).astype(np.float32))
    (store / "config.json").write_text('{"store_id": "abc123"}')
    enc = _CountingEncoder()
    enc.train()
    signals, store_hash = open_store_signals(store)
    direct = compute_embeddings(enc, signals, batch_size=4, progress=False)
    assert enc.training and direct.shape == (10, 4)  # mode restored afterwards
    a = cached_embeddings(enc, store, tmp_path / "cache", batch_size=3, progress=False)
    np.testing.assert_allclose(a, direct, rtol=1e-6)  # eval mode: deterministic, no dropout
    calls = enc.calls
    b = cached_embeddings(enc, store, tmp_path / "cache", progress=False)
    assert enc.calls == calls and np.array_equal(a, b)  # second call read the cache
    name = f"{module_hash(enc)}_{store_hash}.npy"
    assert (tmp_path / "cache" / name).is_file() and store_hash == "abc123"
    with torch.no_grad():
        enc.lin.weight.add_(1.0)  # new weights, new hash, recomputed
    c = cached_embeddings(enc, store, tmp_path / "cache", progress=False)
    assert enc.calls > calls and not np.allclose(c, a)
    with pytest.raises(ValueError, match="store_hash"):
        cached_embeddings(enc, np.zeros((2, 2, 8), np.float32), tmp_path / "cache")


def test_cached_embeddings_keep_poolings_apart(tmp_path, rng):
    """The same weights pooled by mean and by mean+max are two cache entries, not one."""
    from ecgssl.models import create_encoder

    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "signals.npy", rng.normal(size=(3, 8, 512)).astype(np.float32))
    (store / "config.json").write_text('{"store_id": "abc123"}')
    torch.manual_seed(0)
    enc = create_encoder("resnet1d_small", n_leads=8, widths=(8, 8, 16, 16, 32))
    mean = cached_embeddings(enc, store, tmp_path / "cache", progress=False)
    enc.pool = "meanmax"
    both = cached_embeddings(enc, store, tmp_path / "cache", progress=False)
    assert mean.shape == (3, 32) and both.shape == (3, 64)
    np.testing.assert_allclose(both[:, :32], mean, rtol=1e-5, atol=1e-6)

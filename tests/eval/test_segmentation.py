import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ecgssl.eval.segmentation import (
    SegmentationConfig,
    cross_validate_segmentation,
    evaluate_segmentation,
    predict_waves,
    span_mask,
)
from ecgssl.models.seg_heads import build_seg_model

FS = 250.0


@dataclass
class FakeStore:
    signals: np.ndarray
    masks: np.ndarray
    spans: np.ndarray
    manifest: pd.DataFrame
    config: dict


def _bump(t, center, width):
    return np.exp(-0.5 * ((t - center) / width) ** 2)


def synthetic_store(n_records=24, n_leads=2, n_samples=512, seed=0) -> FakeStore:
    """ECG-like beats (P, QRS, T as bumps) with exact masks; first and last beats unannotated."""
    rng = np.random.default_rng(seed)
    sig = np.zeros((n_records, n_leads, n_samples), dtype=np.float32)
    masks = np.zeros((n_records, n_leads, n_samples), dtype=np.int8)
    spans = np.zeros((n_records, n_leads, 2), dtype=np.int32)
    t = np.arange(n_samples, dtype=np.float64)
    for i in range(n_records):
        rr = int(rng.integers(150, 210))  # 0.6-0.84 s
        r = int(rng.integers(40, 80))
        waves = []
        while r < n_samples + 60:
            p, q, tw = r - 40, r, r + 60
            waves.append([(1, p - 12, p + 12), (2, q - 10, q + 10), (3, tw - 20, tw + 20)])
            for lead in range(n_leads):
                gain = 1.0 if lead == 0 else -0.6
                sig[i, lead] += (0.15 * _bump(t, p, 5) + gain * _bump(t, q, 3)
                                 + 0.3 * _bump(t, tw, 8)).astype(np.float32)
            r += rr + int(rng.integers(-10, 10))
        # annotate all but the first and last beats, like LUDB
        inner = [w for beat in waves[1:-1] for w in beat
                 if w[1] >= 0 and w[2] < n_samples]
        for lead in range(n_leads):
            for code, on, off in inner:
                masks[i, lead, on:off + 1] = code
            spans[i, lead] = (inner[0][1], inner[-1][2] + 1)
        sig[i] += rng.normal(0, 0.02, sig[i].shape).astype(np.float32)
    manifest = pd.DataFrame({"record_id": [f"syn/{i}" for i in range(n_records)],
                             "patient_id": [f"p{i}" for i in range(n_records)]})
    return FakeStore(sig, masks, spans, manifest, {"fs": FS})


class TinyCNN(nn.Module):
    pyramid_strides = (1, 2, 4)
    pyramid_channels = (8, 16, 16)
    stride = 4
    embed_dim = 16

    def __init__(self, n_leads=2):
        super().__init__()
        self.c0 = nn.Conv1d(n_leads, 8, 7, padding=3)
        self.c1 = nn.Conv1d(8, 16, 7, stride=2, padding=3)
        self.c2 = nn.Conv1d(16, 16, 7, stride=2, padding=3)

    def feature_pyramid(self, x, leads=None):
        t = x.shape[-1]
        a = torch.relu(self.c0(x))
        b = torch.relu(self.c1(a))
        c = torch.relu(self.c2(b))
        return [a, b[..., : t // 2], c[..., : t // 4]]

    def forward_features(self, x, leads=None):
        return self.feature_pyramid(x)[-1]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convolutions on a shared 2-core machine: intra-op threads only spin (40x slower).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_span_mask():
    m = span_mask(np.array([[2, 5], [0, 0]]), 6)
    assert m.tolist() == [[False, False, True, True, True, False], [False] * 6]


def test_synthetic_store_is_consistent():
    st = synthetic_store(4)
    assert st.masks.max() == 3 and (st.spans[..., 1] > st.spans[..., 0]).all()
    # nothing labelled outside the span
    outside = ~span_mask(st.spans, st.masks.shape[-1])
    assert (st.masks[outside] == 0).all()


def test_tiny_cross_validation_learns():
    store = synthetic_store()
    t0 = time.perf_counter()
    res = cross_validate_segmentation(store, TinyCNN(), n_folds=3, epochs=15, batch_size=2,
                                      lr=3e-3, folds=[0, 1])
    elapsed = time.perf_counter() - t0
    assert len(res.folds) == 2
    for fold in res.folds:
        hist = [h["val_score"] for h in fold["history"]]
        assert len(hist) == 15
        assert max(hist) > hist[0] + 0.3, hist      # validation Dice improves
        assert fold["best_val_score"] == max(hist)
        assert fold["n_train"] + fold["n_val"] + fold["n_test"] <= 24
    # test records of the two folds are disjoint and pooled covers both
    a, b = (set(f["test_records"]) for f in res.folds)
    assert not a & b
    s = res.summary()
    assert s["pooled"]["n_records"] == len(a | b)
    assert s["pooled"]["QRS"]["dice"] > 0.8, res.to_markdown()
    assert "fold_mean_std" in s and elapsed < 60


def test_best_weights_are_restored_and_predict_waves():
    store = synthetic_store(12)
    res = cross_validate_segmentation(store, TinyCNN(), n_folds=3, epochs=2, batch_size=4,
                                      folds=[0], max_records=9)
    fold = res.folds[0]
    assert fold["n_train"] + fold["n_val"] + fold["n_test"] == 9
    model = build_seg_model(TinyCNN(), n_leads=2)
    classes, waves = predict_waves(model, store.signals[0], FS)
    assert classes.shape == (2, 512) and len(waves) == 2
    classes, waves = predict_waves(model, store.signals[:3], FS)
    assert classes.shape == (3, 2, 512) and len(waves) == 3 and len(waves[0]) == 2
    sc = evaluate_segmentation(model, store, [0, 1])
    assert sc.summary()["n_records"] == 2


def test_config_validation():
    with pytest.raises(ValueError):
        SegmentationConfig(n_folds=1)
    with pytest.raises(ValueError):
        SegmentationConfig(selection="loss")
    with pytest.raises(ValueError):
        SegmentationConfig(max_records=2, n_folds=5)
    with pytest.raises(ValueError):
        cross_validate_segmentation(object(), TinyCNN())


@pytest.mark.parametrize("cache_mb", [1024.0, 1e-4])
def test_frozen_feature_cache_changes_no_number(cache_mb):
    # A frozen encoder's output is cached per window: training, selection and test results
    # equal those of recomputing it every epoch (cache_mb=0); a tiny budget caches nothing.
    store = synthetic_store(12)
    kw = dict(n_folds=3, epochs=3, batch_size=4, folds=[0], freeze_encoder=True, seed=3)
    torch.manual_seed(0)
    enc = TinyCNN()
    plain = cross_validate_segmentation(store, enc, cache_mb=0, **kw)
    cached = cross_validate_segmentation(store, enc, cache_mb=cache_mb, **kw)
    a, b = plain.folds[0], cached.folds[0]
    assert [h["train_loss"] for h in a["history"]] == pytest.approx(
        [h["train_loss"] for h in b["history"]], rel=1e-5, abs=1e-7)
    assert [h["val_score"] for h in a["history"]] == pytest.approx(
        [h["val_score"] for h in b["history"]], rel=1e-5, abs=1e-7)
    assert a["best_epoch"] == b["best_epoch"]
    assert plain.summary()["pooled"]["QRS"]["dice"] == pytest.approx(
        cached.summary()["pooled"]["QRS"]["dice"], rel=1e-5)


def test_frozen_feature_cache_counts_and_refuses_trained_encoders():
    from ecgssl.models.seg_heads import FrozenFeatureCache

    store = synthetic_store(4)
    x = torch.from_numpy(np.asarray(store.signals[:3], dtype=np.float32))
    frozen = build_seg_model(TinyCNN(), n_leads=2, freeze_encoder=True)
    cache = FrozenFeatureCache(frozen, max_bytes=1 << 20)
    first = cache.features(x, [0, 1, 2])
    assert len(cache) == 3 and cache.n_bytes > 0 and cache.n_uncached == 0
    again = cache.features(x, [2, 0, 1])
    for f, g in zip(first, again):
        assert torch.equal(f[[2, 0, 1]], g)
    small = FrozenFeatureCache(frozen, max_bytes=1)
    small.features(x, [0, 1])
    assert len(small) == 0 and small.n_uncached == 2   # over budget: encoded, not kept
    with pytest.raises(ValueError, match="frozen"):
        FrozenFeatureCache(build_seg_model(TinyCNN(), n_leads=2))

"""One preprocessing path: raw records at inference give exactly their store windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgssl.api import Encoder, embed_store, load_encoder
from ecgssl.data.inference import inference_config, prepare_input, to_millivolts
from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.errors import SpecMismatchError
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder

from .synthetic import SyntheticSource

SPEC = {"preprocessing": {"fs": 250.0, "leads": LEADS_8, "n_samples": 2500, "units": "mV"}}


def _encoder(tmp_path, store_config, name="resnet1d_small", **kw):
    torch.manual_seed(0)
    module = create_encoder(name, **kw).eval()
    export_encoder(module, tmp_path / "enc", store_config)
    return load_encoder(tmp_path / "enc.safetensors")


SETTINGS = {
    "none": {},
    "highpass": {"highpass_hz": 0.5},
    "bandpass": {"bandpass_hz": [0.5, 40.0]},
    "zscore": {"normalize": "zscore"},
    "fft": {"resample_method": "fft"},
    "rate360": {},
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_raw_record_through_embed_equals_its_store_windows(tmp_path, setting):
    fs = 360.0 if setting == "rate360" else 500.0
    source = SyntheticSource(2, fs=fs, seconds=23)
    cfg = PreprocessConfig(beats=False, **SETTINGS[setting])
    prepare_store(source, tmp_path / "s", cfg, workers=0, progress=False)
    store = ECGStore(tmp_path / "s")
    enc = _encoder(tmp_path, store.config, n_leads=12, widths=[8, 8, 8, 8, 16])
    assert inference_config(enc.spec).hash() == PreprocessConfig(
        **{**cfg.to_dict(), "allow_missing_leads": True}).hash()
    rec = source.read("syn00001")
    rows = np.flatnonzero(store.manifest["parent_id"].astype(str) == "syn00001")
    assert len(rows) == 3  # 0-10 s, 10-20 s, 13-23 s (aligned to the end)
    prepared = enc.prepare_windows(rec.signal, rec.fs, rec.leads)
    np.testing.assert_allclose(prepared.x, store.signals[rows], atol=1e-6)
    emb = enc.embed_windows(rec.signal, rec.fs, rec.leads)
    with torch.no_grad():
        want = enc.module(torch.from_numpy(np.asarray(store.signals[rows]))).numpy()
    assert emb.n_windows == 3 and emb.starts_s.tolist() == [0.0, 10.0, 13.0]
    np.testing.assert_allclose(emb.windows, want, atol=1e-5)
    np.testing.assert_allclose(enc.embed(rec.signal, rec.fs, rec.leads), want.mean(0), atol=1e-5)
    assert enc.embed(rec.signal, rec.fs, rec.leads, aggregate="none").shape == (3, enc.pooled_dim)
    np.testing.assert_allclose(embed_store(enc, store)[rows], want, atol=1e-5)


def test_inference_resamples_reorders_derives_and_pads_a_little():
    fs, n = 500, 5000
    leads = list(reversed(LEADS_12))
    t = np.arange(n) / fs
    x = np.stack([np.sin(2 * np.pi * (1 + k) * t) for k in range(12)]).astype(np.float32)
    p = prepare_input(SPEC, x, fs, leads)
    assert p.x.shape == (1, 8, 2500) and p.leads == LEADS_8
    t2 = np.arange(2500) / 250
    for row, name in enumerate(LEADS_8):
        k = leads.index(name)
        want = np.sin(2 * np.pi * (1 + k) * t2)
        assert np.abs(p.x[0, row, 50:-50] - want[50:-50]).max() < 0.02, name
    spec12 = {"fs": 250, "leads": LEADS_12, "n_samples": 2500, "units": "mV"}
    y = np.random.default_rng(0).standard_normal((8, 2400)).astype(np.float32) * 0.3
    p = prepare_input(spec12, y, 250, LEADS_8)
    assert p.x.shape == (1, 12, 2500) and p.valid_spans.tolist() == [[0, 2400]]
    np.testing.assert_allclose(p.x[0, 2, :2400], y[1] - y[0], atol=1e-6)  # III
    assert not p.x[0, :, 2400:].any()


def test_inference_refusals_and_reduced_leads():
    x8 = np.random.default_rng(0).standard_normal((8, 2500)).astype(np.float32) * 0.3
    with pytest.raises(SpecMismatchError, match=r"lacks leads \['V1'"):
        prepare_input(SPEC, x8[:2], 250, ["I", "II"])
    with pytest.raises(SpecMismatchError, match="pads at most"):
        prepare_input(SPEC, x8[:, :1000], 250, LEADS_8)
    with pytest.raises(SpecMismatchError, match="none of the encoder's leads"):
        prepare_input(SPEC, x8[:1], 250, ["XYZ"], missing_leads="drop", allow_unknown_leads=True)
    with pytest.raises(SpecMismatchError, match="unknown lead 'XYZ'"):
        prepare_input(SPEC, x8[:2], 250, ["II", "XYZ"], missing_leads="drop")
    with pytest.raises(SpecMismatchError, match="same lead twice"):
        prepare_input(SPEC, x8[:2], 250, ["I", "i"], missing_leads="zero")
    with pytest.raises(SpecMismatchError, match="below the encoder's 250 Hz"):
        prepare_input(SPEC, x8[:, :2000], 200, LEADS_8)
    assert prepare_input(SPEC, x8[:, :2000], 200, LEADS_8, allow_upsampling=True).n_windows == 1
    zero = prepare_input(SPEC, x8[1:2], 250, ["II"], missing_leads="zero")
    assert zero.x.shape == (1, 8, 2500) and zero.present[0].tolist() == [False, True] + [False] * 6
    drop = prepare_input(SPEC, x8[1:2], 250, ["MLII"], missing_leads="drop")
    assert drop.leads == ["II"] and drop.x.shape == (1, 1, 2500)
    assert drop.aliases == {"MLII": "II"}


def test_units_at_the_door():
    rng = np.random.default_rng(1)
    mv = (rng.standard_normal((8, 2500)) * 0.4).astype(np.float32)
    ref = prepare_input(SPEC, mv, 250, LEADS_8).x
    np.testing.assert_allclose(prepare_input(SPEC, mv * 1000, 250, LEADS_8, units="uV").x, ref,
                               atol=1e-5)
    counts = np.round(mv * 200 + 1024).astype(np.int16)
    got = prepare_input(SPEC, counts, 250, LEADS_8, units="counts", gain=200, baseline=1024).x
    np.testing.assert_allclose(got, ref, atol=0.01)
    with pytest.raises(SpecMismatchError, match="absurd amplitude.*units='counts' with gain"):
        prepare_input(SPEC, np.round(mv * 1000).astype(np.int16), 250, LEADS_8)  # counts as mV
    with pytest.raises(ValueError, match="needs gain"):
        to_millivolts(counts, "counts")
    with pytest.raises(ValueError, match="units must be"):
        to_millivolts(counts, "V")


def test_store_embedding_honours_lead_mask_like_the_api(tmp_path):
    """A store whose records lack V1-V6 against raw records through embed, both modes."""
    source = SyntheticSource(3, seconds=10, leads=["I", "II"])
    prepare_store(source, tmp_path / "s", PreprocessConfig(beats=False), workers=0,
                  progress=False)
    store = ECGStore(tmp_path / "s")
    assert store.lead_mask[:, 2:6].all() and not store.lead_mask[:, 6:].any()
    full = ECGStore(tmp_path / "s").config
    enc = _encoder(tmp_path, full, name="vit_tiny", n_leads=12)
    for mode in ("zero", "drop"):
        api = np.stack([enc.embed(r.signal, r.fs, r.leads, missing_leads=mode) for r in source])
        np.testing.assert_allclose(embed_store(enc, store, missing_leads=mode), api, atol=1e-5)
    with pytest.raises(SpecMismatchError, match="syn00000.*lack leads"):
        embed_store(enc, store)
    with pytest.raises(SpecMismatchError, match="lacks leads"):
        enc.embed(source.read("syn00000").signal, 500.0, ["I", "II"])
    drop = embed_store(enc, store, missing_leads="drop")
    zero = embed_store(enc, store, missing_leads="zero")
    assert not np.allclose(drop, zero)  # dropping is not zero-filling for a ViT


def test_store_embedding_refuses_a_store_made_otherwise(tmp_path):
    prepare_store(SyntheticSource(1), tmp_path / "s", PreprocessConfig(beats=False), workers=0,
                  progress=False)
    store = ECGStore(tmp_path / "s")
    config = dict(store.config)
    config["preprocess"] = {**config["preprocess"], "highpass_hz": 0.5}
    enc = _encoder(tmp_path, config, n_leads=12, widths=[8, 8, 8, 8, 16])
    with pytest.raises(SpecMismatchError, match="highpass_hz=None"):
        embed_store(enc, store)


def test_prepare_is_one_window_only():
    enc = Encoder(create_encoder("resnet1d_small", n_leads=8, widths=[8, 8, 8, 8, 16]).eval(),
                  SPEC)
    x = np.random.default_rng(0).standard_normal((8, 7500)).astype(np.float32) * 0.3
    with pytest.raises(SpecMismatchError, match="3 windows.*prepare_windows"):
        enc.prepare(x, 250, LEADS_8)
    assert enc.embed(x, 250, LEADS_8, aggregate="none").shape == (3, enc.pooled_dim)
    y, leads = enc.prepare(x[:, :2500], 250, LEADS_8)
    assert y.shape == (8, 2500) and leads == LEADS_8


def test_batched_input_equals_item_by_item():
    enc = Encoder(create_encoder("resnet1d_small", n_leads=8, widths=[8, 8, 8, 8, 16]).eval(),
                  SPEC)
    x = np.random.default_rng(2).standard_normal((3, 8, 5000)).astype(np.float32) * 0.3
    each = np.stack([enc.embed(item, 250, LEADS_8) for item in x])
    np.testing.assert_allclose(enc.embed(x, 250, LEADS_8), each, atol=1e-5)
    assert enc.embed(x, 250, LEADS_8, aggregate="none").shape == (3, 2, enc.pooled_dim)
    with pytest.raises(ValueError, match="aggregate"):
        enc.embed(x, 250, LEADS_8, aggregate="max")

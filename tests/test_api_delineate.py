"""``ecgssl.delineate`` with a user's segmentation model covers every window of a long record."""

import numpy as np
import pytest

import ecgssl
from ecgssl.api import save_segmentation_model


def _seg_model(tmp_path):
    from ecgssl.models import create_encoder
    from ecgssl.models.seg_heads import build_seg_model
    from ecgssl.train.export import encoder_spec

    model = build_seg_model(create_encoder("resnet1d_small", n_leads=2), 2)
    spec = {"encoder": encoder_spec(model.encoder),
            "preprocessing": {"fs": 250.0, "leads": ["I", "II"], "n_samples": 500,
                              "units": "mV"}}
    return save_segmentation_model(model, tmp_path / "seg", spec, {"scored_leads": ["II"]})


def test_segmentation_model_delineates_every_window(tmp_path, monkeypatch):
    """A 5 s record and a model of 2 s windows: windows at 0, 2 and (end-aligned) 3 s; each
    wave is taken from the window it starts in, nothing twice, nothing after the end."""
    weights = _seg_model(tmp_path)
    calls = []

    def fake_predict(model, x, fs, leads):
        calls.append(np.asarray(x).shape)
        # one QRS at 0.4 s and one at 1.6 s of every window, in every lead
        return None, [np.array([[2, 100, 120], [2, 400, 420]]) for _ in leads]

    monkeypatch.setattr("ecgssl.eval.segmentation.predict_waves", fake_predict)
    rng = np.random.default_rng(0)
    signal = rng.normal(scale=0.3, size=(2, 5 * 250)).astype(np.float32)
    waves = ecgssl.delineate(signal, 250.0, ["I", "II"], model=weights)
    assert len(calls) == 3 and set(waves) == {"II"}
    onsets = [w["onset_s"] for w in waves["II"]]
    assert onsets == pytest.approx([0.4, 1.6, 2.4, 3.6, 4.6])

"""Every plot renders to a PNG without a display."""

import numpy as np
import pandas as pd
import pytest

from ecgssl.data.leads import LEADS_12
from ecgssl.plots import (
    mask_to_spans,
    plot_ecg,
    plot_embedding_map,
    plot_error_histogram,
    plot_roc_curves,
    plot_training_curves,
    waves_to_spans,
)


def _ecg(fs=250, seconds=10):
    t = np.arange(fs * seconds) / fs
    beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / 0.0002)  # narrow spikes every 0.8 s
    return np.stack([beat * (1 + 0.1 * i) for i in range(12)]).astype(np.float32)


def test_spans():
    assert mask_to_spans(np.array([0, 1, 1, 0, 2, 2, 2, 3])) == [(1, 1, 3), (2, 4, 7), (3, 7, 8)]
    assert waves_to_spans(np.array([[2, 10, 12, 20], [3, -1, 30, 40]])) == [(2, 10, 20)]


def test_ecg_grid_with_overlays(tmp_path):
    sig = _ecg()
    waves = {"II": np.array([[2, 60, 75, 90], [3, 120, 140, 160]])}
    mask = np.zeros(sig.shape, dtype=np.int8)
    mask[:, 62:92] = 2
    fig = plot_ecg(sig, 250, LEADS_12, waves=waves, predicted_waves=mask, title="synthetic",
                   path=tmp_path / "ecg.png")
    assert (tmp_path / "ecg.png").stat().st_size > 10_000
    assert fig.axes[0].get_aspect() == pytest.approx(0.4)  # 10 mm/mV over 25 mm/s
    plot_ecg(sig[:2], 250, ["II", "V5"], path=tmp_path / "rows.png")  # falls back to rows
    with pytest.raises(ValueError, match="L = 3"):
        plot_ecg(sig, 250, ["I", "II", "III"])


def test_other_plots(tmp_path, rng):
    y = (rng.random((100, 3)) < 0.4).astype(int)
    s = y + rng.normal(size=y.shape)
    plot_roc_curves(y, s, ["A", "B", "C"], path=tmp_path / "roc.png")
    csv = tmp_path / "m.csv"
    pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.7, 0.5],
                  "val_metric": [0.6, 0.7, 0.72]}).to_csv(csv, index=False)
    plot_training_curves(csv, path=tmp_path / "curves.png")
    plot_embedding_map(rng.normal(size=(100, 8)), y, class_names=["A", "B", "C"],
                       path=tmp_path / "emb.png")
    plot_error_histogram(rng.normal(size=50), rng.normal(size=50), name="QRS", unit="ms",
                         path=tmp_path / "err.png")
    for name in ("roc", "curves", "emb", "err"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="step"):
        plot_training_curves(pd.DataFrame({"loss": [1.0]}))

"""Store-like samples for method tests: synthetic 12-lead windows (4 s at 250 Hz) with what a
store with the beats extra delivers (R-peaks, standardised rhythm and beat features)."""

import numpy as np

from ecgssl.data.beats import annotate_beats
from ecgssl.data.leads import LEADS_12

FS = 250
T = 1000


def _gauss(t, mu, sigma, amp):
    return amp * np.exp(-0.5 * ((t - mu) / sigma) ** 2)


def store_items(n: int = 8, seed: int = 0) -> list[dict]:
    """Store-like samples: synthetic 12-lead windows with R-peaks and standardised features."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FS
    out = []
    for i in range(n):
        rr = rng.uniform(0.55, 1.1)
        ii = np.zeros(T)
        for r in np.arange(rng.uniform(0.2, 0.5), 4.0, rr):
            wide = rng.random() < 0.15
            ii += _gauss(t, r, 0.035 if wide else 0.01, rng.uniform(0.8, 1.5))
            ii += _gauss(t, r - 0.16, 0.02, 0.15) + _gauss(t, r + 0.3, 0.04, rng.uniform(-.2, .4))
        gains = rng.normal(size=(12, 1)) * 0.5 + 1.0
        sig = (gains * ii + 0.02 * rng.normal(size=(12, T))).astype(np.float32)
        ann = annotate_beats(sig, FS, LEADS_12, record_id=str(i))
        out.append({"signal": sig, "index": i, "rpeaks": ann.rpeaks,
                    "features": ann.rhythm_features, "beat_features": ann.beat_features,
                    "beat_classes": ann.beat_classes})
    feats = np.stack([s["features"] for s in out])
    mu, sd = np.nanmean(feats, 0), np.nanstd(feats, 0) + 1e-6
    bf = np.concatenate([s["beat_features"] for s in out])
    bmu, bsd = np.nanmean(bf, 0), np.nanstd(bf, 0) + 1e-6
    for s in out:  # standardised and NaN-free, as the store delivers them
        s["features"] = np.nan_to_num((s["features"] - mu) / sd).astype(np.float32)
        s["beat_features"] = np.nan_to_num((s["beat_features"] - bmu) / bsd).astype(np.float32)
    return out

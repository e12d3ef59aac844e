"""What other recorders do to an ECG, as random training augmentations of one lead.

Every transform works on one crop of one lead in mV at the model rate ``fs`` (250 Hz) and is
applied with its own probability (``AUGMENTATIONS``: name -> probability, recorded in the model's
JSON). The wave mask is changed only by ``time_stretch`` (it moves the waves); every other
transform changes amplitudes only, so the expert labels stay valid.

* ``amplitude``: gain x log-uniform [0.4, 2.5]; polarity flipped with probability 0.15 (leads
  wired or derived the other way round, aVR-like morphologies on other leads).
* ``time_stretch``: the crop is taken from 0.85-1.15 x its length of signal and resampled to its
  length (heart-rate and sampling-clock differences; rates the model never saw exactly).
* ``low_rate``: down-sampled to one of 100-200 Hz and back (a low-rate recorder's anti-alias
  band limit and interpolation).
* ``holter_band``: causal Butterworth high-pass 0.05-1 Hz (order 1-2) and low-pass 20-45 Hz
  (order 2-4, causal or zero-phase): the band limits and phase distortion of Holter and monitor
  front ends.
* ``baseline_wander``: 1-3 sinusoids of 0.05-0.6 Hz, 0.05-1 mV in total (breathing, movement).
* ``emg``: band-limited (20-100 Hz) Gaussian noise at 0-24 dB SNR (muscle).
* ``electrode_motion``: low-frequency (0.5-10 Hz) noise at 0-18 dB SNR plus, half the time, a
  baseline step (electrode-skin impedance changes, like the MIT-BIH "em" noise record).
* ``powerline``: 50 or 60 Hz sinusoid of 0.01-0.2 mV with a weaker third harmonic.
* ``white``: Gaussian noise of 0-0.02 mV rms (quantisation, amplifier noise), always applied.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

AUGMENTATIONS: dict[str, float] = {
    "amplitude": 1.0, "time_stretch": 0.5, "low_rate": 0.3, "holter_band": 0.4,
    "baseline_wander": 0.6, "emg": 0.4, "electrode_motion": 0.3, "powerline": 0.3,
    "white": 1.0,
}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean((x - x.mean()) ** 2)) + 1e-6)


def _band_noise(n: int, fs: float, lo: float, hi: float, rng) -> np.ndarray:
    """Unit-rms Gaussian noise band-passed to [lo, hi] Hz (hi capped below Nyquist)."""
    hi = min(hi, 0.45 * fs)
    sos = sps.butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos")
    noise = sps.sosfiltfilt(sos, rng.standard_normal(n + 200))[100:100 + n]
    return noise / (_rms(noise))


def stretch_crop(signal: np.ndarray, mask: np.ndarray, span: tuple[int, int], length: int,
                 factor: float, rng) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A random crop of ``round(length * factor)`` samples resampled to ``length``.

    Args:
        signal: (T,) mV; mask: (T,) int wave codes; span: annotated [start, end).
        factor: > 1 compresses (faster heart, lower clock), < 1 stretches; clipped so the source
            fits in T.
    Returns:
        (signal (length,), mask (length,), span in crop samples, clipped to [0, length]).
    """
    n = len(signal)
    src = int(min(round(length * factor), n))
    start = int(rng.integers(0, n - src + 1))
    pos = start + np.arange(length) * (src / length)
    out = np.interp(pos, np.arange(n), signal).astype(np.float32)
    idx = np.clip(np.round(pos).astype(np.int64), 0, n - 1)
    scale = length / src
    s0 = int(np.clip(np.ceil((span[0] - start) * scale), 0, length))
    s1 = int(np.clip(np.floor((span[1] - start) * scale), 0, length))
    return out, mask[idx], (s0, max(s0, s1))


def augment_lead(x: np.ndarray, fs: float, rng, probs: dict[str, float] | None = None
                 ) -> np.ndarray:
    """Apply the amplitude-only augmentations (all but ``time_stretch``) to one lead (T,) mV."""
    p = AUGMENTATIONS if probs is None else probs
    x = np.asarray(x, dtype=np.float64).copy()
    n = x.size
    t = np.arange(n) / fs

    def on(name: str) -> bool:
        return rng.random() < p.get(name, 0.0)

    if on("amplitude"):
        x *= np.exp(rng.uniform(np.log(0.4), np.log(2.5)))
        if rng.random() < 0.15:
            x = -x
    if on("low_rate"):
        low = float(rng.choice([100.0, 125.0, 128.0, 150.0, 180.0, 200.0]))
        ratio = Fraction(low / fs).limit_denominator(100)
        y = sps.resample_poly(x, ratio.numerator, ratio.denominator)  # anti-aliased
        # Back to fs by linear interpolation, as a viewer or a resampling pipeline would.
        x = np.interp(np.arange(n) * (len(y) / n), np.arange(len(y)), y)
    if on("holter_band"):
        hp = sps.butter(int(rng.integers(1, 3)), rng.uniform(0.05, 1.0), btype="highpass",
                        fs=fs, output="sos")
        x = sps.sosfilt(hp, x - x[0]) + x[0]
        lp = sps.butter(int(rng.integers(2, 5)), rng.uniform(20.0, 45.0), btype="lowpass",
                        fs=fs, output="sos")
        x = sps.sosfilt(lp, x - x[0]) + x[0] if rng.random() < 0.5 else sps.sosfiltfilt(lp, x)
    signal_rms = _rms(x)
    if on("baseline_wander"):
        k = int(rng.integers(1, 4))
        amps = rng.dirichlet(np.ones(k)) * rng.uniform(0.05, 1.0)
        for a in amps:
            x += a * np.sin(2 * np.pi * rng.uniform(0.05, 0.6) * t + rng.uniform(0, 2 * np.pi))
    if on("emg"):
        snr = rng.uniform(0.0, 24.0)
        x += _band_noise(n, fs, 20.0, 100.0, rng) * signal_rms / 10 ** (snr / 20)
    if on("electrode_motion"):
        snr = rng.uniform(0.0, 18.0)
        x += _band_noise(n, fs, 0.5, 10.0, rng) * signal_rms / 10 ** (snr / 20)
        if rng.random() < 0.5:
            at = int(rng.integers(0, n))
            x[at:] += rng.normal(0.0, 0.5) * signal_rms
    if on("powerline"):
        f0 = float(rng.choice([50.0, 60.0]))
        a = rng.uniform(0.01, 0.2)
        phase = rng.uniform(0, 2 * np.pi)
        x += a * np.sin(2 * np.pi * f0 * t + phase)
        if 3 * f0 < 0.5 * fs:
            x += 0.3 * a * np.sin(2 * np.pi * 3 * f0 * t + phase)
    if on("white"):
        x += rng.normal(0.0, rng.uniform(0.0, 0.02), n)
    return x.astype(np.float32)

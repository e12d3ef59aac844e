import numpy as np
import pytest

from ecgssl.data.leads import LEADS_8, LEADS_12, canonical_lead, derive_limb_leads
from ecgssl.data.preprocess import (
    PreprocessConfig,
    fit_length,
    preprocess_signal,
    resample,
)
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError

from .synthetic import synthetic_ecg


def _record(signal, fs=500.0, leads=None, rid="r1"):
    return Record(signal=signal, fs=fs, leads=leads or list(LEADS_12), record_id=rid)


def test_canonical_lead_names():
    assert [canonical_lead(n) for n in ["i", "AVR", "avl", "v1", "MLII", "V5 "]] == [
        "I", "aVR", "aVL", "V1", "MLII", "V5"]


def test_derived_limb_leads_follow_einthoven_and_goldberger():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 100)).astype(np.float32)
    y, leads = derive_limb_leads(x, ["I", "II"])
    assert leads == ["I", "II", "III", "aVR", "aVL", "aVF"]
    i, ii = x
    np.testing.assert_allclose(y[2], ii - i, atol=1e-6)
    np.testing.assert_allclose(y[3] + y[4] + y[5], 0, atol=1e-5)  # Goldberger leads sum to 0


@pytest.mark.parametrize("fs_in,fs_out", [(500, 250), (360, 250), (1000, 500), (250, 250)])
def test_resample_keeps_a_sine(fs_in, fs_out):
    t = np.arange(int(fs_in * 4)) / fs_in
    x = np.sin(2 * np.pi * 5 * t)[None].astype(np.float32)
    y = resample(x, fs_in, fs_out)
    assert y.shape[-1] == int(round(x.shape[-1] * fs_out / fs_in))
    t_out = np.arange(y.shape[-1]) / fs_out
    inner = slice(fs_out // 2, -fs_out // 2)
    np.testing.assert_allclose(y[0, inner], np.sin(2 * np.pi * 5 * t_out)[inner], atol=0.02)


def test_fit_length_crops_and_pads():
    x = np.arange(10, dtype=np.float32)[None]
    assert fit_length(x, 4)[0].tolist() == [[0, 1, 2, 3]]
    assert fit_length(x, 4, "center")[0].tolist() == [[3, 4, 5, 6]]
    assert fit_length(x, 12)[0].shape == (1, 12)


def test_preprocess_derives_missing_limb_leads_and_masks_absent_ones():
    sig = synthetic_ecg(8, 500.0)
    rec = _record(sig, leads=list(LEADS_8))
    x, present, _ = preprocess_signal(rec, PreprocessConfig(beats=False))
    assert x.shape == (12, 2500) and present.all()
    rec = _record(sig[:2], leads=["I", "V1"])
    x, present, _ = preprocess_signal(rec, PreprocessConfig(beats=False))
    assert present.tolist() == [n in ("I", "V1") for n in LEADS_12]
    assert np.all(x[~present] == 0)


def test_bad_inputs_name_the_record_and_the_problem():
    sig = synthetic_ecg(12, 500.0)
    bad = sig.copy()
    bad[3, 100:110] = np.nan
    with pytest.raises(ECGDataError, match=r"'r1'.*NaN.*aVR"):
        preprocess_signal(_record(bad), PreprocessConfig())
    with pytest.raises(ECGDataError, match="below the requested"):
        preprocess_signal(_record(synthetic_ecg(12, 100.0), fs=100.0), PreprocessConfig())
    with pytest.raises(ECGDataError, match="absurd amplitude"):
        preprocess_signal(_record(sig * 1000), PreprocessConfig())  # uV taken for mV
    with pytest.raises(ECGDataError, match="all leads are flat"):
        preprocess_signal(_record(np.zeros_like(sig)), PreprocessConfig())
    flat = sig.copy()
    flat[7] = 0.3
    with pytest.raises(ECGDataError, match="flat leads"):
        preprocess_signal(_record(flat), PreprocessConfig(flat_leads="error"))
    x, present, _ = preprocess_signal(_record(flat), PreprocessConfig(flat_leads="mask"))
    assert not present[7] and np.all(x[7] == 0)
    with pytest.raises(ECGDataError, match="'r1'.*unknown lead 'X9'.*--lead-alias X9=LEAD"):
        preprocess_signal(_record(sig[:1], leads=["X9"]), PreprocessConfig())
    with pytest.raises(ECGDataError, match="none of the requested leads"):
        preprocess_signal(_record(sig[:1], leads=["V1"]), PreprocessConfig(leads=["II"]))


def test_config_validation_and_hash():
    with pytest.raises(ValueError, match="crop"):
        PreprocessConfig(crop="middle")
    with pytest.raises(ValueError, match="unknown preprocessing options"):
        PreprocessConfig.from_dict({"fss": 1})
    assert PreprocessConfig().hash() == PreprocessConfig().hash()
    assert PreprocessConfig(fs=500).hash() != PreprocessConfig().hash()


def test_rpeak_detector_is_validated_hashed_and_legacy_aware():
    import hashlib
    import json

    from ecgssl.delineation.rpeaks import PREPARE_DETECTOR

    assert PreprocessConfig().rpeak_detector == PREPARE_DETECTOR == "delineator"
    with pytest.raises(ValueError, match=r"rpeak_detector must be one of .*'ecgssl'.*'nk_neurokit'"):
        PreprocessConfig(rpeak_detector="pan-tompkins")
    with pytest.raises(ValueError, match="needs fs >= 100 Hz"):
        PreprocessConfig(fs=64.0)
    assert PreprocessConfig(fs=64.0, rpeak_detector="ecgssl").fs == 64.0
    assert PreprocessConfig(fs=64.0, beats=False).fs == 64.0
    ours, theirs = PreprocessConfig(rpeak_detector="ecgssl"), PreprocessConfig()
    assert ours.hash() != theirs.hash()  # beats by another detector: another store
    # Ours hashes as a config from before the field did (older stores are still recognised).
    old = ours.to_dict()
    del old["rpeak_detector"]
    old_hash = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert ours.hash() == old_hash
    # Without beats the detector changes nothing in the store, nor the hash.
    assert PreprocessConfig(beats=False).hash() == \
        PreprocessConfig(beats=False, rpeak_detector="nk_neurokit").hash()
    # A stored config without the field was made with ours; a user's partial options are not.
    assert PreprocessConfig.from_stored(old).rpeak_detector == "ecgssl"
    assert PreprocessConfig.from_stored(old).hash() == old_hash
    assert PreprocessConfig.from_stored(theirs.to_dict()).rpeak_detector == "delineator"
    assert PreprocessConfig.from_dict({"fs": 250.0}).rpeak_detector == "delineator"


def test_zero_phase_filters_keep_r_peak_timing():
    sig = synthetic_ecg(12, 500.0, seconds=10)
    cfg = PreprocessConfig(bandpass_hz=[0.5, 40.0], beats=False)
    x, _, _ = preprocess_signal(_record(sig), cfg)
    raw, _, _ = preprocess_signal(_record(sig), PreprocessConfig(beats=False))
    peak_raw, peak_filt = np.argmax(raw[1, :400]), np.argmax(x[1, :400])
    assert abs(int(peak_raw) - int(peak_filt)) <= 1

"""ecgssl.delineate with the bundled model: no model argument, any lead, length and rate."""

import json

import numpy as np
import pytest

import ecgssl
from ecgssl.delineation.infer import Delineator, get_delineator, lead_names
from ecgssl.delineation.model import DEFAULT_MODEL
from ecgssl.errors import SpecMismatchError
from ecgssl.eval.segmentation_metrics import match_points


@pytest.fixture(scope="module")
def ludb_ii(shared_data):
    """Lead II of the first 90 LUDB records (10 s each, 500 Hz, mV)."""
    from ecgssl.io.ludb import read_ludb

    out = []
    for number in range(1, 91):
        with _quiet():
            rec = read_ludb(shared_data / "ludb", number)
        out.append(rec.lead("II"))
    return np.stack(out)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def _qrs_onsets(waves: list[dict], fs: float) -> np.ndarray:
    return np.array([round(w["onset_s"] * fs) for w in waves if w["wave"] == "QRS"], dtype=int)


def test_bundled_model_ships_with_its_spec():
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert meta["format"] == "ecgssl-delineator"
    assert DEFAULT_MODEL.with_suffix(".safetensors").stat().st_size < 2_000_000
    assert "ODC-By" in meta["licence"]["data_licence"]
    assert meta["training"]["n_records"] == 200 and "validation" in meta
    assert meta["postprocess"] == meta["validation"]["chosen"]


def test_delineate_needs_no_model(ludb_ii):
    waves = ecgssl.delineate(ludb_ii[0], 500.0, "ii")
    assert list(waves) == ["II"]
    kinds = {w["wave"] for w in waves["II"]}
    assert kinds == {"P", "QRS", "T"}
    n_qrs = sum(w["wave"] == "QRS" for w in waves["II"])
    assert 8 <= n_qrs <= 16  # LUDB record 1: 10 s of sinus rhythm
    assert all(0 <= w["onset_s"] <= w["offset_s"] <= 10.0 for w in waves["II"])


def test_any_subset_rate_and_aliases(ludb_ii):
    x = np.stack([ludb_ii[1], -ludb_ii[1]])
    waves = ecgssl.delineate(x, 500.0, ["ECG1", "ECG2"], lead_aliases={"ecg1": "II"})
    assert list(waves) == ["II", "ECG2"]
    from ecgssl.data.preprocess import resample

    ref = _qrs_onsets(waves["II"], 500.0)
    for fs in (100.0, 128.0, 360.0, 1000.0):
        got = _qrs_onsets(ecgssl.delineate(resample(ludb_ii[1], 500.0, fs), fs, "II")["II"],
                          fs) * (500.0 / fs)
        pi, _ = match_points(got, ref, 0.04 * 500)
        assert len(pi) >= 0.9 * len(ref), fs


def test_fifteen_minute_lead_matches_per_window_results(ludb_ii):
    fs = 500.0
    joined = ludb_ii.reshape(-1)  # 90 records x 10 s = 15 min of one lead
    assert joined.size == 15 * 60 * 500
    long_waves = ecgssl.delineate(joined, fs, "II")["II"]
    long_on = _qrs_onsets(long_waves, fs)
    matched = total = 0
    for k, x in enumerate(ludb_ii):
        on = _qrs_onsets(ecgssl.delineate(x, fs, "II")["II"], fs)
        # Compare away from the joins (the joined lead has neighbours, the window has edges).
        on = on[(on > 1.5 * fs) & (on < 8.5 * fs)] + k * x.size
        pi, _ = match_points(long_on, on, 0.01 * fs)
        matched += len(pi)
        total += len(on)
    assert total > 600
    assert matched >= 0.95 * total
    assert np.all(np.diff(long_on) > 0)  # one wave list, sorted, no duplicates at the joins


def test_refusals_name_the_problem(ludb_ii):
    with pytest.raises(SpecMismatchError, match="below 100 Hz"):
        ecgssl.delineate(ludb_ii[0][::10], 50.0, "II")
    with pytest.raises(SpecMismatchError, match="shorter than"):
        ecgssl.delineate(ludb_ii[0][:200], 500.0, "II")
    bad = ludb_ii[0].copy()
    bad[10] = np.nan
    with pytest.raises(SpecMismatchError, match="NaN"):
        ecgssl.delineate(bad, 500.0, "II")
    with pytest.raises(SpecMismatchError, match="2 lead names"):
        ecgssl.delineate(ludb_ii[0], 500.0, ["I", "II"])
    with pytest.raises(SpecMismatchError, match="twice"):
        lead_names(["ii", "II"])


def test_loaded_once_and_counts_rules(ludb_ii):
    assert get_delineator() is get_delineator()
    dl = Delineator.load()
    dl.waves(ludb_ii[2], 500.0, "II")
    assert all(v >= 0 for v in dl.last_counts.values())


def test_info_describes_the_bundled_model(capsys):
    from ecgssl.cli import main

    assert main(["info", str(DEFAULT_MODEL.with_suffix(".json"))]) == 0
    out = capsys.readouterr().out
    assert "delineator" in out and "sha256" in out and "LUDB" in out

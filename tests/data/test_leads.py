"""The lead alias table and unknown leads (``ecgssl.data.leads.resolve_leads``)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgssl.data.leads import canonical_lead, parse_lead_aliases, resolve_leads
from ecgssl.data.preprocess import PreprocessConfig, preprocess_window
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError

from .synthetic import synthetic_ecg


def test_spellings_and_the_alias_table():
    assert [canonical_lead(x) for x in ["avr", " V1 ", "d2", "ii"]] == ["aVR", "V1", "II", "II"]
    m = resolve_leads(["MLII", "ML II", "v5"][::2])
    assert m.leads == ["II", "V5"] and m.aliases == {"MLII": "II"}
    assert resolve_leads(["ml ii", "CM5"]).leads == ["II", "V5"]
    with pytest.raises(ECGDataError, match="'rec'.*unknown lead 'MLII'"):
        resolve_leads(["MLII"], record_id="rec", use_table=False)


def test_unknown_leads_are_refused_or_dropped_and_counted():
    with pytest.raises(ECGDataError, match=r"'r'.*unknown lead 'XYZ'.*--allow-unknown-leads"):
        resolve_leads(["I", "XYZ"], record_id="r")
    with pytest.raises(ECGDataError, match=r"unknown lead 'ECG'.*--lead-alias ECG=I"):
        resolve_leads(["ECG"], record_id="r")
    m = resolve_leads(["I", "XYZ", "II"], allow_unknown=True)
    assert m.leads == ["I", "II"] and m.keep == [0, 2] and m.dropped == ["XYZ"]
    m = resolve_leads(["ECG1", "ECG2"], aliases={"ecg1": "II", "ECG2": "v5"})
    assert m.leads == ["II", "V5"] and m.aliases == {"ECG1": "II", "ECG2": "V5"}
    with pytest.raises(ECGDataError, match="same lead twice"):
        resolve_leads(["MLII", "II"])
    with pytest.raises(ECGDataError, match="not a standard lead"):
        resolve_leads(["ECG"], aliases={"ECG": "Z"})
    assert parse_lead_aliases(["ECG=I", "ML II = II"]) == {"ECG": "I", "ML II": "II"}
    with pytest.raises(ValueError, match="NAME=LEAD"):
        parse_lead_aliases(["ECG"])


def test_preprocessing_applies_aliases_and_drops_unknown_leads_when_allowed():
    sig = synthetic_ecg(3, 360.0, seconds=10)
    rec = Record(sig, 360.0, ["MLII", "V5", "XYZ"], "mit/1")
    with pytest.raises(ECGDataError, match="'mit/1'.*unknown lead 'XYZ'"):
        preprocess_window(rec, PreprocessConfig(beats=False))
    out = preprocess_window(rec, PreprocessConfig(beats=False, allow_unknown_leads=True))
    assert out.aliases == {"MLII": "II"} and out.dropped == ["XYZ"]
    leads = PreprocessConfig().leads
    assert out.present.tolist() == [name in ("II", "V5") for name in leads]
    assert np.abs(out.signal[leads.index("II")]).max() > 0.1

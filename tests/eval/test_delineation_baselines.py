import numpy as np
import pytest

from ecgssl.errors import ECGDataError
from ecgssl.eval.delineation_baselines import (
    AnnotatedLead,
    evaluate_nk_baseline,
    ludb_annotated_leads,
    nk_delineate_lead,
    nk_waves_to_array,
    rescore,
)


def test_nk_waves_to_array_handles_nan_and_missing_keys():
    waves = {"ECG_P_Onsets": [10, np.nan], "ECG_P_Offsets": [30, np.nan],
             "ECG_R_Onsets": [40, 140], "ECG_R_Offsets": [np.nan, 180],
             "ECG_T_Offsets": [90, 999]}  # no T onsets ('peak' method style); 999 out of range
    arr = nk_waves_to_array(waves, n_samples=500)
    assert arr.tolist() == [[1, 10, 30], [2, 40, -1], [3, -1, 90], [2, 140, 180]]
    assert nk_waves_to_array({}, 500).shape == (0, 3)


def test_bad_leads_raise_named_errors():
    with pytest.raises(ECGDataError, match="r1"):
        nk_delineate_lead(np.zeros(5000), 500, record_id="r1")
    with pytest.raises(ECGDataError, match="NaN"):
        nk_delineate_lead(np.full(5000, np.nan), 500)
    with pytest.raises(ValueError):
        nk_delineate_lead(np.ones(10), 500, method="magic")


def test_failures_are_skipped_and_reported(shared_data):
    leads = list(ludb_annotated_leads(shared_data / "ludb", records=["1"]))
    flat = AnnotatedLead("flat", "II", np.zeros(5000, dtype=np.float32), 500.0,
                         leads[0].waves, leads[0].span)
    res = evaluate_nk_baseline([flat] + leads, "prominence")
    assert res.n_leads == 2 and len(res.failures) == 1
    assert res.failures[0]["record_id"] == "flat"
    assert res.scorer.summary()["n_records"] == 1


def test_prominence_on_real_ludb_lead_ii(shared_data):
    leads = list(ludb_annotated_leads(shared_data / "ludb", records=["1", "2", "3"]))
    assert len(leads) == 3 and all(it.lead == "II" for it in leads)
    assert all(0 < it.span[0] < it.span[1] <= 5000 for it in leads)
    res = evaluate_nk_baseline(leads, "prominence")
    s = res.scorer.summary()
    assert not res.failures
    assert s["QRS"]["onset"]["f1"] > 0.95 and s["QRS"]["offset"]["f1"] > 0.95
    assert s["T"]["offset"]["f1"] > 0.9
    assert abs(s["QRS"]["onset"]["error_mean_ms"]) < 30
    assert s["QRS"]["dice"] > 0.6


def test_rescore_counts_p_in_leads_without_expert_p(shared_data):
    leads = list(ludb_annotated_leads(shared_data / "ludb", records=["1"]))
    res = evaluate_nk_baseline(leads, "prominence")
    assert len(res.predictions) == 1
    # pretend the expert marked no P: default skips P, rescoring with skip_absent=() counts FPs
    no_p = [AnnotatedLead(it.record_id, it.lead, it.signal, it.fs,
                          it.waves[it.waves[:, 0] != 1], it.span) for it in leads]
    default = rescore(res, no_p).summary()["P"]
    strict = rescore(res, no_p, skip_absent=()).summary()["P"]
    assert default["n_leads_skipped"] == 1 and default["onset"]["fp"] == 0
    assert strict["onset"]["fp"] > 0 and strict["onset"]["f1"] == 0
    same = rescore(res, leads).summary()
    assert same["QRS"]["onset"]["f1"] == res.scorer.summary()["QRS"]["onset"]["f1"]


def test_rescore_failures_as_misses(shared_data):
    leads = list(ludb_annotated_leads(shared_data / "ludb", records=["1"]))
    flat = AnnotatedLead("flat", "II", np.zeros(5000, dtype=np.float32), 500.0,
                         leads[0].waves, leads[0].span)
    res = evaluate_nk_baseline([flat] + leads, "prominence")
    skipped = rescore(res, [flat] + leads).summary()["QRS"]["onset"]
    missed = rescore(res, [flat] + leads, failures_as_misses=True).summary()["QRS"]["onset"]
    assert missed["fn"] == skipped["fn"] + len(leads[0].waves[leads[0].waves[:, 0] == 2])
    assert missed["tp"] == skipped["tp"] and missed["se"] < skipped["se"]

"""Write a small PTB-XL fixture in the native layout from the ten ``HR0600x`` CinC records.

The ten ``HR06000``-``HR06009`` records of the CinC 2021 sample are PTB-XL recordings (500 Hz).
``write_ptbxl_fixture`` writes them as ``records500/00000/0000k_hr`` (WFDB format 16, upper-case
PTB-XL lead names ``AVR`` ...), ``records100/00000/0000k_lr`` (resampled by 1/5 with a polyphase
anti-aliasing filter), a ``ptbxl_database.csv`` with plausible ``scp_codes`` (chosen to agree with
the records' SNOMED Dx codes), folds 1..10 (one record each, so every split is present) and
patient ids (records 1 and 2 share a patient), and a ``scp_statements.csv`` with PTB-XL's column
names and its real flags/classes for the statements used.

Used by the io tests and by other modules' tests (``ecgssl.io.ptbxl_fixture.write_ptbxl_fixture``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# ecg_id -> (CinC record, scp_codes). SNOMED: 164934002 TAb, 426783006 SR, 55930002 ST changes,
# 426177001 SB, 713426002 IRBBB, 427084000 STach.
FIXTURE_RECORDS = {
    1: ("HR06000", {"NDT": 100.0, "SR": 0.0}),
    2: ("HR06001", {"NST_": 50.0, "ISC_": 50.0, "SR": 0.0}),
    3: ("HR06002", {"IRBBB": 100.0, "SBRAD": 0.0}),
    4: ("HR06003", {"NORM": 80.0, "STACH": 0.0}),
    5: ("HR06004", {"NORM": 100.0, "SR": 0.0}),
    6: ("HR06005", {"IMI": 100.0, "ABQRS": 0.0, "SR": 0.0}),
    7: ("HR06006", {"LVH": 100.0, "SR": 0.0}),
    8: ("HR06007", {"ASMI": 100.0, "QWAVE": 0.0, "SR": 0.0}),
    9: ("HR06008", {"NORM": 100.0, "SR": 0.0}),
    10: ("HR06009", {"1AVB": 100.0, "LAFB": 100.0, "SR": 0.0}),
}
FIXTURE_PATIENTS = {1: 101, 2: 101, 3: 102, 4: 103, 5: 104, 6: 105, 7: 106, 8: 107, 9: 108,
                    10: 109}

# code: (description, diagnostic, form, rhythm, diagnostic_class, diagnostic_subclass,
#        Statement Category) as in PTB-XL's scp_statements.csv.
_STATEMENTS = {
    "NDT": ("non-diagnostic T abnormalities", 1, 1, None, "STTC", "STTC",
            "Basic roots for coding ECG abnormalities"),
    "NST_": ("non-specific ST changes", 1, 1, None, "STTC", "NST_",
             "Basic roots for coding ECG abnormalities"),
    "ISC_": ("non-specific ischemic", 1, None, None, "STTC", "ISC_",
             "Myocardial Infarction"),
    "IRBBB": ("incomplete right bundle branch block", 1, None, None, "CD", "IRBBB",
              "Intraventricular and intra-atrial Conduction disturbances"),
    "NORM": ("normal ECG", 1, None, None, "NORM", "NORM", "Normal/abnormal"),
    "IMI": ("inferior myocardial infarction", 1, None, None, "MI", "IMI", "Myocardial Infarction"),
    "ASMI": ("anteroseptal myocardial infarction", 1, None, None, "MI", "AMI",
             "Myocardial Infarction"),
    "LVH": ("left ventricular hypertrophy", 1, None, None, "HYP", "LVH",
            "Ventricular Hypertrophy"),
    "1AVB": ("first degree AV block", 1, None, None, "CD", "_AVB",
             "Atrioventricular Conduction disturbances"),
    "LAFB": ("left anterior fascicular block", 1, None, None, "CD", "LAFB/LPFB",
             "Intraventricular and intra-atrial Conduction disturbances"),
    "ABQRS": ("abnormal QRS", None, 1, None, None, None, "Morphology"),
    "QWAVE": ("Q waves present", None, 1, None, None, None, "Morphology"),
    "SR": ("sinus rhythm", None, None, 1, None, None, "Rhythm"),
    "SBRAD": ("sinus bradycardia", None, None, 1, None, None, "Rhythm"),
    "STACH": ("sinus tachycardia", None, None, 1, None, None, "Rhythm"),
}
PTBXL_LEAD_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def write_ptbxl_fixture(out_dir: str | Path, cinc_dir: str | Path) -> Path:
    """Write the fixture into ``out_dir`` (created) from ``cinc_dir`` (the CinC 2021 sample).

    Returns:
        ``out_dir`` as a Path (the PTB-XL root).
    """
    import wfdb
    from scipy.signal import resample_poly

    from ecgssl.io.cinc import read_cinc

    out_dir, cinc_dir = Path(out_dir), Path(cinc_dir)
    rows = []
    for ecg_id, (name, scp) in FIXTURE_RECORDS.items():
        rec = read_cinc(cinc_dir / name, checks=None)
        hr = rec.signal.T.astype(np.float64)  # (samples, leads) mV
        lr = resample_poly(hr, 1, 5, axis=0)
        fn_hr = f"records500/00000/{ecg_id:05d}_hr"
        fn_lr = f"records100/00000/{ecg_id:05d}_lr"
        for fn, sig, fs in ((fn_hr, hr, 500), (fn_lr, lr, 100)):
            path = out_dir / fn
            path.parent.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(path.name, fs=fs, units=["mV"] * 12, sig_name=PTBXL_LEAD_NAMES,
                        p_signal=sig, fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                        baseline=[0] * 12, write_dir=str(path.parent))
        rows.append({
            "ecg_id": ecg_id, "patient_id": float(FIXTURE_PATIENTS[ecg_id]),
            "age": rec.meta["age"], "sex": 0 if rec.meta["sex"] == "M" else 1,
            "height": np.nan, "weight": np.nan, "nurse": np.nan, "site": 0.0,
            "device": "CS-12   E", "recording_date": f"1990-01-{ecg_id:02d} 09:00:00",
            "report": "fixture", "scp_codes": repr(scp), "heart_axis": np.nan,
            "validated_by_human": True, "second_opinion": False,
            "initial_autogenerated_report": False, "baseline_drift": np.nan,
            "static_noise": np.nan, "burst_noise": np.nan, "electrodes_problems": np.nan,
            "extra_beats": np.nan, "pacemaker": np.nan, "strat_fold": ecg_id,
            "filename_lr": fn_lr, "filename_hr": fn_hr})
    pd.DataFrame(rows).to_csv(out_dir / "ptbxl_database.csv", index=False)
    st_rows = []
    for code, (desc, diag, form, rhythm, cls, sub, cat) in _STATEMENTS.items():
        st_rows.append({"": code, "description": desc, "diagnostic": diag, "form": form,
                        "rhythm": rhythm, "diagnostic_class": cls, "diagnostic_subclass": sub,
                        "Statement Category": cat, "SCP-ECG Statement Description": desc,
                        "AHA code": np.nan, "aECG REFID": np.nan, "CDISC Code": np.nan,
                        "DICOM Code": np.nan})
    pd.DataFrame(st_rows).to_csv(out_dir / "scp_statements.csv", index=False)
    return out_dir

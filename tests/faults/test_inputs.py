"""Corrupted input records: each is named with its problem; --skip-bad keeps every good one."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ecgssl.cli import main
from tests.faults.helpers import wfdb_folder


def _scale_gain(text: str, factor: float) -> str:
    """Multiply every signal line's ADC gain of a WFDB header by ``factor``."""
    def one(match):
        return f"{float(match.group(1)) * factor:g}("
    lines = text.splitlines()
    return "\n".join([lines[0]] + [re.sub(r" ([0-9.]+)\(", lambda m: " " + one(m), ln, count=1)
                                   for ln in lines[1:]]) + "\n"


def _rewrite_checksums(hea, raw):
    """Make the header's initial values and checksums agree with changed samples (so that the
    reader's checksum test passes and the signal checks see the samples)."""
    lines = hea.read_text().splitlines()
    for k in range(raw.shape[1]):
        fields = lines[k + 1].split()
        total = int(raw[:, k].astype(np.int64).sum())
        fields[5], fields[6] = str(int(raw[0, k])), str((total + 32768) % 65536 - 32768)
        lines[k + 1] = " ".join(fields)
    hea.write_text("\n".join(lines) + "\n")


def _damage(folder, kind):
    hea, dat = folder / "3.hea", folder / "3.dat"
    if kind == "truncated_dat":
        dat.write_bytes(dat.read_bytes()[:5000])
    elif kind == "missing_dat":
        dat.unlink()
    elif kind == "garbage_header":
        hea.write_bytes(b"\x00\xff garbage \x13" * 20)
    elif kind == "empty_header":
        hea.write_text("")
    elif kind == "nan_samples":  # -32768 is WFDB's "no sample" value: NaN after reading
        raw = np.frombuffer(dat.read_bytes(), dtype="<i2").copy().reshape(-1, 12)
        raw[100:200, 1] = -32768
        dat.write_bytes(raw.tobytes())
        _rewrite_checksums(hea, raw)
    elif kind == "all_zero":
        raw = np.zeros((len(dat.read_bytes()) // 24, 12), dtype="<i2")
        dat.write_bytes(raw.tobytes())
        _rewrite_checksums(hea, raw)
    elif kind == "gain_1000x_too_large":  # samples come out in volts' worth of mV
        hea.write_text(_scale_gain(hea.read_text(), 1000))
    elif kind == "gain_1000x_too_small":
        hea.write_text(_scale_gain(hea.read_text(), 1e-3))
    else:
        raise ValueError(kind)


CASES = {  # damage -> what the message must say
    "truncated_dat": r"(?i)(truncat|shorter|size|samples|buffer)",
    "missing_dat": r"(?i)(no such file|not found|missing|does not exist)",
    "garbage_header": r"(?i)(header|parse|invalid|format|decode|valid)",
    "empty_header": r"(?i)(header|empty|no record|parse|invalid)",
    "nan_samples": r"NaN",
    "all_zero": r"flat",
    "gain_1000x_too_large": r"volts.*not millivolts",
    "gain_1000x_too_small": r"microvolts.*not millivolts",
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_record_is_named_and_good_ones_kept(shared_data, tmp_path, kind, capsys, seen):
    """A corrupted record (truncated/missing .dat, garbage/empty header, NaN samples, all
    zero, gain 1000x off either way) -> without --skip-bad one line naming it; with
    --skip-bad every good record is kept and the bad one listed with its reason."""
    src = wfdb_folder(shared_data, tmp_path / "src", n=3)
    _damage(src, kind)
    args = ["prepare", str(src), "--kind", "wfdb", "--workers", "0", "--no-progress",
            "--set", "beats=false"]
    rc = main([*args, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip()
    if rc == 0:  # the reader could not even list it: then it must say so at listing time
        pytest.fail(f"a {kind} record was accepted silently")
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "3" in err and re.search(CASES[kind], err), err
    assert main([*args, "--out", str(tmp_path / "b"), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["n_records_read"] == 2 and report["n_records_bad"] == 1, report
    bad = report["bad_records"][0]
    assert bad["record_id"].endswith("3") and re.search(CASES[kind], bad["problem"])
    assert "skipped 1 bad records" in out
    seen(err)

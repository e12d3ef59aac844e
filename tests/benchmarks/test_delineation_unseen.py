"""benchmarks/delineation_unseen.py: the LUDB cross-validation (each fold's model on its own test
records, pooled), the checks that refuse a missing or wrong fold model, and the noise SNRs. Fold
models here are tiny random networks saved in a temporary folder: nothing is trained."""

import json
from pathlib import Path

import numpy as np
import pytest

from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T
from ecgssl.delineation.model import DEFAULT_INPUT, build_network, save_delineator
from ecgssl.delineation.train import ludb_fold_split
from ecgssl.eval.delineation_baselines import AnnotatedLead
from tests.benchmarks.helpers import load_benchmark

REPO = Path(__file__).resolve().parents[2]
TINY = {"encoder": "unet1d", "overrides": {"widths": [4, 4, 4, 4, 4], "kernel": 3}, "head": {}}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("delineation_unseen")


def save_fold(folder: Path, k: int, ludb: Path, split_of: int | None = None,
              chosen: bool = True) -> Path:
    """A random tiny model saved as ``folder/fold{k}`` with the split of fold ``split_of``
    (default k) and, when ``chosen``, a post-processing 'chosen' on its validation records."""
    _, (train, val, test) = ludb_fold_split(ludb, k if split_of is None else split_of)
    spec = {"network": TINY, "input": DEFAULT_INPUT, "training": {"steps": 0},
            "split": {"protocol": "test fake", "fold": k if split_of is None else split_of,
                      "train": train, "val": val, "test": test}}
    if chosen:
        spec["postprocess"] = {}
        spec["validation"] = {"chosen_name": "plain", "records": val}
    return save_delineator(build_network(TINY), folder / f"fold{k}", spec)


@pytest.fixture(scope="module")
def five_folds(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("delineation")
    for k in range(5):
        save_fold(folder, k, shared_data / "ludb")
    return folder


def _run(bench, shared_data, folder: Path, out: Path, *extra: str) -> dict:
    argv = ["--data", str(shared_data), "--fold-model", str(folder / "fold0"), "--out",
            str(out), "--stem", "t", *extra]
    assert bench.main(argv) == 0
    return json.loads((out / "t.json").read_text())


# ------------------------------------------------------------------------ pooling, no data


class StubDelineator:
    """Answers ``waves`` with the expert waves (``perfect``) or nothing; remembers its leads."""

    def __init__(self, truth: dict, perfect: bool):
        self.truth, self.perfect, self.seen = truth, perfect, []

    def waves(self, x, fs, names):
        self.seen.append(id(x))
        return {names[0]: self.truth[id(x)] if self.perfect else np.zeros((0, 3), np.int64)}


def _fake_leads(record: str, n_leads: int = 2) -> list[AnnotatedLead]:
    beats = np.arange(200, 4800, 400)
    waves = np.concatenate([np.stack([np.full(beats.size, code), beats + lo, beats + hi], 1)
                            for code, lo, hi in ((WAVE_P, -120, -60), (WAVE_QRS, 0, 50),
                                                 (WAVE_T, 120, 220))])
    waves = waves[np.argsort(waves[:, 1])]
    return [AnnotatedLead(record, f"L{j}", np.zeros(5000, np.float32) + j, 500.0, waves,
                          (0, 5000)) for j in range(n_leads)]


def test_score_cv_scores_each_fold_with_its_own_model_and_pools(bench):
    fold0 = _fake_leads("ludb/1") + _fake_leads("ludb/2")
    fold1 = _fake_leads("ludb/3")
    truth = {id(it.signal): it.waves for it in fold0 + fold1}
    good, bad = StubDelineator(truth, True), StubDelineator(truth, False)
    pooled, per_fold = bench.score_cv({0: (fold0, good), 1: (fold1, bad)}, ["ecgssl"])
    # Each model saw exactly its own fold's leads.
    assert sorted(good.seen) == sorted(id(it.signal) for it in fold0)
    assert sorted(bad.seen) == sorted(id(it.signal) for it in fold1)
    assert per_fold[0]["test_records"] == ["ludb/1", "ludb/2"] and per_fold[1]["n_records"] == 1
    f0 = per_fold[0]["methods"]["ecgssl"]["summary"]
    f1 = per_fold[1]["methods"]["ecgssl"]["summary"]
    assert f0["QRS"]["onset"]["f1"] == 1.0 and f1["QRS"]["onset"]["f1"] == 0.0
    s = pooled["ecgssl"]["summary"]
    assert pooled["ecgssl"]["n_leads"] == 6 and s["n_records"] == 3
    for wave in ("P", "QRS", "T"):
        for kind in ("onset", "offset"):
            for c in ("tp", "fp", "fn"):
                assert s[wave][kind][c] == f0[wave][kind][c] + f1[wave][kind][c]
    # 4 perfect leads of 6 with 12 beats each: tp = 48, fn = 24.
    assert s["QRS"]["onset"]["tp"] == 48 and s["QRS"]["onset"]["fn"] == 24
    assert s["QRS"]["onset"]["f1"] == pytest.approx(2 * 48 / (2 * 48 + 24))
    lines = bench.fold_table({k: {**v, "methods": {"ecgssl": v["methods"]["ecgssl"],
                                                   "nk_prominence": v["methods"]["ecgssl"]}}
                              for k, v in per_fold.items()})
    assert lines[4].startswith("| 0 | 2 | 100.0 | 100.0 | 100.0 |")
    assert lines[5].startswith("| 1 | 1 | 0.0 | 0.0 | 0.0 |")
    assert lines[6].startswith("| mean +- SD over folds | 3 | 50.0 +- 70.7 |")


def test_score_cv_refuses_a_record_in_two_folds(bench):
    leads = _fake_leads("ludb/1")
    stub = StubDelineator({id(it.signal): it.waves for it in leads}, True)
    with pytest.raises(ValueError, match="ludb/1 is in the test records of folds 0 and 1"):
        bench.score_cv({0: (leads, stub), 1: (leads, stub)}, ["ecgssl"])


# ------------------------------------------------------------------------ the command


def test_five_fold_cv_pools_every_folds_own_test_records(bench, shared_data, five_folds,
                                                         tmp_path):
    res = _run(bench, shared_data, five_folds, tmp_path, "--parts", "ludb", "--records", "1",
               "--methods", "ecgssl,nk_prominence")
    tests = bench.kfold_tests(shared_data / "ludb")
    assert sorted(map(len, tests)) == [40] * 5 and len({r for t in tests for r in t}) == 200
    per_fold = res["results"]["ludb_cv_folds"]
    assert list(per_fold) == ["0", "1", "2", "3", "4"]
    for k in range(5):
        assert per_fold[str(k)]["test_records"] == [f"ludb/{tests[k][0]}"]
        assert res["meta"]["cv_folds"][str(k)]["model"] == str(five_folds / f"fold{k}")
    key = ("seg:LUDB 5-fold CV by patient (each fold's model on its own test records, "
           "5 records), clean, 500 Hz")
    pooled = res["results"][key]
    for method in ("ecgssl", "nk_prominence"):  # neurokit on the same pooled leads
        assert pooled[method]["n_leads"] == 60
        assert pooled[method]["summary"]["n_records"] == 5
        tp = sum(f["methods"][method]["summary"]["QRS"]["onset"]["tp"]
                 for f in per_fold.values())
        assert pooled[method]["summary"]["QRS"]["onset"]["tp"] == tp
    md = (tmp_path / "t.md").read_text()
    assert "**Per fold: mean of onset and offset F1 % per wave" in md
    assert "| fold | test records | ecgssl P | ecgssl QRS | ecgssl T | nk_prominence P |" in md
    assert "| mean +- SD over folds | 5 |" in md


def test_a_missing_fold_model_is_refused_with_the_commands_that_train_it(bench, shared_data,
                                                                         tmp_path):
    save_fold(tmp_path, 0, shared_data / "ludb")
    with pytest.raises(SystemExit) as exc:
        _run(bench, shared_data, tmp_path, tmp_path / "out", "--parts", "ludb", "--folds", "0,3",
             "--records", "1", "--methods", "ecgssl")
    msg = str(exc.value)
    assert str(tmp_path / "fold3.json") in msg
    assert "--stage fold --fold 3" in msg and "--stage select --fold 3" in msg
    assert "final_unused" in msg
    assert not (tmp_path / "out" / "t.json").exists()


def test_a_fold_model_trained_on_another_split_is_refused(bench, shared_data, tmp_path):
    save_fold(tmp_path, 0, shared_data / "ludb")
    save_fold(tmp_path, 2, shared_data / "ludb", split_of=1)
    with pytest.raises(SystemExit, match=r"fold 2: .*fold2 was trained on another split"):
        _run(bench, shared_data, tmp_path, tmp_path / "out", "--parts", "ludb", "--folds", "0,2",
             "--records", "1", "--methods", "ecgssl")


def test_a_fold_model_without_its_own_postprocessing_choice_is_refused(bench, shared_data,
                                                                       tmp_path):
    save_fold(tmp_path, 0, shared_data / "ludb")
    save_fold(tmp_path, 1, shared_data / "ludb", chosen=False)
    with pytest.raises(SystemExit, match=r"fold 1: .*--stage select --fold 1"):
        _run(bench, shared_data, tmp_path, tmp_path / "out", "--parts", "ludb", "--folds", "0,1",
             "--records", "1", "--methods", "ecgssl")


def test_bad_folds_option_is_a_usage_error(bench, shared_data, five_folds, tmp_path):
    for folds in ("0,5", "1,1", "a"):
        with pytest.raises(SystemExit) as exc:
            _run(bench, shared_data, five_folds, tmp_path, "--parts", "ludb", "--folds", folds)
        assert exc.value.code == 2


# ------------------------------------------------------------------------ noise


def test_default_snrs_go_down_to_minus_6_db(bench):
    assert bench.SNRS_DB == (24.0, 12.0, 6.0, 0.0, -6.0)


@pytest.mark.parametrize("snr", [24.0, 0.0, -6.0])
def test_add_noise_meets_the_snr(bench, snr):
    t = np.arange(5000) / 500.0
    x = (np.sin(2 * np.pi * 1.2 * t) ** 31).astype(np.float32)  # spiky, ECG-like power
    y = bench.add_noise(x, 500.0, snr, seed=0)
    noise = y.astype(np.float64) - x
    assert 10 * np.log10(np.var(x) / np.var(noise)) == pytest.approx(snr, abs=0.01)
    assert not np.allclose(y, bench.add_noise(x, 500.0, snr, seed=1))


def test_band_snr_measures_what_is_left_inside_the_band(bench):
    fs = 500.0
    t = np.arange(5000) / fs  # 10 s: whole cycles of 0.2, 10 and 20 Hz
    clean = np.sin(2 * np.pi * 10 * t)
    noise = 0.1 * np.sin(2 * np.pi * 20 * t) + 1.0 * np.sin(2 * np.pi * 0.2 * t)

    def lead(x):
        return AnnotatedLead("r", "II", x.astype(np.float64), fs, np.zeros((0, 3), int), (0, 1))

    r = bench.band_snr([lead(clean)], [lead(clean + noise)])
    assert r["band_snr_db_mean"] == pytest.approx(20.0, abs=1e-6)  # the drift is not counted
    assert r["noise_power_below_band"] == pytest.approx(1.0 / 1.01, abs=1e-6)


def test_quick_noise_snrs_option(bench, shared_data, five_folds, tmp_path):
    res = _run(bench, shared_data, five_folds, tmp_path, "--quick", "--parts", "ludb,noise",
               "--folds", "0", "--records", "1", "--noise-snrs", "0,-6", "--methods", "ecgssl")
    keys = [k for k in res["results"] if k.startswith("seg:")]
    assert keys == [
        "seg:LUDB CV folds 0 of 5 by patient (each fold's model on its own test records, "
        "1 record), clean, 500 Hz",
        "seg:LUDB fold-0 test records (fold-0 model) + noise 0 dB SNR",
        "seg:LUDB fold-0 test records (fold-0 model) + noise -6 dB SNR"]
    assert res["meta"]["noise_snrs_db"] == [0.0, -6.0] and res["meta"]["quick"]
    assert all(res["results"][k]["ecgssl"]["n_leads"] == 12 for k in keys)
    band = res["results"]["noise_in_band"]
    assert list(band) == ["0", "-6"]
    # The set SNR counts the drift; inside 0.5-40 Hz less noise is left, and less at 0 than -6.
    assert band["-6"]["band_snr_db_mean"] > -6.0
    assert band["0"]["band_snr_db_mean"] == pytest.approx(band["-6"]["band_snr_db_mean"] + 6,
                                                          abs=0.5)
    assert "**Noise: SNR over all frequencies (as set)" in (tmp_path / "t.md").read_text()

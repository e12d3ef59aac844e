"""Model selection (ecgssl.eval.selection), the collapse rule and the verdicts, checked against
the committed benchmark results: the package reproduces every stored choice and statement."""

import json
from pathlib import Path

import numpy as np
import pytest

from ecgssl.eval.compare import verdicts
from ecgssl.eval.selection import (
    candidate_table,
    choose,
    repeated_cv_auroc,
    store_features,
    validation_probe,
)
from ecgssl.train.collapse import collapsed

RESULTS = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "results")
                 .glob("pretrain_cpu_scale*.json"))


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_committed_results_are_reproduced_from_their_stored_scores(path):
    res = json.loads(path.read_text())
    pre = res["pretraining"]
    for entry in pre.values():  # the collapse rule on the stored training summaries
        assert collapsed(entry["summary"]) == (entry["collapsed"], entry["collapse_reason"])
    chosen = set(choose(pre).values())  # the choice on the stored validation scores
    assert chosen == {k for k, v in pre.items() if v["chosen"]}
    rows = {t: v["arch"] for t, v in (res.get("evaluated") or res["chosen"]).items()}
    assert verdicts(res.get("suite") or {}, rows) == res["comparisons"]
    table = candidate_table(pre)
    assert len(table) == 2 + len(pre) + len({v["arch"] for v in pre.values()})


def test_choose_skips_collapsed_runs_and_nan_scores():
    c = {"a": {"method": "m", "collapsed": True, "validation": {"score": 0.9}},
         "b": {"method": "m", "collapsed": False, "validation": {"score": float("nan")}},
         "c": {"method": "m", "collapsed": False, "validation": {"score": 0.6}},
         "d": {"method": "other", "collapsed": True, "validation": {"score": 0.5}}}
    assert choose(c) == {"m": "c", "other": "d"}  # all of "other" collapsed: best of them


def test_repeated_cv_auroc_finds_a_linear_label():
    rng = np.random.default_rng(0)
    y = (np.arange(60) % 2).astype(int)
    feats = rng.normal(size=(60, 4))
    feats[:, 0] += 3 * y
    labels = np.stack([y, rng.integers(0, 2, 60)], axis=1)
    out = repeated_cv_auroc(feats, labels, ["signal", "noise"])
    assert out["classes"] == ["signal", "noise"] and out["n"] == 60
    assert out["macro_auroc"] > 0.7 and out["macro_auroc_std"] >= 0
    with pytest.raises(ValueError, match="nothing to score"):
        repeated_cv_auroc(feats, np.zeros((60, 1), dtype=int), ["none"])


def test_validation_probe_on_a_store(ludb40, monkeypatch):
    """LUDB as the validation source (one window per patient): the probe scores the encoder
    and, with a seed, a random-initialised copy of the same spec."""
    from ecgssl.eval import selection

    # Fewer repeats and classes than the benchmark's probe: the same code, a faster test.
    monkeypatch.setattr(selection, "VAL_REPEATS", 2)
    monkeypatch.setattr(selection, "VAL_MIN_POSITIVES", 15)
    store, enc, _ = ludb40
    rows = np.arange(len(store))
    feats = store_features(enc, store, rows)
    assert feats.shape == (len(store), enc.pooled_dim)
    # The export is the seed-0 initialisation: seed 0 rebuilds exactly these features.
    np.testing.assert_array_equal(store_features(enc, store, rows, seed=0), feats)
    out = validation_probe(enc, store, exclude_source="none", score_source="ludb",
                           min_windows=20)
    assert out["n_windows"] == len(store) and out["score"] == out["cinc_auroc"]
    direct = repeated_cv_auroc(feats, np.asarray(store.labels).astype(int), store.label_names)
    assert out["cinc_auroc"] == direct["macro_auroc"] and out["cinc_classes"] == direct["classes"]
    assert out["feat_erank"] > 1
    assert "af_auroc" not in out  # no binary source in this store: not scored, not faked

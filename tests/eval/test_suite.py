import numpy as np
import pytest

from ecgssl.eval.suite import LeadView, SuiteConfig, run_suite


def test_lead_view_selects_rows_and_empties_unscored_spans(ludb40):
    store = ludb40[0]
    view = LeadView(store, ["V1", "II"], score_leads=["II"])
    np.testing.assert_array_equal(view.signals[3], store.signals[3][[6, 1]])
    assert (view.spans[:, 0] == 0).all() and (view.spans[:, 1] == store.spans[:, 1]).all()


def test_suite_probe_lowlabel_regression_with_baselines(ludb40):
    store, enc, root = ludb40
    cfg = SuiteConfig(tasks=["probe", "lowlabel", "regression"], n_folds=3, n_boot=20,
                      min_positives=8, supervised=False, plots=False,
                      low_label_fractions=[0.25, 1.0], low_label_subsets=2)
    res = run_suite({"cnn": enc}, store, root / "report", cfg, progress=False)
    assert set(res["probe"]) == {"cnn", "random-init resnet1d_small"}
    assert res["probe"]["cnn"]["macro_auroc"]["n"] == 3
    assert any("@ 25% labels" in k for k in res["lowlabel"])
    assert 0 < res["regression"]["cnn"]["hr_bpm"]["mae"] < 60
    text = (root / "report" / "report.md").read_text()
    assert "Low-label" in text and "random-init" in text


def test_suite_refuses_other_rate_and_bad_options(ludb40, tmp_path):
    store, enc, _ = ludb40
    enc.spec["preprocessing"]["fs"] = 500.0
    try:
        with pytest.raises(ValueError, match="expects 500 Hz"):
            run_suite({"cnn": enc}, store, tmp_path, SuiteConfig(tasks=["probe"]))
    finally:
        enc.spec["preprocessing"]["fs"] = 250.0
    with pytest.raises(ValueError, match="unknown tasks"):
        SuiteConfig(tasks=["nope"])
    with pytest.raises(ValueError, match="split"):
        SuiteConfig(split="random")


def test_suite_refuses_an_encoder_trained_on_other_filters(ludb40, tmp_path):
    from ecgssl.eval.suite import filter_mismatch

    store, enc, _ = ludb40
    pre = enc.spec["preprocessing"]
    assert filter_mismatch(pre, store.config) is None  # exported from this very store
    assert filter_mismatch({"filters": None}, store.config) is None  # unknown: not checked
    old = dict(pre["filters"])
    pre["filters"]["highpass_hz"] = 0.5
    try:
        assert "highpass_hz 0.5 (store None)" in filter_mismatch(pre, store.config)
        with pytest.raises(ValueError, match="other filters"):
            run_suite({"cnn": enc}, store, tmp_path, SuiteConfig(tasks=["probe"]))
    finally:
        pre["filters"] = old


def test_suite_fine_tuned_rows_and_paired_differences(ludb40):
    """Fine-tuned pretrained rows beside supervised from scratch, and every row paired with its
    twin. The exported "pretrained" CNN here is the seed-0 initialisation, i.e. the same weights
    as its random-init twin: the paired probe difference must be exactly zero."""
    store, enc, root = ludb40
    cfg = SuiteConfig(tasks=["probe", "segmentation"], n_folds=3, n_boot=10, min_positives=8,
                      classical=False, plots=False, finetune_pretrained=True, finetune_epochs=1,
                      seg_epochs=1, seg_batch_size=8, seg_folds=[0], paired_boot=50)
    res = run_suite({"cnn": enc}, store, root / "paired", cfg, progress=False)
    assert set(res["probe"]) == {"cnn", "cnn fine-tuned", "random-init resnet1d_small",
                                 "supervised from scratch resnet1d_small"}
    probe = res["paired_probe"]
    assert probe["cnn"]["vs"] == "random-init resnet1d_small"
    assert probe["cnn"]["delta"] == 0.0 and probe["cnn"]["ci"] == [0.0, 0.0]
    assert probe["cnn fine-tuned"]["vs"] == "supervised from scratch resnet1d_small"
    assert len(probe["cnn fine-tuned"]["per_fold"]) == 3
    seg = res["paired_segmentation"]
    assert seg["cnn (frozen encoder + decoder)"]["vs"] == \
        "random-init resnet1d_small (frozen encoder + decoder)"
    assert seg["cnn fine-tuned"]["vs"] == "supervised from scratch resnet1d_small"
    assert seg["cnn fine-tuned"]["n_records"] > 0
    assert "cnn fine-tuned" in res["segmentation"]
    # The fine-tuned rows trained the encoder; the frozen ones did not.
    extra = res["segmentation"]["cnn fine-tuned"]
    frozen = res["segmentation"]["cnn (frozen encoder + decoder)"]
    assert extra["config"]["freeze_encoder"] is False
    assert frozen["config"]["freeze_encoder"] is True
    text = (root / "paired" / "report.md").read_text()
    assert "Paired differences: segmentation" in text and "P(not better)" in text


def test_suite_stratified_and_holdout_splits(ludb40, tmp_path):
    store, enc, _ = ludb40
    cfg = SuiteConfig(tasks=["probe"], split="stratified", n_boot=5, min_positives=8,
                      supervised=False, plots=False, paired_boot=0)
    res = run_suite({"cnn": enc}, store, tmp_path, cfg, progress=False)
    assert res["probe"]["cnn"]["macro_auroc"]["n"] == 1  # one split
    assert "stratified by labels and sources" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="test_sources"):
        SuiteConfig(split="holdout")
    # Holding out the store's only source leaves nothing to train on: refused, by name.
    cfg = SuiteConfig(tasks=["probe"], split="holdout", test_sources=["ludb"], plots=False)
    with pytest.raises(ValueError, match="no records left for training"):
        run_suite({"cnn": enc}, store, tmp_path / "h", cfg, progress=False)

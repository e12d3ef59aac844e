"""Golden test: HuBERT-ECG (transformers' HubertModel under our loader and input pipeline)
matches the authors' HuBERTECG class and their preprocessing + dataset code."""

import pytest
import torch

from .helpers import assert_close, group, load_fixture

# An optional extra (ecgssl[foundation]); CI installs it through the dev extra.
pytest.importorskip("transformers", reason="HuBERT-ECG needs the optional extra transformers")

from ecgssl.models.foundation import hubert_ecg  # noqa: E402


@pytest.fixture(scope="module")
def fixture():
    tensors, meta = load_fixture("hubert_ecg")
    enc, report = hubert_ecg.from_state_dict(group(tensors, "state"), meta["config"])
    return tensors, enc, report


def test_network_matches_authors_code(fixture):
    tensors, enc, report = fixture
    assert report["dropped_tensors"]["pretraining heads and mask embedding"] >= 3
    with torch.no_grad():
        assert_close(enc.encode(tensors["x"]).transpose(1, 2), tensors["hidden"])


def test_raw_record_through_their_preprocessing_and_dataset(fixture):
    tensors, enc, _ = fixture
    raw = tensors["record.raw"][None]  # (1, 12, 5000) at 500 Hz
    with torch.no_grad():
        assert_close(enc.prepare_input(raw)[0], tensors["record.sequence"])
        assert_close(enc.tokens(raw).transpose(1, 2), tensors["record.hidden"])
        assert_close(enc(raw), tensors["record.hidden"].mean(1))


def test_no_time_feature_map_for_segmentation(fixture):
    from ecgssl.errors import SpecMismatchError

    _, enc, _ = fixture
    for method in (enc.feature_pyramid, enc.forward_features):
        with pytest.raises(SpecMismatchError, match="not over time"):
            method(torch.zeros(1, 12, 5000))


def test_hugging_face_folder_is_recognised(fixture, tmp_path):
    import json

    from safetensors.torch import save_file

    from ecgssl.api import load_encoder

    tensors, _, _ = fixture
    meta = load_fixture("hubert_ecg")[1]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "hubert_ecg",
                                                      **meta["config"]}))
    save_file({k: v.contiguous() for k, v in group(tensors, "state").items()},
              str(tmp_path / "model.safetensors"))
    enc = load_encoder(tmp_path)
    assert enc.spec["training"]["commercial_use"] is False
    assert enc.preprocessing["n_samples"] == 5000
    with torch.no_grad():
        assert_close(enc.module(tensors["record.raw"][None]), tensors["record.hidden"].mean(1))

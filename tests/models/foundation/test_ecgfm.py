"""Golden test: ECG-FM's wav2vec 2.0 encoder loaded from fairseq-signals' tensor layout matches
fairseq-signals' own Wav2Vec2Model (post-norm and pre-norm). The input standardisation is not
checked against the authors' code (their ecg_transform package was not available)."""

import pytest
import torch

from ecgssl.models.foundation import ecgfm

from .helpers import assert_close, group, load_fixture


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("ecgfm")


@pytest.mark.parametrize("tag,norm_first", [("post", False), ("pre", True)])
def test_encoder_matches_fairseq_signals(fixture, tag, norm_first):
    tensors, meta = fixture
    cfg = {**meta["config"], "layer_norm_first": norm_first}
    enc, report = ecgfm.from_state_dict(group(tensors, f"{tag}.state"), cfg, authors_steps=False,
                                        segment=None)
    assert report["assumed"] == []
    assert report["dropped_tensors"]["pretraining / classifier parts"] >= 4  # project_q, final_proj
    assert enc.layer_norm_first is norm_first and enc.stride == 16
    with torch.no_grad():
        assert_close(enc.forward_features(tensors["x"]).transpose(1, 2),
                     tensors[f"{tag}.features"])
        assert_close(enc(tensors["x"]), tensors[f"{tag}.features"].mean(1))


def test_without_the_yaml_the_assumptions_are_reported(fixture):
    tensors, _ = fixture
    enc, report = ecgfm.from_state_dict(group(tensors, "post.state"), heads=4,
                                        authors_steps=False, segment=None)
    assert "conv strides = kernel sizes" in report["assumed"]
    with torch.no_grad():  # the defaults happen to be this fixture's (post-norm, stride 2)
        assert_close(enc.forward_features(tensors["x"]).transpose(1, 2), tensors["post.features"])


def test_finetuned_wrapper_and_refusals(fixture):
    tensors, meta = fixture
    state = {f"encoder.{k}": v for k, v in group(tensors, "post.state").items()}
    state["proj.weight"] = torch.zeros(3, 32)
    enc, report = ecgfm.from_state_dict(state, meta["config"], authors_steps=False)
    assert report["dropped_tensors"]["pretraining / classifier parts"] >= 5
    assert ecgfm.parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 2") == [
        [512, 10, 5], [512, 3, 2], [512, 3, 2]]
    with pytest.raises(ValueError, match="unsupported"):
        ecgfm.parse_conv_layers("__import__('os')")
    with pytest.raises(ValueError, match="do not match"):
        ecgfm.from_state_dict(group(tensors, "post.state"),
                              {**meta["config"], "conv_feature_layers": "[(16, 3, 2)] * 4"})


def test_default_configuration_and_detection(fixture):
    from ecgssl.models.foundation.checkpoints import detect

    tensors, _ = fixture
    assert detect({"model": group(tensors, "post.state")}) == "ecgfm"
    enc = ecgfm.ecgfm_wav2vec2()
    assert enc.embed_dim == 768
    assert enc.forward_features(torch.zeros(1, 12, 2500)).shape == (1, 768, 156)
    assert enc.forward_features(torch.zeros(1, 12, 5000)).shape == (1, 768, 312)


def test_a_10s_record_is_two_5s_segments(fixture):
    tensors, meta = fixture
    enc, _ = ecgfm.from_state_dict(group(tensors, "post.state"), meta["config"],
                                   authors_steps=False, segment=400)
    x = tensors["x"]  # 800 samples = two segments of 400
    with torch.no_grad():
        both = enc(x)
        halves = (enc(x[..., :400]) + enc(x[..., 400:])) / 2
        assert_close(both, halves)
        assert_close(enc.forward_features(x)[..., :enc.encode_segment(x[..., :400]).shape[-1]],
                     enc.encode_segment(x[..., :400]))
    with pytest.raises(ValueError, match="not a multiple"):
        enc(x[..., :700])


def test_load_encoder_reads_the_yaml_beside_the_checkpoint(fixture, tmp_path):
    import yaml

    from ecgssl.api import describe_checkpoint, load_encoder

    tensors, meta = fixture
    torch.save({"model": group(tensors, "pre.state")}, tmp_path / "ecgfm.pt")
    (tmp_path / "ecgfm.yaml").write_text(yaml.safe_dump(
        {"model": {**meta["config"], "layer_norm_first": True}}))
    enc = load_encoder(tmp_path / "ecgfm.pt")
    assert enc.spec["training"]["load_report"]["assumed"] == []
    assert enc.preprocessing["n_samples"] == 5000
    with torch.no_grad():
        assert_close(enc.module.encode_segment(tensors["x"]).transpose(1, 2),
                     tensors["pre.features"])
    text = describe_checkpoint(tmp_path / "ecgfm.pt")
    assert "PhysioNet2021" in text and "commercial use: not stated" in text

"""Golden test: ECGFounder's Net1D loaded from the authors' tensor layout matches their code."""

import numpy as np
import pytest
import torch

from ecgssl.models.foundation import ecgfounder
from ecgssl.models.foundation.preprocess import apply_steps

from .helpers import assert_close, group, load_fixture


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("ecgfounder")


@pytest.mark.parametrize("tag,n_leads", [("l12", 12), ("l1", 1)])
def test_net1d_matches_authors_code(fixture, tag, n_leads):
    tensors, meta = fixture
    enc, report = ecgfounder.from_state_dict(group(tensors, f"{tag}.state"), authors_steps=False)
    assert enc.spec["overrides"]["filter_list"] == meta["config"]["filter_list"]
    assert len(enc.lead_order) == n_leads
    # BatchNorm tensors are in the checkpoint but unused by the released model: counted.
    assert report["dropped_tensors"]["batch_norm (unused: use_bn=False)"] > 0
    assert report["dropped_tensors"]["dense head"] == 2
    x = group(tensors, tag)["x"]
    with torch.no_grad():
        assert_close(enc(x), tensors[f"{tag}.features"])
        for i, fmap in enumerate(enc.feature_pyramid(x)):
            assert_close(fmap, tensors[f"{tag}.stage{i}"])
    assert enc.forward_features(x).shape[-1] == enc.n_steps(x.shape[-1])


def test_preprocessing_of_a_raw_record_matches_theirs(fixture):
    tensors, _ = fixture
    raw = tensors["record.raw"].numpy()
    ours = apply_steps(raw.astype(np.float64), 500.0, ecgfounder.STEPS)
    assert_close(torch.from_numpy(ours), tensors["record.preprocessed"])
    # End to end: raw mV in, through our pipeline and network, against their network on their
    # preprocessing of the same record.
    enc, _ = ecgfounder.from_state_dict(group(tensors, "l12.state"))
    with torch.no_grad():
        assert_close(enc(torch.from_numpy(raw)[None]), tensors["record.features"])


def test_mapping_refuses_unknown_keys():
    with pytest.raises(ValueError, match="does not know"):
        ecgfounder.map_state_dict({"first_conv.conv.weight": torch.zeros(1), "foo.bar": 1})


def test_released_configuration_shapes():
    enc = ecgfounder.ecgfounder_12lead()
    assert enc.embed_dim == 1024 and enc.stride == 256
    x = torch.zeros(1, 12, 5000)
    assert enc.forward_features(x).shape == (1, 1024, 20)
    mapped_keys = set(enc.state_dict())
    # The authors' layout maps onto exactly our keys.
    theirs = {k.replace("stem.", "first_conv.conv.") for k in mapped_keys if k.startswith("stem")}
    assert theirs == {"first_conv.conv.weight", "first_conv.conv.bias"}

"""Golden test: ST-MEM's ViT loaded from the authors' tensor layout matches their code."""

import numpy as np
import pytest
import torch

from ecgssl.errors import SpecMismatchError
from ecgssl.models.foundation import stmem
from ecgssl.models.foundation.preprocess import apply_steps

from .helpers import assert_close, group, load_fixture


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("stmem")


def test_vit_matches_authors_code(fixture):
    tensors, meta = fixture
    enc, report = stmem.from_state_dict(group(tensors, "state"), authors_steps=False)
    assert enc.spec["overrides"]["dim_head"] == meta["config"]["dim_head"] == 64
    assert enc.spec["overrides"]["heads"] == meta["config"]["heads"] == 2
    assert report["dropped_tensors"]["head"] == 0
    with torch.no_grad():
        assert_close(enc(tensors["x"]), tensors["features"])
        fmap = enc.forward_features(tensors["x"])
    assert fmap.shape == (2, 32, 750 // 75)


def test_full_model_prefix_and_head_are_dropped_and_counted(fixture):
    tensors, meta = fixture
    state = {f"encoder.{k}": v for k, v in group(tensors, "state").items()}
    state["decoder_embed.weight"] = torch.zeros(3, 3)
    state["encoder.head.weight"] = torch.zeros(2, 32)
    enc, report = stmem.from_state_dict(state, authors_steps=False)
    assert report["dropped_tensors"] == {"head": 1, "decoder / MAE parts (not the encoder)": 1}
    with torch.no_grad():
        assert_close(enc(tensors["x"]), tensors["features"])


def test_raw_record_end_to_end(fixture):
    tensors, _ = fixture
    raw = tensors["record.raw"].numpy()
    ours = apply_steps(raw.astype(np.float64), 250.0, stmem.STEPS)
    assert_close(torch.from_numpy(ours), tensors["record.preprocessed"])
    enc, _ = stmem.from_state_dict(group(tensors, "state"))
    with torch.no_grad():
        assert_close(enc(torch.from_numpy(raw)[None]), tensors["record.features"])


def test_refuses_lead_subsets_and_unknown_keys(fixture):
    tensors, _ = fixture
    enc, _ = stmem.from_state_dict(group(tensors, "state"))
    with pytest.raises(SpecMismatchError, match="exactly the leads"):
        enc(torch.zeros(1, 12, 750), leads=["II"] + enc.lead_order[1:])
    with pytest.raises(ValueError, match="does not know"):
        stmem.map_state_dict({"sep_embedding": torch.zeros(3), "lead_embeddings.0": 1, "x": 1})


def test_released_configuration():
    enc = stmem.stmem_vit_base()
    assert enc.embed_dim == 768 and enc.stride == 75 and enc.n_patches == 30

"""Fixtures shared by the suite and task tests: a 40-record LUDB store and a CNN export."""

import pytest
import torch

from ecgssl.api import load_encoder
from ecgssl.data.leads import LEADS_8
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.io import open_source
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder


@pytest.fixture(scope="module")
def ludb40(tmp_path_factory, shared_data):
    """(store, encoder, root): the encoder is the seed-0 initialisation of its architecture,
    i.e. the same weights as the suite's random-init twin."""
    root = tmp_path_factory.mktemp("suite")
    prepare_store(open_source(shared_data / "ludb", checks=None), root / "store",
                  PreprocessConfig(beats=False), workers=0, max_records=40, progress=False)
    store = ECGStore(root / "store")
    torch.manual_seed(0)
    cnn = create_encoder("resnet1d_small", n_leads=8, widths=[8, 8, 8, 8, 16])
    export_encoder(cnn, root / "cnn", store.config, leads=list(LEADS_8))
    return store, load_encoder(root / "cnn.safetensors"), root



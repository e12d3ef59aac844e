"""Delineator file format: safetensors + JSON with sha256, refusals by name."""

import json

import numpy as np
import pytest
import torch

from ecgssl.delineation.model import (
    DEFAULT_INPUT,
    DEFAULT_NETWORK,
    build_network,
    is_delineator,
    load_delineator,
    normalise_window,
    save_delineator,
)
from ecgssl.errors import SpecMismatchError

TINY = {"encoder": "unet1d", "overrides": {"widths": [4, 4, 4, 4, 4], "kernel": 3}, "head": {}}


def test_round_trip_keeps_weights_and_spec(tmp_path):
    torch.manual_seed(0)
    model = build_network(TINY).eval()
    path = save_delineator(model, tmp_path / "m", {"network": TINY, "input": DEFAULT_INPUT,
                                                   "postprocess": {"one_p": True}})
    assert path.suffix == ".json" and (tmp_path / "m.safetensors").is_file()
    meta = json.loads(path.read_text())
    assert meta["format"] == "ecgssl-delineator" and len(meta["weights_sha256"]) == 64
    assert is_delineator(tmp_path / "m") and is_delineator(tmp_path / "m.safetensors")
    loaded, spec = load_delineator(tmp_path / "m.json")
    x = torch.randn(2, 1, 300)
    assert torch.allclose(model(x), loaded(x))
    assert spec["postprocess"] == {"one_p": True}
    # No pickle anywhere: the weights file is plain safetensors.
    assert (tmp_path / "m.safetensors").read_bytes()[8:9] == b"{"


def test_corrupt_weights_are_refused(tmp_path):
    save_delineator(build_network(TINY), tmp_path / "m", {"network": TINY,
                                                         "input": DEFAULT_INPUT})
    raw = bytearray((tmp_path / "m.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "m.safetensors").write_bytes(bytes(raw))
    with pytest.raises(SpecMismatchError, match="sha256"):
        load_delineator(tmp_path / "m")


def test_other_files_are_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "something"}))
    (tmp_path / "x.safetensors").write_bytes(b"")
    assert not is_delineator(tmp_path / "x")
    with pytest.raises(SpecMismatchError, match="not an ecgssl delineator"):
        load_delineator(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_delineator(tmp_path / "missing")


def test_normalisation_removes_gain_and_offset(rng):
    x = rng.normal(size=(3, 500)).astype(np.float32)
    a, b = normalise_window(x), normalise_window(7.0 * x + 3.0)
    assert np.allclose(a, b, atol=1e-5)
    assert np.abs(normalise_window(np.zeros((1, 100)))).max() == 0  # flat stays flat


def test_default_network_is_small():
    n = sum(p.numel() for p in build_network(DEFAULT_NETWORK).parameters())
    assert n * 4 < 2_000_000  # under 2 MB of float32 weights

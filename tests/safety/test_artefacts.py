"""sha256 records and their checks."""

import pytest
import torch

from ecgssl.errors import IntegrityError, SpecMismatchError
from ecgssl.safety.artefacts import (
    check_state_fits,
    file_digests,
    load_model_file,
    save_model_file,
    verify_digests,
)


def test_model_file_round_trip_is_byte_identical(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    w1, j1 = save_model_file(state, tmp_path / "a", {"format": "x"})
    w2, _ = save_model_file(state, tmp_path / "b", {"format": "x", "other": 1})
    assert w1.read_bytes() == w2.read_bytes()  # deterministic bytes: comparable sha256
    import json

    meta = json.loads(j1.read_text())
    loaded = load_model_file(tmp_path / "a", meta)
    assert torch.equal(loaded["w"], state["w"])
    meta["weights"]["sha256"] = "0" * 64
    with pytest.raises(IntegrityError, match="a.safetensors"):
        load_model_file(tmp_path / "a", meta)


def test_digests_catch_size_and_content(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"12345")
    digests = file_digests(tmp_path)
    verify_digests(tmp_path, digests, "c.json")
    (tmp_path / "x.npy").write_bytes(b"12346")
    with pytest.raises(IntegrityError, match="sha256"):
        verify_digests(tmp_path, digests, "c.json")
    (tmp_path / "x.npy").write_bytes(b"1234")
    with pytest.raises(IntegrityError, match="truncated"):
        verify_digests(tmp_path, digests, "c.json")


def test_state_that_does_not_fit_names_the_key():
    module = torch.nn.Linear(3, 2)
    check_state_fits(module, module.state_dict(), "w", "j", "linear")
    bad = {"weight": torch.zeros(4, 3), "bias": torch.zeros(2), "extra": torch.zeros(1)}
    with pytest.raises(SpecMismatchError, match=r"'weight' has shape \[4, 3\].*\[2, 3\]"):
        check_state_fits(module, bad, "w", "j", "linear")

"""Exact parity with the original ECG-JEPA code (reference fixture from its own implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgssl.compat.ecg_jepa import (
    CheckpointFormatError,
    jepa_from_state_dict,
    load_original_checkpoint,
    save_original_format,
    strip_prefix,
)


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    data = np.load(fixtures_dir / "ecg_jepa_reference.npz")
    return {k: torch.from_numpy(np.asarray(data[k])) for k in data.files}


@pytest.fixture(scope="module")
def state(ref):
    return {k[len("state_dict/"):]: v for k, v in ref.items() if k.startswith("state_dict/")}


def _close(actual, expected):
    """Within 1e-5 relative to the reference's scale."""
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=1e-5,
                               atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("attention", ["dense", "cropa"])
def test_reference_outputs(ref, state, attention):
    method = jepa_from_state_dict(state, attention=attention).eval()
    enc = method.encoder
    x, mask = ref["input"], ref["mask"]
    with torch.no_grad():
        _close(enc.forward_tokens(x), ref["tokens_full"])
        _close(enc(x), ref["representation"])
        _close(enc.forward_tokens(x, visible_cols=~mask), ref["context_tokens"])
        _close(enc(x[:, :2], leads=["I", "II"]), ref["representation_leads_I_II"])
        parts = method.forward_parts(x, mask)
    _close(parts["context"], ref["context_tokens"])
    _close(parts["predictor_out"], ref["predictor_out"])
    _close(parts["loss"], ref["loss"])


def test_released_checkpoint_format_round_trip(ref, state, tmp_path):
    path = tmp_path / "epoch100.pth"
    torch.save({"encoder": strip_prefix(state, "encoder."), "epoch": 100}, path)
    enc = load_original_checkpoint(path)
    assert not enc.training and enc.spec["depth"] == 2 and enc.spec["num_heads"] == 4
    with torch.no_grad():
        _close(enc(ref["input"]), ref["representation"])
    # our writer produces the same format
    save_original_format(enc, tmp_path / "ours.pth", epoch=3)
    again = load_original_checkpoint(tmp_path / "ours.pth")
    with torch.no_grad():
        torch.testing.assert_close(again(ref["input"]), enc(ref["input"]))
    # a full-model state dict file also loads (prefix stripped)
    torch.save(state, tmp_path / "full.pth")
    with torch.no_grad():
        _close(load_original_checkpoint(tmp_path / "full.pth")(ref["input"]),
               ref["representation"])


def test_clear_errors_on_mismatch(state, tmp_path):
    enc_state = strip_prefix(state, "encoder.")
    bad = dict(enc_state)
    bad["norm.weight"] = torch.ones(65)
    torch.save({"encoder": bad, "epoch": 1}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointFormatError, match=r"shape mismatches norm\.weight"):
        load_original_checkpoint(tmp_path / "bad.pth")
    missing = {k: v for k, v in enc_state.items() if "blocks.1.mlp.fc2.bias" not in k}
    torch.save({"encoder": missing}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointFormatError, match=r"missing keys .*blocks\.1\.mlp\.fc2\.bias"):
        load_original_checkpoint(tmp_path / "missing.pth")
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointFormatError, match="no 'encoder'"):
        load_original_checkpoint(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError):
        load_original_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointFormatError, match="lacks"):
        jepa_from_state_dict(enc_state)

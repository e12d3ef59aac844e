"""Corrupted artefacts: every exported file is verified on load and named on failure."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest
import torch

from ecgssl.errors import IntegrityError, SpecMismatchError, format_error
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder, load_encoder

STORE_CONFIG = {"fs": 250, "leads": ["I", "II"], "n_samples": 500, "hash": "h",
                "preprocess": {"normalize": None}}


def _cnn(width=8):
    return create_encoder("resnet1d_small", n_leads=2, widths=[width] * 4 + [16])


@pytest.fixture
def exported(tmp_path):
    weights, meta = export_encoder(_cnn(), tmp_path / "enc", STORE_CONFIG)
    return weights, meta


def _flip(path, offset_from_end=40):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_weight_bytes_are_detected(exported, seen):
    """A safetensors file with one damaged weight byte -> refused (sha256), naming the file;
    it would otherwise load and embed silently wrong."""
    weights, _ = exported
    _flip(weights)
    with pytest.raises(IntegrityError, match="sha256") as info:
        load_encoder(weights)
    assert str(weights) in str(info.value)
    seen(format_error(info.value))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_unreadable_safetensors(exported, damage, seen):
    """Truncated / garbage / empty safetensors (the JSON has no sha256, as in old exports)
    -> one line naming the file, not a raw traceback."""
    weights, meta = exported
    spec = json.loads(meta.read_text())
    del spec["weights"]  # an old export: only the reader can notice
    meta.write_text(json.dumps(spec))
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 50,
                         "empty": b""}[damage])
    with pytest.raises(IntegrityError, match="safetensors") as info:
        load_encoder(weights)
    assert str(weights) in str(info.value)
    seen(format_error(info.value))


def test_spec_of_another_architecture_names_the_key(exported, seen):
    """encoder.json describing another architecture (other widths) -> SpecMismatchError
    naming the first key whose shape differs."""
    weights, meta = exported
    spec = json.loads(meta.read_text())
    spec["encoder"]["overrides"]["widths"] = [16, 16, 16, 16, 32]
    spec.pop("weights")
    meta.write_text(json.dumps(spec))
    with pytest.raises(SpecMismatchError, match=r"key '.*' has shape \[") as info:
        load_encoder(weights)
    seen(format_error(info.value))


@pytest.mark.parametrize("damage", ["truncated", "binary"])
def test_damaged_json(exported, damage, seen):
    """A truncated (or binary) encoder.json -> one line naming the file."""
    _, meta = exported
    text = meta.read_bytes()
    meta.write_bytes(text[: len(text) // 2] if damage == "truncated" else b"\xff\xfe\x00" * 9)
    with pytest.raises(IntegrityError) as info:
        load_encoder(meta)
    assert str(meta) in str(info.value)
    seen(format_error(info.value))


def test_old_export_without_sha256_loads_with_a_warning(exported, caplog, seen):
    """An export of older ecgssl (no sha256 in its JSON) -> loads, with a warning."""
    weights, meta = exported
    spec = json.loads(meta.read_text())
    del spec["weights"]
    meta.write_text(json.dumps(spec))
    with caplog.at_level(logging.WARNING):
        encoder, _ = load_encoder(weights)
    assert "no sha256" in caplog.text
    seen(caplog.records[-1].getMessage())


def _seg(tmp_path):
    from ecgssl.models.seg_heads import build_seg_model
    from ecgssl.train.export import encoder_spec

    model = build_seg_model(_cnn(), 2)
    spec = {"encoder": encoder_spec(model.encoder),
            "preprocessing": {"fs": 250.0, "leads": ["I", "II"], "n_samples": 500,
                              "units": "mV"}}
    return model, spec


def test_segmentation_model_is_safetensors_and_verified(tmp_path, seen):
    """Segmentation models are safetensors + JSON (no pickle) with sha256; a damaged one is
    refused naming the file."""
    from ecgssl.api import load_segmentation_model, save_segmentation_model

    model, spec = _seg(tmp_path)
    weights = save_segmentation_model(model, tmp_path / "seg.pt", spec, {"scored_leads": ["II"]})
    assert weights.suffix == ".safetensors" and not (tmp_path / "seg.pt").exists()
    loaded, got = load_segmentation_model(tmp_path / "seg.pt")  # the old name still works
    assert got["scored_leads"] == ["II"]
    x = torch.randn(1, 2, 500)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    _flip(weights)
    with pytest.raises(IntegrityError, match="sha256") as info:
        load_segmentation_model(weights)
    seen(format_error(info.value))


def test_old_pickle_segmentation_model(tmp_path, caplog, seen):
    """An old pickle .pt segmentation model -> read with weights_only=True (warning, convert
    helper); a pickle that would run code on load -> refused, the code never runs."""
    from ecgssl.api import convert_segmentation_model, load_segmentation_model

    model, spec = _seg(tmp_path)
    old = tmp_path / "old.pt"
    torch.save({"format": "ecgssl-segmentation", "state_dict": model.state_dict(),
                "encoder_spec": spec, "freeze_encoder": False, "info": {}}, old)
    with caplog.at_level(logging.WARNING):
        load_segmentation_model(old)
    assert "weights_only=True" in caplog.text
    new = convert_segmentation_model(old)
    load_segmentation_model(new)

    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (flag.write_text, ("code ran",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": "ecgssl-segmentation", "x": Evil()}, f)
    with pytest.raises(IntegrityError) as info:
        load_segmentation_model(evil)
    assert not flag.exists()
    seen(format_error(info.value))


def test_finetuned_model_round_trip_and_damage(tmp_path, seen):
    """Fine-tuned models are safetensors + JSON with sha256 too; damage is refused."""
    from ecgssl.api import load_finetuned_model, save_finetuned_model
    from ecgssl.eval.finetune import FineTuneModule
    from ecgssl.train.export import encoder_spec

    module = FineTuneModule(_cnn(), 3, class_names=["a", "b", "c"])
    weights = save_finetuned_model(module, tmp_path / "ft", {"encoder": encoder_spec(
        module.encoder)})
    loaded, meta = load_finetuned_model(weights)
    x = torch.randn(2, 2, 500)
    with torch.no_grad():
        assert torch.equal(loaded(x), module.eval()(x))
    assert meta["class_names"] == ["a", "b", "c"]
    _flip(weights)
    with pytest.raises(IntegrityError) as info:
        load_finetuned_model(weights)
    seen(format_error(info.value))


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, shared_data):
    from tests.faults.helpers import wfdb_folder

    root = tmp_path_factory.mktemp("astore")
    src = wfdb_folder(shared_data, root / "src", n=3)
    from ecgssl.cli import main

    assert main(["prepare", str(src), "--out", str(root / "store"), "--kind", "wfdb",
                 "--workers", "0", "--no-progress", "--set", "beats=false"]) == 0
    return root / "store"


@pytest.mark.parametrize("damage", ["flipped", "truncated", "missing", "config"])
def test_damaged_store(small_store, tmp_path, damage, seen):
    """A store with a damaged array (a flipped byte / truncated / missing file) or a truncated
    config.json -> opening it fails with one line naming the file."""
    import shutil

    from ecgssl.data.store import ECGStore

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    target = store / ("config.json" if damage == "config" else
                      "labels.npy" if damage == "flipped" else "signals.npy")
    if damage == "flipped":
        _flip(target, 1)
    elif damage == "missing":
        target.unlink()
    else:
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError) as info:
        ECGStore(store)
    assert str(target) in str(info.value)
    seen(format_error(info.value))
    assert np.asarray(ECGStore(small_store).signals).shape[0] == 3  # the intact store opens

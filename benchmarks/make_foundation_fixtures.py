"""Regenerate the golden fixtures of the foundation-model loaders from the authors' own code.

Each model's authors' repository is imported from a local checkout (given by path) and run on
random weights in their checkpoint's tensor layout, with the model shrunk through the authors'
constructor arguments so that a fixture stays small; the state dict, fixed inputs and their
reference outputs (and their preprocessing of a raw record where their code has one) are written
to ``tests/fixtures/foundation/<model>.safetensors``. Nothing of their code is copied: it is
imported from the checkout and run.

Usage (CPU, a few seconds per model)::

    python benchmarks/make_foundation_fixtures.py --out tests/fixtures/foundation \
        --founder /path/to/ECGFounder --stmem /path/to/ST-MEM --merl /path/to/MERL-ICML2024 \
        --hubert /path/to/HuBERT-ECG --ecgfm /path/to/fairseq-signals --ludb ../shared/data/ludb

Each ``--<model>`` is optional (only the given ones are rewritten). Requires what the authors'
code imports (einops for ST-MEM, transformers, biosppy, neurokit2 and loguru for HuBERT-ECG);
modules their files import but the code used here never calls (h5py, torchvision, iterstrat,
torcheval) are replaced by empty stand-ins.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

LUDB_RECORD = "data/1"  # a 10 s, 500 Hz, 12-lead LUDB record (raw-record preprocessing check)


def _placeholder(attr: str):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return type(attr, (), {})


_STUBS: list[str] = []


def _unstub() -> None:
    """Forget the stand-ins once the authors' files are imported (other libraries, e.g.
    transformers, probe for the real packages)."""
    while _STUBS:
        sys.modules.pop(_STUBS.pop(), None)


def _stub(*names: str) -> None:
    """Empty modules for imports the authors' files make but the code used here never calls."""
    for name in names:
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                mod = types.ModuleType(name)
                # ``from stub import Name`` gets an inert placeholder class
                mod.__getattr__ = _placeholder
                sys.modules[name] = mod
                _STUBS.append(name)
                parent, _, child = name.rpartition(".")
                if parent:
                    setattr(sys.modules[parent], child, mod)


_INSERTED: list[str] = []


def _import_from(repo: Path, *paths: str):
    """Put ``repo`` (and sub-folders) first on sys.path, forgetting same-named modules."""
    for old in _INSERTED:  # an earlier repository's util.py would shadow this one's util/
        while old in sys.path:
            sys.path.remove(old)
    _INSERTED.clear()
    for sub in reversed(paths or ("",)):
        sys.path.insert(0, str(repo / sub))
        _INSERTED.append(str(repo / sub))
    for name in list(sys.modules):
        if name.split(".")[0] in ("models", "utils", "net1d", "util", "dataset", "vit1d",
                                  "resnet1d", "hubert_ecg", "fairseq_signals"):
            del sys.modules[name]


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial random values everywhere (biases, norms, embeddings too), so a mismapped
    tensor cannot hide behind a default init of zeros or ones."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith("running_var"):  # BatchNorm variances must be positive
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif p.dtype.is_floating_point:
                scale = 0.5 / max(1.0, p[0].numel() ** 0.5) if p.ndim > 1 else 0.1
                base = 1.0 if name.endswith(("norm.weight", "ln.weight")) else 0.0
                p.copy_(base + scale * torch.randn(p.shape, generator=gen))


def _save(out: Path, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.safetensors"
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata={"meta": json.dumps(meta)})
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, {len(tensors)} tensors)")


def _ludb_raw(ludb: Path) -> tuple[np.ndarray, list[str]]:
    import wfdb

    sig, fields = wfdb.rdsamp(str(ludb / LUDB_RECORD))  # (T, 12) mV at 500 Hz, as theirs reads
    return np.asarray(sig, dtype=np.float64).T, list(fields["sig_name"])


def make_founder(repo: Path, out: Path, ludb: Path) -> None:
    _stub("h5py", "torchvision", "torchvision.transforms")
    _import_from(repo)
    from net1d import Net1D  # noqa: E402 (the authors' model)
    from util import filter_bandpass  # their filter chain

    cfg = {"base_filters": 8, "ratio": 1, "filter_list": [8, 16, 16, 32],
           "m_blocks_list": [1, 2, 1, 2], "kernel_size": 16, "stride": 2, "groups_width": 4}
    tensors, meta = {}, {"config": cfg, "ludb_record": LUDB_RECORD}
    models = {}
    for n_leads, tag in ((12, "l12"), (1, "l1")):
        torch.manual_seed(n_leads)
        model = Net1D(in_channels=n_leads, n_classes=5, use_bn=False, use_do=False,
                      return_features=True, **cfg)
        _randomise(model, seed=n_leads)
        model.eval()
        models[n_leads] = model
        stages = []
        hooks = [s.register_forward_hook(lambda _m, _i, o, acc=stages: acc.append(o))
                 for s in model.stage_list]
        x = torch.randn(2, n_leads, 1000, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            _, feats = model(x)
        for h in hooks:
            h.remove()
        for k, v in model.state_dict().items():
            tensors[f"{tag}.state.{k}"] = v
        tensors[f"{tag}.x"], tensors[f"{tag}.features"] = x, feats
        for i, s in enumerate(stages):
            tensors[f"{tag}.stage{i}"] = s
    # Their preprocessing of a raw record (dataset.py: filter_bandpass at 500 Hz, then one z-score
    # over the whole array with eps 1e-8: their z_score_normalization method, called unbound).
    from dataset import LVEF_12lead_cls_Dataset

    _unstub()

    raw, names = _ludb_raw(ludb)
    order = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    raw = raw[[names.index(n) for n in order]]
    filtered = filter_bandpass(raw, 500)
    pre = LVEF_12lead_cls_Dataset.z_score_normalization(None, filtered)
    with torch.no_grad():  # the 12-lead model above on their preprocessing of the record
        _, feats = models[12](torch.tensor(pre[None], dtype=torch.float32))
    tensors["record.raw"] = torch.tensor(raw, dtype=torch.float32)
    tensors["record.preprocessed"] = torch.tensor(pre, dtype=torch.float32)
    tensors["record.features"] = feats
    _save(out, "ecgfounder", tensors, meta)


def make_stmem(repo: Path, out: Path, ludb: Path) -> None:
    _import_from(repo)
    from models.encoder.st_mem_vit import ST_MEM_ViT  # the authors' encoder
    from scipy.signal import resample_poly
    from util.transforms import HighpassFilter, LowpassFilter, Standardize

    cfg = {"seq_len": 2250, "patch_size": 75, "num_leads": 12, "width": 32, "depth": 2,
           "mlp_dim": 64, "heads": 2, "dim_head": 64, "qkv_bias": True}
    torch.manual_seed(0)
    model = ST_MEM_ViT(**cfg)
    _randomise(model, seed=0)
    model.eval()
    x = torch.randn(2, 12, 750, generator=torch.Generator().manual_seed(7))  # 10 of 30 patches
    # Their eval transforms on a raw record at 250 Hz: first 9 s crop, high-pass 0.67 Hz,
    # low-pass 40 Hz, standardise over (leads, samples).
    raw, names = _ludb_raw(ludb)
    order = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    raw = resample_poly(raw[[names.index(n) for n in order]], 1, 2, axis=-1)[:, :2250]
    pre = raw
    for t in (HighpassFilter(fs=250, cutoff=0.67), LowpassFilter(fs=250, cutoff=40),
              Standardize(axis=(-1, -2))):
        pre = t(pre)
    with torch.no_grad():
        feats = model.forward_encoding(x)
        rec = model.forward_encoding(torch.tensor(pre[None], dtype=torch.float32))
    tensors = {f"state.{k}": v for k, v in model.state_dict().items()}
    tensors.update({"x": x, "features": feats, "record.raw": torch.tensor(raw).float(),
                    "record.preprocessed": torch.tensor(pre).float(), "record.features": rec})
    _save(out, "stmem", tensors, {"config": cfg, "ludb_record": LUDB_RECORD,
                                  "raw": "LUDB record at 500 Hz, resample_poly(1, 2), first 2250"})


def _quantise_(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Round every float tensor of ``model`` to int8 steps of a per-tensor scale, in place, and
    return the int8 codes + scales: the fixture stores those (4x smaller), and the authors' model
    is run on exactly the dequantised values ``code.float() * scale`` that the test rebuilds."""
    stored = {}
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.dtype.is_floating_point:
                stored[name] = p
                continue
            scale = (p.abs().max() / 127).clamp_min(1e-12).reshape(1).float()
            code = torch.round(p / scale).clamp(-127, 127).to(torch.int8)
            p.copy_(code.float() * scale)
            stored[f"{name}.int8"], stored[f"{name}.scale"] = code, scale
    return stored


def make_merl(repo: Path, out: Path, ludb: Path) -> None:
    _import_from(repo, "finetune")
    from models.resnet1d import BasicBlock, ResNet  # the authors' fine-tuning ResNet

    # Their ResNet fixes the widths (64-512): depth is reduced to one block per stage instead,
    # and the weights are int8-quantised (see _quantise_) to keep the fixture small.
    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=3)
    _randomise(model, seed=0)
    model.eval()
    stored = _quantise_(model)
    feats = {}
    model.avgpool.register_forward_hook(lambda _m, _i, o: feats.setdefault("pooled", o))
    x = torch.randn(2, 12, 800, generator=torch.Generator().manual_seed(7))
    raw, names = _ludb_raw(ludb)
    order = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    raw = raw[[names.index(n) for n in order]][:, :5000]
    # Their finetune_dataset: first 5000 samples, min-max over the whole array (eps 1e-8).
    pre = (raw - np.min(raw)) / (np.max(raw) - np.min(raw) + 1e-8)
    with torch.no_grad():
        model(x)
        x_feats = feats.pop("pooled")[..., 0]
        model(torch.tensor(pre[None], dtype=torch.float32))
        rec_feats = feats.pop("pooled")[..., 0]
    tensors = {f"state.{k}": v for k, v in stored.items()}
    tensors.update({"x": x, "features": x_feats, "record.raw": torch.tensor(raw).float(),
                    "record.features": rec_feats})
    _save(out, "merl", tensors, {"blocks": [1, 1, 1, 1], "ludb_record": LUDB_RECORD,
                                 "min_max": "computed here as their dataset code writes it"})
    # MERL's ViT (their utils/vit1d.py, the pretraining encoder), shrunk; the raw record is the
    # one stored in merl.safetensors.
    _import_from(repo, "utils")
    from vit1d import ViT

    cfg = {"num_leads": 12, "seq_len": 5000, "patch_size": 50, "width": 32, "depth": 2,
           "mlp_dim": 64, "heads": 2, "dim_head": 64}
    torch.manual_seed(0)
    vit = ViT(**cfg)
    _randomise(vit, seed=3)
    vit.eval()
    x = torch.randn(1, 12, 5000, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        feats = vit.forward_encoding(x)
        rec = vit.forward_encoding(torch.tensor(pre[None], dtype=torch.float32))
    tensors = {f"state.{k}": v for k, v in vit.state_dict().items()}
    tensors.update({"x": x, "features": feats, "record.features": rec})
    _save(out, "merl_vit", tensors, {"config": cfg, "ludb_record": LUDB_RECORD})


def make_hubert(repo: Path, out: Path, ludb: Path) -> None:
    import tempfile

    import pandas as pd

    _stub("iterstrat", "iterstrat.ml_stratifiers", "torcheval", "torcheval.metrics")
    _import_from(repo, "code")
    from dataset import ECGDataset  # their crop, lead flattening and decimation
    from hubert_ecg import HuBERTECG, HuBERTECGConfig  # their model class
    from utils import ecg_preprocessing  # their FIR band-pass + resampling + scaling

    _unstub()

    cfg = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "conv_dim": [16, 16, 16, 16], "conv_kernel": [10, 3, 3, 2],
           "conv_stride": [4, 2, 2, 2], "num_conv_pos_embeddings": 16,
           "num_conv_pos_embedding_groups": 4, "classifier_proj_size": 8, "vocab_sizes": [10],
           "ensemble_length": 1, "mask_time_prob": 0.0}
    torch.manual_seed(0)
    model = HuBERTECG(HuBERTECGConfig(**cfg))
    _randomise(model, seed=0)
    model.eval()
    raw, names = _ludb_raw(ludb)
    order = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    raw = raw[[names.index(n) for n in order]]
    pre = ecg_preprocessing(raw, 500)  # (12, 5000) at 500 Hz, [-1, 1] per lead
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "rec.npy", pre)
        pd.DataFrame({"filename": ["rec.npy"]}).to_csv(Path(tmp) / "d.csv", index=False)
        seq, _ = ECGDataset(str(Path(tmp) / "d.csv"), tmp, downsampling_factor=5,
                            pretrain=False, encode=True)[0]
    x = torch.randn(2, 1200, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        feats = model(x).last_hidden_state
        rec = model(seq[None]).last_hidden_state
    tensors = {f"state.{k}": v for k, v in model.state_dict().items()}
    tensors.update({"x": x, "hidden": feats, "record.raw": torch.tensor(raw).float(),
                    "record.preprocessed": torch.tensor(pre).float(), "record.sequence": seq,
                    "record.hidden": rec})
    _save(out, "hubert_ecg", tensors, {"config": cfg, "ludb_record": LUDB_RECORD})


def _fairseq_signals_shims() -> None:
    """Let fairseq-signals' model code import on Python 3.11 / transformers 5 (fixture making
    only): dataclass instances as field defaults become default factories, hydra's config
    schema is not registered, model files that need an older transformers (multimodal ones)
    are skipped, and two data collators removed from transformers get placeholders."""
    import copy
    import dataclasses
    import importlib

    original_get_field = dataclasses._get_field

    def get_field(cls, a_name, a_type, *args):
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if (not isinstance(default, dataclasses.Field) and default is not dataclasses.MISSING
                and default.__class__.__hash__ is None and dataclasses.is_dataclass(default)):
            setattr(cls, a_name,
                    dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d)))
        return original_get_field(cls, a_name, a_type, *args)

    dataclasses._get_field = get_field
    import hydra.core.config_store as config_store
    import transformers

    config_store.ConfigStore.store = lambda self, *a, **k: None
    for name in ("DataCollatorForWholeWordMask", "DataCollatorForLanguageModeling"):
        if not hasattr(transformers, name):
            setattr(transformers, name, type(name, (), {}))
    original_import = importlib.import_module

    def tolerant(name, package=None):
        try:
            return original_import(name, package)
        except ImportError:
            if name.startswith("fairseq_signals.models.") and "wav2vec2" not in name \
                    and "ecg_transformer" not in name:
                print(f"  (skipped {name}: needs another transformers)")
                return types.ModuleType(name)
            raise

    importlib.import_module = tolerant


def make_ecgfm(repo: Path, out: Path, ludb: Path) -> None:
    _fairseq_signals_shims()
    _import_from(repo)
    from fairseq_signals.models.wav2vec2.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model

    cfg = {"encoder_embed_dim": 32, "encoder_layers": 2, "encoder_ffn_embed_dim": 64,
           "encoder_attention_heads": 4, "conv_feature_layers": "[(16, 2, 2)] * 4",
           "conv_pos": 16, "conv_pos_groups": 4, "in_d": 12, "layer_norm_first": False,
           "final_dim": 8}
    tensors = {}
    for tag, norm_first in (("post", False), ("pre", True)):
        torch.manual_seed(0)
        model = Wav2Vec2Model(Wav2Vec2Config(**{**cfg, "layer_norm_first": norm_first}))
        _randomise(model, seed=1 + norm_first)
        model.eval()
        x = torch.randn(2, 12, 800, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            feats = model(source=x, mask=False, features_only=True)["x"]
        tensors.update({f"{tag}.state.{k}": v for k, v in model.state_dict().items()})
        tensors[f"{tag}.features"] = feats
    tensors["x"] = x
    _save(out, "ecgfm", tensors, {"config": cfg, "input": "random; ECG-FM's input transforms "
                                  "(ecg_transform package) were not available"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/foundation"))
    ap.add_argument("--ludb", type=Path, default=Path("../shared/data/ludb"))
    for key in ("founder", "stmem", "merl", "hubert", "ecgfm"):
        ap.add_argument(f"--{key}", type=Path, help=f"checkout of the {key} authors' repository")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    makers = {"founder": make_founder}
    makers.update({k: globals()[f"make_{k}"] for k in ("stmem", "merl", "hubert", "ecgfm")
                   if f"make_{k}" in globals()})
    done = 0
    for key, make in makers.items():
        repo = getattr(args, key)
        if repo is not None:
            make(repo.resolve(), args.out, args.ludb)
            done += 1
    if not done:
        ap.error("give at least one authors' checkout (--founder, --stmem, --merl, --hubert)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

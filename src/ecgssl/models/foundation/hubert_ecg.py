"""HuBERT-ECG (Coppola et al., 2024, "HuBERT-ECG as a self-supervised foundation model for
broad and scalable cardiac applications"): a HuBERT speech transformer over the 12 leads of a
5 s ECG laid end to end.

The network is ``transformers.HubertModel`` (a well-kept PyPI implementation; the authors
subclass it only to return the pretraining mask), built from the checkpoint's ``config.json``;
its pretraining heads (``final_proj``, ``label_embedding``) and the mask embedding are not part of
the encoder and are dropped (counted). Requires the optional extra ``ecgssl[foundation]``
(``transformers``).

Input pipeline (the authors' ``utils.ecg_preprocessing`` and ``dataset.ECGDataset``): a 10 s
record at 500 Hz (5000 samples, the spec's length), 12 leads I, II, III, aVR, aVL, aVF, V1-V6;
FIR band-pass 0.05-47 Hz (``biosppy``: ``int(0.3 fs)`` taps made odd, ``filtfilt``); each lead
scaled to [-1, 1] (eps 1e-8) over the whole record; then the first 5 s (2500 samples) are kept,
the 12 leads concatenated into one sequence of 30000 samples and decimated by 5
(``scipy.signal.decimate``: order-8 Chebyshev I, zero-phase; across the lead boundaries, as
theirs) to 6000 samples at 100 Hz. The authors filter at the recording's own rate
and resample to 500 Hz after; ecgssl resamples first (identical for 500 Hz input).

Feature map: the transformer's tokens run over the *concatenated* leads (token j covers a stretch
of one lead, or the junction of two), not over time, so ``forward_features`` (B, D, N) is not a
time map: ``forward_features`` and ``feature_pyramid`` refuse (no segmentation decoder on this
encoder; ``tokens`` gives the token map). ``forward`` is the authors' representation: the mean of
the last hidden states.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgssl.data.leads import LEADS_12
from ecgssl.errors import SpecMismatchError
from ecgssl.models.foundation.base import FoundationEncoder, ModelCard, take_n_leads
from ecgssl.models.registry import register_encoder

STEPS = ({"op": "fir", "btype": "bandpass", "hz": [0.05, 47.0], "taps_s": 0.3},
         {"op": "minmax", "axis": "lead", "eps": 1e-8, "range": [-1.0, 1.0]})
DECIMATE = 5
CROP = 2500  # the network reads the first 5 s of the preprocessed 10 s record

CARD = ModelCard(
    key="hubert", title="HuBERT-ECG (Coppola et al., 2024)",
    code="https://github.com/Edoar-do/HuBERT-ECG",
    weights="https://huggingface.co/Edoardo-BS (hubert-ecg-small/base/large: config.json + "
            "model.safetensors)",
    licence="CC BY-NC 4.0 (models and code, as the authors' README states)",
    commercial_use=False,
    pretraining_data=tuple({"database": d, "note": "pretraining set of 9.1 M ECGs (paper)"}
                           for d in ("PTB-XL", "PTB", "CPSC2018", "CPSC-Extra", "Georgia",
                                     "Chapman", "Ningbo", "CODE-15", "SaMi-Trop", "Hefei",
                                     "SPH", "MIMIC-IV-ECG")),
    fs=500.0, n_samples=5000, leads=tuple(LEADS_12), steps=STEPS,
    notes="pretraining databases as listed by the authors' figures/metadata folder; check the "
          "paper for the exact subsets")

# Config fields copied from a checkpoint's config.json into transformers.HubertConfig.
CONFIG_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "hidden_act", "conv_dim", "conv_kernel", "conv_stride", "conv_bias",
               "feat_extract_norm", "feat_extract_activation", "num_conv_pos_embeddings",
               "num_conv_pos_embedding_groups", "do_stable_layer_norm", "layer_norm_eps",
               "feat_proj_layer_norm", "conv_pos_batch_norm")


class HuBERTECGEncoder(FoundationEncoder):
    """HuBERT-ECG as an ecgssl encoder: (B, 12, 5000) mV -> (B, hidden_size, N tokens)
    (N = 93 for the released downsampling-by-5 models: 6000 samples / conv stride 64)."""

    has_time_features = False  # tokens span concatenated leads: no time map

    def __init__(self, name: str = "hubert_ecg", leads: Sequence[str] = tuple(LEADS_12),
                 config: Mapping[str, Any] | None = None, pool: str = "mean",
                 authors_steps: bool = True):
        super().__init__(CARD.fs, CARD.steps if authors_steps else None, pool)
        try:
            from transformers import HubertConfig, HubertModel
        except ImportError as err:
            raise ImportError("HuBERT-ECG needs the optional extra: pip install "
                              "'ecgssl[foundation]' (transformers)") from err
        self.card, self.lead_order = CARD, list(leads)
        cfg = {k: v for k, v in dict(config or {}).items() if k in CONFIG_KEYS}
        # Inference only: no SpecAugment masking, no dropout, no layer drop.
        self.hubert = HubertModel(HubertConfig(**cfg, mask_time_prob=0.0, mask_feature_prob=0.0,
                                               layerdrop=0.0, hidden_dropout=0.0,
                                               attention_dropout=0.0, activation_dropout=0.0,
                                               feat_proj_dropout=0.0))
        self.embed_dim = int(self.hubert.config.hidden_size)
        self.stride = int(np.prod(self.hubert.config.conv_stride)) * DECIMATE
        self.decimate = bool(authors_steps)
        self.spec = {"name": name, "class": "HuBERTECGEncoder", "overrides": {
            "leads": list(self.lead_order), "config": cfg, "pool": pool,
            "authors_steps": authors_steps}}

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Filters and scaling per lead over the record, the first 5 s, leads end to end,
        decimated by 5: (B, L, T) -> (B, L * 2500 / 5)."""
        x = super().prepare_input(x)[..., :CROP]
        flat = x.reshape(x.shape[0], -1)
        if not self.decimate:
            return flat
        from scipy.signal import decimate

        y = decimate(flat.detach().cpu().numpy().astype(np.float64), DECIMATE, axis=-1)
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(x.device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S) prepared sequence -> (B, D, N) last hidden states."""
        return self.hubert(input_values=x).last_hidden_state.transpose(1, 2)

    def tokens(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """(B, 12, T) mV -> (B, D, N) last hidden states over the lead-concatenated sequence."""
        self._check(x, leads)
        return self.encode(self.prepare_input(x))

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """The authors' representation: the mean of the last hidden states, (B, D)."""
        from ecgssl.models.pooling import pool_features

        return pool_features(self.tokens(x, leads), self.pool, dim=-1)

    def forward_features(self, x, leads=None):
        raise SpecMismatchError(_NO_TIME_MAP)

    def feature_pyramid(self, x, leads=None):
        raise SpecMismatchError(_NO_TIME_MAP)


_NO_TIME_MAP = ("HuBERT-ECG's tokens run over the 12 leads laid end to end, not over time: it "
                "has no time feature map (no segmentation decoder on it); use forward (pooled) "
                "or tokens()")


@register_encoder("hubert_ecg")
def hubert_ecg(**kwargs) -> HuBERTECGEncoder:
    """HuBERT-ECG; ``config`` = the checkpoint's config.json fields (default: HubertConfig's)."""
    take_n_leads(kwargs, kwargs.get("leads", LEADS_12), "hubert_ecg")
    return HuBERTECGEncoder(name="hubert_ecg", **kwargs)


# ------------------------------------------------------------------------------ checkpoint

_DROP = ("final_proj.", "label_embedding.", "masked_spec_embed")


def looks_like(state: Mapping[str, Any]) -> bool:
    return any(k.startswith("feature_extractor.conv_layers.") for k in state) and any(
        k.startswith("encoder.layers.") for k in state)


def map_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                               dict[str, int]]:
    """Authors' HuBERTECG keys -> ours (``hubert.`` + the HubertModel key); heads dropped."""
    out, dropped = {}, {"pretraining heads and mask embedding": 0}
    for key, value in state.items():
        key = key.removeprefix("hubert_ecg.").removeprefix("hubert.")
        if key.startswith(_DROP):
            dropped["pretraining heads and mask embedding"] += 1
        else:
            out[f"hubert.{key}"] = torch.as_tensor(value)
    return out, dropped


def from_state_dict(state: Mapping[str, torch.Tensor], config: Mapping[str, Any], **overrides
                    ) -> tuple[HuBERTECGEncoder, dict[str, Any]]:
    """A ``HuBERTECGEncoder`` from a state dict and its config.json fields."""
    from ecgssl.compat.ecg_jepa import load_checked

    mapped, dropped = map_state_dict(state)
    encoder = HuBERTECGEncoder(config=config, **overrides)
    own = encoder.state_dict()
    # Weight-norm parametrisation of the positional conv is named differently across
    # transformers versions (weight_g / weight_v vs parametrizations.weight.original0 / 1).
    renames = {"pos_conv_embed.conv.weight_g": "pos_conv_embed.conv.parametrizations.weight."
               "original0", "pos_conv_embed.conv.weight_v": "pos_conv_embed.conv."
               "parametrizations.weight.original1"}
    for key in list(mapped):
        for old, new in renames.items():
            for a, b in ((old, new), (new, old)):
                if key.endswith(a) and key not in own and key.replace(a, b) in own:
                    mapped[key.replace(a, b)] = mapped.pop(key)
    load_checked(encoder, mapped, "HuBERT-ECG")
    return encoder.eval(), {"loaded_tensors": len(mapped), "dropped_tensors": dropped}


def load_hf_dir(path: Path, **overrides) -> tuple[HuBERTECGEncoder, dict[str, Any]]:
    """A Hugging Face model folder: ``config.json`` (read as JSON; no remote code runs) and
    ``model.safetensors``."""
    from safetensors.torch import load_file

    config = json.loads((path / "config.json").read_text())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{path} has a config.json but no model.safetensors (ecgssl "
                                "reads safetensors only, not pickled pytorch_model.bin)")
    return from_state_dict(load_file(str(weights)), config, **overrides)


def is_hf_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not (path.is_dir() and cfg.is_file()):
        return False
    try:
        return str(json.loads(cfg.read_text()).get("model_type", "")).startswith("hubert")
    except (json.JSONDecodeError, AttributeError):
        return False


CHECKPOINT_KEY = None  # released files are bare state dicts

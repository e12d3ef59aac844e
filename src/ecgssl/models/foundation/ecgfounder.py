"""ECGFounder (Li et al., NEJM AI 2025; arXiv 2410.04133): Net1D, a 1-D RegNet-like CNN.

Architecture (read from the paper's description and the authors' ``net1d.py``; written here):
a stem convolution (kernel k, stride 2, "same" padding, Swish), then stages of bottleneck blocks.
Each block: [Swish], 1x1 conv, Swish, grouped k-wide conv (stride 2 in the first block of a
stage), Swish, 1x1 conv, squeeze-and-excitation (time mean -> FC C/2 -> Swish -> FC C ->
sigmoid gate); the shortcut is max-pooled by the stride ("same" padding with zeros) and
zero-padded symmetrically in channels when the width grows. The released models are built without
batch norm and dropout (``use_bn=False, use_do=False`` in the authors' fine-tuning code), so the
checkpoint's BatchNorm tensors are unused and not loaded (the loader counts them).

"Same" padding: an input of T samples and stride s gives ceil(T / s) steps, so the feature map
has ``ceil(T / 256)`` steps for the released 7-stage model (stride 2^8 = 256: 20 for 5000).

Input pipeline (the authors' ``dataset.py`` / ``util.filter_bandpass``): 500 Hz, 10 s, 12 leads
I, II, III, aVR, aVL, aVF, V1-V6 (or lead I alone for the single-lead model); 50 Hz notch (Q 30),
4th-order Butterworth band-pass 0.67-40 Hz (both ``filtfilt``), minus a 0.4 s median baseline;
then one z-score over the whole (leads, samples) window with eps 1e-8.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.models.foundation.base import FoundationEncoder, ModelCard, take_n_leads
from ecgssl.models.registry import register_encoder

STEPS = ({"op": "notch", "hz": 50.0, "q": 30.0},
         {"op": "butter", "btype": "bandpass", "hz": [0.67, 40.0], "order": 4, "form": "ba"},
         {"op": "median_baseline", "window_s": 0.4},
         {"op": "zscore", "axis": "record", "eps": 1e-8})

PRETRAINING = ({"database": "HEEDB",
                "note": "Harvard-Emory ECG Database, over 10 M 12-lead ECGs (paper)"},)

CARD_12 = ModelCard(
    key="founder", title="ECGFounder 12-lead (Li et al., NEJM AI 2025)",
    code="https://github.com/PKUDigitalHealth/ECGFounder",
    weights="https://huggingface.co/PKUDigitalHealth/ECGFounder (12_lead_ECGFounder.pth)",
    licence="MIT (code repository); check the Hugging Face model card for the weights",
    commercial_use=None, pretraining_data=PRETRAINING, fs=500.0, n_samples=5000,
    leads=tuple(LEADS_12), steps=STEPS,
    notes="HEEDB is not public: overlap with evaluation data is by database name only")
CARD_1 = ModelCard(**{**CARD_12.__dict__, "key": "founder1",
                      "title": "ECGFounder single-lead (lead I)", "leads": ("I",),
                      "weights": "https://huggingface.co/PKUDigitalHealth/ECGFounder "
                                 "(1_lead_ECGFounder.pth)"})

RELEASED = {"base_filters": 64, "ratio": 1.0, "filter_list": [64, 160, 160, 400, 400, 1024, 1024],
            "m_blocks_list": [2, 2, 2, 3, 3, 4, 4], "kernel_size": 16, "stride": 2,
            "groups_width": 16}


def _same_pad(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """(left, right) zero padding so that a strided conv gives ceil(length / stride) steps."""
    out = (length + stride - 1) // stride
    total = max(0, (out - 1) * stride + kernel - length)
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """Conv1d with TensorFlow-style "same" padding (left gets the smaller half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = _same_pad(x.shape[-1], self.kernel_size[0], self.stride[0])
        return super().forward(F.pad(x, (left, right)))


class Net1DBlock(nn.Module):
    """Pre-activation bottleneck with grouped k-wide conv and squeeze-and-excitation."""

    def __init__(self, c_in: int, c_out: int, ratio: float, kernel: int, stride: int,
                 groups: int, pre_activation: bool):
        super().__init__()
        mid = int(c_out * ratio)
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.pre_activation = pre_activation
        self.conv1 = SameConv1d(c_in, mid, 1)
        self.conv2 = SameConv1d(mid, mid, kernel, stride=stride, groups=groups)
        self.conv3 = SameConv1d(mid, c_out, 1)
        self.se1 = nn.Linear(c_out, c_out // 2)
        self.se2 = nn.Linear(c_out // 2, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(x) if self.pre_activation else x
        y = self.conv3(F.silu(self.conv2(F.silu(self.conv1(y)))))
        gate = torch.sigmoid(self.se2(F.silu(self.se1(y.mean(-1)))))
        y = y * gate[..., None]
        skip = x
        if self.stride > 1:
            # Max-pool by the stride over zero-padded input ("same"), as the convolution.
            p = self.stride - 1
            skip = F.max_pool1d(F.pad(skip, (p // 2, p - p // 2)), self.stride)
        if self.c_out != self.c_in:
            extra = self.c_out - self.c_in
            skip = F.pad(skip, (0, 0, extra // 2, extra - extra // 2))
        return y + skip


class Net1DEncoder(FoundationEncoder):
    """ECGFounder's Net1D trunk as an ecgssl encoder: (B, L, T) mV -> (B, filter_list[-1], T').

    Args:
        name: registry name; leads: input leads in order (12 standard leads or ["I"]).
        base_filters, ratio, filter_list, m_blocks_list, kernel_size, stride, groups_width: the
            authors' constructor arguments (released: ``RELEASED``).
        authors_steps: apply the authors' filters + z-score to the input (default True).
    """

    def __init__(self, name: str = "ecgfounder_12lead", leads: Sequence[str] = tuple(LEADS_12),
                 base_filters: int = 64, ratio: float = 1.0,
                 filter_list: Sequence[int] = tuple(RELEASED["filter_list"]),
                 m_blocks_list: Sequence[int] = tuple(RELEASED["m_blocks_list"]),
                 kernel_size: int = 16, stride: int = 2, groups_width: int = 16,
                 pool: str = "mean", authors_steps: bool = True):
        card = CARD_1 if list(leads) == ["I"] else CARD_12
        super().__init__(card.fs, card.steps if authors_steps else None, pool)
        if len(filter_list) != len(m_blocks_list):
            raise ValueError("filter_list and m_blocks_list must have one entry per stage")
        self.card, self.lead_order = card, list(leads)
        self.stem = SameConv1d(len(self.lead_order), base_filters, kernel_size, stride=2)
        self.stages = nn.ModuleList()
        c_in = base_filters
        for i, (c_out, n_blocks) in enumerate(zip(filter_list, m_blocks_list)):
            blocks = [Net1DBlock(c_in if j == 0 else c_out, c_out, ratio, kernel_size,
                                 stride if j == 0 else 1, c_out // groups_width,
                                 pre_activation=not (i == 0 and j == 0))
                      for j in range(n_blocks)]
            self.stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.embed_dim = int(c_in)
        self.stride = 2 * stride ** len(filter_list)
        self.spec = {"name": name, "class": "Net1DEncoder", "overrides": {
            "leads": list(self.lead_order), "base_filters": base_filters, "ratio": ratio,
            "filter_list": list(filter_list), "m_blocks_list": list(m_blocks_list),
            "kernel_size": kernel_size, "stride": stride, "groups_width": groups_width,
            "pool": pool, "authors_steps": authors_steps}}

    def encode_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        x = F.silu(self.stem(x))
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_pyramid(x)[-1]

    def n_steps(self, n_samples: int) -> int:
        return math.ceil(n_samples / self.stride)


@register_encoder("ecgfounder_12lead")
def ecgfounder_12lead(**kwargs) -> Net1DEncoder:
    """The released 12-lead ECGFounder trunk (about 31 M parameters)."""
    take_n_leads(kwargs, kwargs.get("leads", LEADS_12), "ecgfounder_12lead")
    return Net1DEncoder(name="ecgfounder_12lead", **{**RELEASED, **kwargs})


@register_encoder("ecgfounder_1lead")
def ecgfounder_1lead(**kwargs) -> Net1DEncoder:
    """The released single-lead (lead I) ECGFounder trunk."""
    take_n_leads(kwargs, kwargs.get("leads", ["I"]), "ecgfounder_1lead")
    return Net1DEncoder(name="ecgfounder_1lead", **{"leads": ["I"], **RELEASED, **kwargs})


# ------------------------------------------------------------------------------ checkpoint

_KEYMAP = [  # authors' key pattern -> ours
    (r"^first_conv\.conv\.(weight|bias)$", r"stem.\1"),
    (r"^stage_list\.(\d+)\.block_list\.(\d+)\.conv([123])\.conv\.(weight|bias)$",
     r"stages.\1.\2.conv\3.\4"),
    (r"^stage_list\.(\d+)\.block_list\.(\d+)\.se_fc([12])\.(weight|bias)$",
     r"stages.\1.\2.se\3.\4"),
]
# Present in the checkpoint, unused by the released model (use_bn=False) or not the trunk.
_UNUSED = (r"(^|\.)(first_bn|bn[123])\.", r"^dense\.")


def map_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                               dict[str, int]]:
    """Authors' Net1D keys -> ours; returns (mapped, counts of dropped keys by reason).

    Raises:
        ValueError: a key that is neither mapped nor known to be unused (named in the message).
    """
    out, dropped, unknown = {}, {"batch_norm (unused: use_bn=False)": 0, "dense head": 0}, []
    for key, value in state.items():
        key = key.removeprefix("module.")
        for pattern, repl in _KEYMAP:
            if re.match(pattern, key):
                out[re.sub(pattern, repl, key)] = torch.as_tensor(value)
                break
        else:
            if re.search(_UNUSED[0], key):
                dropped["batch_norm (unused: use_bn=False)"] += 1
            elif re.search(_UNUSED[1], key):
                dropped["dense head"] += 1
            else:
                unknown.append(key)
    if unknown:
        raise ValueError(f"ECGFounder checkpoint has keys this loader does not know: "
                         f"{unknown[:8]}")
    return out, dropped


def config_from_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments read from mapped (our) keys: widths, depths, kernel, groups."""
    stem = state["stem.weight"]
    n_stages = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("stages."))
    filters, blocks = [], []
    for i in range(n_stages):
        ids = {int(k.split(".")[2]) for k in state if k.startswith(f"stages.{i}.")}
        blocks.append(len(ids))
        filters.append(int(state[f"stages.{i}.0.conv3.weight"].shape[0]))
    conv2 = state["stages.0.0.conv2.weight"]  # (mid, mid / groups, k)
    mid = conv2.shape[0]
    groups = mid // conv2.shape[1]
    return {"base_filters": int(stem.shape[0]), "ratio": mid / filters[0],
            "filter_list": filters, "m_blocks_list": blocks, "kernel_size": int(stem.shape[-1]),
            "stride": 2, "groups_width": filters[0] // groups, "n_leads": int(stem.shape[1])}


def looks_like(state: Mapping[str, Any]) -> bool:
    return "first_conv.conv.weight" in state or "module.first_conv.conv.weight" in state


def from_state_dict(state: Mapping[str, torch.Tensor], **overrides) -> tuple[Net1DEncoder,
                                                                             dict[str, Any]]:
    """A ``Net1DEncoder`` holding an authors' state dict; returns (encoder, load report)."""
    from ecgssl.compat.ecg_jepa import load_checked

    mapped, dropped = map_state_dict(state)
    cfg = config_from_state_dict(mapped)
    n_leads = cfg.pop("n_leads")
    if n_leads not in (1, 12):
        raise ValueError(f"ECGFounder checkpoints have 1 or 12 input leads, this one {n_leads}")
    name = "ecgfounder_1lead" if n_leads == 1 else "ecgfounder_12lead"
    leads = ["I"] if n_leads == 1 else list(LEADS_12)
    encoder = Net1DEncoder(name=name, leads=leads, **{**cfg, **overrides})
    load_checked(encoder, mapped, "ECGFounder Net1D")
    return encoder.eval(), {"loaded_tensors": len(mapped), "dropped_tensors": dropped}


CHECKPOINT_KEY = "state_dict"  # released files wrap the weights as {'state_dict': ...}

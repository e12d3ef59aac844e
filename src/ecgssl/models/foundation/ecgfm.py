"""ECG-FM (McKeen et al., 2024, "ECG-FM: an open electrocardiogram foundation model"): a
wav2vec 2.0 encoder over 12-lead ECG (fairseq-signals' ``Wav2Vec2Model``), pretrained with
wav2vec 2.0 + CMSC + random lead masking.

Architecture (fairseq-signals' ``ecg_transformer.py`` / ``wav2vec2.py`` and the modules they
use, written here): a convolutional feature extractor over the 12 leads as channels (layers
``(dim, kernel, stride)``, no padding; ``extractor_mode="default"``: GroupNorm(dim, dim) after
the first convolution only; GELU after each), LayerNorm over channels, a linear projection to the
model width, a convolutional positional encoding (grouped conv, weight norm over the kernel axis,
the last step dropped for an even kernel, GELU) added to the features, then a post-norm
transformer (``layer_norm_first=False``: LayerNorm before the first layer and after each
sub-block; pre-norm with a final LayerNorm otherwise). ``forward`` is the time mean of the last
layer (the ECG-FM quickstart divides the sum by the count of non-zero values, which equals the
time mean unless a feature is exactly 0).

What a state dict does not say (strides, heads, ``layer_norm_first``): taken from the authors'
YAML config when given (``config=``), else fairseq-signals' defaults (stride = kernel, 12 heads
for width 768, post-norm), and the load report lists each assumption.

Input pipeline (ECG-FM's quickstart notebook, its ``ecg_transform`` transforms): 500 Hz, 12
leads I, II, III, aVR, aVL, aVF, V1-V6, constant leads set to zero, ``Standardize()`` over the
record, then non-overlapping 5 s segments (2500 samples) for the network. The spec takes a 10 s
record (5000 samples, like the other 500 Hz models, so they share one store); each 5 s segment
is encoded on its own and the feature maps are concatenated in time, so ``forward`` (the time
mean) is the mean of the segments' embeddings (the authors aggregate per-segment *predictions*
by mean or max; embeddings have no such choice). The ``ecg_transform`` package was not
available here: the per-lead z-score is an assumption from its name and the notebook, not
checked against its code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.models.foundation.base import FoundationEncoder, ModelCard, take_n_leads
from ecgssl.models.registry import register_encoder

STEPS = ({"op": "zscore", "axis": "lead", "eps": 0.0},)

CARD = ModelCard(
    key="ecgfm", title="ECG-FM (McKeen et al., 2024; fairseq-signals wav2vec 2.0)",
    code="https://github.com/bowang-lab/ECG-FM (model code: https://github.com/Jwoo5/"
         "fairseq-signals)",
    weights="https://huggingface.co/wanglab/ecg-fm (mimic_iv_ecg_physionet_pretrained.pt + "
            ".yaml); the .pt holds a pickled omegaconf config: re-save its 'model' entry",
    licence="MIT (repository badge); the weights are trained on MIMIC-IV-ECG (PhysioNet "
            "Credentialed Health Data licence) - check the model card before use",
    commercial_use=None,
    pretraining_data=({"database": "MIMIC-IV-ECG", "note": "v1.0 (README)"},
                      {"database": "PhysioNet2021", "note": "v1.0.3 (README): PTB-XL, PTB, "
                       "CPSC2018, CPSC-Extra, Georgia, INCART, Chapman, Ningbo"}),
    fs=500.0, n_samples=5000, leads=tuple(LEADS_12), steps=STEPS,
    notes="golden parity established for the network only (fairseq-signals code run on "
          "random weights); the input standardisation is not verified")

DEFAULTS = {"conv_layers": [[256, 2, 2]] * 4, "embed_dim": 768, "layers": 12, "ffn_dim": 3072,
            "heads": 12, "layer_norm_first": False, "conv_pos": 128, "conv_pos_groups": 16,
            "extractor_mode": "default", "conv_bias": False, "segment": 2500}


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, out projections (with bias)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x) * (d // h) ** -0.5), split(self.k(x)), split(self.v(x))
        attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, d))


class Layer(nn.Module):
    def __init__(self, dim: int, ffn: int, heads: int, norm_first: bool):
        super().__init__()
        self.attn, self.norm_first = Attention(dim, heads), norm_first
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.attn(self.norm1(x))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.fc2(F.gelu(self.fc1(x))))


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, s: int, norm: str | None, bias: bool):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, stride=s, bias=bias)
        self.norm = (nn.GroupNorm(c_out, c_out) if norm == "group" else
                     nn.LayerNorm(c_out) if norm == "layer" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if isinstance(self.norm, nn.GroupNorm):
            x = self.norm(x)
        elif isinstance(self.norm, nn.LayerNorm):
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


class ECGFMEncoder(FoundationEncoder):
    """ECG-FM's wav2vec 2.0 encoder: (B, 12, T) mV -> (B, embed_dim, T') (T' ~ T / 16)."""

    def __init__(self, name: str = "ecgfm_wav2vec2", leads: Sequence[str] = tuple(LEADS_12),
                 conv_layers: Sequence[Sequence[int]] = tuple(DEFAULTS["conv_layers"]),
                 embed_dim: int = 768, layers: int = 12, ffn_dim: int = 3072, heads: int = 12,
                 layer_norm_first: bool = False, conv_pos: int = 128, conv_pos_groups: int = 16,
                 extractor_mode: str = "default", conv_bias: bool = False,
                 segment: int | None = 2500, pool: str = "mean", authors_steps: bool = True):
        super().__init__(CARD.fs, CARD.steps if authors_steps else None, pool)
        if extractor_mode not in ("default", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'default' or 'layer_norm', not "
                             f"{extractor_mode!r}")
        self.card, self.lead_order = CARD, list(leads)
        conv_layers = [list(map(int, c)) for c in conv_layers]
        blocks, c_in = [], len(self.lead_order)
        for i, (dim, k, s) in enumerate(conv_layers):
            norm = ("layer" if extractor_mode == "layer_norm" else
                    "group" if i == 0 else None)
            blocks.append(ConvBlock(c_in, dim, k, s, norm, conv_bias))
            c_in = dim
        self.features = nn.ModuleList(blocks)
        self.feat_norm = nn.LayerNorm(c_in)
        self.proj = nn.Linear(c_in, embed_dim) if c_in != embed_dim else None
        # A fresh (random-init twin) model starts as fairseq's does: v ~ N(0, 4 / (k D)) and
        # g = ||v||, so that the weight-normed kernel equals v (a zero v would divide by zero).
        v = torch.randn(embed_dim, embed_dim // conv_pos_groups, conv_pos)
        v *= (4.0 / (conv_pos * embed_dim)) ** 0.5
        self.pos_v = nn.Parameter(v)
        self.pos_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))
        self.pos_bias = nn.Parameter(torch.zeros(embed_dim))
        self.conv_pos, self.conv_pos_groups = conv_pos, conv_pos_groups
        self.layers = nn.ModuleList(Layer(embed_dim, ffn_dim, heads, layer_norm_first)
                                    for _ in range(layers))
        self.enc_norm = nn.LayerNorm(embed_dim)
        self.layer_norm_first, self.segment = layer_norm_first, segment
        self.embed_dim = int(embed_dim)
        self.stride = int(torch.tensor([c[2] for c in conv_layers]).prod())
        self.spec = {"name": name, "class": "ECGFMEncoder", "overrides": {
            "leads": list(self.lead_order), "conv_layers": conv_layers, "embed_dim": embed_dim,
            "layers": layers, "ffn_dim": ffn_dim, "heads": heads,
            "layer_norm_first": layer_norm_first, "conv_pos": conv_pos,
            "conv_pos_groups": conv_pos_groups, "extractor_mode": extractor_mode,
            "conv_bias": conv_bias, "segment": segment, "pool": pool,
            "authors_steps": authors_steps}}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, T) -> (B, D, T'): each ``segment`` of the input encoded on its own (T must be
        a multiple of it), the segments' maps concatenated in time."""
        seg = self.segment
        if seg is None or x.shape[-1] == seg:
            return self.encode_segment(x)
        if x.shape[-1] % seg:
            raise ValueError(f"ECG-FM encodes {seg}-sample segments; an input of {x.shape[-1]} "
                             f"samples is not a multiple (crop or pad it to one)")
        b, n_leads, t = x.shape
        parts = x.reshape(b, n_leads, t // seg, seg).permute(0, 2, 1, 3).reshape(-1, n_leads, seg)
        maps = self.encode_segment(parts)  # (B * S, D, t')
        return maps.reshape(b, t // seg, maps.shape[1], -1).permute(0, 2, 1, 3).flatten(2)

    def encode_segment(self, x: torch.Tensor) -> torch.Tensor:
        """One segment (B, L, T) -> (B, D, T') through the wav2vec 2.0 encoder."""
        for block in self.features:
            x = block(x)
        x = self.feat_norm(x.transpose(1, 2))  # (B, T', C)
        if self.proj is not None:
            x = self.proj(x)
        # Weight norm over the kernel axis: w = g * v / ||v|| (norm over output, input channels).
        weight = self.pos_g * self.pos_v / self.pos_v.norm(dim=(0, 1), keepdim=True)
        pos = F.conv1d(x.transpose(1, 2), weight, self.pos_bias, padding=self.conv_pos // 2,
                       groups=self.conv_pos_groups)
        if self.conv_pos % 2 == 0:
            pos = pos[..., :-1]
        x = x + F.gelu(pos).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.enc_norm(x)
        for layer in self.layers:
            x = layer(x)
        if self.layer_norm_first:
            x = self.enc_norm(x)
        return x.transpose(1, 2)


@register_encoder("ecgfm_wav2vec2")
def ecgfm_wav2vec2(**kwargs) -> ECGFMEncoder:
    """The ECG-FM encoder with fairseq-signals' default sizes (about 90 M parameters)."""
    take_n_leads(kwargs, kwargs.get("leads", LEADS_12), "ecgfm_wav2vec2")
    return ECGFMEncoder(name="ecgfm_wav2vec2", **{**DEFAULTS, **kwargs})


# ------------------------------------------------------------------------------ checkpoint

_KEYMAP = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"features.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)$", r"features.\1.norm.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$", r"features.\1.norm.\2"),
    (r"^layer_norm\.(weight|bias)$", r"feat_norm.\1"),
    (r"^post_extract_proj\.(weight|bias)$", r"proj.\1"),
    (r"^conv_pos\.pos_conv\.0\.(parametrizations\.weight\.original0|weight_g)$", "pos_g"),
    (r"^conv_pos\.pos_conv\.0\.(parametrizations\.weight\.original1|weight_v)$", "pos_v"),
    (r"^conv_pos\.pos_conv\.0\.bias$", "pos_bias"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", r"layers.\1.attn.\2.\3"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$", r"layers.\1.attn.out.\2"),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"layers.\1.norm1.\2"),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"layers.\1.norm2.\2"),
    (r"^encoder\.layers\.(\d+)\.(fc[12])\.(weight|bias)$", r"layers.\1.\2.\3"),
    (r"^encoder\.layer_norm\.(weight|bias)$", r"enc_norm.\1"),
]
_PRETRAINING = ("quantizer.", "project_q.", "final_proj.", "mask_emb", "proj.", "head.")


def looks_like(state: Mapping[str, Any]) -> bool:
    return any("feature_extractor.conv_layers.0.0.weight" in k for k in state) and any(
        "conv_pos.pos_conv" in k for k in state)


def map_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                               dict[str, int]]:
    """fairseq-signals keys -> ours; pretraining / classifier parts dropped and counted. A
    fine-tuned model's ``encoder.`` wrapper (``encoder.feature_extractor...``) is unwrapped."""
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    if any(k.startswith("encoder.feature_extractor.") for k in state):
        state = {(k[len("encoder."):] if k.startswith("encoder.") else f"<outer>.{k}"): v
                 for k, v in state.items()}
    out, dropped, unknown = {}, {"pretraining / classifier parts": 0}, []
    for key, value in state.items():
        for pattern, repl in _KEYMAP:
            if re.match(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            if key.startswith(_PRETRAINING) or key.startswith("<outer>."):
                dropped["pretraining / classifier parts"] += 1
            else:
                unknown.append(key)
    if unknown:
        raise ValueError(f"ECG-FM checkpoint has keys this loader does not know: {unknown[:8]}")
    return out, dropped


def parse_conv_layers(text: str) -> list[list[int]]:
    """fairseq's ``conv_feature_layers`` string, e.g. ``"[(256, 2, 2)] * 4"``, evaluated as
    literals joined by ``+`` and ``*`` only (no code runs)."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add)):
            a, b = ev(node.left), ev(node.right)
            return a * b if isinstance(node.op, ast.Mult) else a + b
        raise ValueError(f"unsupported conv_feature_layers expression: {text!r}")

    return [list(c) for c in ev(ast.parse(text, mode="eval"))]


def from_state_dict(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None = None,
                    **overrides) -> tuple[ECGFMEncoder, dict[str, Any]]:
    """An ``ECGFMEncoder`` from a fairseq-signals state dict; ``config`` the ``model`` section
    of the authors' YAML (fairseq names: ``encoder_layers``, ``conv_feature_layers`` ...)."""
    from ecgssl.compat.ecg_jepa import load_checked

    mapped, dropped = map_state_dict(state)
    cfg, assumed = dict(config or {}), []
    n_conv = 1 + max(int(k.split(".")[1]) for k in mapped if k.startswith("features."))
    convs = [mapped[f"features.{i}.conv.weight"].shape for i in range(n_conv)]
    if "conv_feature_layers" in cfg:
        conv_layers = parse_conv_layers(str(cfg["conv_feature_layers"]))
    else:
        conv_layers = [[int(s[0]), int(s[2]), int(s[2])] for s in convs]
        assumed.append("conv strides = kernel sizes")
    if [c[:2] for c in conv_layers] != [[int(s[0]), int(s[2])] for s in convs]:
        raise ValueError(f"conv_feature_layers {conv_layers} do not match the weights' "
                         f"(dim, kernel) {[(int(s[0]), int(s[2])) for s in convs]}")
    dim = int(mapped["pos_bias"].shape[0])
    args = {"conv_layers": conv_layers, "embed_dim": dim,
            "layers": 1 + max(int(k.split(".")[1]) for k in mapped if k.startswith("layers.")),
            "ffn_dim": int(mapped["layers.0.fc1.weight"].shape[0]),
            "conv_pos": int(mapped["pos_v"].shape[-1]),
            "conv_pos_groups": dim // int(mapped["pos_v"].shape[1]),
            "extractor_mode": "layer_norm" if "features.1.norm.weight" in mapped else "default",
            "conv_bias": "features.0.conv.bias" in mapped}
    for ours, theirs, default in (("heads", "encoder_attention_heads", None),
                                  ("layer_norm_first", "layer_norm_first", False)):
        if theirs in cfg:
            args[ours] = type(default)(cfg[theirs]) if default is not None else int(cfg[theirs])
        else:
            args[ours] = default if default is not None else max(1, dim // 64)
            assumed.append(f"{ours} = {args[ours]} (fairseq-signals default)")
    encoder = ECGFMEncoder(**{**args, **overrides})
    load_checked(encoder, mapped, "ECG-FM encoder")
    return encoder.eval(), {"loaded_tensors": len(mapped), "dropped_tensors": dropped,
                            "assumed": assumed}


CHECKPOINT_KEY = "model"  # released files wrap the weights as {'model': ...}

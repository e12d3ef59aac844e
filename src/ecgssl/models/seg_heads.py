"""Segmentation decoders: label every sample of every lead as none / P / QRS / T.

All heads return logits of shape (B, L, n_classes, T) for an input x of shape (B, L, T) (mV).

* ``UNetDecoder`` (CNN encoders): the encoder's ``feature_pyramid`` (maps finest -> coarsest, with
  ``pyramid_channels`` / ``pyramid_strides``) is decoded coarsest-first: upsample to the next finer
  map's length, concatenate it (skip connection), two conv-norm-ReLU layers; finally upsample to T,
  concatenate the raw input leads and predict ``L * n_classes`` channels, reshaped per lead.
  The CNN's feature maps mix all leads, so the per-lead split happens in this last layer.
* ``UpsamplingHead`` (ViT): with per-lead tokens (encoder ``forward_tokens`` -> (B, L * P, D),
  lead-major) each lead's token sequence (D, P) is upsampled by a learned transposed convolution
  (kernel = stride = the encoder's patch stride) to (hidden, P * stride), the lead's own raw samples
  are concatenated and a small conv stack predicts the classes: each lead is labelled from its own
  tokens. Without ``forward_tokens`` it decodes the shared time map (B, D, P) of
  ``forward_features`` and predicts ``L * n_classes`` channels like the U-Net's last layer.
* ``SegmentationModel`` = encoder + head; ``build_seg_model`` picks the head from the encoder's
  interface and optionally freezes the encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

N_WAVE_CLASSES = 4  # none, P, QRS, T


def _conv_block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=pad, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(),
        nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(),
    )


def _resize(x: torch.Tensor, length: int) -> torch.Tensor:
    """Linear interpolation of (B, C, T') to (B, C, length) (no-op when equal)."""
    if x.shape[-1] == length:
        return x
    return F.interpolate(x, size=length, mode="linear", align_corners=False)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class UNetDecoder(nn.Module):
    """U-Net decoder over a CNN feature pyramid.

    Args:
        pyramid_channels: channels of the encoder's feature maps, finest to coarsest.
        pyramid_strides: their strides (input samples per step), finest to coarsest, increasing.
        n_leads: leads of the input (and of the output).
        n_classes: classes per sample (4: none, P, QRS, T).
        decoder_channels: channels of each decoder stage (default: the skip's channels, capped
            at 64, at least 16).
        kernel: convolution kernel size (odd).
    Forward:
        ``forward(features, x)``: features = list of (B, C_k, T // s_k); x = (B, L, T) input.
        Returns logits (B, L, n_classes, T).
    """

    def __init__(self, pyramid_channels: Sequence[int], pyramid_strides: Sequence[int],
                 n_leads: int, n_classes: int = N_WAVE_CLASSES,
                 decoder_channels: Sequence[int] | None = None, kernel: int = 7):
        super().__init__()
        chans, strides = [int(c) for c in pyramid_channels], [int(s) for s in pyramid_strides]
        if not chans or len(chans) != len(strides):
            raise ValueError(f"pyramid_channels {chans} and pyramid_strides {strides} must be "
                             "non-empty lists of equal length")
        if any(b <= a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"pyramid_strides must increase (finest first), got {strides}")
        _check_positive(n_leads=n_leads, n_classes=n_classes, kernel=kernel)
        if any(c < 1 for c in chans):
            raise ValueError(f"pyramid_channels must be positive, got {chans}")
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        if decoder_channels is None:
            # One width per finer level (stage k outputs decoder_channels[k]) plus the output.
            clamp = [min(max(c, 16), 64) for c in chans]
            decoder_channels = clamp[:-1] + [clamp[0]]
        decoder_channels = [int(c) for c in decoder_channels]
        if len(decoder_channels) != len(chans):
            raise ValueError(f"decoder_channels needs {len(chans)} entries (one per finer level "
                             f"plus the output stage), got {decoder_channels}")
        self.n_leads, self.n_classes = int(n_leads), int(n_classes)
        self.pyramid_strides = strides
        stages = []
        c_prev = chans[-1]
        # Stage k fuses the upsampled coarser decoder output with pyramid level k (k = L-2 .. 0).
        for k in range(len(chans) - 2, -1, -1):
            stages.append(_conv_block(c_prev + chans[k], decoder_channels[k], kernel))
            c_prev = decoder_channels[k]
        self.stages = nn.ModuleList(stages)
        # Output stage at full resolution with the raw input leads as the last skip.
        self.out_block = _conv_block(c_prev + self.n_leads, decoder_channels[-1], kernel)
        self.classifier = nn.Conv1d(decoder_channels[-1], self.n_leads * self.n_classes, 1)

    def forward(self, features: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if len(features) != len(self.pyramid_strides):
            raise ValueError(f"expected {len(self.pyramid_strides)} feature maps, got "
                             f"{len(features)}")
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValueError(f"expected x of shape (B, {self.n_leads}, T), got {tuple(x.shape)}")
        y = features[-1]
        for stage, skip in zip(self.stages, reversed(features[:-1])):
            y = stage(torch.cat([_resize(y, skip.shape[-1]), skip], dim=1))
        y = self.out_block(torch.cat([_resize(y, x.shape[-1]), x], dim=1))
        logits = self.classifier(y)
        return logits.view(x.shape[0], self.n_leads, self.n_classes, x.shape[-1])


class UpsamplingHead(nn.Module):
    """Decode ViT tokens to per-sample, per-lead logits.

    Args:
        embed_dim: token width D.
        stride: input samples per token (the patch size).
        n_leads: leads of the input and output.
        per_lead: True for per-lead tokens (B, L, P, D); False for a shared time map (B, D, P).
        hidden: channels after the transposed convolution.
        n_classes: classes per sample.
        kernel: refinement convolution kernel size (odd).
    Forward:
        ``forward(feats, x)``: feats (B, L, P, D) if per_lead else (B, D, P); x (B, L, T).
        Returns logits (B, L, n_classes, T).
    """

    def __init__(self, embed_dim: int, stride: int, n_leads: int, per_lead: bool = True,
                 hidden: int = 32, n_classes: int = N_WAVE_CLASSES, kernel: int = 5,
                 step: int = 5):
        super().__init__()
        _check_positive(embed_dim=embed_dim, stride=stride, n_leads=n_leads, hidden=hidden,
                        n_classes=n_classes, kernel=kernel)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.embed_dim, self.stride, self.n_leads = int(embed_dim), int(stride), int(n_leads)
        self.per_lead, self.n_classes = bool(per_lead), int(n_classes)
        # Decoding works at ``step`` input samples per position (20 ms at 250 Hz by default):
        # five times cheaper than full rate, and the class logits are interpolated back to
        # every sample at the end, so boundaries still fall between positions.
        self.step = int(step) if step >= 1 and self.stride % int(step) == 0 else 1
        # A transposed convolution with kernel = stride (non-overlapping), written as one
        # Linear per token: the same function, and far faster than ConvTranspose1d on CPU.
        self.hidden = int(hidden)
        self.up = nn.Linear(self.embed_dim, self.hidden * (self.stride // self.step))
        # Per-lead: the lead's own samples; shared map: all leads' samples.
        raw_channels = 1 if self.per_lead else self.n_leads
        out_channels = self.n_classes if self.per_lead else self.n_leads * self.n_classes
        self.refine = _conv_block(hidden + raw_channels, hidden, kernel)
        self.classifier = nn.Conv1d(hidden, out_channels, 1)

    def forward(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValueError(f"expected x of shape (B, {self.n_leads}, T), got {tuple(x.shape)}")
        batch, n_leads, n_samples = x.shape
        if self.per_lead:
            if feats.ndim != 4 or feats.shape[:2] != (batch, n_leads):
                raise ValueError(f"expected tokens (B={batch}, L={n_leads}, P, D), got "
                                 f"{tuple(feats.shape)}")
            seq = feats.reshape(batch * n_leads, feats.shape[2], feats.shape[3]).transpose(1, 2)
            raw = x.reshape(batch * n_leads, 1, n_samples)
        else:
            if feats.ndim != 3 or feats.shape[0] != batch:
                raise ValueError(f"expected time map (B={batch}, D, P), got {tuple(feats.shape)}")
            seq, raw = feats, x
        n_seq, _, n_tokens = seq.shape
        per_token = self.stride // self.step
        y = self.up(seq.transpose(1, 2))  # (N, P, hidden * stride / step)
        y = y.reshape(n_seq, n_tokens, self.hidden, per_token).permute(0, 2, 1, 3)
        n_low = -(-n_samples // self.step)
        y = _resize(y.reshape(n_seq, self.hidden, n_tokens * per_token), n_low)
        if self.step > 1:
            raw = F.avg_pool1d(F.pad(raw, (0, n_low * self.step - n_samples)), self.step)
        y = self.classifier(self.refine(torch.cat([y, raw], dim=1)))
        if self.step > 1:
            y = F.interpolate(y, size=n_low * self.step, mode="linear", align_corners=False)
            y = y[..., :n_samples]
        return y.reshape(batch, n_leads, self.n_classes, n_samples)


class SegmentationModel(nn.Module):
    """Encoder + segmentation head: (B, L, T) mV -> logits (B, L, 4, T).

    ``mode`` is "pyramid" (U-Net over ``feature_pyramid``), "tokens" (per-lead ViT tokens via
    ``forward_tokens``) or "features" (``forward_features`` time map). With ``freeze_encoder``
    the encoder gets no gradients and stays in eval mode (its normalisation statistics are
    kept) even when the model is put in training mode.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, mode: str, freeze_encoder: bool):
        super().__init__()
        if mode not in ("pyramid", "tokens", "features"):
            raise ValueError(f"unknown mode {mode!r}")
        self.encoder, self.head, self.mode = encoder, head, mode
        self.freeze_encoder = bool(freeze_encoder)
        if self.freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def _encode(self, x: torch.Tensor, leads):
        if self.mode == "pyramid":
            return self.encoder.feature_pyramid(x, leads)
        if self.mode == "tokens":
            tokens = self.encoder.forward_tokens(x, leads)  # (B, L * P, D), lead-major
            batch, n_leads = x.shape[:2]
            return tokens.reshape(batch, n_leads, -1, tokens.shape[-1])
        return self.encoder.forward_features(x, leads)

    def encode(self, x: torch.Tensor, leads: Sequence[str] | None = None):
        """The encoder's output the head takes (a list of (B, C_i, T_i) maps for "pyramid",
        (B, L, P, D) tokens for "tokens", a (B, D, P) map for "features"); no gradient when
        the encoder is frozen."""
        if self.freeze_encoder:
            with torch.no_grad():
                return self._encode(x, leads)
        return self._encode(x, leads)

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None,
                feats=None) -> torch.Tensor:
        """(B, L, T) mV -> logits (B, L, 4, T); ``feats``: ``encode(x, leads)`` computed
        before (``FrozenFeatureCache``), else computed here."""
        return self.head(self.encode(x, leads) if feats is None else feats, x)


class FrozenFeatureCache:
    """A frozen encoder's outputs per store window, computed once and reused every epoch.

    A frozen encoder is in eval mode and gets no gradient, so its output for a window is the
    same in every epoch; training the head on it recomputes nothing and changes no number
    (``tests/eval/test_segmentation.py`` checks equal losses with and without the cache). Only
    the head is trained, at the cost of the encoder's forward pass once per window instead of
    once per window and epoch.

    ``max_bytes`` bounds the memory: windows beyond it are encoded every time they are seen,
    as without the cache (``n_uncached`` counts them), so memory stays flat as data grows.
    """

    def __init__(self, model: SegmentationModel, leads: Sequence[str] | None = None,
                 max_bytes: int = 1 << 30):
        if not model.freeze_encoder:
            raise ValueError("FrozenFeatureCache needs a frozen encoder (its output changes "
                             "while it trains)")
        self.model, self.leads, self.max_bytes = model, leads, int(max_bytes)
        self._feats: dict[int, list[torch.Tensor]] = {}
        self.n_bytes = 0
        self.n_uncached = 0

    def __len__(self) -> int:
        return len(self._feats)

    def features(self, x: torch.Tensor, index: Sequence[int]):
        """``model.encode(x, leads)`` of a batch of store windows with rows ``index`` (B,)."""
        index = [int(i) for i in index]
        if all(i in self._feats for i in index):
            parts = [self._feats[i] for i in index]
            stacked = [torch.stack([p[k] for p in parts]) for k in range(len(parts[0]))]
            return stacked if self.model.mode == "pyramid" else stacked[0]
        feats = self.model.encode(x, self.leads)
        maps = feats if self.model.mode == "pyramid" else [feats]
        for b, i in enumerate(index):
            if i in self._feats:
                continue
            # clone: a row must not keep the whole batch's storage alive.
            one = [m[b].detach().clone() for m in maps]
            size = sum(t.numel() * t.element_size() for t in one)
            if self.n_bytes + size > self.max_bytes:
                self.n_uncached += 1
                continue
            self._feats[i] = one
            self.n_bytes += size
        return feats


def build_seg_model(encoder: nn.Module, n_leads: int, freeze_encoder: bool = False,
                    **head_kwargs) -> SegmentationModel:
    """Pick the head for an encoder and wrap both.

    * encoder with ``pyramid_channels`` and ``pyramid_strides`` (CNNs) -> ``UNetDecoder``;
    * encoder with ``forward_tokens`` (ViT) -> per-lead ``UpsamplingHead``;
    * otherwise -> ``UpsamplingHead`` on ``forward_features`` (needs ``embed_dim`` and ``stride``).

    Args:
        encoder: an ``ecgssl.models`` encoder (docs/architecture.md interface).
        n_leads: leads of the input the model will label.
        freeze_encoder: train only the head (the encoder is frozen and kept in eval mode).
        head_kwargs: passed to the head (e.g. ``decoder_channels``, ``hidden``, ``kernel``).
    """
    _check_positive(n_leads=n_leads)
    if hasattr(encoder, "pyramid_channels") and hasattr(encoder, "pyramid_strides"):
        head = UNetDecoder(encoder.pyramid_channels, encoder.pyramid_strides, n_leads,
                           **head_kwargs)
        mode = "pyramid"
    else:
        for attr in ("embed_dim", "stride"):
            if not hasattr(encoder, attr):
                raise ValueError(f"encoder {type(encoder).__name__} has no {attr!r} attribute "
                                 "(docs/architecture.md encoder interface)")
        mode = "tokens" if hasattr(encoder, "forward_tokens") else "features"
        head = UpsamplingHead(encoder.embed_dim, encoder.stride, n_leads,
                              per_lead=(mode == "tokens"), **head_kwargs)
    return SegmentationModel(encoder, head, mode, freeze_encoder)

"""The ST-MEM encoder (Na et al., ICLR 2024) on our ViT (``ecgssl.models.vit``).

ST-MEM's token set (written from the paper's description):

- every lead is cut into patches of ``patch_size`` samples, embedded by one shared linear layer
  (``W_P``, as in our ViT);
- a *temporal* positional embedding, shared by all leads, is added to every patch (we use a fixed
  1-D sin-cos table over positions ``0 .. n_patches + 1``; patch ``p`` sits at ``p + 1``);
- a learned *lead embedding* per lead is added to all tokens of that lead (``lead_token``);
- each lead's sequence is enclosed by two *separator* tokens (a learned ``sep_token`` plus the
  position of the start, 0, or of the end, P + 1, plus the lead embedding), so the model sees
  where one lead stops and the next begins whatever subset of leads is fed;
- during pretraining each lead keeps its own random subset of patches (``forward_visible``):
  the token set is ``L x (K + 2)``, not a full lead x patch grid.

Attention: full self-attention over every token (``attention="full"``; what ST-MEM uses).
Our structured CroPA assumes a complete lead-major grid of patches; with per-lead masking and
separator tokens that grid does not exist, so CroPA (and its dense-mask form) is refused here.

Outputs follow our ViT's contract: ``forward_tokens`` returns the L x P patch tokens lead-major
(separator outputs are attended to but not returned), ``forward_features`` their mean over leads
(B, D, P), ``forward`` pools the patch tokens (``pool``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.models.pos_embed import sincos_1d
from ecgssl.models.registry import register_encoder
from ecgssl.models.vit import VIT_CONFIGS, VisionTransformerECG


class STMEMViT(VisionTransformerECG):
    """Our ViT with ST-MEM's lead embeddings and separator tokens (module doc).

    Args: as ``VisionTransformerECG`` except that attention is always ``"full"`` and the
    positional embedding is added once at the input.
    """

    def __init__(self, lead_names: Sequence[str] = tuple(LEADS_12), n_patches: int = 50,
                 patch_size: int = 50, width: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0,
                 init_std: float = 0.02, input_scale: float = 1.0, pool: str = "mean"):
        super().__init__(lead_names=lead_names, n_patches=n_patches, patch_size=patch_size,
                         width=width, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, attention="full", pos_every_block=False,
                         drop_path=drop_path, init_std=init_std, input_scale=input_scale,
                         pool=pool)
        # Replaces the 2-D (lead, time) table: ST-MEM codes the lead by a learned embedding.
        positions = torch.arange(self.n_patches + 2)
        self.register_buffer("pos_embed", sincos_1d(self.embed_dim, positions).float())
        # Named *_token so that SSLMethod.param_groups does not weight-decay them.
        self.lead_token = nn.Parameter(torch.zeros(self.n_leads, self.embed_dim))
        self.sep_token = nn.Parameter(torch.zeros(self.embed_dim))
        nn.init.trunc_normal_(self.lead_token, std=init_std, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.sep_token, std=init_std, a=-2.0, b=2.0)
        for key in ("attention", "pos_every_block"):
            self.spec.pop(key)
        self.spec.update({"name": "stmem_vit", "class": "STMEMViT"})

    @property
    def attention(self) -> str:
        return "full"

    def set_attention(self, mode: str) -> None:
        if mode != "full":
            raise ValueError(f"ST-MEM's token set (per-lead masking, separator tokens) is not a "
                             f"lead x patch grid: attention {mode!r} is not available, only "
                             f"'full'")

    def forward_visible(self, x: torch.Tensor, leads: Sequence[str] | None = None,
                        keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder outputs of every lead's [SEP, kept patches..., SEP] sequence.

        Args:
            x: (B, L, T) mV, T = P * patch_size, P <= n_patches.
            leads: names of x's rows (None: all of the encoder's leads in order).
            keep: (B, L, K) patch indices each lead keeps (ascending; None: all P).
        Returns:
            (B, L, K + 2, D): per lead the start separator, the K patch tokens, the end separator.
        """
        tokens, lead_idx = self.patch_tokens(x, leads)  # (B, L, P, D)
        batch, n_rows, n_patch = tokens.shape[:3]
        lead = self.lead_token[lead_idx][None, :, None]  # (1, L, 1, D)
        tokens = tokens + self.pos_embed[1:n_patch + 1] + lead
        if keep is not None:
            if keep.ndim != 3 or keep.shape[:2] != (batch, n_rows):
                raise ValueError(f"keep must be (B={batch}, L={n_rows}, K), got "
                                 f"{tuple(keep.shape)}")
            if keep.numel() and (int(keep.min()) < 0 or int(keep.max()) >= n_patch):
                raise ValueError(f"keep indexes patches outside 0..{n_patch - 1}")
            index = keep.to(x.device)[..., None].expand(-1, -1, -1, self.embed_dim)
            tokens = tokens.gather(2, index)
        start = (self.sep_token + self.pos_embed[0] + lead).expand(batch, -1, -1, -1)
        end = (self.sep_token + self.pos_embed[n_patch + 1] + lead).expand(batch, -1, -1, -1)
        seq = torch.cat([start, tokens, end], dim=2)  # (B, L, K + 2, D)
        n_seq = seq.shape[2]
        h = self.encoder_blocks(seq.reshape(batch, n_rows * n_seq, self.embed_dim), None,
                                n_leads=n_rows)
        return self.norm(h).view(batch, n_rows, n_seq, self.embed_dim)

    def forward_tokens(self, x: torch.Tensor, leads: Sequence[str] | None = None,
                       visible_cols: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L * P, D) patch tokens lead-major (separators dropped from the output).

        ``visible_cols`` (ECG-JEPA's shared time columns) is not supported: ST-MEM masks each
        lead separately, through ``forward_visible(keep=...)``."""
        if visible_cols is not None:
            raise ValueError("STMEMViT masks per lead: use forward_visible(x, leads, keep)")
        h = self.forward_visible(x, leads)
        batch = h.shape[0]
        return h[:, :, 1:-1].reshape(batch, -1, self.embed_dim)


def create_stmem_vit(size: str, n_leads: int | None = None,
                     lead_names: Sequence[str] | None = None,
                     leads: Sequence[str] | None = None, **overrides) -> STMEMViT:
    """``stmem_vit_{tiny,small,base}``: our ViT sizes (``VIT_CONFIGS``); leads default to the
    standard 12 (ST-MEM's input)."""
    if lead_names is not None and leads is not None:
        raise ValueError("give lead_names or leads, not both")
    names = lead_names if lead_names is not None else leads
    if names is None:
        names = LEADS_12 if n_leads in (None, 12) else [f"lead{k}" for k in range(n_leads)]
    elif n_leads is not None and len(names) != n_leads:
        raise ValueError(f"n_leads={n_leads} but {len(names)} lead names {list(names)}")
    overrides.pop("name", None)
    overrides.pop("class", None)
    cfg = {**VIT_CONFIGS[size], **overrides}
    model = STMEMViT(lead_names=names, **cfg)
    model.spec["name"] = f"{size}_stmem"
    return model


def _register(size: str) -> None:
    register_encoder(f"{size}_stmem")(lambda **kw: create_stmem_vit(size, **kw))


for _size in VIT_CONFIGS:
    _register(_size)

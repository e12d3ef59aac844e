"""Cross-Pattern Attention (CroPA) for a (lead x time-patch) token grid.

Token (lead c, patch i) may attend to (c', i') only if ``c == c'`` (same lead, any time) or
``i == i'`` (same time, any lead). Tokens are laid out lead-major: index ``c * P + i``.

Three implementations of the same function:

* :func:`dense_cropa_attention` - the reference: build the (N x N) boolean mask and put ``-inf``
  on disallowed scores before one softmax. O(N^2) time and memory (N = L * P).
* :func:`cropa_attention` - structured: never builds the N x N score matrix. Per lead, scores
  against the same lead's P keys (B, H, L, P, P); per time, scores against the same time's L keys
  (B, H, P, L, L) with the diagonal (the token itself, already counted in the first block) set to
  ``-inf``. One softmax over the union of both key sets: both blocks are shifted by their joint
  maximum, exponentiated and normalised by their joint sum. Cost O(L * P^2 + P * L^2) instead
  of O(L^2 * P^2).
* :func:`full_attention` - plain attention over all tokens (ablation "no CroPA").

All take q, k, v of shape (B, H, N, d) and return (B, H, N, d). Scores use the usual
``1 / sqrt(d)`` scale.

Why no fused GPU path: ``scaled_dot_product_attention`` can compute the same-lead block (plain
attention over P keys per lead), but merging it exactly with the same-time block needs that
block's log-sum-exp *with gradient*. PyTorch exposes the log-sum-exp only through private aten
ops whose log-sum-exp output is not differentiable, so a merge would give wrong gradients for
training. The structured path below runs unchanged (and exactly) on GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ATTENTION_MODES = ("cropa", "dense", "full")


def cropa_mask(n_leads: int, n_patches: int, device=None) -> torch.Tensor:
    """(N, N) bool, True where query token may attend key token (same lead or same patch)."""
    if n_leads < 1 or n_patches < 1:
        raise ValueError(f"need n_leads >= 1 and n_patches >= 1, got {n_leads}, {n_patches}")
    lead = torch.arange(n_leads, device=device).repeat_interleave(n_patches)
    time = torch.arange(n_patches, device=device).repeat(n_leads)
    return (lead[:, None] == lead[None, :]) | (time[:, None] == time[None, :])


def _check_grid(q: torch.Tensor, n_leads: int) -> int:
    if q.ndim != 4:
        raise ValueError(f"q, k, v must be (B, H, N, d), got shape {tuple(q.shape)}")
    n_tokens = q.shape[2]
    if n_leads < 1 or n_tokens % n_leads:
        raise ValueError(f"{n_tokens} tokens cannot be split into {n_leads} leads")
    return n_tokens // n_leads


def dense_cropa_attention(q, k, v, n_leads: int, allowed: torch.Tensor | None = None):
    """Reference CroPA: explicit (N x N) mask, -inf on disallowed scores, one softmax.

    Args:
        q, k, v: (B, H, N, d), N = n_leads * P, lead-major.
        n_leads: L.
        allowed: optional precomputed ``cropa_mask(L, P)``.
    """
    n_patches = _check_grid(q, n_leads)
    if allowed is None:
        allowed = cropa_mask(n_leads, n_patches, device=q.device)
    scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ v


def cropa_attention(q, k, v, n_leads: int):
    """Structured CroPA, equal to :func:`dense_cropa_attention` without the N x N matrix.

    Args:
        q, k, v: (B, H, N, d), N = n_leads * P, lead-major (any visible subset of time columns
            and any subset of leads, as long as the tokens form a full L x P grid).
        n_leads: L.
    Returns:
        (B, H, N, d).
    """
    n_patches = _check_grid(q, n_leads)
    batch, heads, _, dim = q.shape
    # Views, no copies: (B, H, L, P, d).
    q5 = (q * (dim**-0.5)).reshape(batch, heads, n_leads, n_patches, dim)
    k5 = k.reshape(batch, heads, n_leads, n_patches, dim)
    v5 = v.reshape(batch, heads, n_leads, n_patches, dim)

    s_lead = q5 @ k5.transpose(-2, -1)  # (B, H, L, P, P): same lead, all times (incl. self)
    if n_leads == 1:
        # One lead: CroPA is plain attention along time (and the time block would be empty,
        # whose all -inf log-sum-exp has a NaN gradient).
        out = s_lead.softmax(dim=-1) @ v5
        return out.reshape(batch, heads, n_patches, dim)

    qt, kt, vt = (t.transpose(2, 3) for t in (q5, k5, v5))  # (B, H, P, L, d)
    s_time = qt @ kt.transpose(-2, -1)  # (B, H, P, L, L): same time, all leads
    # The token itself is already a key of the lead block: drop it here so it counts once.
    self_key = torch.eye(n_leads, dtype=torch.bool, device=q.device)
    s_time = s_time.masked_fill(self_key, float("-inf"))

    # One softmax over the union of keys of query (c, i): lead-block row (c, i) plus time-block
    # row (i, c). Shift both by their joint max (detached: softmax is shift-invariant, so the
    # gradient is exact and amax needs no backward), exponentiate, and normalise the summed
    # weighted values by the joint denominator (>= 1, since the max term is exp(0)).
    shift = torch.maximum(s_lead.amax(dim=-1), s_time.amax(dim=-1).transpose(-2, -1)).detach()
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        e_lead = torch.exp(s_lead - shift.unsqueeze(-1))
        e_time = torch.exp(s_time - shift.transpose(-2, -1).unsqueeze(-1))
    else:  # inference: reuse the score buffers
        e_lead = s_lead.sub_(shift.unsqueeze(-1)).exp_()
        e_time = s_time.sub_(shift.transpose(-2, -1).unsqueeze(-1)).exp_()
    denom = e_lead.sum(dim=-1) + e_time.sum(dim=-1).transpose(-2, -1)  # (B, H, L, P)
    out = (e_lead @ v5 + (e_time @ vt).transpose(2, 3)) / denom.unsqueeze(-1)
    return out.reshape(batch, heads, n_leads * n_patches, dim)


def full_attention(q, k, v, n_leads: int | None = None):
    """Plain softmax attention over all tokens (``n_leads`` ignored; kept for one signature)."""
    return F.scaled_dot_product_attention(q, k, v)


def attention_flops(n_leads: int, n_patches: int, dim: int, mode: str) -> int:
    """Multiply-adds of the score and weighted-sum matmuls per head (for benchmarks/docs)."""
    n = n_leads * n_patches
    if mode == "cropa":
        return 2 * dim * (n_leads * n_patches**2 + n_patches * n_leads**2)
    if mode in ("dense", "full"):
        return 2 * dim * n * n
    raise ValueError(f"unknown attention mode {mode!r}; known: {ATTENTION_MODES}")


__all__ = [
    "ATTENTION_MODES",
    "attention_flops",
    "cropa_attention",
    "cropa_mask",
    "dense_cropa_attention",
    "full_attention",
]


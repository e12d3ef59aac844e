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
  of O(L^2 * P^2). Training uses a hand-written backward that keeps only q, k, v, the output and
  the log-sum-exp and recomputes the blocks (as flash attention does), so no score block lives
  from forward to backward.
* :func:`full_attention` - plain attention over all tokens (ablation "no CroPA").

All take q, k, v of shape (B, H, N, d) and return (B, H, N, d). Scores use the usual
``1 / sqrt(d)`` scale.

Why no fused GPU kernel: ``scaled_dot_product_attention`` computes the same-lead block (plain
attention over P keys per lead) but the public function does not return that block's
log-sum-exp, which the exact merge with the same-time block needs. The recomputing backward
below is the seam where the private flash / memory-efficient kernels (which do return it, and
whose backward accepts the union's output and log-sum-exp) could be dropped in; that needs a GPU
to test, so the plain-op path runs unchanged (and exactly) on GPU today.
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

    With gradients enabled this runs :class:`_CroPAFunction`, which saves only q, k, v, the
    output and the per-query log-sum-exp, and recomputes the score blocks in backward (as
    flash attention does): the (B, H, L, P, P) and (B, H, P, L, L) blocks are never kept
    between forward and backward.
    """
    n_patches = _check_grid(q, n_leads)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return _CroPAFunction.apply(q, k, v, n_leads)
    out, _, _ = _cropa_forward(*_grid_views(q, k, v, n_leads, n_patches))
    return out.reshape(q.shape)


def _grid_views(q, k, v, n_leads: int, n_patches: int):
    """(B, H, N, d) -> contiguous (B, H, L, P, d) tensors, q pre-scaled by 1/sqrt(d)."""
    batch, heads, _, dim = q.shape
    shape = (batch, heads, n_leads, n_patches, dim)
    # One copy each into the grid layout: the batched matmuls below need collapsible batch
    # dims, and backward reuses these same buffers.
    return (q.reshape(shape) * dim**-0.5, k.reshape(shape).contiguous(),
            v.reshape(shape).contiguous())


def _lead_scores(qs, k5):
    """(B, H, L, P, P): query (c, i) against key (c, j), same lead, every time (incl. self)."""
    return qs @ k5.transpose(-2, -1)


def _time_major(t):
    """(B, H, L, P, d) -> contiguous (B, H, P, L, d). The copy matters: bmm over the strided
    transposed view falls back to one small copy per matrix (about 30 % of CroPA's time)."""
    return t.transpose(2, 3).contiguous()


def _time_scores(qt, kt):
    """(B, H, P, L, L) from time-major q, k: query (c, i) against key (c', i), same time,
    every lead; the token itself is -inf here because the lead block already counts it."""
    scores = qt @ kt.transpose(-2, -1)
    self_key = torch.eye(qt.shape[3], dtype=torch.bool, device=qt.device)
    return scores.masked_fill_(self_key, float("-inf"))


def _cropa_forward(qs, k5, v5):
    """Forward on grid tensors (B, H, L, P, d).

    Returns out (B, H, L, P, d), lse (B, H, L, P) and the time-major copies (qt, kt, vt) of
    the inputs (None for one lead), which backward reuses.

    One softmax over the union of keys of query (c, i): lead-block row (c, i) plus time-block
    row (i, c). Both blocks are shifted by their joint max, exponentiated in place and
    normalised by their joint sum (>= 1, since the max term is exp(0)).
    """
    s_lead = _lead_scores(qs, k5)
    if qs.shape[2] == 1:  # one lead: plain attention along time, no time block
        lse = torch.logsumexp(s_lead, dim=-1)
        return s_lead.sub_(lse.unsqueeze(-1)).exp_() @ v5, lse, (None, None, None)
    qt, kt, vt = (_time_major(t) for t in (qs, k5, v5))
    s_time = _time_scores(qt, kt)
    shift = torch.maximum(s_lead.amax(dim=-1), s_time.amax(dim=-1).transpose(-2, -1))
    e_lead = s_lead.sub_(shift.unsqueeze(-1)).exp_()
    e_time = s_time.sub_(shift.transpose(-2, -1).unsqueeze(-1)).exp_()
    denom = e_lead.sum(dim=-1) + e_time.sum(dim=-1).transpose(-2, -1)  # (B, H, L, P)
    out = e_lead @ v5
    out += (e_time @ vt).transpose(2, 3)
    out /= denom.unsqueeze(-1)
    return out, shift + denom.log(), (qt, kt, vt)


class _CroPAFunction(torch.autograd.Function):
    """Exact CroPA with a recomputing backward (the flash-attention recipe, in plain ops).

    With p the union softmax of query r, O_r = sum_j p_rj v_j and D_r = dO_r . O_r:
    dv_j = sum_r p_rj dO_r; ds_rj = p_rj (dO_r . v_j - D_r); dq_r = sum_j ds_rj k_j / sqrt(d);
    dk_j = sum_r ds_rj q_r / sqrt(d) (q is saved pre-scaled). Each block's p is recomputed
    from q, k and the saved log-sum-exp, used, and freed before the next block.
    """

    @staticmethod
    def forward(ctx, q, k, v, n_leads):
        n_patches = q.shape[2] // n_leads
        qs, k5, v5 = _grid_views(q, k, v, n_leads, n_patches)
        out, lse, time_major = _cropa_forward(qs, k5, v5)
        ctx.save_for_backward(qs, k5, v5, out, lse, *time_major)
        return out.reshape(q.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        qs, k5, v5, out, lse, qt, kt, vt = ctx.saved_tensors
        scale = qs.shape[-1] ** -0.5
        d_out = grad_out.reshape(out.shape)
        delta = (d_out * out).sum(dim=-1, keepdim=True)  # (B, H, L, P, 1)

        # Same-lead block, batched over (B, H, L).
        p = _lead_scores(qs, k5).sub_(lse.unsqueeze(-1)).exp_()
        dv = p.transpose(-2, -1) @ d_out
        ds = (d_out @ v5.transpose(-2, -1)).sub_(delta).mul_(p)
        del p
        dq = ds @ k5
        dk = ds.transpose(-2, -1) @ qs
        del ds

        if qs.shape[2] > 1:  # same-time block, batched over (B, H, P): transposed views
            d_out_t = _time_major(d_out)
            p = _time_scores(qt, kt).sub_(lse.transpose(-2, -1).unsqueeze(-1)).exp_()
            dv += (p.transpose(-2, -1) @ d_out_t).transpose(2, 3)
            ds = (d_out_t @ vt.transpose(-2, -1)).sub_(delta.transpose(2, 3)).mul_(p)
            del p
            dq += (ds @ kt).transpose(2, 3)
            dk += (ds.transpose(-2, -1) @ qt).transpose(2, 3)
            del ds
        shape = grad_out.shape
        return (dq.mul_(scale).reshape(shape), dk.reshape(shape), dv.reshape(shape), None)


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


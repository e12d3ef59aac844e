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

Precision (bf16 on GPU): the structured path keeps the softmax statistics in float32 whatever
the input dtype, as flash attention does. Matrix products run in the input dtype (bf16 under
autocast); scores, log-sum-exps, probabilities, the merge of the two blocks and the gradient
accumulators are float32, cast back to the input dtype at the end. Rounding the two blocks'
log-sum-exps to bf16 instead made the output 2.5x and the gradients 3x less accurate than the
dense bf16 reference (``tests/models/test_cropa.py``). For float32 inputs every cast is a no-op.
Under autocast, q, k, v are cast to the autocast dtype first (what autocast does for the
matmuls), so forward and backward see one dtype.

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


LEAD_KERNELS = ("auto", "fused", "plain")
# PyTorch's fused CPU attention kernel; it returns the log-sum-exp and its backward takes the
# output and log-sum-exp it should differentiate through, which is what the exact merge needs.
_FUSED_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_FUSED_CPU_BACKWARD = getattr(torch.ops.aten,
                              "_scaled_dot_product_flash_attention_for_cpu_backward", None)


def cropa_attention(q, k, v, n_leads: int, lead_kernel: str = "auto"):
    """Structured CroPA, equal to :func:`dense_cropa_attention` without the N x N matrix.

    Args:
        q, k, v: (B, H, N, d), N = n_leads * P, lead-major (any visible subset of time columns
            and any subset of leads, as long as the tokens form a full L x P grid).
        n_leads: L.
        lead_kernel: how the same-lead block (plain attention over P keys per lead) is
            computed: "fused" (PyTorch's fused CPU attention kernel, which never materialises
            the (P x P) scores), "plain" (batched matmuls), or "auto": fused for CPU forwards
            without gradients (the EMA target, inference: measured about 20 % faster at
            12 x 100), plain when training (the fused backward measured no faster on this CPU)
            and on GPU (the GPU kernels' log-sum-exp interfaces differ; untested here).
    Returns:
        (B, H, N, d).

    With gradients enabled this runs :class:`_CroPAFunction`, which saves only q, k, v, the
    output and the per-query log-sum-exp and recomputes the blocks in backward (as flash
    attention does): no score block is kept between forward and backward.
    """
    n_patches = _check_grid(q, n_leads)
    device = q.device.type
    if torch.is_autocast_enabled(device):
        # Cast as autocast would for the matmuls, then run with one dtype throughout (the
        # hand-written backward runs outside autocast and must see the forward's dtypes).
        dtype = torch.get_autocast_dtype(device)
        q, k, v = (t.to(dtype) for t in (q, k, v))
        with torch.autocast(device, enabled=False):
            return cropa_attention(q, k, v, n_leads, lead_kernel)
    training = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or
                                            v.requires_grad)
    fused = _use_fused(q, lead_kernel, training)
    if training:
        return _CroPAFunction.apply(q, k, v, n_leads, fused)
    out, _, _ = _cropa_forward(*_grid_views(q, k, v, n_leads, n_patches), fused)
    return out.to(q.dtype).reshape(q.shape)


def _use_fused(q, lead_kernel: str, training: bool) -> bool:
    if lead_kernel not in LEAD_KERNELS:
        raise ValueError(f"unknown lead_kernel {lead_kernel!r}; known: {LEAD_KERNELS}")
    available = _FUSED_CPU is not None and _FUSED_CPU_BACKWARD is not None and \
        q.device.type == "cpu"
    if lead_kernel == "fused" and not available:
        raise ValueError("the fused lead-block kernel needs CPU tensors and a PyTorch that has "
                         "_scaled_dot_product_flash_attention_for_cpu")
    if lead_kernel == "auto":
        return available and not training
    return lead_kernel == "fused"


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of the softmax statistics and accumulators: float32 for half types, else the
    input's own (float64 stays float64 for gradcheck)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _grid_views(q, k, v, n_leads: int, n_patches: int):
    """(B, H, N, d) -> contiguous (B, H, L, P, d) tensors, q pre-scaled by 1/sqrt(d)."""
    batch, heads, _, dim = q.shape
    shape = (batch, heads, n_leads, n_patches, dim)
    # One copy each into the grid layout: the batched matmuls below need collapsible batch
    # dims, and backward reuses these same buffers.
    return (q.reshape(shape) * dim**-0.5, k.reshape(shape).contiguous(),
            v.reshape(shape).contiguous())


def _heads_by_lead(t):
    """(B, H, L, P, d) -> (B, H * L, P, d): each (head, lead) pair one attention 'head'."""
    batch, heads, n_leads, n_patches, dim = t.shape
    return t.reshape(batch, heads * n_leads, n_patches, dim)


def _lead_block(qs, k5, v5, fused: bool):
    """Same-lead attention alone: out (B, H, L, P, d) normalised over the P keys, lse (B, H, L, P),
    both float32.

    Query (c, i) against keys (c, j) for all j, itself included; q arrives pre-scaled.
    """
    acc = _acc_dtype(qs.dtype)
    if fused:
        out, lse = _FUSED_CPU(*(_heads_by_lead(t) for t in (qs, k5, v5)), scale=1.0)
        return out.reshape(qs.shape).to(acc), lse.reshape(qs.shape[:-1]).to(acc)
    scores = (qs @ k5.transpose(-2, -1)).to(acc)  # (B, H, L, P, P)
    lse = torch.logsumexp(scores, dim=-1)
    p = scores.sub_(lse.unsqueeze(-1)).exp_()
    return (p.to(v5.dtype) @ v5).to(acc), lse


def _time_major(t):
    """(B, H, L, P, d) -> contiguous (B, H, P, L, d). The copy matters: bmm over the strided
    transposed view falls back to one small copy per matrix (about 30 % of CroPA's time)."""
    return t.transpose(2, 3).contiguous()


def _time_scores(qt, kt):
    """(B, H, P, L, L) float32 from time-major q, k: query (c, i) against key (c', i), same
    time, every lead; the token itself is -inf here because the lead block already counts it."""
    acc = _acc_dtype(qt.dtype)
    scores = (qt @ kt.transpose(-2, -1)).to(acc)
    self_key = torch.eye(qt.shape[3], dtype=torch.bool, device=qt.device)
    return scores.masked_fill_(self_key, float("-inf"))


def _cropa_forward(qs, k5, v5, fused: bool):
    """Forward on grid tensors (B, H, L, P, d).

    Returns out (B, H, L, P, d) and lse (B, H, L, P), both float32, and the time-major copies
    (qt, kt, vt) of the inputs (None for one lead), which backward reuses.

    Each block is a softmax over its own keys with its own log-sum-exp; one softmax over the
    union of both key sets is their mix weighted by exp(lse_block - lse_union), with
    lse_union = logaddexp(lse_lead, lse_time). A lead-block row is never empty (it holds the
    token itself), so every log-sum-exp is finite.
    """
    out, lse = _lead_block(qs, k5, v5, fused)
    if qs.shape[2] == 1:  # one lead: plain attention along time, no time block
        return out, lse, (None, None, None)
    qt, kt, vt = (_time_major(t) for t in (qs, k5, v5))
    s_time = _time_scores(qt, kt)  # (B, H, P, L, L)
    lse_time = torch.logsumexp(s_time, dim=-1).transpose(-2, -1)  # (B, H, L, P)
    p_time = s_time.sub_(lse_time.transpose(-2, -1).unsqueeze(-1)).exp_()
    out_time = (p_time.to(vt.dtype) @ vt).to(out.dtype)
    del p_time
    lse_union = torch.logaddexp(lse, lse_time)
    out *= (lse - lse_union).exp_().unsqueeze(-1)
    out += out_time.transpose(2, 3) * (lse_time - lse_union).exp_().unsqueeze(-1)
    return out, lse_union, (qt, kt, vt)


class _CroPAFunction(torch.autograd.Function):
    """Exact CroPA with a recomputing backward (the flash-attention recipe).

    With p the union softmax of query r, O_r = sum_j p_rj v_j and D_r = dO_r . O_r:
    dv_j = sum_r p_rj dO_r; ds_rj = p_rj (dO_r . v_j - D_r); dq_r = sum_j ds_rj k_j / sqrt(d);
    dk_j = sum_r ds_rj q_r / sqrt(d) (q is saved pre-scaled). Each block's p is recomputed
    from q, k and the union's log-sum-exp, used, and freed before the next block. The fused
    CPU kernel's backward, given the union's output and log-sum-exp, computes exactly the
    same-lead block's share of these sums.
    """

    @staticmethod
    def forward(ctx, q, k, v, n_leads, fused):
        n_patches = q.shape[2] // n_leads
        qs, k5, v5 = _grid_views(q, k, v, n_leads, n_patches)
        out, lse, time_major = _cropa_forward(qs, k5, v5, fused)
        out = out.to(q.dtype)  # what the caller sees and backward differentiates through
        ctx.fused = fused
        ctx.save_for_backward(qs, k5, v5, out, lse, *time_major)
        return out.reshape(q.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        qs, k5, v5, out, lse, qt, kt, vt = ctx.saved_tensors
        dtype = qs.dtype  # matmuls in the input dtype; p, ds and the sums in float32
        acc = _acc_dtype(dtype)
        scale = qs.shape[-1] ** -0.5
        d_out = grad_out.reshape(out.shape).to(dtype).contiguous()
        delta = (d_out.to(acc) * out.to(acc)).sum(dim=-1, keepdim=True)  # (B, H, L, P, 1)

        # Same-lead block, batched over (B, H, L).
        if ctx.fused:
            dq, dk, dv = (g.reshape(qs.shape).to(acc) for g in _FUSED_CPU_BACKWARD(
                *(_heads_by_lead(t) for t in (d_out, qs, k5, v5, out)),
                lse.reshape(qs.shape[0], -1, qs.shape[3]), 0.0, False, scale=1.0))
        else:
            p = (qs @ k5.transpose(-2, -1)).to(acc).sub_(lse.unsqueeze(-1)).exp_()
            dv = (p.to(dtype).transpose(-2, -1) @ d_out).to(acc)
            ds = (d_out @ v5.transpose(-2, -1)).to(acc).sub_(delta).mul_(p).to(dtype)
            del p
            dq = (ds @ k5).to(acc)
            dk = (ds.transpose(-2, -1) @ qs).to(acc)
            del ds

        if qs.shape[2] > 1:  # same-time block, batched over (B, H, P), time-major copies
            d_out_t = _time_major(d_out)
            p = _time_scores(qt, kt).sub_(lse.transpose(-2, -1).unsqueeze(-1)).exp_()
            dv += (p.to(dtype).transpose(-2, -1) @ d_out_t).to(acc).transpose(2, 3)
            ds = (d_out_t @ vt.transpose(-2, -1)).to(acc).sub_(delta.transpose(2, 3)).mul_(p)
            ds = ds.to(dtype)
            del p
            dq += (ds @ kt).to(acc).transpose(2, 3)
            dk += (ds.transpose(-2, -1) @ qt).to(acc).transpose(2, 3)
            del ds
        shape = grad_out.shape
        return (dq.mul_(scale).to(dtype).reshape(shape), dk.to(dtype).reshape(shape),
                dv.to(dtype).reshape(shape), None, None)


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
    "LEAD_KERNELS",
    "attention_flops",
    "cropa_attention",
    "cropa_mask",
    "dense_cropa_attention",
    "full_attention",
]


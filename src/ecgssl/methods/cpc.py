"""CPC, Contrastive Predictive Coding (van den Oord, Li & Vinyals, arXiv 1807.03748, 2018).

Written from the paper's description. An encoder maps the signal to a sequence of latents
``z_t``; an autoregressive network summarises ``z_1 .. z_t`` into a context ``c_t``; from
``c_t`` a linear map ``W_k`` per offset ``k = 1 .. K`` scores candidates for ``z_{t+k}`` with the
log-bilinear ``f_k(z, c_t) = exp(z^T W_k c_t)``, and InfoNCE asks the true ``z_{t+k}`` to score
highest among a set of negatives.

One training step, for a batch ``signal`` (B, L, T) mV:

1. ``z = encoder.forward_features(signal)`` (B, D, T'), read as the sequence ``z_1 .. z_T'`` of
   D-vectors (T' = T // stride; ``resnet1d_small``: one step per 16 samples, 64 ms at 250 Hz).
2. ``c = GRU(z)`` (B, T', H): a one-layer unidirectional GRU (the paper's ``g_ar``), so
   ``c_t`` depends on ``z_1 .. z_t`` only.
3. For each offset k and each context step t with ``t + k <= T'`` (0-based: ``t < T' - k``),
   the prediction ``p_{t,k} = W_k c_t`` (D,) is scored against the candidates
   ``{z^j_{t+k} : j = 1 .. B}``, the latents of every window j of the batch at that step::

       s^{i}_{t,k}[j] = z^j_{t+k} . W_k c^i_t                       (B, B) per (t, k)
       loss = - mean over (i, t, k) valid of  log softmax_j(s^{i}_{t,k})[i]

   The positive is the same window's ``z^i_{t+k}``; the **negatives are the other B - 1
   windows' latents at the same step** t + k. The paper's InfoNCE draws the N - 1 negatives
   from a proposal distribution p(z_{t+k}) and its audio ablation compares where they come from
   (other speakers, the same speaker, the current sequence); we take them from the other
   recordings of the minibatch, at the same step so a latent's position in the window cannot
   tell the positive apart, and so the scores stay (T', K, B, B) rather than
   (B T' K) x (B T') (about 1.2 GB of float32 at the CPU recipe's sizes). Scores are plain dot
   products, no normalisation or temperature, as the paper's log-bilinear model.

   Every valid (window, t, k) prediction weighs the same in the mean (an offset k contributes
   T' - k context steps). **Dropped**: the last k context steps of each window at offset k,
   whose target lies past the window (``K (K + 1) / 2`` of the ``T' K`` pairs when T' >= K;
   reported as ``dropped_pairs``); an offset with no valid step (k >= T') contributes nothing
   (``dropped_offsets``). A batch of one window has no negatives: its loss is 0 (reported as
   ``negatives`` 0).

The exported encoder is the backbone (z), as for the other methods; the GRU and the predictors
stay in the method. The paper's downstream representation is the context ``c_t``; our
evaluation reads the pooled encoder, so CPC is evaluated like every other row, on z.

Not as published, stated: the paper's audio encoder is a five-layer strided conv with a receptive
field of a few strides; our registered encoders are deeper and non-causal, so ``z_t`` also
sees some input samples of the following steps (the ResNet's receptive field reaches past its
16-sample stride), which makes small offsets partly a matter of shared input. Larger K keeps
most predictions beyond that reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.registry import register_method


def cpc_infonce_loss(z: torch.Tensor, predictions: Sequence[torch.Tensor]) -> torch.Tensor:
    """CPC's InfoNCE over a batch (see the module doc for the formula).

    Args:
        z: (B, T', D) latents ``z_t`` of every window.
        predictions: K tensors, the k-th (k = 1 .. K) of shape (B, T', D): ``W_k c_t`` at every
            context step t (the steps with ``t + k >= T'`` are ignored).

    Returns:
        The mean over every valid (window i, step t, offset k) of
        ``-log softmax_j(z^j_{t+k} . W_k c^i_t)[i]``; 0 (connected to the graph) when no offset
        has a valid step or B == 1.
    """
    if z.ndim != 3:
        raise ValueError(f"z must be (B, T', D), got {tuple(z.shape)}")
    if len(predictions) == 0:
        raise ValueError("predictions needs at least one offset (K >= 1)")
    for k, p in enumerate(predictions, start=1):
        if p.shape != z.shape:
            raise ValueError(f"prediction for offset {k} is {tuple(p.shape)}, z is "
                             f"{tuple(z.shape)}")
    batch, steps, _ = z.shape
    total = z.sum() * 0.0
    count = 0
    target = torch.arange(batch, device=z.device)
    for k, p in enumerate(predictions, start=1):
        n = steps - k
        if n < 1:
            continue
        # (T'-k, B, D) predictions at steps 0..T'-k-1 against (T'-k, B, D) targets k steps on.
        pred = p[:, :n].transpose(0, 1)
        cand = z[:, k:].transpose(0, 1)
        scores = pred @ cand.transpose(1, 2)  # (T'-k, B_i, B_j)
        logp = F.log_softmax(scores, dim=-1)
        total = total - logp[:, target, target].sum()
        count += n * batch
    if count == 0:
        return total
    return total / count


class CPC(SSLMethod):
    """CPC around any encoder with ``forward_features -> (B, D, T')`` and ``stride``.

    Args:
        encoder: a registered encoder (``resnet1d_small`` in the CPU recipe).
        leads: names of the rows of ``batch["signal"]``.
        context_dim: H, the GRU's hidden size (paper, audio: 256).
        n_offsets: K, how many steps ahead are predicted (paper, audio: 12).
    """

    name = "cpc"

    def __init__(self, encoder: nn.Module, *, leads: Sequence[str] = tuple(LEADS_12),
                 context_dim: int = 256, n_offsets: int = 12):
        super().__init__(encoder)
        for attr in ("embed_dim", "stride", "forward_features"):
            if not hasattr(encoder, attr):
                raise ValueError(f"encoder lacks {attr!r} (see docs/architecture.md)")
        if int(context_dim) != context_dim or context_dim < 1:
            raise ValueError(f"context_dim must be an integer >= 1, got {context_dim}")
        if int(n_offsets) != n_offsets or n_offsets < 1:
            raise ValueError(f"n_offsets must be an integer >= 1, got {n_offsets}")
        self.leads = list(leads)
        self.context_dim, self.n_offsets = int(context_dim), int(n_offsets)
        dim = int(encoder.embed_dim)
        self.context = nn.GRU(dim, self.context_dim, num_layers=1, batch_first=True)
        # W_k: one linear map per offset, without bias, as the log-bilinear z^T W_k c.
        self.predictors = nn.ModuleList(nn.Linear(self.context_dim, dim, bias=False)
                                        for _ in range(self.n_offsets))

    def latents_and_context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, T) -> z (B, T', D) and c (B, T', H)."""
        z = self.encoder.forward_features(x, leads=self.leads).transpose(1, 2)
        c, _ = self.context(z)
        return z, c

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        x = batch["signal"]
        if x.ndim != 3:
            raise ValueError(f"batch['signal'] must be (B, L, T), got {tuple(x.shape)}")
        x = x.to(next(self.parameters()).device, torch.float32)
        z, c = self.latents_and_context(x)
        steps = z.shape[1]
        if steps < 2:
            raise ValueError(f"windows of {x.shape[-1]} samples give {steps} feature step(s) "
                             f"of {int(self.encoder.stride)} samples; CPC needs >= 2")
        loss = cpc_infonce_loss(z, [w(c) for w in self.predictors])
        valid = sum(max(steps - k, 0) for k in range(1, self.n_offsets + 1))
        return loss, {"loss": float(loss.detach()),
                      "steps": float(steps),
                      "negatives": float(x.shape[0] - 1),
                      "predictions_per_window": float(valid),
                      "dropped_pairs": float(steps * self.n_offsets - valid),
                      "dropped_offsets": float(sum(k >= steps
                                                   for k in range(1, self.n_offsets + 1)))}

    @torch.no_grad()
    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        from ecgssl.methods.beat_ssl import representation_stats

        x = batch["signal"].to(next(self.parameters()).device, torch.float32)
        return representation_stats(self.encoder(x, leads=self.leads).float())


_KEYS = {"context_dim", "n_offsets"}


@register_method("cpc")
def build_cpc(method_cfg: dict[str, Any], encoder_cfg: dict[str, Any],
              data_info: dict[str, Any]) -> CPC:
    """CPC from recipe sections (``configs/cpc_cpu.yaml``); encoder default ``resnet1d_small``;
    leads from ``data_info`` (default the 12 standard leads)."""
    from ecgssl.methods.ts2vec import build_encoder_for

    cfg = dict(method_cfg)
    if cfg.pop("name", "cpc") != "cpc":
        raise ValueError("build_cpc got another method's section")
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(f"unknown cpc options {sorted(unknown)}; known {sorted(_KEYS)}")
    leads = list((data_info or {}).get("leads") or LEADS_12)
    encoder = build_encoder_for(encoder_cfg, leads, "resnet1d_small")
    return CPC(encoder, leads=leads, **cfg)

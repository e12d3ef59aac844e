"""Contrastive losses with hard and soft targets (Beat-SSL, Rizqyawan et al., arXiv 2601.16147).

All losses work on the ``2N`` views of a batch: ``z = cat(z1, z2)`` where row ``i`` and row
``i + N`` are the two views of sample ``i`` (its "partner"). A target matrix ``W`` (2N, 2N) says
how much each pair should attract: 0 on the diagonal, 1 for the partner view and, for soft targets,
``similarity ** gamma`` elsewhere.

Notation used in every docstring: ``s_ij = cos(z_i, z_j) / tau`` and
``log p_ij = s_ij - logsumexp_{k != i} s_ik`` (softmax over all other views, as in SimCLR).

- NT-Xent (SimCLR, Chen et al. 2020): ``L = -1/(2N) sum_i log p_{i, partner(i)}``.
- ``soft_1`` (weighted InfoNCE, our reading of Beat-SSL's first soft form):
  ``L = -1/(2N) sum_i sum_{j != i} W_ij log p_ij`` with the *unnormalised* weights. The sum over
  anchors is divided by the number of anchors (2N), not by the sum of the weights, so that the
  size of ``W`` matters: with hard targets (only the partner is 1) it is exactly NT-Xent.
- ``soft_2`` (cross-entropy against the row-normalised targets):
  ``L = -1/(2N) sum_i sum_j q_ij log p_ij``, ``q_ij = W_ij / sum_k W_ik``. With hard targets
  ``q`` is one-hot on the partner, so it is exactly NT-Xent as well.

The exact forms are not published; these are our documented choices (docs/methods.md section 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOFT_FORMS = ("soft_1", "soft_2")
SIMILARITY_KINDS = ("cosine01", "gaussian")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (N, d) with the same shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 1:
        raise ValueError("need at least one sample (N >= 1)")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _log_probs(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log p_ij`` (2N, 2N) over the other views; the diagonal is set to 0 (never used)."""
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = z @ z.T / temperature
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(eye, float("-inf"))
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    # -inf * 0 would give NaN in the weighted sums: zero the (unused) diagonal explicitly.
    return logp.masked_fill(eye, 0.0)


def partner_index(n: int, device=None) -> torch.Tensor:
    """Index of each view's partner among the 2N views: ``[n, ..., 2n-1, 0, ..., n-1]``."""
    idx = torch.arange(n, device=device)
    return torch.cat([idx + n, idx])


def hard_targets(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The SimCLR target matrix (2N, 2N): 1 at the partner view, 0 elsewhere."""
    w = torch.zeros(2 * n, 2 * n, device=device, dtype=dtype)
    w[torch.arange(2 * n, device=device), partner_index(n, device)] = 1.0
    return w


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent / InfoNCE of SimCLR (Chen et al., ICML 2020).

    Args:
        z1, z2: (N, d) projections of the two views (row i of each = the same sample).
        temperature: tau > 0.
    Returns:
        scalar, mean over the 2N anchors of ``-log p_{i, partner(i)}``.
    """
    _check_pair(z1, z2)
    _check_temperature(temperature)
    n = z1.shape[0]
    if n == 1:
        # One sample: the partner is the only other view, log p = 0 exactly.
        return (z1.sum() + z2.sum()) * 0.0
    logp = _log_probs(z1, z2, temperature)
    rows = torch.arange(2 * n, device=z1.device)
    return -logp[rows, partner_index(n, z1.device)].mean()


def soft_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, targets: torch.Tensor,
                          temperature: float = 0.1, form: str = "soft_1") -> torch.Tensor:
    """Contrastive loss against a (soft) target matrix (Beat-SSL, arXiv 2601.16147).

    Args:
        z1, z2: (N, d) projections of the two views.
        targets: (2N, 2N) non-negative weights ``W`` over ``cat(z1, z2)``; the diagonal is ignored.
        temperature: tau > 0.
        form: ``"soft_1"`` = ``-1/(2N) sum_i sum_j W_ij log p_ij`` (unnormalised weights), or
            ``"soft_2"`` = ``-1/(2N) sum_i sum_j (W_ij / sum_k W_ik) log p_ij``.
    Returns:
        scalar. Both forms equal ``nt_xent_loss`` exactly when ``targets = hard_targets(N)``.
    """
    _check_pair(z1, z2)
    _check_temperature(temperature)
    if form not in SOFT_FORMS:
        raise ValueError(f"form must be one of {SOFT_FORMS}, got {form!r}")
    n2 = 2 * z1.shape[0]
    if targets.shape != (n2, n2):
        raise ValueError(f"targets must be ({n2}, {n2}), got {tuple(targets.shape)}")
    if n2 == 2:
        return (z1.sum() + z2.sum()) * 0.0
    w = targets.to(dtype=z1.dtype, device=z1.device)
    w = w * (1.0 - torch.eye(n2, dtype=w.dtype, device=w.device))
    if bool((w < 0).any()):
        raise ValueError("targets must be non-negative")
    if form == "soft_2":
        row = w.sum(dim=1, keepdim=True)
        if bool((row <= 0).any()):
            raise ValueError("soft_2 needs at least one positive target per row")
        w = w / row
    logp = _log_probs(z1, z2, temperature)
    return -(w * logp).sum() / n2


def _similarity(features: torch.Tensor, kind: str, bandwidth: float | None) -> torch.Tensor:
    """(N, N) similarity in [0, 1] of standardised features."""
    f = torch.nan_to_num(features.float(), nan=0.0)  # NaN = not measured = dataset mean
    if kind == "cosine01":
        fn = F.normalize(f, dim=1)
        # Cosine in [-1, 1] mapped to [0, 1]; a zero vector (all features at the mean) gets 0.5.
        return ((fn @ fn.T) + 1.0).clamp(0.0, 2.0) / 2.0
    if kind == "gaussian":
        d2 = torch.cdist(f, f).pow(2)
        # Standardised features: E||fi - fj||^2 = 2F for unrelated samples, so the default
        # bandwidth sigma^2 = F gives exp(-1) to a typical pair and 1 to identical ones.
        sigma2 = float(f.shape[1]) if bandwidth is None else float(bandwidth) ** 2
        return torch.exp(-d2 / (2.0 * sigma2))
    raise ValueError(f"kind must be one of {SIMILARITY_KINDS}, got {kind!r}")


def similarity_targets(features: torch.Tensor, gamma: float = 1.0, kind: str = "cosine01",
                       bandwidth: float | None = None) -> torch.Tensor:
    """Soft target matrix over the 2N views from per-sample features (Beat-SSL).

    Args:
        features: (N, F) standardised features of the N samples (NaN treated as 0 = the mean).
        gamma: exponent > 0 applied to the [0, 1] similarity (50 sharpens values near 1).
        kind: ``"cosine01"`` = (1 + cosine) / 2, or ``"gaussian"`` = exp(-d^2 / (2 sigma^2)) with
            ``sigma = bandwidth`` (default ``sqrt(F)``).
    Returns:
        (2N, 2N) float32: ``sim[i % N, j % N] ** gamma``, with 0 on the diagonal and 1 at the
        partner view.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (N, F), got {tuple(features.shape)}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    n = features.shape[0]
    s = _similarity(features, kind, bandwidth).pow(gamma)
    w = s.repeat(2, 2)
    return _fix_diag_and_partner(w, n)


def _fix_diag_and_partner(w: torch.Tensor, n: int) -> torch.Tensor:
    rows = torch.arange(2 * n, device=w.device)
    w = w.clone()
    w[rows, rows] = 0.0
    w[rows, partner_index(n, w.device)] = 1.0
    return w


def beat_targets(n_beats: int, classes: torch.Tensor | None = None,
                 features: torch.Tensor | None = None, gamma: float = 1.0,
                 kind: str = "cosine01", bandwidth: float | None = None) -> torch.Tensor:
    """Target matrix over the 2K beat views (K beats, each seen in both views).

    The same beat in the other view is always a positive (1); the diagonal is 0. Elsewhere:
    hard targets (``classes`` given) = 1 for beats of the same class, 0 otherwise; soft targets
    (``features`` given) = beat-feature similarity ** gamma (see ``similarity_targets``).

    Args:
        n_beats: K.
        classes: (K,) integer beat classes, or None.
        features: (K, Fb) standardised beat features, or None (exactly one of the two).
    Returns:
        (2K, 2K) float32.
    """
    if (classes is None) == (features is None):
        raise ValueError("give exactly one of classes (hard targets) or features (soft targets)")
    if classes is not None:
        if classes.shape != (n_beats,):
            raise ValueError(f"classes must be ({n_beats},), got {tuple(classes.shape)}")
        c = classes.long().repeat(2)
        w = (c[:, None] == c[None, :]).float()
        return _fix_diag_and_partner(w, n_beats)
    if features.shape[0] != n_beats:
        raise ValueError(f"features must have {n_beats} rows, got {features.shape[0]}")
    return similarity_targets(features, gamma=gamma, kind=kind, bandwidth=bandwidth)


def partner_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Fraction of the 2N views whose nearest other view (cosine) is their partner."""
    n = z1.shape[0]
    if n < 2:
        return 1.0
    with torch.no_grad():
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        sim = z @ z.T
        sim.fill_diagonal_(float("-inf"))
        return float((sim.argmax(1) == partner_index(n, z.device)).float().mean())

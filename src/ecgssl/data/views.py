"""3KG views: random rotation and scaling of the ECG in vectorcardiogram space.

Gopal et al., "3KG: Contrastive learning of 12-lead ECGs using physiologically-inspired
augmentations" (ML4H 2021), as used by Beat-SSL (docs/methods.md section 2):

1. take the 8 independent leads (I, II, V1-V6) of a (B, L, T) batch in mV;
2. project them to a 3-D VCG with the inverse-Dower-like matrix ``P`` (3 x 8);
3. rotate (angles uniform in +-max_angle about x, y and z) and scale each axis (uniform in
   ``scale_range``);
4. project back with the pseudo-inverse ``P^+`` (8 x 3);
5. recompute III, aVR, aVL, aVF from I and II (for 12-lead inputs);
6. optionally zero a random contiguous stretch of time (same stretch in every lead).

Timing is untouched (the transform mixes leads sample by sample), so R-peaks found once on the
raw ECG stay valid in both views.

Two modes, because projecting 8 leads to 3-D and back is *not* the identity on real data (the
8-lead signal has components outside the row space of ``P``):

- ``mode="project"`` (3KG as published): ``x8' = P^+ R S P x8``. At zero angles and unit scales
  this returns ``P^+ P x8``, the orthogonal projection of the leads onto the VCG subspace.
- ``mode="residual"``: ``x8' = x8 + P^+ (R S - I) P x8``: only the VCG component is changed and
  everything outside it is kept. At zero angles and unit scales this is exactly the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ecgssl.data.leads import LEADS_8

# Inverse Dower-like matrix (rows x, y, z; columns I, II, V1-V6), docs/methods.md section 2.
VCG_MATRIX = np.array(
    [[0.156, -0.009, -0.172, -0.073, 0.122, 0.231, 0.239, 0.193],
     [-0.227, 0.886, 0.057, -0.019, -0.106, -0.022, 0.040, 0.048],
     [0.021, 0.102, -0.228, -0.310, -0.245, -0.063, 0.054, 0.108]],
    dtype=np.float64,
)
VCG_PINV = np.linalg.pinv(VCG_MATRIX)  # (8, 3)
MODES = ("project", "residual")


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices ``Rz @ Ry @ Rx`` for angles (B, 3) in radians -> (B, 3, 3)."""
    angles = np.asarray(angles, dtype=np.float64)
    cx, cy, cz = np.cos(angles).T
    sx, sy, sz = np.sin(angles).T
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def lead_mixing_matrices(angles: np.ndarray, scales: np.ndarray, mode: str = "project"):
    """The (B, 8, 8) matrices ``M`` with ``x8' = M @ x8`` (leads I, II, V1-V6).

    Args:
        angles: (B, 3) rotation angles in radians about x, y, z.
        scales: (B, 3) per-axis scale factors.
        mode: ``"project"`` (``P^+ R S P``) or ``"residual"`` (``I + P^+ (R S - I) P``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rs = rotation_matrices(angles) * np.asarray(scales, dtype=np.float64)[:, None, :]
    if mode == "residual":
        rs = rs - np.eye(3)
    m = VCG_PINV[None] @ rs @ VCG_MATRIX[None]
    if mode == "residual":
        m = m + np.eye(8)
    return m


class ThreeKGAugment:
    """Random 3KG views of a batch (B, L, T) (numpy or torch), vectorised over the batch.

    Args:
        leads: names of the rows of the inputs; must contain I, II, V1-V6. III, aVR, aVL, aVF,
            when present, are recomputed from the new I and II; other leads are left unchanged.
        max_angle_deg: rotation angles uniform in [-max_angle_deg, max_angle_deg] per axis.
        scale_range: (lo, hi) per-axis scale uniform in [lo, hi].
        mask_fraction: fraction of the T samples zeroed in one contiguous stretch per sample;
            a float (fixed) or a (lo, hi) range drawn per sample; 0 disables masking.
        mode: ``"project"`` or ``"residual"`` (module docstring).
        seed: base seed. In a DataLoader worker the generator is seeded from (seed, the
            worker's torch seed), so workers differ and runs are reproducible once torch is
            seeded; outside workers from (seed, ``torch.initial_seed()``).
    """

    def __init__(self, leads: Sequence[str], max_angle_deg: float = 45.0,
                 scale_range: tuple[float, float] = (1.0, 1.5),
                 mask_fraction: float | tuple[float, float] = 0.0, mode: str = "project",
                 seed: int = 0):
        self.leads = list(leads)
        missing = [name for name in LEADS_8 if name not in self.leads]
        if missing:
            raise ValueError(f"3KG needs leads {LEADS_8}; missing {missing} in {self.leads}")
        if not 0 <= max_angle_deg <= 180:
            raise ValueError(f"max_angle_deg must be in [0, 180], got {max_angle_deg}")
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {scale_range}")
        if isinstance(mask_fraction, (int, float)):
            mask_fraction = (float(mask_fraction), float(mask_fraction))
        mlo, mhi = (float(v) for v in mask_fraction)
        if not 0 <= mlo <= mhi < 1:
            raise ValueError(f"mask_fraction must be in [0, 1) with lo <= hi, got {mask_fraction}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.max_angle = np.deg2rad(float(max_angle_deg))
        self.scale_range = (lo, hi)
        self.mask_fraction = (mlo, mhi)
        self.mode = mode
        self.seed = int(seed)
        self._idx8 = [self.leads.index(name) for name in LEADS_8]
        self._rng: np.random.Generator | None = None
        self._rng_key: object = None

    def __getstate__(self):
        # A generator is not carried into workers: each worker makes its own (see _generator).
        state = dict(self.__dict__)
        state["_rng"], state["_rng_key"] = None, None
        return state

    def _generator(self) -> np.random.Generator:
        # Keyed on torch's current seed, in workers too: the training engine reseeds torch per
        # batch from (seed, epoch, rank, batch), so views are exactly resumable and do not
        # depend on which worker drew the batch.
        key = ("seed", torch.initial_seed())
        if self._rng is None or key != self._rng_key:
            self._rng = np.random.default_rng([self.seed, key[1] % (2**63)])
            self._rng_key = key
        return self._rng

    def sample_params(self, batch: int, rng: np.random.Generator | None = None):
        """Draw (angles (B, 3) rad, scales (B, 3), mask (start, length) (B, 2) int)."""
        rng = self._generator() if rng is None else rng
        angles = rng.uniform(-self.max_angle, self.max_angle, size=(batch, 3))
        scales = rng.uniform(*self.scale_range, size=(batch, 3))
        fracs = rng.uniform(*self.mask_fraction, size=batch)
        starts = rng.random(batch)
        return angles, scales, np.stack([starts, fracs], 1)

    def apply(self, x, angles: np.ndarray, scales: np.ndarray, mask: np.ndarray | None = None):
        """Deterministic transform of ``x`` (B, L, T) with given parameters.

        Args:
            mask: (B, 2) rows (relative start in [0, 1), fraction of T) or None.
        Returns:
            same type, dtype and shape as ``x``.
        """
        is_torch = isinstance(x, torch.Tensor)
        arr = x.detach().cpu().numpy() if is_torch else np.asarray(x)
        if arr.ndim != 3 or arr.shape[1] != len(self.leads):
            raise ValueError(f"expected (B, {len(self.leads)}, T) for leads {self.leads}, "
                             f"got {arr.shape}")
        m = lead_mixing_matrices(angles, scales, self.mode).astype(np.float32)
        out = np.array(arr, dtype=np.float32, copy=True)
        out[:, self._idx8] = np.einsum("bij,bjt->bit", m, arr[:, self._idx8].astype(np.float32))
        self._recompute_limb_leads(out)
        if mask is not None:
            self._apply_mask(out, mask)
        out = out.astype(arr.dtype, copy=False)
        if is_torch:
            return torch.from_numpy(out).to(device=x.device)
        return out

    def __call__(self, x, rng: np.random.Generator | None = None):
        """A random 3KG view of ``x`` (B, L, T) (numpy array or torch tensor)."""
        angles, scales, mask = self.sample_params(len(x), rng)
        return self.apply(x, angles, scales, mask if self.mask_fraction[1] > 0 else None)

    def _recompute_limb_leads(self, out: np.ndarray) -> None:
        # Einthoven / Goldberger: the augmented limb leads are functions of the new I and II.
        i, ii = out[:, self.leads.index("I")], out[:, self.leads.index("II")]
        derived = {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
        for name, value in derived.items():
            if name in self.leads:
                out[:, self.leads.index(name)] = value

    @staticmethod
    def _apply_mask(out: np.ndarray, mask: np.ndarray) -> None:
        t = out.shape[-1]
        for b, (start_rel, frac) in enumerate(mask):
            length = int(round(float(frac) * t))
            if length <= 0:
                continue
            start = int(float(start_rel) * (t - length + 1))
            out[b, :, start:start + length] = 0.0

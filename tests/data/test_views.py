"""3KG views: identity at zero angles, lead consistency, seeding, masks, 8-lead inputs."""

import pickle

import numpy as np
import pytest
import torch

from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.data.views import (
    VCG_MATRIX,
    VCG_PINV,
    ThreeKGAugment,
    lead_mixing_matrices,
    rotation_matrices,
)


def _ecg12(rng, b=3, t=500):
    x8 = rng.normal(size=(b, 8, t)).astype(np.float32)
    i, ii = x8[:, 0], x8[:, 1]
    limb = np.stack([ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2], 1)
    return np.concatenate([x8[:, :2], limb, x8[:, 2:]], 1)


def test_rotation_matrices_are_rotations(rng):
    r = rotation_matrices(rng.uniform(-1, 1, size=(5, 3)))
    assert np.allclose(r @ np.transpose(r, (0, 2, 1)), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(r), 1.0)
    assert np.allclose(rotation_matrices(np.zeros((1, 3)))[0], np.eye(3))


def test_residual_mode_is_exact_identity_at_zero_angles(rng):
    x = _ecg12(rng)
    aug = ThreeKGAugment(LEADS_12, mode="residual")
    out = aug.apply(x, np.zeros((3, 3)), np.ones((3, 3)))
    assert np.allclose(out, x, atol=1e-5)


def test_project_mode_at_zero_angles_is_the_vcg_projection(rng):
    x = _ecg12(rng)
    aug = ThreeKGAugment(LEADS_12, mode="project")
    out = aug.apply(x, np.zeros((3, 3)), np.ones((3, 3)))
    idx8 = [LEADS_12.index(n) for n in LEADS_8]
    expected = np.einsum("ij,bjt->bit", VCG_PINV @ VCG_MATRIX, x[:, idx8])
    assert np.allclose(out[:, idx8], expected, atol=1e-5)
    # A projection: applying it again changes nothing; signals inside the VCG space pass exactly.
    again = aug.apply(out, np.zeros((3, 3)), np.ones((3, 3)))
    assert np.allclose(again, out, atol=1e-5)
    assert not np.allclose(out, x, atol=1e-2)  # real-looking 8-lead data is not in that space


def test_vcg_is_transformed_as_specified(rng):
    angles, scales = rng.uniform(-0.7, 0.7, (2, 3)), rng.uniform(1, 1.5, (2, 3))
    m = lead_mixing_matrices(angles, scales, "project")
    x8 = rng.normal(size=(2, 8, 50))
    vcg_new = np.einsum("ij,bjt->bit", VCG_MATRIX, np.einsum("bij,bjt->bit", m, x8))
    rs = rotation_matrices(angles) * scales[:, None, :]
    expected = np.einsum("bij,bjt->bit", rs, np.einsum("ij,bjt->bit", VCG_MATRIX, x8))
    assert np.allclose(vcg_new, expected, atol=1e-10)


def test_random_views_keep_limb_relations_timing_and_are_seeded(rng):
    x = _ecg12(rng, b=4)
    aug = ThreeKGAugment(LEADS_12, seed=3)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    a, b = aug(x, rng=g1), aug(x, rng=g2)
    assert np.array_equal(a, b) and a.dtype == np.float32 and a.shape == x.shape
    assert not np.allclose(a, aug(x, rng=g1))
    i, ii = a[:, 0], a[:, 1]
    assert np.allclose(a[:, 2], ii - i, atol=1e-5)
    assert np.allclose(a[:, 3], -(i + ii) / 2, atol=1e-5)
    assert np.allclose(a[:, 4], i - ii / 2, atol=1e-5)
    assert np.allclose(a[:, 5], ii - i / 2, atol=1e-5)
    # Timing: a single impulse stays at the same sample in every lead.
    imp = np.zeros((1, 12, 100), np.float32)
    imp[:, :, 40] = 1.0
    out = aug(imp, rng=g1)
    assert np.abs(out[..., np.arange(100) != 40]).max() == 0.0


def test_angles_and_scales_in_range(rng):
    aug = ThreeKGAugment(LEADS_12, max_angle_deg=30, scale_range=(1.0, 1.2))
    angles, scales, _ = aug.sample_params(1000, rng)
    assert np.abs(angles).max() <= np.deg2rad(30) and np.abs(angles).max() > np.deg2rad(25)
    assert scales.min() >= 1.0 and scales.max() <= 1.2


def test_eight_lead_input_and_torch_tensors(rng):
    x = _ecg12(rng)
    x8 = x[:, [LEADS_12.index(n) for n in LEADS_8]]
    aug12, aug8 = ThreeKGAugment(LEADS_12), ThreeKGAugment(LEADS_8)
    angles, scales = rng.uniform(-0.5, 0.5, (3, 3)), rng.uniform(1, 1.5, (3, 3))
    out12, out8 = aug12.apply(x, angles, scales), aug8.apply(x8, angles, scales)
    assert np.allclose(out12[:, [LEADS_12.index(n) for n in LEADS_8]], out8, atol=1e-5)
    t = aug8.apply(torch.from_numpy(x8), angles, scales)
    assert isinstance(t, torch.Tensor) and np.allclose(t.numpy(), out8)


def test_time_mask_zeroes_one_contiguous_stretch(rng):
    x = _ecg12(rng, b=5, t=400) + 10.0  # no zeros anywhere before masking
    aug = ThreeKGAugment(LEADS_12, mask_fraction=0.25, mode="residual", max_angle_deg=0)
    out = aug(x, rng=rng)
    for b in range(5):
        zero = np.flatnonzero((out[b] == 0).all(0))
        assert len(zero) == 100 and np.all(np.diff(zero) == 1)


def test_validation_and_pickling():
    with pytest.raises(ValueError, match="missing"):
        ThreeKGAugment(["I", "II"])
    with pytest.raises(ValueError, match="scale_range"):
        ThreeKGAugment(LEADS_12, scale_range=(1.5, 1.0))
    with pytest.raises(ValueError, match="mode"):
        ThreeKGAugment(LEADS_12, mode="rotate")
    with pytest.raises(ValueError, match="mask_fraction"):
        ThreeKGAugment(LEADS_12, mask_fraction=1.0)
    aug = ThreeKGAugment(LEADS_12)
    aug(np.zeros((1, 12, 20), np.float32))
    with pytest.raises(ValueError, match="expected"):
        aug(np.zeros((1, 8, 20), np.float32))
    clone = pickle.loads(pickle.dumps(aug))
    assert clone._rng is None and clone.leads == LEADS_12

"""1-D RoI-align against a slow loop implementation; beat windows and dropping."""

import numpy as np
import pytest
import torch

from ecgssl.models.roi_align import beat_boxes, pool_beats, roi_align_1d


def _slow_roi(features, boxes, bidx, stride, output_size, ratio):
    out = []
    t = features.shape[-1]
    for (start, end), b in zip(boxes.tolist(), bidx.tolist()):
        bins = []
        width = (end - start) / output_size
        for k in range(output_size):
            acc = torch.zeros(features.shape[1], dtype=torch.float64)
            for r in range(ratio):
                s = (start - 0.5) + k * width + (r + 0.5) * width / ratio
                u = min(max((s + 0.5) / stride - 0.5, 0.0), t - 1)
                lo = int(np.floor(u))
                hi = min(lo + 1, t - 1)
                a = u - lo
                acc += (1 - a) * features[b, :, lo].double() + a * features[b, :, hi].double()
            bins.append(acc / ratio)
        out.append(torch.stack(bins, -1))
    return torch.stack(out)


@pytest.mark.parametrize("stride", [1, 4, 16])
@pytest.mark.parametrize("output_size,ratio", [(1, 1), (4, 2), (7, 3)])
def test_matches_slow_loop(stride, output_size, ratio):
    g = torch.Generator().manual_seed(stride + output_size)
    feats = torch.randn(3, 5, 40, generator=g)
    t_in = 40 * stride
    starts = torch.randint(-stride, t_in - 2 * stride, (9,), generator=g).float()
    lengths = torch.randint(1, 12 * stride, (9,), generator=g).float()
    boxes = torch.stack([starts, starts + lengths], 1)
    bidx = torch.randint(0, 3, (9,), generator=g)
    got = roi_align_1d(feats, boxes, bidx, stride, output_size, ratio, reduce="none")
    ref = _slow_roi(feats, boxes, bidx, stride, output_size, ratio)
    assert got.shape == (9, 5, output_size)
    assert torch.allclose(got.double(), ref, atol=1e-5)
    mean = roi_align_1d(feats, boxes, bidx, stride, output_size, ratio)
    assert torch.allclose(mean.double(), ref.mean(-1), atol=1e-5)


def test_constant_and_linear_maps_are_read_exactly():
    t = torch.arange(50, dtype=torch.float32)
    feats = t.expand(2, 1, 50).clone()
    # Stride 1: a window [10, 20) averages the samples 10..19 of a linear ramp -> 14.5.
    out = roi_align_1d(feats, torch.tensor([[10.0, 20.0]]), torch.tensor([1]), 1, 5, 2)
    assert out.item() == pytest.approx(14.5)


def test_beat_boxes_drop_windows_leaving_the_record():
    rpeaks = [np.array([10, 100, 240]), np.array([], dtype=int), np.array([63, 200])]
    boxes, bidx, kept = beat_boxes(rpeaks, n_samples=250, fs=250, before_s=0.25, after_s=0.2)
    # Window [R - 62, R + 50): R=10 starts < 0, R=240 ends > 250, R=63 fits, R=200 ends at 250.
    assert kept.tolist() == [False, True, False, True, True]
    assert bidx.tolist() == [0, 2, 2]
    assert boxes.tolist() == [[38.0, 150.0], [1.0, 113.0], [138.0, 250.0]]
    flat = (torch.tensor([10, 100, 240, 63, 200]), torch.tensor([0, 0, 0, 2, 2]))
    boxes2, bidx2, kept2 = beat_boxes(flat, 250, 250, 0.25, 0.2)
    assert torch.equal(boxes, boxes2) and torch.equal(bidx, bidx2) and torch.equal(kept, kept2)


def test_pool_beats_shapes_and_gradients():
    feats = torch.randn(2, 8, 156, requires_grad=True)
    pooled, bidx, kept = pool_beats(feats, [np.array([100, 1000, 2450]), np.array([500])],
                                    n_samples=2500, fs=250, stride=16)
    assert pooled.shape == (3, 8) and kept.tolist() == [True, True, False, True]
    pooled.sum().backward()
    assert feats.grad.abs().sum() > 0
    empty, _, _ = pool_beats(feats, [np.array([], dtype=int)] * 2, 2500, 250, 16)
    assert empty.shape == (0, 8)


def test_validation():
    with pytest.raises(ValueError):
        roi_align_1d(torch.zeros(2, 3), torch.zeros(1, 2), torch.zeros(1).long(), 1)
    with pytest.raises(ValueError, match="batch_index"):
        roi_align_1d(torch.zeros(1, 2, 5), torch.zeros(1, 2), torch.tensor([3]), 1)
    with pytest.raises(ValueError, match="reduce"):
        roi_align_1d(torch.zeros(1, 2, 5), torch.zeros(1, 2), torch.tensor([0]), 1, reduce="max")

"""Contrastive losses under DDP equal the one-process loss on the concatenated batch.

A 2-process gloo run (``ddp_equivalence``) for every contrastive configuration: the loss and the
DDP-averaged gradients match one process on the whole batch to 1e-6. The models run in float64
so that the comparison measures the method, not float32 summation order (in float32 the loss
agrees to 1e-6 and the gradients to a few 1e-6 of gradients of order 1). Without gathering they
do not agree (the test can fail).
"""

from __future__ import annotations

import functools

import pytest
import torch

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.beat_ssl import BeatSSL
from ecgssl.methods.distributed import gather, should_gather, world_size
from ecgssl.models.cnn import resnet1d_small
from tests.methods.ddp_equivalence import check_ddp_equivalence
from tests.methods.test_beat_ssl import FS, _samples

# Beat-SSL as published (soft rhythm + hard beats), soft beats, and SimCLR with 3KG views.
CONFIGS = {
    "beatssl": dict(rhythm_loss="soft_1", beat_loss="hard"),
    "beatssl_soft_beats": dict(rhythm_loss="soft_2", beat_loss="soft_1"),
    "simclr": dict(rhythm_loss="hard", beat_loss="none"),
}


def build_beat_ssl(gather_distributed: bool = True, **kw) -> BeatSSL:
    """Module-level (picklable for spawn) factory: same weights in every process."""
    torch.manual_seed(0)
    enc = resnet1d_small(n_leads=12, widths=(8, 8, 16, 16, 32), kernel=5, stem_kernel=7)
    return BeatSSL(enc, leads=LEADS_12, fs=FS, proj_hidden=32, proj_dim=16, views={"seed": 1},
                   rhythm_gamma=2.0, beat_gamma=2.0, gather_distributed=gather_distributed,
                   **kw).double()


@pytest.fixture(scope="module")
def batch():
    samples = _samples(n=8, seed=3)
    collate = build_beat_ssl().make_collate()
    out = collate(samples)
    # Uneven beat counts per rank are the ragged case the gather must handle.
    return out


def _assert_equal(result, atol=1e-6):
    loss_d, grads_d, _ = result["ddp"]
    loss_s, grads_s, _ = result["single"]
    assert loss_d == pytest.approx(loss_s, abs=atol)
    assert grads_d.keys() == grads_s.keys()
    worst = max(float((grads_d[k] - grads_s[k]).abs().max()) for k in grads_s)
    assert worst < atol, worst


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_two_process_loss_and_gradients_equal_one_process(batch, name):
    result = check_ddp_equivalence(functools.partial(build_beat_ssl, **CONFIGS[name]), batch)
    _assert_equal(result)


def test_without_gathering_the_loss_differs(batch):
    # The check can fail: each rank contrasting its own slice is a different loss.
    build = functools.partial(build_beat_ssl, gather_distributed=False, **CONFIGS["beatssl"])
    result = check_ddp_equivalence(build, batch)
    assert abs(result["ddp"][0] - result["single"][0]) > 1e-3


def test_helpers_are_the_identity_on_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert world_size() == 1 and gather(x) is x and gather(x, grad=False) is x
    assert not should_gather(True)

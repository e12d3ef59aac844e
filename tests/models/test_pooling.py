"""Feature pooling ("mean" / "meanmax"): the pooled vector, every encoder, exports, the API."""

import numpy as np
import pytest
import torch

from ecgssl.data.leads import LEADS_8
from ecgssl.models import create_encoder
from ecgssl.models.pooling import check_pool, pool_features, pooled_dim

STORE_CONFIG = {"fs": 250, "leads": LEADS_8, "n_samples": 2500, "hash": "abc",
                "preprocess": {"filters": None, "normalisation": None, "fs": 250}}


def test_pool_features_against_explicit_loops():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7)  # (B, D, T)
    mean = pool_features(x, "mean", dim=-1)
    both = pool_features(x, "meanmax", dim=-1)
    assert mean.shape == (3, 5) and both.shape == (3, 10)
    for b in range(3):
        for d in range(5):
            row = x[b, d].tolist()
            assert both[b, d].item() == pytest.approx(sum(row) / len(row), abs=1e-6)
            assert both[b, 5 + d].item() == max(row)
    torch.testing.assert_close(both[:, :5], mean)
    assert pooled_dim(5, "mean") == 5 and pooled_dim(5, "meanmax") == 10


def test_unknown_pool_is_refused():
    with pytest.raises(ValueError, match="unknown pool 'max'"):
        check_pool("max")
    with pytest.raises(ValueError, match="unknown pool"):
        create_encoder("resnet1d_small", n_leads=8, pool="attention")


@pytest.mark.parametrize("name", ["resnet1d_small", "unet1d"])
def test_cnn_meanmax_pools_the_last_feature_map(name):
    torch.manual_seed(0)
    enc = create_encoder(name, n_leads=8, pool="meanmax").eval()
    x = torch.randn(2, 8, 500)
    with torch.no_grad():
        e = enc.forward_features(x)
        z = enc(x)
    assert enc.pooled_dim == 2 * enc.embed_dim == z.shape[1]
    torch.testing.assert_close(z, torch.cat([e.mean(-1), e.amax(-1)], 1))
    assert enc.spec["pool"] == "meanmax"


def test_vit_meanmax_pools_all_tokens():
    torch.manual_seed(0)
    enc = create_encoder("vit_tiny", n_leads=8, pool="meanmax").eval()
    x = torch.randn(2, 8, 2500)
    with torch.no_grad():
        tokens = enc.forward_tokens(x)
        z = enc(x)
    torch.testing.assert_close(z, torch.cat([tokens.mean(1), tokens.amax(1)], 1))
    assert z.shape[1] == enc.pooled_dim == 2 * enc.embed_dim


def test_default_mean_is_unchanged():
    """The default keeps every existing checkpoint's representation: the mean."""
    torch.manual_seed(0)
    enc = create_encoder("resnet1d_small", n_leads=8).eval()
    x = torch.randn(2, 8, 500)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc.forward_features(x).mean(-1))
    assert enc.pooled_dim == enc.embed_dim


def test_export_carries_pool_and_load_encoder_can_replace_it(tmp_path):
    from ecgssl.api import load_encoder
    from ecgssl.eval.suite import arch_label, random_init_factory
    from ecgssl.train.export import export_encoder

    torch.manual_seed(0)
    enc = create_encoder("resnet1d_small", n_leads=8, pool="meanmax").eval()
    export_encoder(enc, tmp_path / "enc", STORE_CONFIG)
    x = np.random.default_rng(0).normal(0, 0.3, (2, 8, 2500)).astype(np.float32)
    loaded = load_encoder(tmp_path / "enc.safetensors")
    assert loaded.module.pool == "meanmax" and loaded.pooled_dim == 2 * loaded.embed_dim
    with torch.no_grad():
        np.testing.assert_allclose(loaded.module(torch.from_numpy(x)).numpy(),
                                   enc(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    # Replace it at load time: the spec says so, and a random-init twin built from the spec
    # pools the same way (the suite's twins).
    as_mean = load_encoder(tmp_path / "enc.safetensors", pool="mean")
    assert as_mean.spec["encoder"]["overrides"]["pool"] == "mean"
    assert as_mean.embed(x, 250, LEADS_8).shape == (2, as_mean.embed_dim)
    meanmax = load_encoder(tmp_path / "enc.safetensors")
    twin = random_init_factory(meanmax.spec, seed=0)()
    assert twin.pool == "meanmax"
    assert arch_label(meanmax.spec).endswith("meanmax")
    assert not arch_label(as_mean.spec).endswith("meanmax")
    with pytest.raises(ValueError, match="unknown pool"):
        load_encoder(tmp_path / "enc.safetensors", pool="sum")


def test_finetune_head_matches_the_pooled_length():
    from ecgssl.eval.finetune import FineTuneModule

    enc = create_encoder("resnet1d_small", n_leads=8, pool="meanmax")
    module = FineTuneModule(enc, 3)
    assert module.head.in_features == enc.pooled_dim
    out = module(torch.randn(2, 8, 500))
    assert out.shape == (2, 3)


def test_suite_pairs_old_and_new_mean_exports_with_one_twin():
    """An export from before the pooling option (no "pool") and a new one with "mean" are
    the same architecture: one random-init twin, not two rows of the same name."""
    import copy

    from ecgssl.api import Encoder
    from ecgssl.eval.suite import SuiteConfig, _rows

    enc = create_encoder("resnet1d_small", n_leads=8)
    pre = {"fs": 250, "leads": LEADS_8, "n_samples": 2500}
    new = {"encoder": {"name": "resnet1d_small",
                       "overrides": {"n_leads": 8, "pool": "mean"}}, "preprocessing": pre}
    old = copy.deepcopy(new)
    del old["encoder"]["overrides"]["pool"]
    rows = _rows({"a": Encoder(enc, new), "b": Encoder(copy.deepcopy(enc), old)},
                 SuiteConfig(supervised=False))
    assert [r.name for r in rows if r.kind == "random-init"] == ["random-init resnet1d_small"]

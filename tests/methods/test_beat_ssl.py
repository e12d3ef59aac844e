"""Beat-SSL: collate, loss configurations, validation, and a tiny run where the loss falls."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.beat_ssl import BeatSSL, BeatSSLCollate, build_beat_ssl, representation_stats
from ecgssl.models.cnn import resnet1d_small
from tests.methods.samples import FS, T, store_items

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


_samples = store_items  # the name other test modules import it by


@pytest.fixture(scope="module")
def samples():
    return store_items()


def _method(widths=(8, 8, 16, 16, 32), **kw):
    enc = resnet1d_small(n_leads=12, widths=widths, kernel=5, stem_kernel=7)
    return BeatSSL(enc, leads=LEADS_12, fs=FS, proj_hidden=32, proj_dim=16,
                   views={"seed": 1}, **kw)


def test_collate_is_picklable_and_makes_views(samples):
    collate = pickle.loads(pickle.dumps(_method().make_collate()))
    assert isinstance(collate, BeatSSLCollate)
    batch = collate(samples[:4])
    assert batch["view1"].shape == (4, 12, T) and batch["view1"].dtype == torch.float32
    assert not torch.allclose(batch["view1"], batch["view2"])
    assert batch["features"].shape[0] == 4 and len(batch["rpeaks"]) == 4
    assert torch.equal(batch["index"], torch.arange(4))


@pytest.mark.parametrize("rhythm,beat", [("hard", "none"), ("soft_1", "hard"),
                                         ("soft_2", "hard"), ("soft_1", "soft_1"),
                                         ("soft_2", "soft_2"), ("hard", "hard")])
def test_every_configuration_gives_a_finite_loss_and_gradients(samples, rhythm, beat):
    m = _method(rhythm_loss=rhythm, beat_loss=beat, rhythm_gamma=50, beat_gamma=50)
    batch = m.make_collate()(samples)
    loss, metrics = m.training_step_loss(batch, 0, 10)
    assert torch.isfinite(loss) and metrics["loss"] == pytest.approx(float(loss.detach()))
    loss.backward()
    assert all(p.grad is not None for p in m.encoder.parameters())
    if beat != "none":
        assert metrics["n_beats"] >= 2 * len(samples)
        assert m.beat_projector.state_dict()
    else:
        assert "loss_beat" not in metrics and m.beat_projector is None


def test_soft_targets_need_features(samples):
    m = _method(rhythm_loss="soft_1", beat_loss="none")
    batch = m.make_collate()(samples)
    del batch["features"]
    with pytest.raises(ValueError, match="features"):
        m.training_step_loss(batch, 0, 1)


def test_views_made_in_process_without_the_collate(samples):
    m = _method(rhythm_loss="hard", beat_loss="hard")
    batch = m.make_collate()(samples)
    del batch["view1"], batch["view2"]
    loss, _ = m.training_step_loss(batch, 0, 1)
    assert torch.isfinite(loss)


def test_validation():
    enc = resnet1d_small(n_leads=12, widths=(8, 8, 16, 16, 32))
    for kw in ({"rhythm_loss": "soft"}, {"beat_loss": "soft_3"}, {"temperature": 0},
               {"rhythm_gamma": -1}, {"beat_weight": -0.5}, {"views": {"mode": "bad"}}):
        with pytest.raises(ValueError):
            BeatSSL(enc, **kw)
    with pytest.raises(ValueError, match="unknown"):
        build_beat_ssl({"name": "beat_ssl", "lamda": 1.0}, {"name": "resnet1d_small"})


def test_recipes_build():
    pytest.importorskip("ecgssl.models.vit")  # create_encoder imports every encoder module
    paths = sorted(CONFIGS.glob("beatssl_*.yaml"))
    names = {p.name for p in paths}
    assert {"beatssl_simclr_hard.yaml", "beatssl_soft1_g50_beat_hard.yaml",
            "beatssl_soft1_g1_beat_hard.yaml", "beatssl_soft2_g50_beat_hard.yaml",
            "beatssl_soft1_g50_beat_soft1.yaml", "beatssl_soft1_g50_beat_none.yaml",
            "beatssl_cpu.yaml"} <= names
    for path in paths:
        cfg = yaml.safe_load(path.read_text())
        m = build_beat_ssl(cfg["method"], cfg["encoder"], cfg["data"])
        assert m.leads == cfg["data"]["leads"] and m.fs == cfg["data"]["fs"]
    simclr = yaml.safe_load((CONFIGS / "beatssl_simclr_hard.yaml").read_text())["method"]
    assert simclr["rhythm_loss"] == "hard" and simclr["beat_loss"] == "none"


@pytest.fixture
def one_thread():
    # Tiny convolutions: thread synchronisation costs more than it gains (5x on a busy 2-core
    # machine), so this test runs single-threaded and restores the setting afterwards.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_training_run_loss_falls(samples, one_thread):
    torch.manual_seed(0)
    m = _method(widths=(4, 8, 8, 16, 16), rhythm_loss="soft_1", rhythm_gamma=50,
                beat_loss="hard", temperature=0.2)
    collate = m.make_collate()
    opt = torch.optim.AdamW(m.param_groups(1e-4), lr=3e-3)
    losses = []
    for step in range(30):
        batch = collate(samples)
        loss, _ = m.training_step_loss(batch, step, 30)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.after_optimizer_step(step, 30)
        losses.append(float(loss.detach()))
    # Views are random every step, so compare 5-step means; an untrained model stays flat.
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
    stats = m.collapse_metrics(collate(samples))
    assert stats["repr_eff_rank"] > 1.5 and stats["repr_std"] > 0


def test_representation_stats_detect_collapse():
    assert representation_stats(torch.ones(16, 8) + 1e-7 * torch.randn(16, 8))["repr_std"] < 1e-5
    spread = representation_stats(torch.randn(64, 8))
    assert spread["repr_eff_rank"] > 6

"""End-to-end runs on CPU: the run directory, callbacks, and ``pretrain`` on a prepared store."""

import json

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
import yaml

from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import prepare_store
from ecgssl.errors import SpecMismatchError
from ecgssl.models import registry
from ecgssl.train.callbacks import OnlineLinearProbe, feature_collapse_stats
from ecgssl.train.export import load_encoder
from ecgssl.train.recipes import load_recipe
from ecgssl.train.run import fit, pretrain
from tests.data.synthetic import SyntheticSource
from tests.train.train_helpers import ToyDataset, ToyEncoder, ToyMethod, toy_recipe

STORE_CONFIG = {"fs": 250, "leads": ["I", "II"], "n_samples": 64, "hash": "h",
                "preprocess": {"normalize": None, "bandpass_hz": None}}


def test_two_epoch_run_writes_the_run_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry._REGISTRY, "toy_conv", ToyEncoder)
    recipe = load_recipe(toy_recipe(train__checkpoint_every_n_steps=0, train__max_epochs=2,
                                    train__tensorboard=True, train__progress_bar=True,
                                    train__collapse_every_n_steps=2, probe__every_n_epochs=1,
                                    probe__val_fraction=0.5))
    pl.seed_everything(0)
    method = ToyMethod()
    result = fit(recipe, method, ToyDataset(n=32), tmp_path / "run", store_config=STORE_CONFIG,
                 training_summary={"store": "toy"}, probe_dataset=ToyDataset(n=24))
    run = tmp_path / "run"
    assert result.global_step == 8 and result.epochs == 2
    assert result.samples_per_s > 0 and result.final_loss == result.final_loss
    for name in ["config.yaml", "run.json", "metrics.csv", "encoder.safetensors", "encoder.json",
                 "checkpoints/last.ckpt", "checkpoints/step0000004.ckpt",
                 "checkpoints/step0000008.ckpt"]:
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert load_recipe(yaml.safe_load((run / "config.yaml").read_text())) == recipe
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["train/loss"].notna().sum() == 8
    assert metrics["collapse/eff_rank"].notna().sum() == 4
    probe = metrics["probe/auroc"].dropna()
    assert len(probe) == 2 and ((probe >= 0) & (probe <= 1)).all()
    assert metrics["perf/samples_per_s"].notna().any()
    lrs = metrics["train/lr"].dropna().tolist()
    assert lrs[0] == pytest.approx(1e-2 / 2) and lrs[1] == pytest.approx(1e-2)  # warm-up
    info = json.loads((run / "run.json").read_text())
    assert info["precision"] == "32-true" and info["training"]["samples_seen"] == 64
    # The exported encoder is the trained one.
    encoder, spec = load_encoder(run / "encoder")
    assert spec["training"]["store"] == "toy" and spec["preprocessing"]["fs"] == 250
    x = torch.randn(3, 2, 64)
    with torch.no_grad():
        assert torch.equal(encoder(x), method.encoder.eval()(x))
    out = capsys.readouterr().out
    assert "run directory" in out and "encoder.safetensors" in out


def test_collapse_stats_detect_collapse():
    healthy = feature_collapse_stats(torch.randn(64, 16))
    collapsed = feature_collapse_stats(torch.ones(64, 16) + 1e-6 * torch.randn(64, 16))
    assert healthy["eff_rank"] > 10 and collapsed["feat_std"] < 1e-3
    assert 0.7 < healthy["feat_std_ratio"] < 1.3


class _Spectrum(torch.nn.Module):
    """Features = magnitudes of the first 8 Fourier bins of lead 0: both toy labels (frequency
    >= 4, odd frequency) are linear in them."""

    def forward(self, x):
        return torch.fft.rfft(x[:, 0], dim=-1).abs()[:, :8]


def test_probe_learns_a_separable_label():
    probe = OnlineLinearProbe(ToyDataset(n=40), val_fraction=0.5)
    auroc = probe.probe(_Spectrum(), torch.device("cpu"))
    assert auroc > 0.9
    # Features that ignore the input carry no label: the probe must not find one.
    assert probe.probe(_Zero(), torch.device("cpu")) == 0.5


class _Zero(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 8)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "s"
    prepare_store(SyntheticSource(8), path, PreprocessConfig(beats=False), workers=0,
                  progress=False)
    return path


JEPA = {"method": {"name": "jepa", "leads": ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"],
                   "predictor_embed_dim": 32, "predictor_depth": 1, "predictor_num_heads": 4},
        "encoder": {"name": "vit_tiny", "depth": 1},
        "data": {"leads": ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], "fs": 250,
                 "n_samples": 2500},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-3, "accelerator": "cpu",
                  "devices": 1, "progress_bar": False, "tensorboard": False}}


def test_pretrain_jepa_on_a_store(store, tmp_path):
    result = pretrain(JEPA, store, tmp_path / "run", overrides=["train.seed=1"])
    assert result.global_step == 2
    encoder, spec = load_encoder(result.encoder_weights)
    pre = spec["preprocessing"]
    assert pre["fs"] == 250 and pre["n_samples"] == 2500 and pre["units"] == "mV"
    assert spec["training"]["n_windows_used"] == 8 and spec["training"]["sources"]
    assert encoder.n_leads == 8


def test_reuse_returns_the_finished_run_and_the_target_exports(store, tmp_path, capsys):
    from ecgssl.train.collapse import collapsed, training_summary
    from ecgssl.train.export import export_target_encoder
    from ecgssl.train.run import reusable_run

    ov = ["train.seed=1", "train.collapse_every_n_steps=1"]
    first = pretrain(JEPA, store, tmp_path / "run", overrides=ov)
    again = pretrain(JEPA, store, tmp_path / "run", overrides=ov, reuse=True)
    assert again.reused and not first.reused and "reusing the finished run" in \
        capsys.readouterr().out
    assert (again.global_step, again.final_loss) == (first.global_step, first.final_loss)
    # Another recipe (or store) is not reused: it trains.
    other = load_recipe(JEPA, ["train.seed=2", "train.collapse_every_n_steps=1"])
    assert reusable_run(tmp_path / "run", other, store) is None
    # The method's declared spread metrics are recorded and summarised.
    summary = training_summary(tmp_path / "run")
    assert {"train/target_std", "collapse/eff_rank"} <= set(summary["collapse"])
    assert collapsed(summary) == (False, "")
    # The EMA target: the checkpoint's method.target_encoder weights, in the student's spec.
    out = export_target_encoder(tmp_path / "run")
    target, spec = load_encoder(out / "encoder")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    w = ckpt["state_dict"]["method.target_encoder.W_P.weight"]
    assert torch.equal(target.W_P.weight, w)
    assert spec["training"]["exported_weights"].startswith("EMA target")
    assert (out / "metrics.csv").is_file()


def test_collapse_rule_and_a_method_without_spread_metrics(tmp_path):
    from ecgssl.train.collapse import collapsed, training_summary

    pd.DataFrame({"train/loss": [1.0] * 10 + [0.5] * 10,
                  "collapse/eff_rank": [5.0] * 10 + [1.2] * 10,
                  "collapse/feat_std": [0.2] * 20}).to_csv(tmp_path / "metrics.csv")
    summary = training_summary(tmp_path)  # no run.json: only the generic collapse/* columns
    assert summary["loss_start"] == 1.0 and summary["loss_end"] == 0.5
    assert collapsed(summary) == (True, "effective rank 5.00 -> 1.20")
    summary["collapse"]["collapse/feat_std"]["end"] = 0.01
    assert collapsed(summary)[1].endswith("feature std 0.2 -> 0.01")


def test_pretrain_refuses_a_store_that_does_not_match(store, tmp_path):
    with pytest.raises(SpecMismatchError, match="fs 250"):
        pretrain(JEPA, store, tmp_path / "run", overrides=["data.fs=500"])
    with pytest.raises(SpecMismatchError, match="no extras"):
        pretrain(JEPA, store, tmp_path / "run", overrides=["data.extras=[beats]"])

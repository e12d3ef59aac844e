"""Fine-tuning: epoch chosen on validation, best weights restored, test labels unused."""

import numpy as np
import pytest
import torch
from torch import nn

from ecgssl.eval.classification_metrics import macro_auroc
from ecgssl.eval.finetune import finetune, reinitialized_copy, supervised_from_scratch
from ecgssl.eval.splits import Split


class TinyEncoder(nn.Module):
    embed_dim = 8

    def __init__(self, n_leads=2):
        super().__init__()
        self.conv = nn.Conv1d(n_leads, 8, 5, padding=2)

    def forward(self, x, leads=None):
        return torch.relu(self.conv(x)).mean(dim=2)


def _data(n=120, t=64, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 2)) < 0.5).astype(np.uint8)
    tt = np.arange(t) / t
    x = rng.normal(scale=1.0, size=(n, 2, t)).astype(np.float32)
    x[:, 0] += y[:, :1] * np.sin(2 * np.pi * 4 * tt)  # class 0: a sine on lead 0
    x[:, 1] += y[:, 1:] * 1.0  # class 1: an offset on lead 1
    split = Split(np.arange(0, 80), np.arange(80, 100), np.arange(100, n))
    return x, y, split


def _encoder(seed=0):
    torch.manual_seed(seed)
    return TinyEncoder()


def test_epoch_selected_on_val_and_restored(tmp_path):
    x, y, split = _data()
    out = finetune(_encoder(), x, y, split, epochs=4, lr=1e-2, batch_size=16, n_boot=50,
                   class_names=["sine", "offset"], history_csv=tmp_path / "h.csv")
    vals = [h["val_metric"] for h in out.history]
    assert len(vals) == 4
    assert out.best_epoch == int(np.argmax(vals))
    assert vals[-1] < max(vals)  # so restoring the best epoch is observable below
    # the returned model is the best epoch's: its validation AUROC is the recorded best
    assert macro_auroc(y[split.val], out.val_pred)[0] == pytest.approx(out.best_val_metric)
    assert out.result.macro_auroc > 0.6
    assert (tmp_path / "h.csv").read_text().startswith("epoch,train_loss,val_metric")
    # test labels do not influence training or selection
    y2 = y.copy()
    y2[split.test] = 1 - y2[split.test]
    out2 = finetune(_encoder(), x, y2, split, epochs=4, lr=1e-2, batch_size=16, n_boot=0)
    assert [h["val_metric"] for h in out2.history] == pytest.approx(vals)


def test_frozen_and_from_scratch():
    x, y, split = _data()
    enc = TinyEncoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    out = finetune(enc, x, y, split, epochs=2, lr=1e-2, batch_size=32, n_boot=0,
                   freeze_encoder=True)
    assert all(torch.equal(before[k], v) for k, v in out.module.encoder.state_dict().items())
    scratch = supervised_from_scratch(TinyEncoder, x, y, split, epochs=2, batch_size=32, n_boot=0)
    assert scratch.extra["protocol"] == "supervised_scratch"
    fresh = reinitialized_copy(enc, seed=1)
    assert not torch.equal(fresh.conv.weight, enc.conv.weight)
    with pytest.raises(ValueError, match="freeze_encoder"):
        supervised_from_scratch(TinyEncoder, x, y, split, freeze_encoder=True)

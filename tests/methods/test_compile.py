"""``train.compile`` compiles the paths each method's training step really runs.

Compiled with dynamo's ``eager`` backend (the graphs are captured, not code-generated) to keep
the test fast; ``benchmarks/throughput.py --compile`` measures the inductor speed-up.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from tests.methods.test_beat_ssl import _method as _beat_ssl
from tests.methods.test_beat_ssl import _samples
from tests.methods.test_jepa import _ecg_batch
from tests.methods.test_jepa import _method as _jepa


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _captured_frames() -> int:
    return int(counters["frames"]["ok"])


def test_jepa_compiles_forward_tokens_and_the_step_runs_through_it():
    method = _jepa()
    x = _ecg_batch(2, n_leads=8)
    eager, _ = method.training_step_loss({"signal": x}, 0, 10)
    assert _captured_frames() == 0
    method.masker.generator.manual_seed(0)
    assert method.compile_training(backend="eager") == [
        "encoder.forward_tokens", "target_encoder.forward_tokens", "predictor.forward"]
    method.masker.generator.manual_seed(0)
    torch.manual_seed(0)
    compiled, _ = method.training_step_loss({"signal": x}, 0, 10)
    compiled.backward()
    # The student and target encoders' token paths and the predictor: three captured frames
    # (compiling only ``forward`` would capture the predictor alone).
    assert _captured_frames() >= 3
    assert method.encoder.forward_tokens is not type(method.encoder).forward_tokens
    assert set(method.state_dict()) == set(_jepa().state_dict())  # names unchanged


def test_beat_ssl_compiles_forward_features():
    method = _beat_ssl(rhythm_loss="hard", beat_loss="hard")
    assert method.compile_training(backend="eager") == [
        "encoder.forward_features", "rhythm_projector.forward", "beat_projector.forward"]
    batch = method.make_collate()(_samples(n=4))
    loss, _ = method.training_step_loss(batch, 0, 10)
    loss.backward()
    assert _captured_frames() >= 2

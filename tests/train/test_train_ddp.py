"""Two-process CPU DDP (gloo): disjoint data across ranks, identical weights at the end."""

import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent / "ddp_script.py"


def test_ddp_two_ranks_disjoint_data_identical_weights(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert r0["world_size"] == r1["world_size"] == 2
    # 24 samples, batch 4 per rank, 2 ranks: 3 steps per epoch, 2 epochs.
    assert sorted(r0["indices"]) == sorted(r1["indices"]) == [1, 2, 3, 4, 5, 6]
    for epoch_steps in ([1, 2, 3], [4, 5, 6]):
        seen0 = [i for s in epoch_steps for i in r0["indices"][s]]
        seen1 = [i for s in epoch_steps for i in r1["indices"][s]]
        assert not set(seen0) & set(seen1), "ranks saw the same samples in one epoch"
        assert len(set(seen0)) == len(seen0) == 12
        assert sorted(seen0 + seen1) == list(range(24))
    # The two epochs are shuffled differently.
    assert [r0["indices"][s] for s in (1, 2, 3)] != [r0["indices"][s] for s in (4, 5, 6)]
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    # Training moved the weights (not a trivially identical pair).
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()

"""The README's "Your own data" worked example runs as written, with the output it shows."""

from __future__ import annotations

import shlex

import torch

from ecgssl.cli import main
from ecgssl.data.leads import LEADS_12
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder

from ..conftest import REPO_ROOT
from .formats import make_own_data_folder


def _example() -> list[tuple[str, list[str]]]:
    """(command, expected output fragments) from the README block."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("<!-- own-data-example -->")[1].split("<!-- /own-data-example -->")[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("```") or not line.strip():
            continue
        if line.startswith("#"):
            steps[-1][1].append(line[1:].strip())
        else:
            steps.append((line, []))
    return steps


def test_readme_own_data_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    config = {"fs": 250.0, "leads": LEADS_12, "n_samples": 2500, "hash": "x",
              "preprocess": PreprocessConfig().to_dict()}
    export_encoder(create_encoder("vit_tiny", n_leads=12).eval(), tmp_path / "enc", config)
    steps = _example()
    assert len(steps) == 5
    for command, expected in steps:
        words = shlex.split(command)
        if words[:2] == ["python", "tests/io/formats.py"]:
            make_own_data_folder(words[2])
            continue
        assert words[0] == "ecgssl"
        args = [str(tmp_path / "enc.safetensors") if w == "runs/demo/jepa" else w
                for w in words[1:]]
        rc = main(args)
        captured = capsys.readouterr()
        output = captured.out + captured.err
        assert rc == (2 if "error:" in " ".join(expected) else 0), (command, output)
        for fragment in expected:
            assert fragment in output, (command, fragment, output)

"""Helpers shared by the command modules: ``--set`` override parsing, YAML loading, the lead
options and torch threads. Imports nothing of ``ecgssl.cli`` (no import circle)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def _parse_override(text: str):
    """``key=value`` with a YAML-typed value (``fs=500``, ``leads=[I,II]``, ``normalize=null``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _load_yaml(path: str | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file {p} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping, got {type(data).__name__}")
    return data


def _lead_options(p, unknown: bool = True) -> None:
    """``--lead-alias NAME=LEAD`` (repeatable) and ``--allow-unknown-leads``."""
    p.add_argument("--lead-alias", action="append", metavar="NAME=LEAD",
                   help="treat a source lead as a standard lead, e.g. --lead-alias ECG=I "
                        "(extends the built-in table: MLII=II, CM5=V5, ...)")
    if unknown:
        p.add_argument("--allow-unknown-leads", action="store_true",
                       help="drop (and count) leads with unknown names instead of refusing")


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)

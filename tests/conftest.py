"""Shared test fixtures: where the real data lives, small synthetic ECGs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (override with ``ECGSSL_SHARED_DATA``)."""
    env = os.environ.get("ECGSSL_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"real test data not found at {path}; set ECGSSL_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return shared_data_dir().parent / "fixtures"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_configure(config):
    # Test tensors are tiny: one intra-op thread avoids OpenMP spin-waiting, which made small
    # ops up to 40x slower on a busy 2-core machine.
    import torch

    torch.set_num_threads(1)

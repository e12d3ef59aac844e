"""What every public foundation-model encoder shares: its model card and its input pipeline.

A foundation encoder is an ecgssl encoder (docs/architecture.md: ``embed_dim``, ``stride``,
``forward_features``, ``feature_pyramid``, ``forward``, ``spec``, ``pool``) whose weights come
from a published checkpoint. It takes what every ecgssl encoder takes, (B, L, T) float32 mV at
the rate, length and leads of its ``preprocessing`` spec, and applies the authors' own filters and
normalisation itself (``encoder_applies``, ``ecgssl.models.foundation.preprocess``) before the
network: the store it is evaluated on must therefore hold *unfiltered* windows (the spec's
``filters`` say so and ``eval.suite.filter_mismatch`` refuses a filtered store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgssl.errors import SpecMismatchError
from ecgssl.models.foundation.preprocess import apply_steps, check_steps
from ecgssl.models.pooling import check_pool, pool_features, pooled_dim


@dataclass(frozen=True)
class ModelCard:
    """Where a checkpoint comes from, under which terms, trained on what, fed how.

    Attributes:
        key: short name (``ecgssl evaluate key=PATH``).
        title: the model and its paper.
        code: the authors' repository (their code is read and run for the golden fixtures only).
        weights: where the released checkpoint is downloaded.
        licence: the weights' licence as the authors state it; ``commercial_use`` False for
            non-commercial terms (CC BY-NC and the like), None where the authors state no
            licence for the weights (check their model card), True only where one grants it.
        pretraining_data: ``[{"database": name, "note": ...}]`` as the paper states them
            (``ecgssl.eval.overlap`` compares them with the evaluation data's sources).
        fs, n_samples, leads: the input the network was pretrained on (Hz, samples, order).
        steps: the authors' filters and normalisation (``preprocess`` step dicts).
        notes: anything a user must know (what parity was established, what was not).
    """

    key: str
    title: str
    code: str
    weights: str
    licence: str
    commercial_use: bool | None
    pretraining_data: tuple[dict[str, str], ...]
    fs: float
    n_samples: int
    leads: tuple[str, ...]
    steps: tuple[dict[str, Any], ...]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def preprocessing(self, leads: Sequence[str] | None = None) -> dict[str, Any]:
        """The ``preprocessing`` part of an encoder spec (``train.export`` format)."""
        return {"fs": float(self.fs), "leads": list(leads if leads is not None else self.leads),
                "n_samples": int(self.n_samples), "units": "mV",
                # The input must be raw: the encoder applies the authors' filters itself.
                "filters": {"highpass_hz": None, "bandpass_hz": None},
                "normalisation": None,
                "encoder_applies": [dict(s) for s in self.steps]}

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["leads"], d["steps"] = list(self.leads), [dict(s) for s in self.steps]
        d["pretraining_data"] = [dict(x) for x in self.pretraining_data]
        return d


def take_n_leads(kwargs: dict[str, Any], leads: Sequence[str], name: str) -> None:
    """Remove a registry-style ``n_leads`` from factory kwargs; refuse one that does not fit
    (these networks read exactly their leads)."""
    n = kwargs.pop("n_leads", None)
    if n is not None and int(n) != len(leads):
        raise ValueError(f"{name} reads exactly the {len(leads)} leads {list(leads)}; "
                         f"n_leads={n} does not fit")


class FoundationEncoder(nn.Module):
    """Base class: input pipeline + pooling around a subclass's ``encode`` (B, L, T) -> (B, D, T').

    Subclasses set ``embed_dim``, ``stride``, ``lead_order`` and ``spec`` and implement
    ``encode`` (and ``encode_pyramid`` when they have several scales). ``authors_steps`` False
    skips the input pipeline (input already filtered and normalised, e.g. by the authors' code).
    """

    card: ModelCard
    embed_dim: int
    stride: int
    # Capability (docs/architecture.md): reads exactly ``lead_order``, called without names.
    takes_lead_names = False

    def __init__(self, fs: float, steps: Sequence[dict[str, Any]] | None, pool: str = "mean"):
        super().__init__()
        self.pool = check_pool(pool)
        self.input_fs = float(fs)
        self.steps = check_steps(steps or [])

    @property
    def pooled_dim(self) -> int:
        return pooled_dim(self.embed_dim, self.pool)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' filters and normalisation on (B, L, T) mV (no gradient to the input:
        the steps are numpy, as in the authors' data loaders)."""
        if not self.steps:
            return x
        y = apply_steps(x.detach().cpu().numpy(), self.input_fs, self.steps)
        return torch.from_numpy(np.ascontiguousarray(y)).to(device=x.device, dtype=x.dtype)

    def _check(self, x: torch.Tensor, leads: Sequence[str] | None) -> None:
        if x.ndim != 3 or x.shape[1] != len(self.lead_order):
            raise SpecMismatchError(f"{self.spec['name']} expects (B, {len(self.lead_order)}, T) "
                                    f"input with leads {list(self.lead_order)}, got "
                                    f"{tuple(x.shape)}")
        if leads is not None and list(leads) != list(self.lead_order):
            raise SpecMismatchError(f"{self.spec['name']} reads exactly the leads "
                                    f"{list(self.lead_order)} in this order; got {list(leads)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.encode(x)]

    def forward_features(self, x: torch.Tensor, leads: Sequence[str] | None = None
                         ) -> torch.Tensor:
        """(B, L, T) mV -> (B, D, T') after the authors' input pipeline."""
        self._check(x, leads)
        return self.encode(self.prepare_input(x))

    def feature_pyramid(self, x: torch.Tensor, leads: Sequence[str] | None = None
                        ) -> list[torch.Tensor]:
        self._check(x, leads)
        return self.encode_pyramid(self.prepare_input(x))

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """(B, L, T) mV -> (B, pooled_dim): the feature map pooled over time (``pool``)."""
        return pool_features(self.forward_features(x, leads), self.pool, dim=-1)

"""Encoder export: ``<name>.safetensors`` (weights) + ``<name>.json`` (what the weights expect).

The JSON (``format: "ecgssl-encoder"``) holds:

- ``encoder``: ``{"name", "overrides", "embed_dim", "stride"}`` so that
  ``create_encoder(name, **overrides)`` rebuilds the architecture;
- ``preprocessing``: ``{"fs", "leads", "n_samples", "units", "filters", "normalisation",
  "store_hash", "config"}`` from the store the encoder was trained on;
- ``training``: a summary of the data and run (method, steps, samples, sources);
- ``ecgssl_version``.

Preprocessing is part of the model: ``check_input`` turns a recording into what the encoder was
trained on (resample, reorder / select / derive leads, crop or pad) or refuses with a
``SpecMismatchError`` that says what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import ecgssl
from ecgssl.data.leads import canonical_lead
from ecgssl.errors import SpecMismatchError

FORMAT = "ecgssl-encoder"
FORMAT_VERSION = 1
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")


def encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    """``{"name", "overrides", "embed_dim", "stride"}`` from an encoder's ``spec`` attribute.

    The encoder's ``spec`` gives its registry ``name`` (or ``registry_name``); its constructor
    arguments are ``spec["overrides"]`` when present, else every other key of ``spec`` (except
    ``class``). A ViT whose spec name is not a registry key (``"vit"``) is rebuilt from the
    ``vit_base`` entry with every architecture field overridden from its spec.
    """
    from ecgssl.models import list_encoders

    spec = getattr(encoder, "spec", None)
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{type(encoder).__name__} has no spec dict with a 'name': it cannot be "
                         "exported in a rebuildable form")
    name = spec.get("registry_name", spec["name"])
    if "overrides" in spec:
        overrides = dict(spec["overrides"])
    else:
        overrides = {k: v for k, v in spec.items() if k not in ("name", "class", "registry_name")}
    if name not in list_encoders():
        if spec.get("class") == "VisionTransformerECG":
            name = "vit_base"  # the spec lists every architecture field: nothing of base remains
        else:
            raise ValueError(f"encoder spec name {name!r} is not a registered encoder "
                             f"({list_encoders()}): it could not be rebuilt")
    out = {"name": name, "overrides": _jsonable(overrides)}
    for attr in ("embed_dim", "stride", "pooled_dim"):
        if hasattr(encoder, attr):
            out[attr] = int(getattr(encoder, attr))
    return out


def preprocessing_spec(store_config: dict[str, Any], leads: list[str] | None = None
                       ) -> dict[str, Any]:
    """The preprocessing part of an export from a store's ``config.json`` contents.

    ``leads``: the store leads the encoder was trained on, in its input order (a recipe's
    ``data.leads``); default all of the store's leads.
    """
    for key in ("fs", "leads", "n_samples"):
        if key not in store_config:
            raise ValueError(f"store config has no {key!r}: cannot describe the encoder's input")
    pre = store_config.get("preprocess") or {}
    normalisation = pre.get("normalisation", pre.get("normalization", pre.get("normalize")))
    filters = pre.get("filters")
    if filters is None:  # the store's PreprocessConfig keeps its filters as separate fields
        filters = {k: pre[k] for k in ("bandpass_hz", "highpass_hz", "filter_order") if k in pre}
    return {
        "fs": float(store_config["fs"]),
        "leads": [str(x) for x in (leads if leads is not None else store_config["leads"])],
        "n_samples": int(store_config["n_samples"]),
        # Windows are stored in mV unless the store normalised them.
        "units": "mV" if normalisation in (None, False, "none") else "normalised",
        "filters": _jsonable(filters),
        "normalisation": _jsonable(normalisation),
        "store_hash": store_config.get("hash"),
        "config": _jsonable(pre),
    }


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON (tuples -> lists, numpy scalars -> numbers) or fail clearly."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except TypeError as err:
        raise ValueError(f"not JSON-serialisable: {value!r}: {err}") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(type(obj).__name__)


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def export_encoder(encoder: nn.Module, path: str | Path, store_config: dict[str, Any],
                   training: dict[str, Any] | None = None, leads: list[str] | None = None
                   ) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns both paths.

    Args:
        encoder: the trained encoder (``SSLMethod.encoder``); its ``spec`` must rebuild it.
        path: file stem (a ``.safetensors`` / ``.json`` suffix is dropped).
        store_config: the training store's ``config.json`` contents.
        training: free-form JSON-able summary (method, steps, data sources ...).
        leads: the leads the encoder reads, in order (default: the ViT's ``lead_names`` if it
            has them, else all of the store's leads).
    """
    if leads is None and hasattr(encoder, "lead_names"):
        leads = list(encoder.lead_names)
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ecgssl_version": ecgssl.__version__,
        "encoder": encoder_spec(encoder),
        "preprocessing": preprocessing_spec(store_config, leads),
        "training": _jsonable(training or {}),
    }
    # clone(): safetensors refuses tensors sharing storage; the copy also detaches from the graph.
    weights = {k: v.detach().to("cpu").clone().contiguous()
               for k, v in encoder.state_dict().items()}
    weights_path, json_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    save_file(weights, str(weights_path), metadata={"format": "pt", "ecgssl": FORMAT})
    json_path.write_text(json.dumps(meta, indent=2))
    return weights_path, json_path


def read_spec(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of an export (path to either file, or the stem)."""
    json_path = _stem(path).with_suffix(".json")
    if not json_path.is_file():
        raise FileNotFoundError(f"encoder metadata not found: {json_path}")
    spec = json.loads(json_path.read_text())
    if spec.get("format") != FORMAT:
        raise SpecMismatchError(f"{json_path} is not an {FORMAT} file "
                                f"(format={spec.get('format')})")
    if spec.get("format_version", 0) > FORMAT_VERSION:
        raise SpecMismatchError(f"{json_path} has format version {spec['format_version']}; this "
                                f"ecgssl ({ecgssl.__version__}) reads up to {FORMAT_VERSION}")
    return spec


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an exported encoder and load its weights (strictly); returns (encoder, spec).

    The encoder is returned in eval mode. ``spec["preprocessing"]`` says what input it expects;
    pass recordings through ``check_input(spec, ...)`` first.
    """
    from ecgssl.models import create_encoder

    spec = read_spec(path)
    weights_path = _stem(path).with_suffix(".safetensors")
    if not weights_path.is_file():
        raise FileNotFoundError(f"encoder weights not found: {weights_path}")
    encoder = create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])
    state = load_file(str(weights_path), device=str(map_location))
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SpecMismatchError(
            f"{weights_path} does not fit {spec['encoder']['name']} built from its spec: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    return encoder.to(map_location).eval(), spec


@dataclass
class InputAdapter:
    """How to turn input arrays into what an encoder expects; call it on (..., L_in, T_in).

    Attributes:
        leads: output lead names, in the encoder's order (fewer than the spec's leads only with
            ``missing_leads="drop"``).
        lead_sources: for each output lead, ``("copy", k)`` row k of the input, ``("derive", name)``
            computed from I and II, or ``("zero", None)``.
        fs_in, fs_out: sampling rates (Hz); resampling is polyphase with ratio ``up/down``.
        n_samples: output length; ``crop`` / ``pad`` samples removed / zero-appended.
        present: bool per output lead, False for zero-filled leads.
    """

    leads: list[str]
    lead_sources: list[tuple[str, Any]]
    fs_in: float
    fs_out: float
    up: int
    down: int
    n_samples: int
    crop: int = 0
    pad: int = 0
    present: list[bool] = field(default_factory=list)

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        is_torch = isinstance(x, torch.Tensor)
        arr = x.detach().cpu().numpy() if is_torch else np.asarray(x)
        if arr.ndim < 2:
            raise SpecMismatchError(f"input must be (..., leads, samples), got shape {arr.shape}")
        arr = arr.astype(np.float32, copy=False)
        rows = []
        for kind, arg in self.lead_sources:
            if kind == "copy":
                rows.append(arr[..., arg, :])
            elif kind == "derive":
                i, ii = arr[..., arg[1], :], arr[..., arg[2], :]
                rows.append({"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2,
                             "aVF": ii - i / 2}[arg[0]])
            else:
                rows.append(np.zeros_like(arr[..., 0, :]))
        out = np.stack(rows, axis=-2)
        if (self.up, self.down) != (1, 1):
            from scipy.signal import resample_poly

            out = resample_poly(out, self.up, self.down, axis=-1).astype(np.float32)
        out = out[..., : self.n_samples]
        if out.shape[-1] < self.n_samples:
            width = [(0, 0)] * (out.ndim - 1) + [(0, self.n_samples - out.shape[-1])]
            out = np.pad(out, width)
        out = np.ascontiguousarray(out, dtype=np.float32)
        return torch.from_numpy(out) if is_torch else out


def check_input(spec: dict[str, Any], fs: float, leads: list[str], n_samples: int, *,
                units: str = "mV", missing_leads: str = "error",
                max_pad_fraction: float = 0.1) -> InputAdapter:
    """Plan the conversion of (leads, n_samples at fs) input to an encoder's expected input.

    Conversions: polyphase resampling to the spec's rate; leads reordered / selected by canonical
    name, with III, aVR, aVL, aVF derived from I and II when absent; the first ``n_samples``
    (spec) samples kept, or zeros appended when the input is short by at most
    ``max_pad_fraction`` of the spec length.

    Args:
        spec: an export's metadata (``load_encoder`` / ``read_spec``) or its ``preprocessing``.
        fs: input rate (Hz); leads: input lead names; n_samples: input length (samples).
        units: input units; must match the spec's (``"mV"``): there is no safe conversion.
        missing_leads: ``"error"`` (refuse), ``"zero"`` (zero rows, flagged in ``present``) or
            ``"drop"`` (output only the available leads, in spec order; for encoders that take a
            ``leads`` argument, e.g. the ViT).
        max_pad_fraction: largest tolerated zero padding, as a fraction of the spec length.

    Raises:
        SpecMismatchError: the input cannot be made to match (the message says what differs).
    """
    pre = spec.get("preprocessing", spec)
    want_fs, want_leads, want_n = float(pre["fs"]), list(pre["leads"]), int(pre["n_samples"])
    if missing_leads not in ("error", "zero", "drop"):
        raise ValueError(f"missing_leads must be 'error', 'zero' or 'drop', got {missing_leads!r}")
    if not fs or fs <= 0:
        raise SpecMismatchError(f"input sampling rate must be > 0 Hz, got {fs}")
    if n_samples <= 0:
        raise SpecMismatchError(f"input has no samples (n_samples={n_samples})")
    if units != pre.get("units", "mV"):
        raise SpecMismatchError(f"encoder expects {pre.get('units', 'mV')} input, got {units}")
    names = [canonical_lead(x) for x in leads]
    if len(set(names)) != len(names):
        raise SpecMismatchError(f"duplicate lead names in input: {leads}")
    sources, out_leads, present = [], [], []
    for name in want_leads:
        if name in names:
            sources.append(("copy", names.index(name)))
        elif name in LIMB_DERIVED and "I" in names and "II" in names:
            sources.append(("derive", (name, names.index("I"), names.index("II"))))
        elif missing_leads == "zero":
            sources.append(("zero", None))
        elif missing_leads == "drop":
            continue
        else:
            missing = [x for x in want_leads if x not in names
                       and not (x in LIMB_DERIVED and "I" in names and "II" in names)]
            raise SpecMismatchError(
                f"input lacks leads {missing} that the encoder was trained on "
                f"(expects {want_leads}, got {names}); pass missing_leads='zero' or 'drop' to "
                "accept reduced-lead input knowingly")
        out_leads.append(name)
        present.append(sources[-1][0] != "zero")
    if not any(present):
        raise SpecMismatchError(f"none of the encoder's leads {want_leads} is in the input "
                                f"{names}")
    ratio = Fraction(want_fs / fs).limit_denominator(1000)
    if abs(float(ratio) - want_fs / fs) > 1e-6 * want_fs / fs:
        raise SpecMismatchError(f"cannot resample {fs} Hz to {want_fs} Hz with a rational ratio")
    resampled = int(np.ceil(n_samples * ratio.numerator / ratio.denominator))
    pad = max(0, want_n - resampled)
    if pad > max_pad_fraction * want_n:
        raise SpecMismatchError(
            f"input is {n_samples / fs:.2f} s ({resampled} samples at {want_fs:g} Hz); the "
            f"encoder expects {want_n / want_fs:.2f} s ({want_n} samples) and pads at most "
            f"{max_pad_fraction:.0%}")
    return InputAdapter(leads=out_leads, lead_sources=sources, fs_in=float(fs), fs_out=want_fs,
                        up=ratio.numerator, down=ratio.denominator, n_samples=want_n,
                        crop=max(0, resampled - want_n), pad=pad, present=present)


def export_target_encoder(run_dir: str | Path, target: str = "target_encoder",
                          out_dir: str | Path | None = None) -> Path:
    """Export a momentum method's EMA target encoder from a finished run directory.

    The engine exports the online (student) encoder (``<run_dir>/encoder.*``); I-JEPA-style
    methods also have an EMA copy (``MomentumMethod.add_momentum_copy``), often the better
    representation. Its weights are ``method.<target>.*`` of ``checkpoints/last.ckpt``; they are
    loaded strictly into the student's architecture (any mismatch fails) and written beside a
    copy of the student's JSON (same architecture and preprocessing) whose ``training`` says
    which weights these are. ``metrics.csv`` is copied too (the suite's training curves).

    Returns:
        The output directory (default ``<run_dir>/target``) holding ``encoder.safetensors``,
        ``encoder.json`` and ``metrics.csv``.
    Raises:
        FileNotFoundError: no export or no last checkpoint; KeyError: the checkpoint has no
        ``method.<target>.*`` weights (not a momentum method).
    """
    import shutil

    run_dir = Path(run_dir)
    student, spec = load_encoder(run_dir / "encoder")
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoints/last.ckpt to read the target from")
    # weights_only=False: our own checkpoints carry RNG states; only load runs you trust.
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    prefix = f"method.{target}."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise KeyError(f"{ckpt_path} has no {prefix}* weights: not a momentum method's run")
    student.load_state_dict(state, strict=True)  # fails loudly on any mismatch
    out = Path(out_dir) if out_dir is not None else run_dir / "target"
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()},
              str(out / "encoder.safetensors"), metadata={"format": "pt", "ecgssl": FORMAT})
    spec["training"]["exported_weights"] = f"EMA target encoder (method.{target})"
    (out / "encoder.json").write_text(json.dumps(spec, indent=2))
    if (run_dir / "metrics.csv").is_file():
        shutil.copy2(run_dir / "metrics.csv", out / "metrics.csv")
    return out

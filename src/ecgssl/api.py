"""The small public Python API: load an encoder, embed ECGs, delineate ECGs, read records.

Example::

    import ecgssl
    enc = ecgssl.load_encoder("runs/demo/jepa/encoder.safetensors")  # or an original .pth
    z = enc.embed(signal_mv, fs=500, leads=["I", "II", ..., "V6"])    # (D,) float32
    waves = ecgssl.delineate(signal_mv, fs=500, leads=["II"])  # bundled model, any length
    rpeaks = ecgssl.detect_rpeaks(signal_mv, fs=500, leads=["II"])

Inputs come with their own sampling rate, lead names and units (mV by default; ``units="uV"``
or ``"counts"`` with ``gain``); the checkpoint's stored preprocessing (``ecgssl.data.inference``,
the same functions ``prepare`` runs) converts them: lead aliases, resampling, filters, windows
over the whole recording, normalisation. What cannot be converted is refused with a
``SpecMismatchError`` that says how to accept it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgssl.data.leads import LEADS_8
from ecgssl.data.record import WAVE_NAMES, Record
from ecgssl.errors import IntegrityError, SpecMismatchError
from ecgssl.safety.artefacts import (
    check_state_fits,
    load_model_file,
    read_json_file,
    save_model_file,
)

# What the released ECG-JEPA checkpoints were trained on (Kim 2024): 8 leads, 250 Hz, 10 s, mV.
ORIGINAL_JEPA_PREPROCESSING = {"fs": 250.0, "leads": list(LEADS_8), "n_samples": 2500,
                               "units": "mV", "filters": None, "normalisation": None}


@dataclass
class Encoder:
    """A loaded encoder and the preprocessing spec its inputs must follow.

    Attributes:
        module: the ``nn.Module`` (eval mode); ``module(x) -> (B, D)`` on spec-conform input.
        spec: ``{"encoder": {...}, "preprocessing": {"fs", "leads", "n_samples", "units", ...}}``.
        path: where it was loaded from.
    """

    module: nn.Module
    spec: dict[str, Any]
    path: Path | None = None

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.spec["preprocessing"]

    @property
    def embed_dim(self) -> int:
        return int(self.module.embed_dim)

    @property
    def pooled_dim(self) -> int:
        """Length of one embedding (``embed``'s last axis): 2 embed_dim for "meanmax" pooling."""
        from ecgssl.models.pooling import output_dim

        return int(output_dim(self.module))

    def prepare_windows(self, signal: np.ndarray, fs: float, leads: Sequence[str],
                        missing_leads: str = "error", **options):
        """(L, T) or (N, L, T) input of any length -> ``ecgssl.data.inference.PreparedInput``
        (windows (W, L, T) through the checkpoint's own preprocessing, leads, present mask,
        window starts, valid spans).

        ``options``: ``lead_aliases``, ``allow_unknown_leads``, ``units`` ("mV", "uV",
        "counts"), ``gain``, ``baseline``, ``max_pad_fraction``, ``record_id`` (see
        ``ecgssl.data.inference.prepare_input``).
        """
        from ecgssl.data.inference import prepare_input

        return prepare_input(self.spec, signal, fs, list(leads), missing_leads=missing_leads,
                             **options)

    def prepare(self, signal: np.ndarray, fs: float, leads: Sequence[str],
                missing_leads: str = "error", **options) -> tuple[np.ndarray, list[str]]:
        """Input of exactly one window per item -> ((L, T) or (N, L, T) array, lead names).

        Longer input is refused (it would be cut short): use ``prepare_windows``.
        With ``missing_leads="drop"`` only rows present in every window are returned.
        """
        x = np.asarray(signal)
        prepared = self.prepare_windows(x, fs, leads, missing_leads, **options)
        n_items = 1 if x.ndim == 2 else len(x)
        if prepared.n_windows != n_items:
            raise SpecMismatchError(
                f"input of {x.shape[-1] / fs:.1f} s gives {prepared.n_windows} windows of "
                f"{self.preprocessing['n_samples'] / float(self.preprocessing['fs']):g} s; "
                "use prepare_windows (or embed, which covers every window)")
        rows = list(range(len(prepared.leads)))
        if missing_leads == "drop":
            rows = [k for k in rows if prepared.present[:, k].all()]
        out = prepared.x[:, rows]
        return (out[0] if x.ndim == 2 else out), [prepared.leads[k] for k in rows]

    @torch.no_grad()
    def forward_windows(self, x: np.ndarray, leads: Sequence[str], present: np.ndarray,
                        missing_leads: str = "error", names: Sequence[str] | None = None,
                        batch_size: int = 64) -> np.ndarray:
        """Pooled features (W, pooled_dim) of prepared windows (W, L, T) with rows ``leads``.

        ``present`` (W, L) and ``missing_leads`` decide which rows each window feeds
        (``ecgssl.data.inference.apply_missing_leads``): the same rule for raw records and for
        a store's ``lead_mask``.
        """
        from ecgssl.data.inference import apply_missing_leads
        from ecgssl.models.registry import takes_lead_names

        leads = list(leads)
        out = np.zeros((len(x), self.pooled_dim), dtype=np.float32)
        device = next(self.module.parameters()).device
        for rows, idx in apply_missing_leads(present, leads, missing_leads,
                                             list(names) if names is not None else None):
            use = [lead for lead, keep in zip(leads, rows) if keep]
            kwargs = {"leads": use} if takes_lead_names(self.module) else {}
            if not kwargs and use != list(self.preprocessing["leads"]):
                raise SpecMismatchError(f"this encoder needs exactly the leads "
                                        f"{self.preprocessing['leads']}; got {use}")
            for i in range(0, len(idx), batch_size):
                sel = idx[i:i + batch_size]
                batch = torch.from_numpy(np.ascontiguousarray(x[sel][:, rows])).to(device)
                out[sel] = self.module(batch, **kwargs).cpu().numpy()
        return out

    def embed_windows(self, signal: np.ndarray, fs: float, leads: Sequence[str],
                      missing_leads: str = "error", batch_size: int = 64,
                      **options) -> Embedding:
        """One vector per window of a (L, T) recording of any length, and their mean.

        Returns an ``Embedding``: ``windows`` (W, D), ``mean`` (D,), ``n_windows``,
        ``starts_s``, ``valid_spans``, ``leads``, ``aliases``, ``dropped``.
        """
        x = np.asarray(signal)
        if x.ndim != 2:
            raise SpecMismatchError(f"embed_windows takes one (leads, samples) recording, got "
                                    f"shape {x.shape}")
        prepared = self.prepare_windows(x, fs, leads, missing_leads, **options)
        z = self.forward_windows(prepared.x, prepared.leads, prepared.present, missing_leads,
                                 [f"window at {s:.1f} s" for s in prepared.starts_s], batch_size)
        return Embedding(z, z.mean(axis=0), prepared.starts_s, prepared.valid_spans,
                         prepared.leads, prepared.aliases, prepared.dropped)

    def embed(self, signal: np.ndarray, fs: float, leads: Sequence[str],
              missing_leads: str = "error", batch_size: int = 64, aggregate: str = "mean",
              **options) -> np.ndarray:
        """Pooled representation(s) of recordings of any length, float32.

        Every window the checkpoint's window policy cuts (``embed_windows``) is embedded;
        ``aggregate="mean"`` gives their mean, (D,) for (L, T) input and (N, D) for (N, L, T);
        ``"none"`` gives every window, (W, D) or (N, W, D).

        Args:
            signal: samples at ``fs`` Hz with rows named by ``leads``, in ``units`` (default
                mV; ``"uV"``, or ``"counts"`` with ``gain`` counts per mV).
            missing_leads: ``"error"``, ``"zero"`` or ``"drop"`` (ViT encoders accept any
                subset of their leads: lead II alone, II + V1, ...).
            options: ``lead_aliases`` ({"ECG": "I"}), ``allow_unknown_leads``, ``units``,
                ``gain``, ``baseline``, ``max_pad_fraction`` (``prepare_windows``).
        """
        if aggregate not in ("mean", "none"):
            raise ValueError(f"aggregate must be 'mean' or 'none', got {aggregate!r}")
        x = np.asarray(signal)
        if x.ndim not in (2, 3):
            raise SpecMismatchError(f"signal must be (leads, samples) or (N, leads, samples), "
                                    f"got shape {x.shape}")
        # All windows of all items in one pass, batched; then per item.
        prepared = self.prepare_windows(x, fs, leads, missing_leads, **options)
        names = [f"item {i} window at {s:.1f} s" for i, s in zip(prepared.item,
                                                                 prepared.starts_s)]
        z = self.forward_windows(prepared.x, prepared.leads, prepared.present, missing_leads,
                                 names, batch_size)
        per = [z[prepared.item == i] for i in range(1 if x.ndim == 2 else len(x))]
        out = [w.mean(axis=0) if aggregate == "mean" else w for w in per]
        return out[0] if x.ndim == 2 else np.stack(out)


@dataclass
class Embedding:
    """The windows of one recording and their features.

    Attributes:
        windows: float32 (W, D), one row per window; mean: (D,) their mean.
        starts_s: (W,) window starts in seconds of the recording; valid_spans: (W, 2) samples
            of real signal per window (zero padding outside).
        leads, aliases, dropped: encoder input leads, lead aliases applied, unknown leads
            dropped.
    """

    windows: np.ndarray
    mean: np.ndarray
    starts_s: np.ndarray
    valid_spans: np.ndarray
    leads: list[str]
    aliases: dict[str, str]
    dropped: list[str]

    @property
    def n_windows(self) -> int:
        return int(len(self.windows))


def embed_store(encoder: Encoder, store, missing_leads: str = "error", batch_size: int = 64,
                indices: Sequence[int] | None = None) -> np.ndarray:
    """Features (N, D) of a store's windows, honouring its ``lead_mask`` like ``Encoder.embed``.

    The windows are already preprocessed: they go to the encoder as stored after
    ``check_store_matches`` (same rate, length, filters, normalisation). Encoder leads absent
    from the store, and leads masked in a window (missing or flat in the source), follow
    ``missing_leads`` exactly as for raw records.
    """
    from ecgssl.data.inference import check_store_matches

    check_store_matches(encoder.spec, store.config)
    want = [str(x) for x in encoder.preprocessing["leads"]]
    idx = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)
    store_leads = store.leads
    rows = [store_leads.index(x) if x in store_leads else -1 for x in want]
    names = store.manifest["record_id"].astype(str).to_numpy()
    out = np.zeros((len(idx), encoder.pooled_dim), dtype=np.float32)
    step = max(batch_size * 8, 1)
    for lo in range(0, len(idx), step):
        sel = idx[lo:lo + step]
        sig, mask = np.asarray(store.signals[sel]), np.asarray(store.lead_mask[sel])
        x = np.zeros((len(sel), len(want), store.n_samples), dtype=np.float32)
        present = np.zeros((len(sel), len(want)), dtype=bool)
        for k, r in enumerate(rows):
            if r >= 0:
                x[:, k], present[:, k] = sig[:, r], mask[:, r]
        out[lo:lo + step] = encoder.forward_windows(x, want, present, missing_leads,
                                                    names[sel], batch_size)
    return out


def load_encoder(path: str | Path, device: str = "cpu", pool: str | None = None) -> Encoder:
    """Load an encoder: ours (``.safetensors`` + ``.json``, or a run directory) or an original
    ECG-JEPA release (``.pth``/``.pt`` with ``{'encoder': state_dict, 'epoch': n}``).

    ``pool``: replace the pooling of ``embed`` / ``forward`` (``ecgssl.models.pooling``: "mean"
    or "meanmax"); recorded in the returned spec, so a random-init twin built from it pools the
    same way. None keeps the checkpoint's.
    """
    enc = _load_encoder(Path(path), device)
    if pool is not None:
        from ecgssl.models.pooling import check_pool

        check_pool(pool)
        if not hasattr(enc.module, "pool"):
            raise ValueError(f"{path}: this encoder ({enc.spec['encoder']['name']}) has a fixed "
                             "pooling; pool= applies to ecgssl's own encoders")
        enc.module.pool = pool
        if isinstance(getattr(enc.module, "spec", None), dict):
            enc.module.spec["pool"] = pool
        enc.spec["encoder"].setdefault("overrides", {})["pool"] = pool
        enc.spec["encoder"]["pooled_dim"] = int(enc.module.pooled_dim)
    return enc


def _load_encoder(path: Path, device: str) -> Encoder:
    path = Path(path)
    from ecgssl.models.foundation.checkpoints import load_foundation

    found = load_foundation(path, device) if path.exists() else None  # by contents (#19)
    if found is not None:
        return Encoder(found[0], found[1], path)
    if path.is_dir():
        candidate = path / "encoder.safetensors"
        if not candidate.exists():
            raise FileNotFoundError(f"{path} holds no encoder.safetensors (is it a run dir?)")
        path = candidate
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix in (".pt", ".pth"):
        from ecgssl.compat.ecg_jepa import load_original_checkpoint

        module = load_original_checkpoint(path).to(device)
        spec = {"encoder": {"name": "ecg_jepa_original", "overrides": dict(module.spec)},
                "preprocessing": dict(ORIGINAL_JEPA_PREPROCESSING),
                "training": {"source": "original ECG-JEPA release",
                             # what the paper (Kim 2024) pretrained on, for eval.overlap
                             "pretraining_data": [{"database": d, "note": "paper"} for d in
                                                  ("Chapman", "Ningbo", "CODE-15")]}}
        return Encoder(module.eval(), spec, path)
    from ecgssl.train.export import load_encoder as load_exported

    module, spec = load_exported(path, map_location=device)
    return Encoder(module, spec, path)


def embed(encoder: Encoder | str | Path, signal: np.ndarray, fs: float, leads: Sequence[str],
          missing_leads: str = "error", **options) -> np.ndarray:
    """Shortcut for ``load_encoder(path).embed(signal, fs, leads, ...)`` (same options)."""
    enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
    return enc.embed(signal, fs, leads, missing_leads, **options)


# ------------------------------------------------------------------------------ delineation


SEGMENTATION_FORMAT = "ecgssl-segmentation"
FINETUNED_FORMAT = "ecgssl-finetuned"


def _model_stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".pt", ".pth", ".safetensors", ".json") \
        else path


def save_segmentation_model(model: nn.Module, path: str | Path, encoder_spec: dict[str, Any],
                            info: dict[str, Any] | None = None) -> Path:
    """Save a trained ``SegmentationModel`` as ``<stem>.safetensors`` + ``<stem>.json``.

    ``path``: the stem, or a name ending in ``.pt`` (the old name), ``.safetensors`` or ``.json``.
    The JSON holds the encoder spec, ``freeze_encoder``, ``info`` and the weights' sha256; no
    pickle is written, so loading runs no code. Returns the ``.safetensors`` path.
    """
    import ecgssl

    meta = {"format": SEGMENTATION_FORMAT, "format_version": 2,
            "ecgssl_version": ecgssl.__version__, "encoder_spec": encoder_spec,
            "freeze_encoder": bool(model.freeze_encoder), "info": info or {}}
    weights, _ = save_model_file(model.state_dict(), _model_stem(path), meta)
    return weights


def _read_legacy_pickle(path: Path, fmt: str) -> tuple[dict, dict]:
    """(meta, state) of a model saved with ``torch.save`` by older ecgssl, read safely.

    ``weights_only=True`` unpickles only tensors and plain containers (no code runs); a file
    that needs more is refused.
    """
    import logging
    import pickle

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise IntegrityError(path, f"is not a model ecgssl can read safely ({str(err)[:80]})",
                             "re-create it with `ecgssl evaluate` (writes a .safetensors + "
                             ".json pair)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise SpecMismatchError(f"{path} is not an {fmt} model")
    logging.getLogger(__name__).warning(
        "%s: old pickle format, read safely with weights_only=True; convert it once with "
        "ecgssl.api.convert_segmentation_model(%r)", path, str(path))
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return meta, ckpt["state_dict"]


def _read_model_pair(path: str | Path, fmt: str, device: str) -> tuple[dict, dict, Path]:
    """(meta, state, weights path) of a ``<stem>.safetensors`` + ``<stem>.json`` model (or of
    a legacy ``.pt``), verified (``ecgssl.safety.artefacts``)."""
    path = Path(path)
    if path.suffix in (".pt", ".pth") and path.is_file():
        meta, state = _read_legacy_pickle(path, fmt)
        return meta, state, path
    stem = _model_stem(path)
    json_path = stem.with_suffix(".json")
    if not json_path.is_file() and not stem.with_suffix(".safetensors").is_file():
        raise FileNotFoundError(f"model {path} does not exist (looked for {json_path.name} and "
                                f"{stem.with_suffix('.safetensors').name})")
    meta = read_json_file(json_path, "model metadata", "save the model again")
    if meta.get("format") != fmt:
        raise SpecMismatchError(f"{json_path} is not an {fmt} model (format="
                                f"{meta.get('format')})")
    state = load_model_file(stem, meta, device, fix="save the model again")
    return meta, state, stem.with_suffix(".safetensors")


def load_segmentation_model(path: str | Path, device: str = "cpu"):
    """(model, encoder spec) from ``save_segmentation_model`` (``.safetensors``/``.json``/stem;
    a ``.pt`` of older ecgssl is read safely with a warning)."""
    from ecgssl.models import create_encoder
    from ecgssl.models.seg_heads import build_seg_model

    meta, state, weights = _read_model_pair(path, SEGMENTATION_FORMAT, device)
    spec = dict(meta["encoder_spec"])
    # Leads the decoder was trained and scored on (others are input only).
    spec["scored_leads"] = (meta.get("info") or {}).get("scored_leads",
                                                        spec["preprocessing"]["leads"])
    encoder = create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])
    model = build_seg_model(encoder, len(spec["preprocessing"]["leads"]),
                            freeze_encoder=meta["freeze_encoder"])
    check_state_fits(model, state, weights, _model_stem(path).with_suffix(".json"),
                     "segmentation model")
    model.load_state_dict(state)
    return model.to(device).eval(), spec


def convert_segmentation_model(path: str | Path) -> Path:
    """Rewrite an old pickle ``.pt`` segmentation model as ``.safetensors`` + ``.json`` beside
    it (read with ``weights_only=True``); returns the new weights path. The ``.pt`` stays."""
    path = Path(path)
    meta, state = _read_legacy_pickle(path, SEGMENTATION_FORMAT)
    meta["format_version"] = 2
    weights, _ = save_model_file(state, _model_stem(path), meta)
    return weights


def save_finetuned_model(module: nn.Module, path: str | Path, encoder_spec: dict[str, Any],
                         info: dict[str, Any] | None = None) -> Path:
    """Save a ``FineTuneModule`` (encoder + linear head) as ``.safetensors`` + ``.json``.

    The JSON holds the encoder spec, the task, the head's size, class names and leads, and the
    weights' sha256. Returns the ``.safetensors`` path.
    """
    import ecgssl

    meta = {"format": FINETUNED_FORMAT, "format_version": 1,
            "ecgssl_version": ecgssl.__version__, "encoder_spec": encoder_spec,
            "task": module.task, "n_outputs": int(module.head.out_features),
            "embed_dim": int(module.head.in_features),
            "freeze_encoder": bool(module.freeze_encoder), "leads": module.leads,
            "class_names": module.class_names, "info": info or {}}
    weights, _ = save_model_file(module.state_dict(), _model_stem(path), meta)
    return weights


def load_finetuned_model(path: str | Path, device: str = "cpu"):
    """(``FineTuneModule`` in eval mode, meta) from ``save_finetuned_model``, verified."""
    from ecgssl.eval.finetune import FineTuneModule
    from ecgssl.models import create_encoder

    meta, state, weights = _read_model_pair(path, FINETUNED_FORMAT, device)
    spec = meta["encoder_spec"]
    encoder = create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])
    module = FineTuneModule(encoder, int(meta["n_outputs"]), task=meta["task"],
                            freeze_encoder=bool(meta["freeze_encoder"]), leads=meta["leads"],
                            embed_dim=int(meta["embed_dim"]), class_names=meta["class_names"])
    check_state_fits(module, state, weights, _model_stem(path).with_suffix(".json"),
                     "fine-tuned model")
    module.load_state_dict(state)
    return module.to(device).eval(), meta


def delineate(signal: np.ndarray, fs: float, leads: Sequence[str] | str,
              model: str | Path | None = None, missing_leads: str = "error",
              lead_aliases: dict[str, str] | None = None,
              postprocess: dict | None = None) -> dict[str, list[dict[str, float]]]:
    """P/QRS/T waves of each lead of one ECG.

    Args:
        signal: (T,) or (L, T) millivolts at ``fs`` Hz, rows named by ``leads``.
        model: None (default) = the bundled single-channel delineator trained on all of LUDB
            (``ecgssl.delineation``): any lead or lead subset, any length >= 1 s, any rate
            >= 100 Hz, each lead delineated on its own over overlapping windows stitched into
            one wave list. Or the path of a delineator of that format, or of a segmentation
            model saved by ``save_segmentation_model`` (``ecgssl demo`` writes one; it keeps its
            own spec: its leads, rate and crop to ``n_samples``).
        lead_aliases: {name in the record: lead name}, applied before anything else.
        postprocess: override the delineator's post-processing (``delineation.rules``).
    Returns:
        lead -> list of ``{"wave": "P"|"QRS"|"T", "onset_s", "offset_s"}`` in seconds from the
        start of the input (offset = the wave's last sample).
    """
    from ecgssl.delineation.infer import as_leads, delineate_signal, lead_names
    from ecgssl.delineation.model import is_delineator

    if model is None or is_delineator(model):
        return delineate_signal(signal, fs, leads, model, lead_aliases, postprocess)
    from ecgssl.eval.segmentation import predict_waves

    x, names = as_leads(signal, leads)
    seg, spec = load_segmentation_model(model)
    enc = Encoder(seg, spec)
    # Every window of the record through the model's own preprocessing (``prepare``'s path);
    # a wave is kept from the window it starts in, so the end-aligned last window, which
    # overlaps its predecessor, adds only the waves after that predecessor's end.
    prepared = enc.prepare_windows(x, fs, lead_names(names, lead_aliases), missing_leads)
    rate = float(prepared.fs)
    out_leads = prepared.leads
    scored = set(spec["scored_leads"])
    result: dict[str, list[dict[str, float]]] = {lead: [] for lead in out_leads if lead in scored}
    covered_until = np.zeros(len(out_leads))  # seconds up to which each lead has its waves
    for w in range(len(prepared.x)):
        _, waves = predict_waves(seg, prepared.x[w], rate, leads=out_leads)
        start_s = float(prepared.starts_s[w])
        valid_end = float(prepared.valid_spans[w][1])
        for li, (lead, lead_waves) in enumerate(zip(out_leads, waves)):
            if lead not in scored or not prepared.present[w, li]:
                continue
            for code, on, off in lead_waves:
                if on >= valid_end:
                    continue  # in the zero padding after the record's end
                onset_s = start_s + float(on) / rate
                if onset_s < covered_until[li]:
                    continue
                result[lead].append({"wave": WAVE_NAMES[int(code)], "onset_s": onset_s,
                                     "offset_s": start_s + float(off) / rate})
            covered_until[li] = start_s + valid_end / rate
    return result


def detect_rpeaks(signal: np.ndarray, fs: float, leads: Sequence[str] | str | None = None,
                  method: str | None = None) -> np.ndarray:
    """R-peak sample indices (n,) int64 of a (T,) or (L, T) mV ECG at ``fs`` Hz.

    ``method``: a detector of ``ecgssl.delineation.rpeaks.DETECTORS`` (ours, the delineator's,
    neurokit2's); default the one ``benchmarks/delineation_unseen.py`` found best.
    """
    from ecgssl.delineation.rpeaks import detect_rpeaks as detect

    return detect(signal, fs, leads, method)


# ------------------------------------------------------------------------------ records


def read_records(path: str | Path, kind: str | None = None, **options) -> Iterator[Record]:
    """Every record of a supported source (LUDB, PTB-XL, CinC, WFDB, long records, a folder)."""
    from ecgssl.io import open_source

    yield from open_source(path, kind=kind, **options)


def describe_checkpoint(path: str | Path) -> str:
    """Human-readable summary of an encoder or segmentation checkpoint (``ecgssl info``)."""
    path = Path(path)
    from ecgssl.delineation.model import describe_delineator, is_delineator

    if is_delineator(path):
        return describe_delineator(path)
    pair = _model_stem(path).with_suffix(".json")
    if path.suffix in (".safetensors", ".json") and pair.is_file() and \
            read_json_file(pair).get("format") == SEGMENTATION_FORMAT:
        _, spec = load_segmentation_model(path)
        kind = "segmentation model"
    elif path.suffix == ".pt" and path.exists():
        try:
            _, spec = load_segmentation_model(path)
            kind = "segmentation model"
        except SpecMismatchError:
            spec = load_encoder(path).spec
            kind = f"encoder ({spec.get('foundation', {}).get('title', 'original ECG-JEPA')})"
    else:
        enc = load_encoder(path)
        spec, kind = enc.spec, "encoder"
    pre = spec["preprocessing"]
    overrides = json.dumps(spec["encoder"].get("overrides", {}))
    lines = [f"{kind} {path}",
             f"  architecture: {spec['encoder']['name']} {overrides}",
             f"  expects: {pre['fs']:g} Hz, {pre['n_samples']} samples, leads "
             f"{', '.join(pre['leads'])}, units {pre.get('units', 'mV')}",
             f"  filters: {pre.get('filters')}  normalisation: {pre.get('normalisation')}"]
    training = spec.get("training")
    if training and "licence" in training:  # a foundation model: terms and data first
        terms = {True: "", False: "  (NON-COMMERCIAL)",
                 None: "  (commercial use: not stated for the weights)"}
        lines.append(f"  licence: {training['licence']}{terms[training['commercial_use']]}")
        lines.append("  pretraining data: " + "; ".join(
            f"{d['database']} ({d.get('note', '')})" for d in training["pretraining_data"]))
        lines.append(f"  applies itself: {json.dumps(pre.get('encoder_applies'))}")
    if training:
        lines.append(f"  training: {json.dumps(training)[:300]}")
    return "\n".join(lines)

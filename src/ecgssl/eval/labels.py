"""Labelled stores with unlabelled windows: refused, or scored as negatives when told so.

A multi-label task reads a window without any label as negative for every label. That is
right only when "no label" means "none of these" (e.g. a CinC record whose Dx codes are all
unscored), and wrong when the labels are merely unknown (a labels file covering some records).
``evaluate`` cannot tell the two apart, so it refuses unless ``unlabelled="negative"`` says so,
and then counts them in the report.
"""

from __future__ import annotations

import numpy as np

from ecgssl.errors import ECGDataError

UNLABELLED_POLICIES = ("error", "negative")


def unlabelled_windows(store) -> np.ndarray:
    """Indices of the windows with no label, in a store that has labels (else empty)."""
    labels = np.asarray(store.labels)
    if labels.ndim != 2 or labels.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(labels.sum(axis=1) == 0)


def check_unlabelled(store, policy: str = "error") -> str | None:
    """Refuse (``"error"``) or describe (``"negative"``) the unlabelled windows of ``store``.

    Returns:
        None when every window has a label; else, with ``"negative"``, the note for the report.
    Raises:
        ECGDataError: ``"error"`` and some windows carry no label (counts, records, the fix).
    """
    if policy not in UNLABELLED_POLICIES:
        raise ValueError(f"unlabelled must be one of {UNLABELLED_POLICIES}, got {policy!r}")
    idx = unlabelled_windows(store)
    if len(idx) == 0:
        return None
    manifest = store.manifest
    column = "parent_id" if "parent_id" in manifest else "record_id"
    records = manifest[column].astype(str).to_numpy()[idx]
    unique = list(dict.fromkeys(records.tolist()))
    what = (f"{len(idx)} of {len(store)} windows ({len(unique)} records, e.g. "
            f"{', '.join(unique[:5])}) carry no label")
    if policy == "error":
        raise ECGDataError(str(store.path), f"{what}; classification would score them as "
                           "negatives for every label. Give them labels (prepare --labels FILE), "
                           "leave them out of the store, or score them as negatives knowingly "
                           "with --set unlabelled=negative")
    return f"{what}: scored as negatives for every label (unlabelled=negative)"

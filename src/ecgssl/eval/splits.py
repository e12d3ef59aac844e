"""Train / validation / test splits: by patient, seeded, multi-label stratified.

All functions return row indices into the store (``manifest.csv`` order). No patient ever lands in
two parts of one split: records are grouped by ``patient_id`` (records without a patient id are
their own group) and whole groups are assigned.

Stratification: iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML 2011) applied to
*patient groups* instead of single records. Each part has a desired number of records and a
desired number of positives per label (its share of the totals). Labels are processed from the
rarest upward; each group carrying the current label goes to the part that still lacks the most
positives of that label (ties: the part lacking the most records, then random). Groups without
any label fill the parts that still lack the most records. This keeps rare classes present in
every part where the data allows, which a plain random split does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "Split",
    "ptbxl_standard_split",
    "stratified_group_assign",
    "patient_kfold",
    "stratified_split",
    "source_holdout_split",
    "low_label_subsets",
    "check_disjoint_patients",
]


@dataclass(frozen=True)
class Split:
    """Row indices (int64, sorted) of the three parts of one split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str = ""

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def to_dict(self) -> dict:
        return {"name": self.name, "train": self.train.tolist(), "val": self.val.tolist(),
                "test": self.test.tolist()}


def _idx(a) -> np.ndarray:
    return np.sort(np.asarray(a, dtype=np.int64))


def _group_ids(patient_ids: Sequence | None, n: int) -> np.ndarray:
    """(n,) int group index per record; missing patient ids become singleton groups."""
    if patient_ids is None:
        return np.arange(n)
    pids = pd.Series(list(patient_ids), dtype=object)
    if len(pids) != n:
        raise ValueError(f"{len(pids)} patient ids for {n} records")
    missing = pids.isna() | (pids.astype(str).str.strip() == "")
    keys = pids.astype(str).where(~missing, "__record_" + pd.Series(np.arange(n)).astype(str))
    return pd.factorize(keys)[0]


def check_disjoint_patients(patient_ids: Sequence, split: Split) -> None:
    """Raise ValueError naming a patient found in two parts of ``split``."""
    pids = np.asarray([str(p) for p in patient_ids], dtype=object)
    parts = {"train": split.train, "val": split.val, "test": split.test}
    seen: dict[str, str] = {}
    for part, idx in parts.items():
        for pid in set(pids[idx]):
            if pid in ("", "nan", "None"):
                continue
            if pid in seen and seen[pid] != part:
                raise ValueError(f"patient {pid!r} is in both {seen[pid]} and {part}")
            seen[pid] = part


def ptbxl_standard_split(
    manifest: pd.DataFrame,
    fold_column: str = "strat_fold",
    train_folds: Sequence[int] = tuple(range(1, 9)),
    val_folds: Sequence[int] = (9,),
    test_folds: Sequence[int] = (10,),
    check_patients: bool = True,
) -> Split:
    """The PTB-XL recommended split (Strodthoff et al. 2021): folds 1-8 / 9 / 10.

    Args:
        manifest: the store manifest (one row per window) with a ``strat_fold`` column.
        check_patients: verify no patient spans two parts (PTB-XL folds are patient-wise; a
            violation means the manifest was built wrong).
    Rows whose fold is in none of the three lists (or missing) are left out.
    """
    if fold_column not in manifest.columns:
        raise ValueError(
            f"manifest has no {fold_column!r} column (columns: {list(manifest.columns)})")
    sets = [set(train_folds), set(val_folds), set(test_folds)]
    if sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]:
        raise ValueError(f"fold lists overlap: {train_folds}, {val_folds}, {test_folds}")
    folds = pd.to_numeric(manifest[fold_column], errors="coerce").to_numpy()
    split = Split(
        train=_idx(np.flatnonzero(np.isin(folds, list(sets[0])))),
        val=_idx(np.flatnonzero(np.isin(folds, list(sets[1])))),
        test=_idx(np.flatnonzero(np.isin(folds, list(sets[2])))),
        name="ptbxl_standard",
    )
    for part, idx in zip(("train", "val", "test"), (split.train, split.val, split.test)):
        if len(idx) == 0:
            raise ValueError(f"PTB-XL split: no records in the {part} folds")
    if check_patients and "patient_id" in manifest.columns:
        check_disjoint_patients(manifest["patient_id"].tolist(), split)
    return split


def stratified_group_assign(
    groups: np.ndarray,
    labels: np.ndarray | None,
    proportions: Sequence[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Assign whole groups to parts with the given proportions, multi-label stratified.

    Args:
        groups: (N,) int group id per record (e.g. from patient ids).
        labels: (N, K) binary or None (then only sizes are balanced).
        proportions: desired fraction of records per part (normalised to sum 1).
        rng: source of randomness (shuffles the groups and breaks ties).
    Returns:
        (N,) int part index per record.
    """
    props = np.asarray(proportions, dtype=np.float64)
    if props.ndim != 1 or len(props) < 1 or (props < 0).any() or props.sum() <= 0:
        raise ValueError(f"invalid proportions {proportions!r}")
    props = props / props.sum()
    groups = np.asarray(groups)
    n = len(groups)
    uniq, g_of_rec = np.unique(groups, return_inverse=True)
    n_groups = len(uniq)
    g_size = np.bincount(g_of_rec, minlength=n_groups).astype(np.float64)
    if labels is None:
        g_lab = np.zeros((n_groups, 0))
    else:
        lab = np.asarray(labels, dtype=np.float64)
        if lab.ndim != 2 or lab.shape[0] != n:
            raise ValueError(f"labels must be ({n}, K), got {lab.shape}")
        g_lab = np.zeros((n_groups, lab.shape[1]))
        np.add.at(g_lab, g_of_rec, lab)
    need_size = props * n
    need_lab = props[:, None] * g_lab.sum(axis=0)[None, :]  # (P, K)
    part_of_group = np.full(n_groups, -1)
    # Random visiting order, so ties between equal groups are seeded rather than by id.
    perm = rng.permutation(n_groups)
    remaining = np.zeros(n_groups, dtype=bool)
    remaining[perm] = True

    def place(g: int, k: int | None) -> None:
        if k is None:
            order = np.lexsort((rng.random(len(props)), -need_size))
        else:
            order = np.lexsort((rng.random(len(props)), -need_size, -need_lab[:, k]))
        p = int(order[0])
        part_of_group[g] = p
        need_size[p] -= g_size[g]
        need_lab[p] -= g_lab[g]
        remaining[g] = False

    while True:
        rem_lab = g_lab[remaining].sum(axis=0) if remaining.any() else np.zeros(g_lab.shape[1])
        active = np.flatnonzero(rem_lab > 0)
        if active.size == 0:
            break
        k = int(active[np.argmin(rem_lab[active])])  # rarest remaining label first
        for g in perm:
            if remaining[g] and g_lab[g, k] > 0:
                place(int(g), k)
    for g in perm:
        if remaining[g]:
            place(int(g), None)
    return part_of_group[g_of_rec]


def patient_kfold(
    n_folds: int,
    patient_ids: Sequence | None = None,
    labels: np.ndarray | None = None,
    *,
    n_records: int | None = None,
    val_fraction: float = 0.125,
    seed: int = 0,
) -> list[Split]:
    """k-fold cross-validation by patient; validation carved from the training folds.

    Fold i tests on part i. The other parts are split again (same stratifier, seeded) into
    training and validation with ``val_fraction`` of their records in validation. Every record is
    in exactly one test fold.

    Args:
        n_folds: k >= 2.
        patient_ids: (N,) patient per record; None = each record its own patient (LUDB).
        labels: (N, K) binary for multi-label stratification, or None.
        n_records: N when neither patient_ids nor labels is given.
        val_fraction: share of the non-test records used for validation (0 < f < 1).
        seed: makes the folds reproducible.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = _n_records(patient_ids, labels, n_records)
    groups = _group_ids(patient_ids, n)
    if len(np.unique(groups)) < n_folds:
        raise ValueError(f"{len(np.unique(groups))} patients cannot fill {n_folds} folds")
    rng = np.random.default_rng(seed)
    lab = None if labels is None else np.asarray(labels)
    fold = stratified_group_assign(groups, lab, [1.0] * n_folds, rng)
    splits = []
    for i in range(n_folds):
        test = np.flatnonzero(fold == i)
        rest = np.flatnonzero(fold != i)
        sub = stratified_group_assign(
            groups[rest], None if lab is None else lab[rest], [1 - val_fraction, val_fraction], rng
        )
        splits.append(Split(train=_idx(rest[sub == 0]), val=_idx(rest[sub == 1]),
                            test=_idx(test), name=f"fold{i}"))
    return splits


def _n_records(patient_ids, labels, n_records) -> int:
    if patient_ids is not None:
        return len(patient_ids)
    if labels is not None:
        return len(labels)
    if n_records is None:
        raise ValueError("give patient_ids, labels or n_records")
    return int(n_records)


def stratified_split(
    patient_ids: Sequence | None = None,
    labels: np.ndarray | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    sources: Sequence[str] | None = None,
    n_records: int | None = None,
    seed: int = 0,
) -> Split:
    """Seeded train/val/test split by patient for data without official folds (CinC-type).

    Args:
        fractions: (train, val, test) record fractions.
        sources: optional (N,) source name per record: the sources are then stratified too
            (each part gets its share of every source), as one-hot extra label columns.
    """
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {fractions!r}")
    n = _n_records(patient_ids, labels, n_records)
    strat = None if labels is None else np.asarray(labels, dtype=np.float64)
    if sources is not None:
        if len(sources) != n:
            raise ValueError(f"{len(sources)} sources for {n} records")
        codes, _ = pd.factorize(pd.Series(list(sources), dtype=object).astype(str))
        onehot = np.eye(codes.max() + 1)[codes]
        strat = onehot if strat is None else np.concatenate([strat, onehot], axis=1)
    part = stratified_group_assign(_group_ids(patient_ids, n), strat, fractions,
                                   np.random.default_rng(seed))
    return Split(train=_idx(np.flatnonzero(part == 0)), val=_idx(np.flatnonzero(part == 1)),
                 test=_idx(np.flatnonzero(part == 2)), name=f"stratified_seed{seed}")


def source_holdout_split(
    sources: Sequence[str],
    test_sources: Sequence[str],
    patient_ids: Sequence | None = None,
    labels: np.ndarray | None = None,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """Out-of-distribution split: every record of ``test_sources`` is test; the remaining
    records are split by patient into train/val (stratified, seeded)."""
    src = np.asarray([str(s) for s in sources])
    unknown = set(test_sources) - set(src)
    if unknown:
        raise ValueError(f"test sources {sorted(unknown)} not among {sorted(set(src))}")
    test = np.flatnonzero(np.isin(src, list(test_sources)))
    rest = np.flatnonzero(~np.isin(src, list(test_sources)))
    if rest.size == 0:
        raise ValueError("no records left for training")
    groups = _group_ids(None if patient_ids is None else list(patient_ids), len(src))
    lab = None if labels is None else np.asarray(labels)[rest]
    part = stratified_group_assign(groups[rest], lab, [1 - val_fraction, val_fraction],
                                   np.random.default_rng(seed))
    return Split(train=_idx(rest[part == 0]), val=_idx(rest[part == 1]), test=_idx(test),
                 name="holdout_" + "+".join(test_sources))


def low_label_subsets(
    train_idx: np.ndarray,
    labels: np.ndarray,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    n_subsets: int = 3,
    seed: int = 0,
) -> dict[float, list[np.ndarray]]:
    """Seeded subsets of the training records for low-label experiments.

    For each of ``n_subsets`` seeds one ordering of the training records is drawn: first one
    record for each class that has positives (rarest class first, a random positive record,
    skipping classes already covered), then all other records in random order. The subset for
    fraction f is the first ``max(1, round(f * n_train))`` records of that ordering. Hence

    - every class with any training positive keeps at least one positive whenever the subset is
      at least as large as the cover (otherwise the rarest classes are kept first);
    - subsets of one seed are nested (1 % inside 10 % inside 100 %);
    - apart from the cover, class prevalence is preserved in expectation (simple random sample).

    Args:
        train_idx: (n_train,) store rows of the training part.
        labels: (N, K) labels of the whole store (indexed with ``train_idx``).
        fractions: each in (0, 1].
    Returns:
        {fraction: [subset indices (sorted store rows) for each seed]}.
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if train_idx.size == 0:
        raise ValueError("empty training set")
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions must be in (0, 1], got {f}")
    y = np.asarray(labels)[train_idx].astype(bool)
    n = len(train_idx)
    out: dict[float, list[np.ndarray]] = {float(f): [] for f in fractions}
    for s in range(n_subsets):
        rng = np.random.default_rng([seed, s])
        covered = np.zeros(n, dtype=bool)
        cover: list[int] = []
        pos_counts = y.sum(axis=0)
        for k in np.argsort(pos_counts, kind="stable"):
            if pos_counts[k] == 0 or (y[covered, k]).any():
                continue
            pick = int(rng.choice(np.flatnonzero(y[:, k])))
            covered[pick] = True
            cover.append(pick)
        rest = rng.permutation(np.flatnonzero(~covered))
        order = np.concatenate([np.asarray(cover, dtype=np.int64), rest])
        for f in fractions:
            m = max(1, int(round(f * n)))
            out[float(f)].append(np.sort(train_idx[order[:m]]))
    return out

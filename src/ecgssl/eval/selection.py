"""Model selection on validation data: which weights and pooling to evaluate, chosen without the
test store's labels.

A pretraining run yields several candidates (the online encoder, for momentum methods the EMA
target, each with every feature pooling). ``validation_probe`` scores a candidate's frozen
features on the windows of a *validation* store (by default: every window of the pretraining
store not from the test source), and ``choose`` picks one candidate per method among the runs
that did not collapse (``ecgssl.train.collapse``).

Probes (all on standardised frozen features, the same fixed probe for every encoder, nothing
tuned per encoder):

- ``repeated_cv_auroc``: multi-label logistic regression (C ``VAL_C``), out-of-fold scores of
  ``VAL_REPEATS`` shuffled 5-fold splits; the selection score when ``score_source`` has windows
  (one record per patient there, so plain K-fold is grouped by patient; checked);
- ``grouped_cv_auroc``: one binary label with GroupKFold by patient (reported only);
- ``grouped_cv_r2``: ridge regression of the store's rhythm features (reported only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecgssl.methods.diagnostics import effective_rank

VAL_MIN_POSITIVES = 5  # classes with fewer positives (or negatives) are not scored
VAL_REPEATS = 5  # shuffled 5-fold CV repeated: AUROC over ~50 records is noisy
VAL_C = 0.1  # fixed: the same probe for every encoder


def store_features(encoder, store, rows: np.ndarray, seed: int | None = None) -> np.ndarray:
    """(len(rows), pooled_dim) float32 pooled features of store windows ``rows`` for a loaded
    ``ecgssl.api.Encoder`` (its spec's leads, by name where the encoder takes names);
    ``seed``: a random-initialised encoder of the same spec instead."""
    from ecgssl.eval.embeddings import compute_embeddings
    from ecgssl.eval.tasks.base import LeadView, random_init_factory
    from ecgssl.models.registry import takes_lead_names

    module = encoder.module if seed is None else random_init_factory(encoder.spec, seed)().eval()
    leads = list(encoder.spec["preprocessing"]["leads"])
    view = LeadView(store, leads)
    signals = np.stack([view.signals[int(i)] for i in rows]).astype(np.float32)
    return compute_embeddings(module, signals, batch_size=32,
                              leads=leads if takes_lead_names(module) else None, progress=False)


def _logistic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=VAL_C, max_iter=2000))


def repeated_cv_auroc(feats: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Multi-label linear probe, out-of-fold over ``VAL_REPEATS`` shuffled 5-fold splits.

    Args:
        feats: (n, D) frozen features; labels: (n, K) 0/1; names: the K label names.
    Returns:
        ``{"macro_auroc", "macro_auroc_std" (over repeats), "classes", "n"}``; the AUROC of a
        repeat is the mean over classes with >= ``VAL_MIN_POSITIVES`` positives and negatives.
        A training fold without positives predicts the prevalence.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold

    pos = labels.sum(0)
    keep = np.flatnonzero((pos >= VAL_MIN_POSITIVES) & (len(labels) - pos >= VAL_MIN_POSITIVES))
    if not len(keep):
        raise ValueError(f"no label has >= {VAL_MIN_POSITIVES} positives and negatives among "
                         f"{len(labels)} windows: nothing to score")
    per_repeat = []
    for rep in range(VAL_REPEATS):
        oof = np.zeros((len(labels), len(keep)))
        for tr, te in KFold(5, shuffle=True, random_state=rep).split(feats):
            for j, k in enumerate(keep):
                y = labels[tr, k]
                if y.min() == y.max():
                    oof[te, j] = y.mean()
                    continue
                clf = _logistic().fit(feats[tr], y)
                oof[te, j] = clf.predict_proba(feats[te])[:, 1]
        per_repeat.append(np.mean([roc_auc_score(labels[:, k], oof[:, j])
                                   for j, k in enumerate(keep)]))
    return {"macro_auroc": float(np.mean(per_repeat)),
            "macro_auroc_std": float(np.std(per_repeat, ddof=1)),
            "classes": [names[k] for k in keep], "n": int(len(labels))}


def grouped_cv_auroc(feats: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """AUROC of out-of-fold logistic scores of one 0/1 label, 5-fold GroupKFold by ``groups``."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for tr, te in GroupKFold(5).split(feats, y, groups):
        oof[te] = _logistic().fit(feats[tr], y[tr]).predict_proba(feats[te])[:, 1]
    return float(roc_auc_score(y, oof))


def grouped_cv_r2(feats: np.ndarray, target: np.ndarray, groups: np.ndarray) -> list[float]:
    """R^2 per target column of out-of-fold ridge predictions (alpha by inner CV), 5-fold
    GroupKFold by ``groups``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.zeros_like(target)
    for tr, te in GroupKFold(5).split(feats, target, groups):
        reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        pred[te] = reg.fit(feats[tr], target[tr]).predict(feats[te])
    return [float(r2_score(target[:, j], pred[:, j])) for j in range(target.shape[1])]


def validation_probe(encoder, store, seed: int | None = None, *, exclude_source: str = "ludb",
                     score_source: str = "cinc2021-sample",
                     binary_source: str = "cpsc2021-sample",
                     binary_label: str = "rhythm:AFIB", min_windows: int = 20) -> dict[str, Any]:
    """Scores of an encoder's frozen features on the validation windows of ``store``: every
    window whose source is not ``exclude_source`` (the test source).

    Returns:
        ``{"n_windows", "feat_erank"`` (effective rank of the features),
        ``"cinc_auroc", "cinc_auroc_std", "cinc_classes", "cinc_n"`` (``repeated_cv_auroc`` on
        the ``score_source`` windows, when it has >= ``min_windows``),
        ``"af_auroc", "af_n"`` (``grouped_cv_auroc`` of ``binary_label`` on the
        ``binary_source`` windows; reported only), ``"rhythm_r2", "rhythm_r2_per_feature"``
        (``grouped_cv_r2`` of the store's rhythm features; reported only), ``"score"``: the
        selection score, ``cinc_auroc`` (NaN without a score source)}``.
    Raises:
        ValueError: the score source's windows share patients (its K-fold would not be grouped).
    """
    man = store.manifest
    rows = np.flatnonzero((man["source"] != exclude_source).to_numpy())
    feats = store_features(encoder, store, rows, seed)
    groups = man["patient_id"].astype(str).to_numpy()[rows]
    names = list(store.label_names)
    labels = np.asarray(store.labels)[rows]
    source = man["source"].to_numpy()[rows]
    out: dict[str, Any] = {"n_windows": int(len(rows)), "feat_erank": effective_rank(feats)}

    scored = source == score_source
    if scored.sum() >= min_windows:
        if len(set(groups[scored])) != scored.sum():
            raise ValueError(f"{score_source} windows share patients: the validation probe "
                             "needs one window per patient (plain K-fold)")
        c = repeated_cv_auroc(feats[scored], labels[scored].astype(int), names)
        out.update({"cinc_auroc": c["macro_auroc"], "cinc_auroc_std": c["macro_auroc_std"],
                    "cinc_classes": c["classes"], "cinc_n": c["n"]})
    binary = source == binary_source
    if binary_label in names and binary.sum() >= min_windows:
        y = labels[binary, names.index(binary_label)].astype(int)
        out["af_auroc"] = grouped_cv_auroc(feats[binary], y, groups[binary])
        out["af_n"] = [int(y.sum()), int(len(y) - y.sum())]
    if (Path(store.path) / "features.npy").exists():
        r2 = grouped_cv_r2(feats, np.asarray(store.features)[rows], groups)
        out["rhythm_r2"] = float(np.mean(r2))
        out["rhythm_r2_per_feature"] = dict(zip(store.config.get("feature_names", []), r2))
    out["score"] = out.get("cinc_auroc", float("nan"))
    return out


def choose(candidates: dict[str, dict], group: str = "method") -> dict[str, str]:
    """One candidate per ``group`` value: the highest ``["validation"]["score"]`` among the
    candidates not ``["collapsed"]`` (all of them if every one collapsed).

    Args:
        candidates: key -> ``{group: ..., "collapsed": bool, "validation": {"score": float}}``.
    Returns:
        group value -> chosen key, in the order groups first appear. NaN scores never win
        against a finite one.
    """
    def score(key: str) -> float:
        s = candidates[key]["validation"]["score"]
        return float("-inf") if s is None or not np.isfinite(s) else float(s)

    chosen = {}
    for value in dict.fromkeys(c[group] for c in candidates.values()):
        runs = [k for k, c in candidates.items() if c[group] == value]
        ok = [k for k in runs if not candidates[k]["collapsed"]] or runs
        chosen[value] = max(ok, key=score)
    return chosen


def score_candidates(run_dir: str | Path, store, pools=("mean",), random_cache=None,
                     probe=validation_probe) -> dict[str, dict]:
    """The candidates of one finished pretraining run, each scored by ``probe``.

    Candidates: the exported encoder (key ``<run>``) and, for a momentum method, its EMA target
    (``<run>/target``, exported by ``ecgssl.train.export.export_target_encoder``), each with
    every pooling in ``pools`` (key suffix `` [meanmax]``). A random-initialised encoder of each
    architecture and pooling (seed 0) is scored once per ``random_cache`` (a dict shared
    across runs, keyed by the encoder spec).

    Returns:
        key -> ``{"validation", "validation_random_init", "validation_s", "arch", "run_dir",
        "weights", "pool"}``.
    """
    import json
    import time

    from ecgssl.api import load_encoder
    from ecgssl.eval.tasks.base import arch_label
    from ecgssl.train.export import export_target_encoder

    run_dir = Path(run_dir)
    random_cache = {} if random_cache is None else random_cache
    weights = [(run_dir.name, run_dir, "encoder")]
    try:
        weights.append((f"{run_dir.name}/target", export_target_encoder(run_dir),
                        "EMA target encoder"))
    except KeyError:  # the checkpoint has no EMA copy: not a momentum method
        pass
    out = {}
    for key, weights_dir, title in weights:
        for pool in pools:
            t = time.perf_counter()
            enc = load_encoder(weights_dir, pool=pool)
            spec_key = json.dumps(enc.spec["encoder"], sort_keys=True, default=str)
            if spec_key not in random_cache:  # its random-init twin pools the same way
                random_cache[spec_key] = probe(enc, store, seed=0)
            out[key if pool == "mean" else f"{key} [{pool}]"] = {
                "validation": probe(enc, store),
                "validation_random_init": random_cache[spec_key],
                "validation_s": time.perf_counter() - t, "arch": arch_label(enc.spec),
                "run_dir": str(weights_dir), "weights": title, "pool": pool}
    return out


def candidate_table(candidates: dict[str, dict], method_title=str) -> list[str]:
    """Markdown lines: every candidate (entries of ``score_candidates`` with the run's
    ``"method"``, ``"train"``, ``"summary"``, ``"collapse_keys"``, ``"collapsed"``,
    ``"collapse_reason"``, ``"chosen"``), then each architecture's random-init row once."""
    from ecgssl.eval.report import format_value

    def f(v, digits=3):
        return format_value(v, digits=digits)

    def pm(v):
        return format_value(v.get("cinc_auroc"), std=v.get("cinc_auroc_std"))

    lines = ["| run | method | weights | steps (epochs) | wall s | loss start -> end | spread "
             "start -> end | collapsed | feat erank | val CinC AUROC | val AF AUROC | val "
             "rhythm R² | chosen |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    shown = set()
    for name, r in candidates.items():
        t, sm, v = r["train"], r["summary"], r["validation"]
        spread = "; ".join(f"{k.split('/')[-1]} {f(x['start'])} -> {f(x['end'])}"
                           for k, x in sm["collapse"].items() if k in r["collapse_keys"])
        pool = ", mean+max pooled" if r.get("pool") == "meanmax" else ""
        lines.append(f"| {name} | {method_title(r['method'])} | {r.get('weights', '')}{pool} | "
                     f"{t['steps']} ({t['epochs']}) | {t['wall_s']:.0f}"
                     f"{' (earlier run, reused)' if t.get('reused') else ''} | "
                     f"{f(sm['loss_start'])} -> {f(sm['loss_end'])} | {spread} | "
                     f"{'yes: ' + r['collapse_reason'] if r['collapsed'] else 'no'} | "
                     f"{f(v.get('feat_erank'), 1)} | {pm(v)} | {f(v.get('af_auroc'))} | "
                     f"{f(v.get('rhythm_r2'))} | {'**yes**' if r['chosen'] else ''} |")
        if r["arch"] not in shown:
            shown.add(r["arch"])
            rv = r["validation_random_init"]
            lines.append(f"| random-init {r['arch']} | | | | | | | | "
                         f"{f(rv.get('feat_erank'), 1)} | {pm(rv)} | {f(rv.get('af_auroc'))} "
                         f"| {f(rv.get('rhythm_r2'))} | |")
    return lines

"""Task plug-ins: the registry, a task added in one class, and the probe's seed spread."""

from typing import ClassVar

import pytest

from ecgssl.eval import tasks as task_registry
from ecgssl.eval.suite import SuiteConfig, run_suite
from ecgssl.eval.tasks import create_task, list_tasks, register_task
from ecgssl.eval.tasks.base import Task
from ecgssl.eval.tasks.probe import label_families


def test_builtin_tasks_in_run_order():
    assert list_tasks()[:4] == ["probe", "lowlabel", "regression", "segmentation"]
    assert create_task("probe") is not create_task("probe")  # one instance per suite run
    with pytest.raises(KeyError, match="unknown task"):
        create_task("nope")
    with pytest.raises(ValueError, match="name"):
        register_task(type("Nameless", (Task,), {}))


class _RowCount(Task):
    """A minimal plug-in: the pooled feature length of every frozen row."""

    name: ClassVar[str] = "rowcount_test"
    uses_features = True

    def rows(self, ctx):
        return ctx.frozen_rows

    def evaluate(self, ctx, row):
        return {row.name: int(ctx.features[row.name].shape[1])}

    def compare(self, ctx, scored):
        return {name: {"vs": "itself"} for name in scored}

    def report(self, ctx, scored, paired):
        ctx.report.add_text("Row widths", "\n".join(f"- {k}: {v}" for k, v in scored.items()))
        return {"rowcount_test": scored, "rowcount_paired": paired}


@pytest.fixture
def plugin():
    register_task(_RowCount)
    yield _RowCount
    task_registry._REGISTRY.pop(_RowCount.name)


def test_a_registered_task_runs_in_the_suite(ludb40, plugin, tmp_path):
    store, enc, _ = ludb40
    assert list_tasks()[-1] == plugin.name
    cfg = SuiteConfig(tasks=[plugin.name], n_folds=3, supervised=False, plots=False,
                      paired_boot=10)
    res = run_suite({"cnn": enc}, store, tmp_path, cfg, progress=False)
    assert res["rowcount_test"] == {"cnn": 16, "random-init resnet1d_small": 16}
    assert res["rowcount_paired"]["cnn"] == {"vs": "itself"}
    assert "Row widths" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="unknown tasks"):
        SuiteConfig(tasks=["rowcount_other"])


def test_label_families_group_by_prefix():
    assert label_families(["rhythm:AF", "axis:left", "rhythm:SR", "other"]) == {
        "rhythm": [0, 2], "axis": [1], "other": [3]}


def test_probe_seed_spread_pairs_each_random_seed(ludb40, tmp_path):
    """The export is the seed-0 initialisation: against seed 0 the difference is exactly 0;
    against seeds 1 and 2 (other weights) it is not, and every family is reported."""
    store, enc, _ = ludb40
    cfg = SuiteConfig(tasks=["probe"], n_folds=3, n_boot=5, min_positives=8, supervised=False,
                      plots=False, paired_boot=30, random_seeds=3, label_families=True)
    res = run_suite({"cnn": enc}, store, tmp_path, cfg, progress=False)
    spread = res["seed_spread"]
    assert spread["n_seeds"] == 3 and list(spread["random"]) == ["resnet1d_small"]
    vs = spread["rows"]["cnn"]["vs_seeds"]
    assert [v["seed"] for v in vs] == [0, 1, 2]
    assert vs[0]["delta"] == 0.0 and vs[0]["ci"] == [0.0, 0.0]
    assert vs[1]["delta"] != 0.0 and vs[2]["delta"] != 0.0
    # Seed 0's random-init AUROC is the twin row's own probe result.
    assert spread["random"]["resnet1d_small"][0] == \
        res["probe"]["random-init resnet1d_small"]["macro_auroc"]["mean"]
    assert set(vs[1]["families"]) == set(spread["families"])
    assert sum(len(v) for v in spread["families"].values()) == len(res["probe_labels"])
    assert "random initialisations" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="random_seeds"):
        SuiteConfig(random_seeds=0)


def test_feature_cache_gives_the_same_results_and_keys_on_leads(ludb40, tmp_path):
    from ecgssl.eval.suite import LeadView
    from ecgssl.eval.tasks.base import Row, row_features

    store, enc, _ = ludb40
    cfg = SuiteConfig(tasks=["probe"], n_folds=3, n_boot=5, min_positives=8, supervised=False,
                      plots=False, paired_boot=0, feature_cache=str(tmp_path / "cache"))
    first = run_suite({"cnn": enc}, store, tmp_path / "a", cfg, progress=False)
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1  # the export and its random-init twin share weights: one entry
    again = run_suite({"cnn": enc}, store, tmp_path / "b", cfg, progress=False)
    assert again["probe"] == first["probe"]
    assert sorted((tmp_path / "cache").glob("*.npy")) == files  # read, not recomputed
    # Other leads are other features: another cache entry.
    row = Row("x", "pretrained", lambda: enc.module, list(enc.spec["preprocessing"]["leads"]),
              False)
    row_features(row, LeadView(store, row.leads[::-1]), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_segmentation_leaves_out_encoders_without_a_time_map():
    """An encoder declaring has_time_features = False (HuBERT-ECG) is not given a decoder:
    the task leaves its row out and names it, instead of failing the whole suite."""
    from types import SimpleNamespace

    from torch import nn

    from ecgssl.eval.tasks.base import Row

    class NoTimeMap(nn.Module):
        has_time_features = False

    rows = [Row("cnn", "pretrained", lambda: nn.Identity(), ["II"], False),
            Row("hubert", "pretrained", NoTimeMap, ["II"], False)]
    task = create_task("segmentation")
    kept = task.rows(SimpleNamespace(rows=rows))
    assert [r.name for r in kept] == ["cnn"] and task.skipped == ["hubert"]

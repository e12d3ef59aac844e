"""A small, complete ``run_suite`` run whose report can be compared across two source trees.

Used to check that a refactoring of the suite changes no result: run it once with each tree on
``PYTHONPATH`` and compare ``report.md`` / ``report.json`` (sections, figures) and the saved
segmentation model byte for byte::

    PYTHONPATH=<old tree>/src python benchmarks/suite_snapshot.py runs/snap_old
    PYTHONPATH=<new tree>/src python benchmarks/suite_snapshot.py runs/snap_new
    diff runs/snap_old/report/report.md runs/snap_new/report/report.md

40 LUDB records, a small ResNet and a small ViT (seeded initialisations exported as
"pretrained"), every task, fine-tuned rows and paired comparisons, one training epoch.
"""

import sys
from pathlib import Path

import torch

from ecgssl.api import load_encoder
from ecgssl.data.leads import LEADS_8
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.eval.suite import SuiteConfig, run_suite
from ecgssl.io import open_source
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder

LUDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ludb"


def main(out: Path) -> int:
    torch.set_num_threads(1)
    store_dir = out / "store"
    if not store_dir.exists():
        prepare_store(open_source(LUDB, checks=None), store_dir, PreprocessConfig(beats=False),
                      workers=0, max_records=40, progress=False)
    store = ECGStore(store_dir)
    torch.manual_seed(0)
    cnn = create_encoder("resnet1d_small", n_leads=8, widths=[8, 8, 8, 8, 16])
    export_encoder(cnn, out / "cnn", store.config, leads=list(LEADS_8))
    torch.manual_seed(1)
    vit = create_encoder("vit_tiny", n_leads=8, width=32, depth=1, num_heads=2)
    export_encoder(vit, out / "vit", store.config, leads=list(LEADS_8))
    encoders = {"cnn": load_encoder(out / "cnn.safetensors"),
                "vit": load_encoder(out / "vit.safetensors")}
    cfg = SuiteConfig(tasks=["probe", "lowlabel", "regression", "segmentation"], n_folds=3,
                      n_boot=20, min_positives=8, plots=True, finetune_pretrained=True,
                      finetune_epochs=1, seg_epochs=1, seg_batch_size=8, seg_folds=[0],
                      paired_boot=50, low_label_fractions=[0.5, 1.0], low_label_subsets=2)
    run_suite(encoders, store, out / "report", cfg, progress=False)
    print(f"report: {out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

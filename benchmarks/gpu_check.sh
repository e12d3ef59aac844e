#!/usr/bin/env bash
# GPU check, for whenever a CUDA GPU is available: one call of at most 9 minutes (the sum of
# the step limits set below; typically less).
#
#   bash benchmarks/gpu_check.sh                        # on the GPU machine
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh   # the same pieces on CPU, tiny sizes
#
# Steps (each under its own time limit; a failing step is recorded and the next one runs):
#   env        nvidia-smi, torch / CUDA / bf16 support
#   throughput benchmarks/throughput.py --device cuda (ECG-JEPA ViT-S/ViT-B, Beat-SSL, loader)
#   compile    benchmarks/throughput.py --compile --device cuda (eager vs train.compile)
#   cropa      benchmarks/cropa_attention.py --device cuda (structured vs dense CroPA)
#   store      a synthetic 12-lead store with beats (benchmarks/sharded_store.py's corpus)
#   pretrain   short DDP-on-one-GPU runs (strategy ddp, devices 1) of the paper ECG-JEPA
#              recipe and Beat-SSL, each in bf16-mixed and 16-mixed (fp16 + gradient scaler)
# Results: benchmarks/results/{throughput_cuda,throughput_compile_cuda,cropa_attention_cuda}.*
# and gpu_check_<device>.json (every step's exit code and time, each run's steps/s and losses);
# with $OUT set (the device tool) they are also packed into $OUT/gpu_check_<device>.tgz.
# On CPU the pretraining runs in 32-true (half precision is refused on CPU) with a tiny ViT, and
# compile is skipped (inductor on a 2-core CPU takes minutes per model; see
# `throughput.py --compile` for the CPU measurement).
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEVICE=${GPU_CHECK_DEVICE:-cuda}
RESULTS=$ROOT/benchmarks/results
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/ecgssl_gpu_check.XXXXXX)}
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$RESULTS" "$WORK"
STEPS=$WORK/steps.csv
: > "$STEPS"

step() {  # step NAME LIMIT_S COMMAND...: run under a time limit, record rc and seconds
  local name=$1 limit=$2 start rc
  shift 2
  echo "== $name (limit ${limit}s): $*"
  start=$(date +%s)
  timeout "$limit" "$@" 2>&1 | tee "$WORK/$name.log" | tail -n 25
  rc=${PIPESTATUS[0]}
  echo "$name,$rc,$(( $(date +%s) - start ))" >> "$STEPS"
  echo "== $name: rc=$rc in $(( $(date +%s) - start ))s"
}

if [ "$DEVICE" = cuda ]; then
  QUICK=(); PRECISIONS=(bf16-mixed 16-mixed); ACCEL=gpu; PRETRAIN_STEPS=20
  JEPA_SIZE=(); WINDOWS=256; T_ENV=30; T_BENCH=120; T_COMPILE=120; T_CROPA=90; T_RUN=35
else
  QUICK=(--quick --threads 1); PRECISIONS=(32-true); ACCEL=cpu; PRETRAIN_STEPS=3
  JEPA_SIZE=(encoder.name=vit_tiny encoder.drop_path=0.0 method.predictor_embed_dim=32
             method.predictor_depth=1 method.predictor_num_heads=4 train.batch_size=4)
  WINDOWS=24; T_ENV=120; T_BENCH=900; T_COMPILE=0; T_CROPA=900; T_RUN=300
fi

step env $T_ENV bash -c "nvidia-smi 2>/dev/null | head -15; $PY -c 'import torch, lightning; \
print(\"torch\", torch.__version__, \"lightning\", lightning.__version__, \"cuda\", \
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"\", \
\"bf16\", torch.cuda.is_available() and torch.cuda.is_bf16_supported())'"

if [ "$DEVICE" = cuda ]; then
  step throughput $T_BENCH $PY benchmarks/throughput.py --device cuda --steps 1 --rounds 2
  step compile $T_COMPILE $PY benchmarks/throughput.py --compile --device cuda \
    --encoder vit_small --batch 32 --steps 5
  step cropa $T_CROPA $PY benchmarks/cropa_attention.py --device cuda --cuda-only --repeats 3 \
    --out "$RESULTS/cropa_attention_cuda.json"
else
  step throughput $T_BENCH $PY benchmarks/throughput.py "${QUICK[@]}"
  step cropa $T_CROPA $PY benchmarks/cropa_attention.py --repeats 1 --threads 1 \
    --out "$WORK/cropa_attention_cpu_check.json"
fi

step store 60 $PY - "$WORK/store" "$WINDOWS" <<'EOF'
import sys
sys.path.insert(0, "benchmarks")
from sharded_store import SyntheticCorpus
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import prepare_store
report = prepare_store(SyntheticCorpus(int(sys.argv[2])), sys.argv[1],
                       PreprocessConfig(fs=250, beats=True), workers=4, progress=False)
print("store", sys.argv[1], report["n_windows"], "windows")
EOF

for precision in "${PRECISIONS[@]}"; do
  # ECG-JEPA, the paper recipe (its store preprocessing check is for real corpora: off here).
  step "pretrain_jepa_$precision" $T_RUN $PY -c "from ecgssl.cli import main; raise SystemExit(main())" \
    pretrain --recipe src/ecgssl/configs/jepa_vitb_paper.yaml --data "$WORK/store" \
    --out "$WORK/run_jepa_$precision" train.accelerator=$ACCEL train.devices=1 \
    train.strategy=ddp train.precision=$precision train.max_steps=$PRETRAIN_STEPS \
    train.max_epochs=null train.warmup_epochs=0 train.log_every_n_steps=1 \
    train.progress_bar=false train.tensorboard=false data.preprocess=null "${JEPA_SIZE[@]}"
  step "pretrain_beatssl_$precision" $T_RUN $PY -c "from ecgssl.cli import main; raise SystemExit(main())" \
    pretrain --recipe src/ecgssl/configs/beatssl_cpu.yaml --data "$WORK/store" \
    --out "$WORK/run_beatssl_$precision" train.accelerator=$ACCEL train.devices=1 \
    train.strategy=ddp train.precision=$precision train.max_steps=$PRETRAIN_STEPS \
    train.warmup_epochs=0 train.log_every_n_steps=1 train.progress_bar=false \
    train.tensorboard=false train.batch_size=8
done

$PY - "$WORK" "$DEVICE" "$RESULTS/gpu_check_$DEVICE.json" <<'EOF'
import csv, json, sys
from pathlib import Path
work, device, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
steps = [{"step": n, "rc": int(rc), "seconds": int(s)}
         for n, rc, s in csv.reader((work / "steps.csv").open())]
runs = {}
for run in sorted(work.glob("run_*")):
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    losses = []
    metrics = run / "metrics.csv"
    if metrics.is_file():
        rows = list(csv.DictReader(metrics.open()))
        losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    runs[run.name] = {"precision": info.get("precision"), "strategy": info.get("strategy"),
                      "world_size": info.get("world_size"), "training": info.get("training"),
                      "first_loss": losses[0] if losses else None,
                      "last_loss": losses[-1] if losses else None, "n_logged": len(losses)}
result = {"device": device, "ok": all(s["rc"] == 0 for s in steps), "steps": steps,
          "pretraining": runs}
out.write_text(json.dumps(result, indent=2, default=str))
print(json.dumps({"ok": result["ok"], "steps": steps}, indent=1))
EOF

if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/gpu_check_$DEVICE.tgz" -C "$ROOT" $(cd "$ROOT" && ls benchmarks/results/*cuda* \
    benchmarks/results/gpu_check_* 2>/dev/null) -C "$WORK" $(cd "$WORK" && ls *.log)
fi

#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the test suite with torch seeing the GPU (training
# tests then run on it: device "auto"), the GPU-only tests, and the engine and training
# benchmarks at reference widths. Logs go to $OUT (default ./gpu-checks/).
#
#   bash bench/run_gpu_checks.sh            # after: pip install -e ".[dev]" on a GPU machine
#
# Each step has its own time limit, so one slow step cannot starve the rest.
set -u
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, say how it ended
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    tail -n "${TAIL:-25}" "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PY - <<'EOF'
import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
for name in ("onnxruntime", "tensorrt"):
    try:
        module = __import__(name)
        extra = module.get_available_providers() if name == "onnxruntime" else ""
        print(name, module.__version__, extra)
    except ImportError as exc:
        print(name, "missing:", exc)
EOF

PARALLEL=$($PY -c "import xdist" 2>/dev/null && echo "-n 8")  # pytest-xdist, where installed
TAIL=40 step tests 200 $PY -m pytest -q -p no:cacheprovider $PARALLEL --durations=12 tests
TAIL=12 step gpu-tests 90 $PY -m pytest -q -p no:cacheprovider -m "gpu or trt" -rA tests
step bench-engines 90 $PY bench/bench_engines.py --reference --iters 30 --stream-seconds 3
step bench-training 110 $PY bench/bench_training.py --device cuda --width 1 --frames 300 \
    --batch 32 --steps 8 --repeat 2 --workers 6 --crop 224 --variants

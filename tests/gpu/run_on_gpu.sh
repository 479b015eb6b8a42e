#!/usr/bin/env bash
# run_on_gpu.sh: the GPU check of the CUDA backend (issue #13), for a machine with an NVIDIA GPU.
#
# On CPUs the CUDA kernels are proven by the emulator (pytest -m cuda_emu, in CI); this script
# confirms them on a real GPU and measures them, in one go (under 8 minutes on one H100):
#   1. installs convforge with its test extra plus the CuPy wheel matching the driver's CUDA
#      major version (cupy-cuda12x or cupy-cuda13x, with [ctk]: NVRTC comes as a wheel);
#   2. pytest -m cuda: every CUDA op x dtype x shape vs the float64 oracle (tests/cuda) and the
#      on-device training tests;
#   3. LeNet-5 trained on the GPU on full MNIST (goal: test accuracy >= 0.99);
#   4. bench/bench_cuda.py --train: conv2d vs cuDNN (TF32 off; goal >= 0.8x on VGG-CIFAR N=64),
#      pooling as % of copy bandwidth, one LeNet-5 training step; prints the table.
# Results land in OUT_DIR (default gpu-run-<date>): pytest.log, lenet5/metrics.json,
# bench_cuda.md, bench_cuda.json, summary.txt (printed at the end).
#
# Usage, from anywhere inside the repository (needs network access to PyPI, MNIST in
# $CONVFORGE_DATA, default ../shared/data):
#   bash tests/gpu/run_on_gpu.sh [OUT_DIR]
# Environment: PYTHON (default python3), VENV (default .venv-gpu; set VENV= to use the current
# environment as it is), EPOCHS (LeNet-5 epochs, default 15: 10 end at 98.8-99.1% on CPUs).
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=${1:-gpu-run-$(date +%Y%m%d-%H%M%S)}
PYTHON=${PYTHON:-python3}
VENV=${VENV-.venv-gpu}
EPOCHS=${EPOCHS:-15}
export CONVFORGE_DATA=${CONVFORGE_DATA:-../shared/data}
mkdir -p "$OUT"
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*"; }

# ---------------------------------------------------------------------------- 1. environment
step "GPU and driver"
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver here" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
cuda_major=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\)\..*/\1/p' | head -n 1)
if [ -z "$cuda_major" ] || [ "$cuda_major" -lt 12 ]; then
  echo "the driver supports CUDA '${cuda_major:-?}'; convforge's CuPy wheels need CUDA >= 12" >&2
  exit 1
fi
cupy_wheel="cupy-cuda${cuda_major}x[ctk]"
echo "driver CUDA major $cuda_major -> $cupy_wheel" | tee -a "$OUT/gpu.txt"

if [ -n "$VENV" ]; then
  step "virtual environment $VENV"
  [ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  PYTHON=python
fi
step "pip install .[test] $cupy_wheel"
"$PYTHON" -m pip install -q --upgrade pip
"$PYTHON" -m pip install -q ".[test]" "$cupy_wheel"
"$PYTHON" - <<'EOF' | tee -a "$OUT/gpu.txt"
import cupy, convforge
from convforge import backends
print("cupy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
      "device", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
reason = backends.unavailable_reason("cuda")
print("convforge cuda backend:", "available" if reason is None else f"UNAVAILABLE: {reason}")
raise SystemExit(0 if reason is None else 1)
EOF

# ---------------------------------------------------------------------------- 2. correctness
step "pytest -m cuda (every CUDA op vs the float64 oracle, training on the device)"
set +e
timeout 300 "$PYTHON" -m pytest -m cuda -q -p no:cacheprovider -rs tests 2>&1 | tee "$OUT/pytest.log"
pytest_rc=${PIPESTATUS[0]}
set -e

# ---------------------------------------------------------------------------- 3. LeNet-5
step "LeNet-5 on MNIST on the GPU, $EPOCHS epochs"
set +e
timeout 240 "$PYTHON" -c "import sys; from convforge.cli import main; sys.exit(main())" \
  train lenet5 --dataset mnist --backend cuda \
  --epochs "$EPOCHS" --batch-size 64 --seed 0 --quiet --out "$OUT/lenet5"
train_rc=$?
set -e
lenet_acc=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['test_accuracy'])" \
  "$OUT/lenet5/metrics.json" 2>/dev/null || echo "n/a")

# ---------------------------------------------------------------------------- 4. benchmarks
step "bench/bench_cuda.py --train"
set +e
timeout 240 "$PYTHON" bench/bench_cuda.py --train --out "$OUT/bench_cuda.md" \
  --json-out "$OUT/bench_cuda.json"
bench_rc=$?
set -e

# ---------------------------------------------------------------------------- summary
{
  echo "GPU check of $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(date -u +%Y-%m-%d)"
  cat "$OUT/gpu.txt"
  echo "pytest -m cuda: $(tail -n 1 "$OUT/pytest.log") (exit $pytest_rc)"
  echo "LeNet-5 test accuracy after $EPOCHS epochs: $lenet_acc (goal >= 0.99; exit $train_rc)"
  echo "bench_cuda.py --train: exit $bench_rc, table in $OUT/bench_cuda.md"
  echo "total $(( $(date +%s) - start )) s"
} | tee "$OUT/summary.txt"
[ -f "$OUT/bench_cuda.md" ] && cat "$OUT/bench_cuda.md"
[ "$pytest_rc" -eq 0 ] && [ "$train_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]

#!/usr/bin/env bash
# The project's GPU check: everything a CUDA machine must show, in about 8 minutes on one GPU, with its
# figures in one file (default gpu_check.txt; or the path given as $1). Copy the figures into
# docs/performance.md with the date and the device.
#
#   bash scripts/gpu_check.sh [OUT_FILE]
#
# 1. the CUDA-marked tests (tests/test_cuda.py: every game and named agent on device="cuda",
#    checkpoint/resume there, records independent of how a sweep is split there, batched == single seed,
#    the balance suite's balanced agents and learned balance controller)
#    and the CUDA cases of the RNG tests;
# 2. small-game throughput at N = 65,536 seeds (Dirac WGAN, bilinear) and the two-mode problem at N = 256
#    against hand-written single-seed loops (benchmarks/bench_small_games.py);
# 3. the image iteration overhead of the env against a hand-written loop (benchmarks/bench_image_step.py,
#    ResNet WGAN-GP and DCGAN at width 32, 16x16);
# 4. ResNet WGAN-GP generator iterations per second at batch 64 on CIFAR-shaped synthetic data
#    (3x32x32, width 128, n_critic 5).
# Each part runs under its own time limit so that one slow part cannot eat the others'; the exit status is
# that of the tests (the benchmarks report, they do not fail).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check.txt}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { bash scripts/setup.sh && PY=.venv/bin/python; }
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
  echo "gpu_check: torch sees no CUDA device here; nothing to check" >&2; exit 2; }

: > "$OUT"
part() {  # part TITLE SECONDS COMMAND...: run, tee into $OUT, keep going on a timeout
  local title=$1 limit=$2; shift 2
  { echo; echo "## $title"; echo "\$ $*"; } | tee -a "$OUT"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT"
  local rc=${PIPESTATUS[0]}
  echo "(exit $rc, $((SECONDS - t0)) s$([ "$rc" = 124 ] && echo ", stopped at the ${limit} s limit"))" | tee -a "$OUT"
  return "$rc"
}

{ echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"; "$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")'
  git log -1 --format='commit %h %s' 2>/dev/null; } | tee -a "$OUT"
part "CUDA tests" 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_rng.py -k "cuda or test_cuda"
tests=$?
part "Small games, batched vs hand-written single-seed loops" 120 \
  "$PY" benchmarks/bench_small_games.py --device cuda --repeats 3 --games dirac,bilinear,twomode --ref-steps 500
part "Image iteration: env vs hand-written loop" 60 \
  "$PY" benchmarks/bench_image_step.py --device cuda --arch resnet,dcgan --width 32 --resolution 16 --batch 64 \
  --iters 20 --repeats 3
part "ResNet WGAN-GP at CIFAR size (3x32x32, width 128, batch 64, n_critic 5)" 90 \
  "$PY" benchmarks/bench_image_step.py --device cuda --arch resnet --width 128 --resolution 32 --channels 3 \
  --batch 64 --n-critic 5 --iters 30 --repeats 3
echo "figures in $OUT" >&2
exit "$tests"

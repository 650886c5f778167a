#!/usr/bin/env bash
# The project's GPU check: everything a CUDA machine must show, in under 8 minutes on one GPU (install included),
# with its figures in one file (default gpu_check.txt). Copy the figures into docs/performance.md with the date and
# the device.
#
#   bash scripts/gpu_check.sh [--wheelhouse DIR] [--device cuda|cpu] [--quick] [OUT_FILE]
#
# --wheelhouse DIR: an offline machine that already has PyTorch (a CUDA image; no package registry). The Python
#     that has torch ($PYTHON, default python3) is used as it is: the wheels of DIR (written elsewhere by
#     scripts/wheelhouse.sh) that it lacks are installed with `pip install --no-index --no-deps --target` into a
#     temporary folder put on PYTHONPATH; torch and the machine's packages are never touched. Without it, the
#     project's .venv is used ($PYTHON, default .venv/bin/python; scripts/setup.sh creates it).
# --device cpu: every part on the CPU (tests/test_cuda.py through MINMAX_ENVS_TEST_DEVICE), so that the script's
#     logic is tested on any machine; --quick: small sizes and few repeats (a few minutes on a CPU).
# The versions found are printed first, and the check stops (exit 2) on a torch below the project's floor
# (pyproject.toml) or, for --device cuda, where torch sees no CUDA device.
#
# Parts, each under its own time limit so that one slow part cannot eat the others':
# 1. the CUDA-marked tests (tests/test_cuda.py: every game and named agent on the device, checkpoint/resume there,
#    records independent of how a sweep is split there, batched == single seed, the balance suite's balanced
#    agents and learned balance controller) and the CUDA cases of the RNG tests;
# 2. small-game throughput at N = 65,536 seeds (Dirac WGAN, bilinear) and the two-mode problem at N = 256 against
#    hand-written single-seed loops (benchmarks/bench_small_games.py);
# 3. the image iteration overhead of the env against a hand-written loop (benchmarks/bench_image_step.py, ResNet
#    WGAN-GP and DCGAN at width 32, 16x16);
# 4. ResNet WGAN-GP generator iterations per second at batch 64 on CIFAR-shaped synthetic data (3x32x32, width
#    128, n_critic 5);
# 5. env-steps per second of the native PPO trainer's whole training loop (rollout and update) at 4,096 parallel
#    envs, DiracGAN and TwoMode (benchmarks/bench_rl.py --native-only; baselines/ppo_step_size.py).
# Exit status: that of the tests, else 1 if a benchmark failed (a benchmark stopped at its time limit is reported,
# not failed: the benchmarks report figures, they do not judge them).
set -uo pipefail
usage="usage: bash scripts/gpu_check.sh [--wheelhouse DIR] [--device cuda|cpu] [--quick] [OUT_FILE]"
wheelhouse="" device=cuda quick=0 out=gpu_check.txt
while [ $# -gt 0 ]; do
  case $1 in
    --wheelhouse) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; wheelhouse=$(realpath -m -- "$2"); shift 2 ;;
    --device) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "gpu_check: unknown option $1; $usage" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
case $device in cuda|cpu) ;; *) echo "gpu_check: --device is cuda or cpu, got '$device'" >&2; exit 2 ;; esac
if [ -n "$wheelhouse" ] && [ ! -d "$wheelhouse" ]; then
  echo "gpu_check: wheelhouse '$wheelhouse' is not a folder (scripts/wheelhouse.sh DIR writes one)" >&2; exit 2
fi
out=$(realpath -m -- "$out")
cd "$(dirname "$0")/.." || exit 2
root=$PWD

if [ -n "$wheelhouse" ]; then
  PY=${PYTHON:-python3}
else
  PY=${PYTHON:-.venv/bin/python}
  if [ -z "${PYTHON:-}" ] && [ ! -x "$PY" ]; then bash scripts/setup.sh || exit 2; fi
fi
command -v "$PY" >/dev/null 2>&1 || { echo "gpu_check: no Python at '$PY' (set PYTHON=...)" >&2; exit 2; }

: > "$out" || exit 2
{ echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ), --device $device$([ $quick = 1 ] && echo ' --quick')"
  git log -1 --format='commit %h %s' 2>/dev/null; } | tee -a "$out"
# Versions first; stops below the project's torch floor (exit 2) before anything is installed.
"$PY" scripts/wheelhouse.py versions ${wheelhouse:+"$wheelhouse"} 2>&1 | tee -a "$out"
[ "${PIPESTATUS[0]}" = 0 ] || exit 2
if [ -n "$wheelhouse" ]; then
  site=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_site.XXXXXX") || exit 2
  trap 'rm -rf "$site"' EXIT
  t0=$SECONDS
  "$PY" scripts/wheelhouse.py install "$wheelhouse" "$site" 2>&1 | tee -a "$out"
  [ "${PIPESTATUS[0]}" = 0 ] || exit 2
  export PYTHONPATH="$root:$site${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" scripts/wheelhouse.py check "$wheelhouse" 2>&1 | tee -a "$out"
  [ "${PIPESTATUS[0]}" = 0 ] || exit 2
  echo "(installed offline from $wheelhouse in $((SECONDS - t0)) s)" | tee -a "$out"
else
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c 'import minmax_envs, sys; print(f"minmax_envs {minmax_envs.__version__} from {minmax_envs.__file__}")' \
  2>&1 | tee -a "$out"
[ "${PIPESTATUS[0]}" = 0 ] || exit 2
if [ "$device" = cuda ]; then
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "gpu_check: torch sees no CUDA device here; nothing to check (--device cpu runs the check on the CPU)" >&2
    exit 2; }
fi
export MINMAX_ENVS_TEST_DEVICE=$device

part() {  # part TITLE SECONDS COMMAND...: run, tee into $out, keep going on a timeout
  local title=$1 limit=$2; shift 2
  { echo; echo "## $title"; echo "\$ $*"; } | tee -a "$out"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$out"
  local rc=${PIPESTATUS[0]}
  echo "(exit $rc, $((SECONDS - t0)) s$([ "$rc" = 124 ] && echo ", stopped at the ${limit} s limit"))" | tee -a "$out"
  return "$rc"
}
benchmarks=0
bench() {  # a benchmark part: a crash fails the check, its time limit does not
  part "$@"
  local rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 124 ] || benchmarks=1
}

if [ $quick = 1 ]; then
  small=(--repeats 2 --steps 20 --ref-steps 50)
  image=(--width 16 --resolution 16 --batch 16 --iters 2 --repeats 2 --warmup 1)
  cifar=(--width 16 --resolution 32 --channels 3 --batch 8 --n-critic 5 --iters 2 --repeats 2 --warmup 1)
  rl=(--num-envs 256 --iterations 2 --repeats 1)
else
  small=(--repeats 3 --ref-steps 500)
  image=(--width 32 --resolution 16 --batch 64 --iters 20 --repeats 3)
  cifar=(--width 128 --resolution 32 --channels 3 --batch 64 --n-critic 5 --iters 30 --repeats 3)
  rl=(--num-envs 4096 --iterations 5 --repeats 2)
fi
part "CUDA tests (on $device)" 190 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_rng.py \
  -k "cuda or test_cuda"
tests=$?
bench "Small games, batched vs hand-written single-seed loops" 90 \
  "$PY" benchmarks/bench_small_games.py --device "$device" --games dirac,bilinear,twomode "${small[@]}"
bench "Image iteration: env vs hand-written loop" 60 \
  "$PY" benchmarks/bench_image_step.py --device "$device" --arch resnet,dcgan "${image[@]}"
bench "ResNet WGAN-GP at CIFAR size ($([ $quick = 1 ] && echo '3x32x32, n_critic 5; --quick: width 16, batch 8' \
  || echo '3x32x32, width 128, batch 64, n_critic 5'))" 90 \
  "$PY" benchmarks/bench_image_step.py --device "$device" --arch resnet "${cifar[@]}"
bench "Native PPO trainer: env-steps per second of the whole training loop ($([ $quick = 1 ] && echo '256 envs' \
  || echo '4,096 envs'))" 40 \
  "$PY" benchmarks/bench_rl.py --device "$device" --native-only --threads 1 "${rl[@]}"
echo "figures in $out" >&2
[ "$tests" = 0 ] || exit "$tests"
exit "$benchmarks"

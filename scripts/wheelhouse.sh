#!/usr/bin/env bash
# The wheelhouse of an offline CUDA machine (run it where a package registry is reachable):
#
#   bash scripts/wheelhouse.sh DIR [--python 3.10,3.11,3.12]
#
# writes into DIR the project's own wheel and every wheel it needs (with its images and optimizers extras and the
# tests' hypothesis) for CPython 3.10-3.12 on manylinux x86_64, except torch and what a CUDA PyTorch image already
# has (numpy, scipy, matplotlib, tqdm, tensorboard, scikit-learn, pytest and what they depend on), at most 48 MiB,
# with DIR/requirements-cp3XY.txt pinning what each Python needs. Copy DIR to the machine and run
# `bash scripts/gpu_check.sh --wheelhouse DIR` there (see docs/performance.md). Runs with $PYTHON (default: the
# project's .venv, set up by scripts/setup.sh), which must have the image's packages installed: their
# dependencies are read from it. The logic is in scripts/wheelhouse.py.
set -euo pipefail
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || { echo "usage: bash scripts/wheelhouse.sh DIR [--python 3.10,3.11,3.12]" >&2; exit 2; }
dir=$(realpath -m -- "$1"); shift
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  bash scripts/setup.sh
  PYTHON=.venv/bin/python
fi
exec "$PYTHON" scripts/wheelhouse.py build "$dir" "$@"

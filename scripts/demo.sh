#!/usr/bin/env bash
# The main job on the embedded default: SGDA vs nSGDA on TwoMode-v0 over a batch of seeds (CPU, no data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m minmax_envs.demo "$@"

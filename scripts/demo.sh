#!/usr/bin/env bash
# The main job on the embedded default: the `quick` suite (small games, CPU, no data) for SGDA, nSGDA, Adam,
# AdaLR and AdaDir with the standard protocol (equal step-size tuning budget, held-out seeds), then the
# leaderboard. Results go to results/quick (re-running resumes; delete the folder to start over).
# Extra arguments go to `minmax bench`, e.g. --agents sgda,adam --seeds 64 --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/minmax bench --suite quick --out results/quick "$@"

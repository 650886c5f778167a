#!/usr/bin/env bash
# Create (or reuse) the local virtual environment .venv and install minmax-envs with its test and image
# extras (the image games' data sets, metrics and PNG grids; torchvision / torch-fidelity are never needed).
# torch is pinned through constraints.txt (torch==2.13.0: the CPU build on these machines).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.minmax-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,images,docs]"
  echo "$want" > "$stamp"
fi

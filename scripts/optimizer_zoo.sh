#!/usr/bin/env bash
# The optimizer zoo: the built-in agents next to pytorch-optimizer's optimizers (agents.from_torch, as they
# ship) on the quick and two-mode suites, under the same protocol (equal step-size tuning budget, held-out
# seeds). Reports go to docs/reproduction/optimizer-zoo/<suite>/ with the records' outcomes (outcomes.jsonl.gz,
# scripts/compact_records.py: what tests/test_doc_numbers.py recomputes section 6 of docs/reproduction.md from);
# the full records stay in runs/optimizer-zoo/<suite> (re-running resumes). Extra arguments go to every
# `minmax bench` (e.g. --budget 6).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
zoo="torch:pytorch_optimizer.Lion,torch:pytorch_optimizer.Adan,torch:pytorch_optimizer.Prodigy"
zoo="$zoo,torch:pytorch_optimizer.ScheduleFreeAdamW,torch:pytorch_optimizer.Lamb,torch:pytorch_optimizer.AdaBelief"
declare -A builtins=([quick]="sgda,nsgda,adam,adalr,adadir" [two-mode]="sgda,nsgda,adam")
for suite in ${ZOO_SUITES:-quick two-mode}; do
    out="runs/optimizer-zoo/$suite"
    .venv/bin/minmax --threads 1 bench --suite "$suite" --agents "${builtins[$suite]},$zoo" --out "$out" \
        --no-report --no-progress "$@"
    .venv/bin/minmax report "$out" > /dev/null
    dest="docs/reproduction/optimizer-zoo/$suite"
    rm -rf "$dest" && mkdir -p "$dest"
    cp -r "$out"/{leaderboard.md,summary.csv,configs.csv,suite.json,plots} "$dest/"
    .venv/bin/python scripts/compact_records.py "$out" "$dest"
done

#!/usr/bin/env bash
# Re-run the reproduction suites (default: two-mode stability quick images-tiny) and refresh their reports
# under docs/reproduction/<suite>/ (leaderboard.md, summary.csv, configs.csv, suite.json, plots/) with the
# outcomes of their records (outcomes.jsonl.gz: scripts/compact_records.py; tests/test_doc_numbers.py recomputes
# the numbers of docs/reproduction.md from them). runs/<suite>/ keeps the full records for resuming.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(two-mode stability quick images-tiny)
for suite in "${suites[@]}"; do
    .venv/bin/minmax --threads 1 bench --suite "$suite" --out "runs/$suite" --no-report
    .venv/bin/minmax report "runs/$suite" > /dev/null
    dest="docs/reproduction/$suite"
    rm -rf "$dest" && mkdir -p "$dest"
    cp -r "runs/$suite"/{leaderboard.md,summary.csv,configs.csv,suite.json,plots} "$dest/"
    .venv/bin/python scripts/compact_records.py "runs/$suite" "$dest"
done

"""Write the outcome of every record of a results directory to DEST/outcomes.jsonl.gz (what docs/reproduction/ keeps
of the sweeps whose full records are too large to commit).

    python scripts/compact_records.py runs/two-mode docs/reproduction/two-mode

Each line is a record (minmax_envs/evaluation/record.py) without its curves, generator samples, figure descriptions
and package versions, and without the final metrics that are lists (per-neuron cosines): its identity, its
configuration and seed, its scalar final metrics, value, success, divergence, time to target and wall time, plus
``start``: each scalar metric at the first evaluation point. The records are written in the store's order, and the
gzip stream carries no time stamp, so the same records give the same bytes. tests/test_doc_numbers.py recomputes
the numbers of docs/reproduction.md from these files.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minmax_envs.evaluation.store import ResultStore  # noqa: E402

DROPPED = ("curve", "samples", "plots", "versions")


def outcome(record: dict[str, Any]) -> dict[str, Any]:
    """A record's outcome: what is left of it in ``outcomes.jsonl.gz``."""
    out = {k: v for k, v in record.items() if k not in DROPPED}
    out["final"] = {k: v for k, v in record["final"].items() if not isinstance(v, list)}
    curve = record["curve"]
    out["start"] = {k: v[0] for k, v in curve.items() if k != "steps" and v}
    return out


def main(results: str, dest: str) -> None:
    lines = [json.dumps(outcome(r), separators=(",", ":")) + "\n" for r in ResultStore(results).records()]
    path = Path(dest) / "outcomes.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write("".join(lines).encode("utf-8"))
    print(f"{len(lines)} records -> {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

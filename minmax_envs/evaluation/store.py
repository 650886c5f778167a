"""The results store: one JSON line per finished episode (one seed), appended atomically.

``DIR/results.jsonl`` holds every episode of every sweep written to ``DIR``. A batch of episodes (the
seeds of one batched run) is written with a single ``write`` on a file opened in append mode and then
flushed to disk, so a crash leaves either all of the batch or, at worst, a truncated last line, which
:meth:`ResultStore.records` skips (and :meth:`ResultStore.append` repairs). Every record carries its
``key`` (a hash of what defines the episode); a re-run skips the keys already stored, so an interrupted
sweep resumes without repeating or losing a finished episode.

A record (all values JSON)::

    key            sha1 of (suite, suite_version, task, agent, config, phase, seed, steps)
    suite, suite_version, task, env_id, env_kwargs, steps, eval_every, device
    metric, higher_is_better, target, target_metric     the task's scoring (see Task)
    agent          agent name (see minmax_envs.evaluation.zoo)
    config         {"lr_d": float, "lr_g": float};  config_index: its index in the tuning search space
    phase          "tune" (tuning seeds) or "eval" (held-out seeds, tuned configuration)
    seed           the episode's seed
    final          {metric: value} at the end: scalars, or lists for per-unit metrics (e.g. per-neuron cosines);
                   non-finite values are stored as null
    value          final value of `metric`, null if not finite
    success        target reached at the end without diverging
    diverged, divergence_step (env steps, -1 if none)
    curve          {"steps": [iterations...], metric name: [values...]} for every scalar metric at the
                   evaluation points
    time_to_target first evaluation point (iterations) from which target_metric meets the target until the end of
                   the episode; null for a seed that does not succeed
    samples        (optional) generator samples [[x, y], ...] of the first evaluation seed (2-D games)
    wall_time_s    wall time of the batched run divided by its seeds
    versions       {"minmax_envs", "torch", "numpy", "python"};  time: ISO 8601 UTC of the write
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"


def episode_key(identity: dict[str, Any]) -> str:
    """The key of an episode: the sha1 of its ``identity`` (every input that can change its record; see
    :meth:`minmax_envs.evaluation.protocol.Unit.identity`) as canonical JSON."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()


class ResultStore:
    """Append-only JSONL store of episode records in a directory (created if missing)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"results directory {str(self.dir)!r} exists and is not a directory")
        self.path = self.dir / RESULTS_FILE

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record, in write order; a torn last line (crash mid-write) is skipped. Keys
        already seen are skipped too, so a record is never counted twice."""
        if not self.path.exists():
            return
        seen: set[str] = set()
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # a torn write: the episode was not finished as far as the store is concerned
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("key") in seen:
                    continue
                seen.add(rec.get("key"))
                yield rec

    def keys(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records in one write, then fsync: all of them land, or (crash) none is read back."""
        lines = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
        if not lines:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # end a torn line so the new records start on their own line
            f.write(lines.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def __len__(self) -> int:
        return sum(1 for _ in self.records())

    def __repr__(self) -> str:
        return f"ResultStore({str(self.dir)!r})"

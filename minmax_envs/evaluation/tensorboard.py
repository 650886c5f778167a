"""TensorBoard scalars of episodes and sweeps (optional: ``pip install "minmax-envs[tensorboard]"``).

Two hooks write the event files TensorBoard reads (``tensorboard --logdir DIR``):

* :func:`log_episode` — one :class:`~minmax_envs.episode.EpisodeResult` of :func:`minmax_envs.run_episode`
  (asked with ``eval_every``): every scalar metric's curve, one run per seed (``NAME/seed_<i>``) and the
  median over the seeds that did not diverge (``NAME/median``), at the episode's iterations.
* :func:`log_records` / :func:`write_tensorboard` — the records of a results directory (``minmax bench
  --tensorboard DIR``, ``minmax report RESULTS --tensorboard DIR``): each held-out episode's curves
  (run ``<task>/<agent>/seed_<s>``, one tag per metric, at the iterations of its evaluation points) and
  the sweep's summary (run ``<task>/<agent>``: tags ``summary/median``, ``summary/iqm`` with their 95%
  intervals, ``summary/success_rate``, ``summary/divergence_rate``, logged at the task's last iteration;
  see :func:`~minmax_envs.evaluation.stats.summarize`).

Writing the same run again replaces what this module wrote there before (its event files end in
``.minmax``; other files in the directory are left alone), so re-running a report refreshes the logs
instead of doubling every curve.

The log directory is the user's; inside it, every file is written as the rule of the results directories says
(:class:`minmax_envs._files.Folder`): a run folder that is a symbolic link is refused, never entered, and each event
file is built in memory and written atomically under a name no link redirects. Task and agent names become one path
component each (:func:`minmax_envs._files.path_part`: ``..`` or ``/`` in a name cannot leave the directory); two
names that would share a folder get a hash of the name each.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from minmax_envs._files import Folder, path_part
from minmax_envs.evaluation.stats import summarize

SUFFIX = ".minmax"
PREFIX = "events.out.tfevents."


class _Run:
    """The scalars of one run (a folder of the log directory), written as one event file when the block ends."""

    def __init__(self) -> None:
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.summary.writer.record_writer import RecordWriter
            from torch.utils.tensorboard.summary import scalar
        except ImportError:
            raise ImportError("TensorBoard logging needs the tensorboard package: "
                              "pip install 'minmax-envs[tensorboard]'") from None
        self._event, self._scalar = Event, scalar
        self.buffer = io.BytesIO()
        self._records = RecordWriter(self.buffer)
        self._records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        event = self._event(summary=self._scalar(tag, value), wall_time=time.time(), step=step)
        self._records.write(event.SerializeToString())


@contextmanager
def _writer(logdir: Folder, run: str) -> Iterator[_Run]:
    """A :class:`_Run` whose event file replaces, when the block ends, the event files this module wrote in the folder
    ``run`` of ``logdir`` before (other files there are left alone)."""
    events = _Run()
    yield events
    host = path_part(socket.gethostname())
    name = f"{PREFIX}{int(time.time()):010d}.{host}.{os.getpid()}.0{SUFFIX}"
    logdir.write(f"{run}/{name}", events.buffer.getvalue())
    for old in logdir.listdir(run):
        if old.startswith(PREFIX) and old.endswith(SUFFIX) and old != name:
            logdir.remove(f"{run}/{old}")


def _part(name: str) -> str:
    """An agent or task name as one path component (``torch:torch.optim.Adam?betas=...`` has ':' and '?')."""
    return path_part(name)


def _parts(names: Iterable[str]) -> dict[str, str]:
    """:func:`_part` of each name, a hash of the name appended where two names would share a component."""
    names = list(dict.fromkeys(names))
    plain = {n: _part(n) for n in names}
    shared = {p for p in plain.values() if sum(q == p for q in plain.values()) > 1}
    return {n: p if p not in shared else f"{p[:80]}-{hashlib.sha1(n.encode()).hexdigest()[:8]}"
            for n, p in plain.items()}


def _scalars(writer, tag_values: dict[str, list[float | None]], steps: list[int]) -> int:
    n = 0
    for tag, values in tag_values.items():
        for step, v in zip(steps, values):
            if v is not None and math.isfinite(v):  # TensorBoard has no gaps: a non-finite point is left out
                writer.add_scalar(tag, float(v), int(step))
                n += 1
    return n


def log_episode(result: Any, logdir: str | os.PathLike, name: str = "episode") -> int:
    """Write the curves of one episode's trajectory under ``logdir/name``; returns the scalars written.

    ``result.trajectory`` must hold the evaluation points (``run_episode(..., eval_every=K)``)."""
    if not result.trajectory:
        raise ValueError("the episode has no trajectory to log: run it with eval_every=K (run_episode)")
    steps = [int(t) for t, _ in result.trajectory]
    scalar = [k for k, v in result.trajectory[0][1].items() if v.ndim == 1]
    curves = {k: torch.stack([m[k] for _, m in result.trajectory]).double().cpu() for k in scalar}  # (T, N)
    alive = ~result.diverged.cpu()
    root, run, written = Folder(logdir), _part(name), 0
    for i in range(len(alive)):
        with _writer(root, f"{run}/seed_{i}") as w:
            written += _scalars(w, {k: c[:, i].tolist() for k, c in curves.items()}, steps)
    with _writer(root, f"{run}/median") as w:
        med = {k: (c[:, alive].nanmedian(dim=1).values.tolist() if alive.any() else [None] * len(steps))
               for k, c in curves.items()}
        written += _scalars(w, med, steps)
    return written


def log_records(records: Iterable[dict[str, Any]], logdir: str | os.PathLike) -> int:
    """Write the held-out episodes' curves and the per-(task, agent) summaries of ``records`` under
    ``logdir``; returns the scalars written. Tuning records are summarized by the leaderboard, not logged."""
    records = [r for r in records if r.get("phase") == "eval"]
    root, written = Folder(logdir), 0
    tasks, agents = _parts(r["task"] for r in records), _parts(r["agent"] for r in records)
    for r in records:
        curve = dict(r.get("curve") or {})
        steps = curve.pop("steps", [])
        with _writer(root, f"{tasks[r['task']]}/{agents[r['agent']]}/seed_{int(r['seed'])}") as w:
            written += _scalars(w, curve, steps)
    last = {}
    for r in records:
        last[(r["task"], r["agent"])] = int(r["steps"])
    for row in summarize(records):
        values = {"summary/median": row.median, "summary/median_lo": row.median_lo, "summary/median_hi": row.median_hi,
                  "summary/iqm": row.iqm, "summary/iqm_lo": row.iqm_lo, "summary/iqm_hi": row.iqm_hi,
                  "summary/success_rate": row.success_rate, "summary/divergence_rate": row.divergence_rate}
        with _writer(root, f"{tasks[row.task]}/{agents[row.agent]}") as w:
            written += _scalars(w, {k: [v] for k, v in values.items()}, [last[(row.task, row.agent)]])
    return written


def write_tensorboard(results_dir: str | os.PathLike, logdir: str | os.PathLike) -> int:
    """:func:`log_records` of every record stored in ``results_dir`` (written by ``minmax bench``)."""
    from minmax_envs.evaluation.store import ResultStore

    return log_records(ResultStore(results_dir).records(), logdir)

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
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from minmax_envs.evaluation.stats import summarize

SUFFIX = ".minmax"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def _writer(run_dir: Path):
    """A SummaryWriter for ``run_dir`` after removing the event files this module wrote there before."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("TensorBoard logging needs the tensorboard package: "
                          "pip install 'minmax-envs[tensorboard]'") from None
    run_dir.mkdir(parents=True, exist_ok=True)
    for old in run_dir.glob(f"events.out.tfevents.*{SUFFIX}"):
        old.unlink()
    return SummaryWriter(log_dir=str(run_dir), filename_suffix=SUFFIX)


def _part(name: str) -> str:
    """An agent or task name as one path component (``torch:torch.optim.Adam?betas=...`` has ':' and '?')."""
    return _UNSAFE.sub("_", name).strip("_") or "_"


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
    root, written = Path(logdir) / _part(name), 0
    for i in range(len(alive)):
        with _writer(root / f"seed_{i}") as w:
            written += _scalars(w, {k: c[:, i].tolist() for k, c in curves.items()}, steps)
    with _writer(root / "median") as w:
        med = {k: (c[:, alive].nanmedian(dim=1).values.tolist() if alive.any() else [None] * len(steps))
               for k, c in curves.items()}
        written += _scalars(w, med, steps)
    return written


def log_records(records: Iterable[dict[str, Any]], logdir: str | os.PathLike) -> int:
    """Write the held-out episodes' curves and the per-(task, agent) summaries of ``records`` under
    ``logdir``; returns the scalars written. Tuning records are summarized by the leaderboard, not logged."""
    records = [r for r in records if r.get("phase") == "eval"]
    root, written = Path(logdir), 0
    for r in records:
        curve = dict(r.get("curve") or {})
        steps = curve.pop("steps", [])
        with _writer(root / _part(r["task"]) / _part(r["agent"]) / f"seed_{r['seed']}") as w:
            written += _scalars(w, curve, steps)
    last = {}
    for r in records:
        last[(r["task"], r["agent"])] = int(r["steps"])
    for row in summarize(records):
        values = {"summary/median": row.median, "summary/median_lo": row.median_lo, "summary/median_hi": row.median_hi,
                  "summary/iqm": row.iqm, "summary/iqm_lo": row.iqm_lo, "summary/iqm_hi": row.iqm_hi,
                  "summary/success_rate": row.success_rate, "summary/divergence_rate": row.divergence_rate}
        with _writer(root / _part(row.task) / _part(row.agent)) as w:
            written += _scalars(w, {k: [v] for k, v in values.items()}, [last[(row.task, row.agent)]])
    return written


def write_tensorboard(results_dir: str | os.PathLike, logdir: str | os.PathLike) -> int:
    """:func:`log_records` of every record stored in ``results_dir`` (written by ``minmax bench``)."""
    from minmax_envs.evaluation.store import ResultStore

    return log_records(ResultStore(results_dir).records(), logdir)

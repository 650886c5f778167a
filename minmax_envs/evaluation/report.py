"""Reports of a results directory: a markdown leaderboard, CSV tables and plots.

:func:`report` reads every episode of ``DIR/results.jsonl`` (:class:`~minmax_envs.evaluation.ResultStore`)
and ``DIR/suite.json`` (if present) and writes into ``DIR``:

* ``leaderboard.md``: the suite and protocol, then per task a table of the agents (tuned step sizes, seeds,
  median and IQM of the final metric with 95% bootstrap CIs, success rate with its Wilson interval, median time
  to target, divergence rate) with its plots, the performance profiles across tasks, and the tuning table
  (every configuration every agent tried, with its success rate on the tuning seeds);
* ``summary.csv`` (one row per :class:`~minmax_envs.evaluation.stats.SummaryRow`) and ``configs.csv`` (one
  row per :class:`~minmax_envs.evaluation.stats.ConfigRow`);
* ``plots/*.png`` (:mod:`minmax_envs.evaluation.plots`): per task the metric over training and the figures its
  records describe (e.g. the generator neurons' cosines to two modes, trajectories in a parameter plane,
  generator samples over the modes), and the performance profiles when there are two tasks or more.

The statistics are those of :mod:`minmax_envs.evaluation.stats`. Like the plots, the tables know no game: what
they show comes from the records and ``suite.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from minmax_envs import _json
from minmax_envs.evaluation.stats import (
    CONFIDENCE,
    N_RESAMPLES,
    ConfigRow,
    SummaryRow,
    TaskKey,
    config_table,
    summarize,
    task_key,
    time_ratios,
)
from minmax_envs.evaluation.store import RESULTS_FILE, ResultStore

LEADERBOARD = "leaderboard.md"
SUMMARY_CSV = "summary.csv"
CONFIGS_CSV = "configs.csv"
_TASK_FIELDS = ("env_id", "env_kwargs", "steps", "eval_every", "metric", "higher_is_better", "target",
                "target_metric", "description", "family")


@dataclass
class ReportTask:
    """What the report knows of one task: its identity and scoring (from its records or ``suite.json``)."""

    key: TaskKey
    label: str
    slug: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return self.info.get("metric", "")

    @property
    def higher_is_better(self) -> bool:
        return bool(self.info.get("higher_is_better", False))


# --- entry point ---------------------------------------------------------------------------------------------------

def report(directory: str | os.PathLike, plots: bool = True) -> str:
    """Write ``leaderboard.md``, ``summary.csv``, ``configs.csv`` and (``plots=True``) ``plots/*.png`` into
    the results directory ``directory`` and return the markdown text.

    Missing data is reported, not an error: a task without evaluation records gets a line saying so, an
    agent whose seeds all diverged gets infinite medians, a task without stored samples gets no sample plot.
    Raises ``ValueError`` if ``directory`` does not exist."""
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"results directory {str(d)!r} does not exist")
    records = list(ResultStore(d).records())
    suite = _read_suite(d)
    rows, configs = summarize(records), config_table(records)
    _write_csv(d / SUMMARY_CSV, SummaryRow, rows)
    _write_csv(d / CONFIGS_CSV, ConfigRow, configs)
    tasks = _tasks(records, suite)
    figures: dict[Any, list[tuple[str, str]]] = {}
    if plots:
        import matplotlib

        from minmax_envs.evaluation.plots import plot_all

        matplotlib.use("Agg")
        figures = plot_all(d, tasks, records, rows)
    text = _markdown(suite, tasks, records, rows, configs, figures)
    (d / LEADERBOARD).write_text(text, encoding="utf-8")
    return text


# --- inputs --------------------------------------------------------------------------------------------------------

def _read_suite(d: Path) -> dict[str, Any] | None:
    """``DIR/suite.json`` (written by :func:`~minmax_envs.evaluation.bench`), or ``None`` if it is missing, or
    unreadable or of the wrong shape (with a warning naming the file: the report is made without it)."""
    path = d / "suite.json"
    if not path.is_file():
        return None
    try:
        data = _json.loads(_json.read_text(path))  # a regular file, size and nesting bounded
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problem = f"cannot be read ({e})"
    else:
        problem = _suite_problem(data)
    if problem is not None:
        warnings.warn(f"{path}: {problem}; the report is made without it", stacklevel=3)
        return None
    return data


def _suite_problem(data: Any) -> str | None:
    """What is wrong with the shape of a ``suite.json``, as far as the report reads it (``None``: nothing)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if not isinstance(data.get("version", 0), int) or isinstance(data.get("version", 0), bool):
        return f"version must be an integer, got {data.get('version')!r}"
    for name in ("name", "description"):
        if not isinstance(data.get(name, ""), str):
            return f"{name} must be a string, got {data.get(name)!r}"
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("name", ""), str)
                                              for t in tasks):
        return "tasks must be a list of task objects"
    run = data.get("run") or {}
    if not isinstance(run, dict):
        return f"run must be an object, got {run!r}"
    for name in ("tasks", "agents"):
        if not isinstance(run.get(name) or [], list):
            return f"run.{name} must be a list, got {run.get(name)!r}"
    return None


def _tasks(records: list[dict[str, Any]], suite: dict[str, Any] | None) -> list[ReportTask]:
    """The tasks of the records (order of first appearance), then the suite's run tasks without records."""
    info: dict[TaskKey, dict[str, Any]] = {}
    for r in records:
        if task_key(r) not in info:
            info[task_key(r)] = {k: r[k] for k in _TASK_FIELDS if k in r}
    if suite:
        run_tasks = (suite.get("run") or {}).get("tasks")
        for t in suite.get("tasks", []):
            key = (suite.get("name", ""), int(suite.get("version", 0)), t.get("name", ""))
            if key in info:
                info[key].setdefault("description", t.get("description", ""))
            elif run_tasks is None or t.get("name") in run_tasks:
                info[key] = {k: t[k] for k in _TASK_FIELDS if k in t}
    several_suites = len({k[:2] for k in info}) > 1
    tasks = []
    for key, meta in info.items():
        label = f"{key[0]} v{key[1]} / {key[2]}" if several_suites else key[2]
        meta["target_metric"] = meta.get("target_metric") or meta.get("metric")
        tasks.append(ReportTask(key, label, re.sub(r"[^A-Za-z0-9_.-]+", "_", label), meta))
    return tasks


def _write_csv(path: Path, cls: type, rows: Sequence[Any]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(cls)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


# --- number formatting ---------------------------------------------------------------------------------------------

def num(x: float | None, digits: int = 4) -> str:
    """A number for tables and plot titles: ``digits`` significant digits, ``n/a``, ``∞``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def _with_ci(x: float, lo: float, hi: float) -> str:
    return f"{num(x)} [{num(lo)}, {num(hi)}]"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.3g}%"


def _success(k: int, n: int, lo: float, hi: float) -> str:
    return f"{k}/{n} = {_pct(k / n)} [{_pct(lo)}, {_pct(hi)}]" if n else "n/a"


def _time(t: float, reached: int, n: int) -> str:
    return f"{num(t)} ({reached}/{n} reach)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


# --- markdown ------------------------------------------------------------------------------------------------------

def _markdown(suite: dict[str, Any] | None, tasks: list[ReportTask], records: list[dict[str, Any]],
              rows: list[SummaryRow], configs: list[ConfigRow], figures: dict[Any, list[tuple[str, str]]]) -> str:
    lines = _header(suite, records)
    if not records:
        lines += ["", f"No episode records in `{RESULTS_FILE}` yet."]
    lines += ["", "## Results on the held-out seeds"]
    for task in tasks:
        lines += ["", f"### {task.label}", "", _task_line(task)]
        task_rows = [r for r in rows if r.task_key == task.key]
        if task_rows:
            lines += [""] + _leaderboard_table(task_rows)
        else:
            lines += ["", "No evaluation records for this task (tuning not finished, or it failed: see "
                      "`errors.jsonl`)."]
        lines += _figure_links(figures.get(task.key, []))
    lines += _profiles_section(tasks, rows, figures.get("profiles", []))
    lines += _tuning_section(tasks, configs)
    return "\n".join(lines) + "\n"


def _header(suite: dict[str, Any] | None, records: list[dict[str, Any]]) -> list[str]:
    n_eval = sum(r.get("phase") == "eval" for r in records)
    counts = f"{len(records)} episodes stored ({n_eval} evaluation, {len(records) - n_eval} tuning)."
    if suite is None:
        names = sorted({f"`{k[0]}` v{k[1]}" for k in map(task_key, records)})
        return ["# Leaderboard", "", f"Suite(s): {', '.join(names) or 'unknown'} (no `suite.json`). {counts}"]
    run = suite.get("run") or {}
    lines = [f"# Leaderboard: suite `{suite.get('name', '?')}` (version {suite.get('version', '?')})", ""]
    if suite.get("description"):
        lines += [suite["description"], ""]
    agents = ", ".join(f"`{a}`" for a in run.get("agents", suite.get("agents", [])))
    budget, tune, seeds = (run.get(k, suite.get(d)) for k, d in
                           (("budget", "budget"), ("tune_seeds", "tune_seeds"), ("seeds", "eval_seeds")))
    if budget == 1:
        tuning = "no tuning (budget 1): the single configuration"
    else:
        tuning = (f"each agent tries the same {budget} step-size configurations `(lr_d, lr_g)` "
                  f"({run.get('search', 'grid')} search) on {tune} tuning seeds each; the configuration with the "
                  "highest tuning success rate (ties: best median final metric) is")
    block = suite.get("seed_block")
    blocks = (f"blocks of {block} seeds" if block is not None else
              f"blocks of {suite.get('tune_seeds', '?')} tuning / {suite.get('eval_seeds', '?')} held-out seeds")
    lines += [f"**Protocol.** Agents {agents}; {tuning} re-run on {seeds} held-out seeds `0..{_last(seeds)}`; "
              f"device `{run.get('device', suite.get('device', '?'))}`. Batched games run the seeds in the "
              f"suite's canonical {blocks}, so every record depends on its configuration and seed alone.", "",
              f"**Statistics.** Median and IQM (interquartile mean) of the final metric over seeds with "
              f"{100 * CONFIDENCE:.0f}% percentile-bootstrap CIs ({N_RESAMPLES} resamples); a diverged seed counts as "
              "the worst value (±∞). Success: the target is met at the end without diverging, with the "
              f"{100 * CONFIDENCE:.0f}% Wilson interval. Time to target: median over seeds of the first evaluation "
              "point (iterations) from which the target stays met to the end, a seed that does not succeed counting "
              "as ∞; in parentheses the seeds that have a time (the successful ones). Agents are ordered by "
              "success rate, then median.", "", counts]
    return lines


def _last(seeds: Any) -> str:
    return str(seeds - 1) if isinstance(seeds, int) else "?"


def _task_line(task: ReportTask) -> str:
    i = task.info
    if not i:
        return "No information on this task."
    direction = "higher" if task.higher_is_better else "lower"
    op = ">=" if task.higher_is_better else "<="
    kwargs = json.dumps(i.get("env_kwargs", {}), sort_keys=True)
    line = (f"`{i.get('env_id', '?')}` `{kwargs}`, {i.get('steps', '?')} iterations, evaluated every "
            f"{i.get('eval_every', '?')}. Metric `{task.metric}` ({direction} is better); success: "
            f"`{i.get('target_metric')}` {op} {num(i.get('target'))} at the end.")
    family = i.get("family")
    if isinstance(family, dict):  # records hold its name, digest and split; suite.json its definition
        digest = f" (digest `{family['digest']}`)" if "digest" in family else ""
        line += (f" Instance family `{family.get('name', '?')}`{digest}: tuning on its train instances, held-out "
                 "seeds on its test instances.")
    return f"{i['description']}. {line}" if i.get("description") else line


def _leaderboard_table(rows: list[SummaryRow]) -> list[str]:
    header = ["agent", "lr_d", "lr_g", "seeds", "median [95% CI]", "IQM [95% CI]", "success [95% CI]",
              "time to target", "diverged"]
    body = [[f"`{r.agent}`", num(r.lr_d, 3), num(r.lr_g, 3), str(r.n), _with_ci(r.median, r.median_lo, r.median_hi),
             _with_ci(r.iqm, r.iqm_lo, r.iqm_hi), _success(r.successes, r.n, r.success_lo, r.success_hi),
             _time(r.time_to_target, r.reached, r.n), _pct(r.divergence_rate)] for r in rows]
    return _table(header, body)


def _figure_links(links: list[tuple[str, str]]) -> list[str]:
    return [line for caption, rel in links for line in ("", f"![{caption}]({rel})")]


def _profiles_section(tasks: list[ReportTask], rows: list[SummaryRow], links: list[tuple[str, str]]) -> list[str]:
    evaluated = {t.key for t in tasks if any(r.task_key == t.key for r in rows)}
    if len(evaluated) < 2:
        return []
    ratios = time_ratios(rows)
    lines = ["", "## Performance profiles", "",
             "For each task, an agent's median time to target divided by the fastest agent's (∞: the agent's "
             "median seed never reaches the target); the profile `rho(tau)` of an agent is the fraction of tasks "
             "on which that ratio is at most `tau` (Dahl et al. 2023, AlgoPerf). Tasks no agent solves are left "
             f"out: {len(ratios)} of {len(evaluated)} tasks count."]
    if not ratios:
        return lines
    agents = list(dict.fromkeys(r.agent for r in rows))
    labels = {t.key: t.label for t in tasks}
    body = [[labels.get(k, k[2])] + [num(v[a], 3) for a in agents] for k, v in ratios.items()]
    return lines + [""] + _table(["task"] + [f"`{a}`" for a in agents], body) + _figure_links(links)


def _tuning_section(tasks: list[ReportTask], configs: list[ConfigRow]) -> list[str]:
    if not configs:
        return []
    lines = ["", "## Tuning", "",
             "Every configuration tried, on the tuning seeds (disjoint from the evaluation seeds); ✓ marks the "
             "configuration each agent was evaluated with. Median: final metric, diverged seeds counting as the "
             "worst value."]
    for task in tasks:
        rows = [c for c in configs if (c.suite, c.suite_version, c.task) == task.key]
        if not rows:
            continue
        body = [[f"`{c.agent}`", str(c.config_index), num(c.lr_d, 3), num(c.lr_g, 3), str(c.n),
                 _success(c.successes, c.n, c.success_lo, c.success_hi), num(c.median), _pct(c.divergence_rate),
                 "✓" if c.selected else ""] for c in rows]
        lines += ["", f"### {task.label}", ""]
        lines += _table(["agent", "config", "lr_d", "lr_g", "seeds", "success [95% CI]", "median", "diverged",
                         "selected"], body)
    return lines


__all__ = ["report"]

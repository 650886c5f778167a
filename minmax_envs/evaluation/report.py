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
they show comes from the records and ``suite.json``. The protocol paragraph of the header (agents, configurations,
seeds, device, seed blocks) is read from the same records as the tables, so the two always describe the same runs,
whatever the invocations that wrote them; ``suite.json`` gives the suite's name, description and tasks.

Every file is written inside ``DIR`` without following a link and replaced atomically
(:class:`minmax_envs._files.Folder`); text read from records or ``suite.json`` enters the Markdown through
:func:`~minmax_envs.evaluation.formatting.md`, so it cannot add lines, cells, links or HTML.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from minmax_envs._files import Folder
from minmax_envs.evaluation.formatting import (
    ReportTask,
    md,
    num,
    pct,
    span,
    success,
    table,
    time_to_target,
    with_ci,
)
from minmax_envs.evaluation.record import FIELDS, TASK_FIELDS
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
from minmax_envs.evaluation.store import (
    CONFIGS_CSV,
    LEADERBOARD,
    RESULTS_FILE,
    SUITE_FILE,
    SUMMARY_CSV,
    ResultStore,
    check_layout,
    read_json,
)

_TASK_FIELDS = (*TASK_FIELDS, "description", "family")  # what the report shows of a task: its record fields and more


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
    folder = Folder(d)
    check_layout(folder)
    records = list(ResultStore(d).records())
    suite = _read_suite(folder)
    rows, configs = summarize(records), config_table(records)
    _write_csv(folder, SUMMARY_CSV, SummaryRow, rows)
    _write_csv(folder, CONFIGS_CSV, ConfigRow, configs)
    tasks = _tasks(records, suite)
    figures: dict[Any, list[tuple[str, str]]] = {}
    if plots:
        import matplotlib

        from minmax_envs.evaluation.plots import plot_all

        matplotlib.use("Agg")
        figures = plot_all(folder, tasks, records, rows)
    text = _markdown(suite, tasks, records, rows, configs, figures)
    folder.write_text(LEADERBOARD, text)
    return text


# --- inputs --------------------------------------------------------------------------------------------------------

def _read_suite(folder: Folder) -> dict[str, Any] | None:
    """``DIR/suite.json`` (written by :func:`~minmax_envs.evaluation.bench`), or ``None`` if it is missing, or
    unreadable or of the wrong shape (with a warning naming the file: the report is made without it)."""
    path = folder / SUITE_FILE
    try:
        data = read_json(folder, SUITE_FILE)
    except ValueError as e:
        problem = str(e)
    else:
        if data is None:
            return None
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
    for t in tasks:  # a task without records is reported from these fields: each of its record field's type
        for name in TASK_FIELDS:
            if name in t and t[name] is not None and not FIELDS[name].type.check(t[name]):
                return f"task {t.get('name', '')!r}: {name} must be {FIELDS[name].type.what}, got {t[name]!r}"
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
        tasks.append(ReportTask(key, label, meta))
    return tasks


def _write_csv(folder: Folder, name: str, cls: type, rows: Sequence[Any]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=[x.name for x in fields(cls)])
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    folder.write_text(name, text.getvalue())


# --- markdown ------------------------------------------------------------------------------------------------------

def _markdown(suite: dict[str, Any] | None, tasks: list[ReportTask], records: list[dict[str, Any]],
              rows: list[SummaryRow], configs: list[ConfigRow], figures: dict[Any, list[tuple[str, str]]]) -> str:
    lines = _header(suite, records)
    if not records:
        lines += ["", f"No episode records in `{RESULTS_FILE}` yet."]
    lines += ["", "## Results on the held-out seeds"]
    for task in tasks:
        lines += ["", f"### {md(task.label)}", "", _task_line(task)]
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
        names = sorted({f"{md(k[0], code=True)} v{k[1]}" for k in map(task_key, records)})
        lines = ["# Leaderboard", "", f"Suite(s): {', '.join(names) or 'unknown'} (no `suite.json`). {counts}"]
    else:
        lines = [f"# Leaderboard: suite {md(suite.get('name', '?'), code=True)} (version {suite.get('version', '?')})",
                 ""]
        if suite.get("description"):
            lines += [md(suite["description"]), ""]
        lines += [counts]
    if records:
        lines += ["", _protocol(records)]
    lines += ["", f"**Statistics.** Median and IQM (interquartile mean) of the final metric over seeds with "
              f"{100 * CONFIDENCE:.0f}% percentile-bootstrap CIs ({N_RESAMPLES} resamples); a diverged seed counts as "
              "the worst value (±∞). Success: the target is met at the end without diverging, with the "
              f"{100 * CONFIDENCE:.0f}% Wilson interval. Time to target: median over seeds of the first evaluation "
              "point (iterations) from which the target stays met to the end, a seed that does not succeed counting "
              "as ∞; in parentheses the seeds that have a time (the successful ones). Agents are ordered by "
              "success rate, then median."]
    return lines


def _count(values: set[int], what: str) -> str:
    """``"4 what"``, or ``"2 to 4 what"`` when the runs differ."""
    lo, hi = min(values), max(values)
    return f"{lo} {what}" if lo == hi else f"{lo} to {hi} {what}"


def _protocol(records: list[dict[str, Any]]) -> str:
    """The protocol paragraph, read from the records the tables summarize: agents, tuning configurations and seeds,
    held-out seeds, devices and seed blocks."""
    agents = ", ".join(md(a, code=True) for a in dict.fromkeys(r["agent"] for r in records))
    tune = [r for r in records if r["phase"] == "tune"]
    evals = [r for r in records if r["phase"] == "eval"]
    if tune:
        per_agent: dict[tuple, set[int]] = {}
        per_config: dict[tuple, set[int]] = {}
        for r in tune:
            per_agent.setdefault((task_key(r), r["agent"]), set()).add(r["config_index"])
            per_config.setdefault((task_key(r), r["agent"], r["config_index"]), set()).add(r["seed"])
        tuning = (f"each agent tried {_count({len(v) for v in per_agent.values()}, 'step-size configurations')} "
                  f"`(lr_d, lr_g)` on {_count({len(v) for v in per_config.values()}, 'tuning seeds')} each; the "
                  "configuration with the highest tuning success rate (ties: best median final metric) is")
    else:
        tuning = "no tuning (budget 1): the single configuration is"
    if evals:
        per_run: dict[tuple, set[int]] = {}
        for r in evals:
            per_run.setdefault((task_key(r), r["agent"], json.dumps(r["config"], sort_keys=True)), set()).add(
                r["seed"])
        seed_sets = {tuple(sorted(v)) for v in per_run.values()}
        if len(seed_sets) == 1:
            (only,) = seed_sets
            held = f"{len(only)} held-out seeds `{span(only)}`"
        else:
            held = f"{_count({len(v) for v in seed_sets}, 'held-out seeds')} (the seeds column of each table)"
        evaluated = f"re-run on {held}"
    else:
        evaluated = "to be re-run on the held-out seeds (no evaluation record yet)"
    devices = ", ".join(md(d, code=True) for d in sorted({str(r["device"]) for r in records}))
    blocks = sorted({r.get("seed_block") for r in records if r.get("seed_block") is not None})
    layout = (f" Batched games ran the seeds in blocks of {' or '.join(map(str, blocks))} (the suite's canonical "
              "layout), so every record depends on its configuration and seed alone." if blocks else "")
    return (f"**Protocol** (from the {len(records)} records below). Agents {agents}; {tuning} {evaluated}; "
            f"device {devices}.{layout}")


def _task_line(task: ReportTask) -> str:
    i = task.info
    if not i:
        return "No information on this task."
    direction = "higher" if task.higher_is_better else "lower"
    op = ">=" if task.higher_is_better else "<="
    kwargs = json.dumps(i.get("env_kwargs", {}), sort_keys=True)
    target = i.get("target")
    line = (f"{md(i.get('env_id', '?'), code=True)} {md(kwargs, code=True)}, {md(i.get('steps', '?'))} iterations, "
            f"evaluated every {md(i.get('eval_every', '?'))}. Metric {md(task.metric, code=True)} ({direction} is "
            f"better); success: {md(i.get('target_metric'), code=True)} {op} "
            f"{num(target) if isinstance(target, (int, float)) else md(target)} at the end.")
    family = i.get("family")
    if isinstance(family, dict):  # records hold its name, digest and split; suite.json its definition
        digest = f" (digest {md(family['digest'], code=True)})" if "digest" in family else ""
        line += (f" Instance family {md(family.get('name', '?'), code=True)}{digest}: tuning on its train instances, "
                 "held-out seeds on its test instances.")
    return f"{md(i['description'])}. {line}" if i.get("description") else line


def _leaderboard_table(rows: list[SummaryRow]) -> list[str]:
    header = ["agent", "lr_d", "lr_g", "seeds", "median [95% CI]", "IQM [95% CI]", "success [95% CI]",
              "time to target", "diverged"]
    body = [[md(r.agent, code=True), num(r.lr_d, 3), num(r.lr_g, 3), str(r.n),
             with_ci(r.median, r.median_lo, r.median_hi), with_ci(r.iqm, r.iqm_lo, r.iqm_hi),
             success(r.successes, r.n, r.success_lo, r.success_hi), time_to_target(r.time_to_target, r.reached, r.n),
             pct(r.divergence_rate)] for r in rows]
    return table(header, body)


def _figure_links(links: list[tuple[str, str]]) -> list[str]:
    return [line for caption, rel in links for line in ("", f"![{md(caption)}]({rel})")]


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
    body = [[md(labels.get(k, k[2]))] + [num(v[a], 3) for a in agents] for k, v in ratios.items()]
    return lines + [""] + table(["task"] + [md(a, code=True) for a in agents], body) + _figure_links(links)


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
        body = [[md(c.agent, code=True), str(c.config_index), num(c.lr_d, 3), num(c.lr_g, 3), str(c.n),
                 success(c.successes, c.n, c.success_lo, c.success_hi), num(c.median), pct(c.divergence_rate),
                 "✓" if c.selected else ""] for c in rows]
        lines += ["", f"### {md(task.label)}", ""]
        lines += table(["agent", "config", "lr_d", "lr_g", "seeds", "success [95% CI]", "median", "diverged",
                        "selected"], body)
    return lines


__all__ = ["ReportTask", "num", "report"]

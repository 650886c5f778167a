"""Reports of a results directory: a markdown leaderboard, CSV tables and plots.

:func:`report` reads every episode of ``DIR/results.jsonl`` (:class:`~minmax_envs.evaluation.ResultStore`)
and ``DIR/suite.json`` (if present) and writes into ``DIR``:

* ``leaderboard.md``: the suite and protocol, then per task a table of the agents (tuned step sizes, seeds,
  median and IQM of the final metric with 95% bootstrap CIs, success rate with its Wilson interval, median time
  to target, divergence rate) with its plots, the performance profiles across tasks, and the tuning table
  (every configuration every agent tried, with its success rate on the tuning seeds);
* ``summary.csv`` (one row per :class:`~minmax_envs.evaluation.stats.SummaryRow`) and ``configs.csv`` (one
  row per :class:`~minmax_envs.evaluation.stats.ConfigRow`);
* ``plots/*.png``: per task the metric over training (median over the evaluation seeds with a 95% bootstrap
  band), and by game: the generator neurons' cosines to the two modes (TwoMode), trajectories in the
  ``(theta, psi)`` plane (Dirac GAN), generator samples over the modes (mixtures of Gaussians); and the
  performance profiles when there are two tasks or more.

The statistics are those of :mod:`minmax_envs.evaluation.stats`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from minmax_envs.evaluation.stats import (
    CONFIDENCE,
    N_RESAMPLES,
    ConfigRow,
    GroupKey,
    SummaryRow,
    TaskKey,
    bootstrap_ci,
    config_table,
    groups,
    performance_profiles,
    summarize,
    task_key,
    time_ratios,
    worst_value,
)
from minmax_envs.evaluation.store import RESULTS_FILE, ResultStore

LEADERBOARD = "leaderboard.md"
SUMMARY_CSV = "summary.csv"
CONFIGS_CSV = "configs.csv"
PLOTS = "plots"
TRAJECTORY_SEEDS = 4  # Dirac trajectories drawn per agent
PROFILE_TAU_MAX = 4.0  # the profiles' tau axis reaches at least this (AlgoPerf's range)
MIN_FIGURE_WIDTH = 6.0  # inches: room for a figure's title
LOG_DECADES = 2.0  # a positive metric spanning at least this many decades is drawn on a log axis
_TASK_FIELDS = ("env_id", "env_kwargs", "steps", "eval_every", "metric", "higher_is_better", "target",
                "target_metric", "description")


@dataclass
class _Task:
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

        matplotlib.use("Agg")
        figures = _plot_all(d, tasks, records, rows)
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
        data = json.loads(path.read_text(encoding="utf-8"))
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


def _tasks(records: list[dict[str, Any]], suite: dict[str, Any] | None) -> list[_Task]:
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
        tasks.append(_Task(key, label, re.sub(r"[^A-Za-z0-9_.-]+", "_", label), meta))
    return tasks


def _write_csv(path: Path, cls: type, rows: Sequence[Any]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(cls)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


# --- number formatting ---------------------------------------------------------------------------------------------

def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def _with_ci(x: float, lo: float, hi: float) -> str:
    return f"{_num(x)} [{_num(lo)}, {_num(hi)}]"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.3g}%"


def _success(k: int, n: int, lo: float, hi: float) -> str:
    return f"{k}/{n} = {_pct(k / n)} [{_pct(lo)}, {_pct(hi)}]" if n else "n/a"


def _time(t: float, reached: int, n: int) -> str:
    return f"{_num(t)} ({reached}/{n} reach)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


# --- markdown ------------------------------------------------------------------------------------------------------

def _markdown(suite: dict[str, Any] | None, tasks: list[_Task], records: list[dict[str, Any]],
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


def _task_line(task: _Task) -> str:
    i = task.info
    if not i:
        return "No information on this task."
    direction = "higher" if task.higher_is_better else "lower"
    op = ">=" if task.higher_is_better else "<="
    kwargs = json.dumps(i.get("env_kwargs", {}), sort_keys=True)
    line = (f"`{i.get('env_id', '?')}` `{kwargs}`, {i.get('steps', '?')} iterations, evaluated every "
            f"{i.get('eval_every', '?')}. Metric `{task.metric}` ({direction} is better); success: "
            f"`{i.get('target_metric')}` {op} {_num(i.get('target'))} at the end.")
    return f"{i['description']}. {line}" if i.get("description") else line


def _leaderboard_table(rows: list[SummaryRow]) -> list[str]:
    header = ["agent", "lr_d", "lr_g", "seeds", "median [95% CI]", "IQM [95% CI]", "success [95% CI]",
              "time to target", "diverged"]
    body = [[f"`{r.agent}`", _num(r.lr_d, 3), _num(r.lr_g, 3), str(r.n), _with_ci(r.median, r.median_lo, r.median_hi),
             _with_ci(r.iqm, r.iqm_lo, r.iqm_hi), _success(r.successes, r.n, r.success_lo, r.success_hi),
             _time(r.time_to_target, r.reached, r.n), _pct(r.divergence_rate)] for r in rows]
    return _table(header, body)


def _figure_links(links: list[tuple[str, str]]) -> list[str]:
    return [line for caption, rel in links for line in ("", f"![{caption}]({rel})")]


def _profiles_section(tasks: list[_Task], rows: list[SummaryRow], links: list[tuple[str, str]]) -> list[str]:
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
    body = [[labels.get(k, k[2])] + [_num(v[a], 3) for a in agents] for k, v in ratios.items()]
    return lines + [""] + _table(["task"] + [f"`{a}`" for a in agents], body) + _figure_links(links)


def _tuning_section(tasks: list[_Task], configs: list[ConfigRow]) -> list[str]:
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
        body = [[f"`{c.agent}`", str(c.config_index), _num(c.lr_d, 3), _num(c.lr_g, 3), str(c.n),
                 _success(c.successes, c.n, c.success_lo, c.success_hi), _num(c.median), _pct(c.divergence_rate),
                 "✓" if c.selected else ""] for c in rows]
        lines += ["", f"### {task.label}", ""]
        lines += _table(["agent", "config", "lr_d", "lr_g", "seeds", "success [95% CI]", "median", "diverged",
                         "selected"], body)
    return lines


# --- plots ---------------------------------------------------------------------------------------------------------

@contextmanager
def _figure(path: Path, panels: int = 1, size: tuple[float, float] = (4.2, 3.6), title: str | None = None,
            max_cols: int = 5, **subplot_kw: Any) -> Iterator[list[Any]]:
    """A figure of ``panels`` axes on a grid (at most ``max_cols`` a row); yields the axes, then titles,
    lays out, saves as PNG to ``path`` and closes the figure (also on error). Unused grid cells are hidden."""
    import matplotlib.pyplot as plt

    cols = max(1, min(panels, max_cols))
    rows = math.ceil(panels / cols)
    width = max(MIN_FIGURE_WIDTH, size[0] * cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, size[1] * rows), squeeze=False, **subplot_kw)
    try:
        flat = list(axes.ravel())
        for ax in flat[panels:]:
            ax.set_visible(False)
        yield flat[:panels]
        if title:
            fig.suptitle(textwrap.fill(title, int(13 * width)), fontsize=11)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _colors(agents: Sequence[str]) -> dict[str, Any]:
    """One colour per agent, the same in every plot."""
    import matplotlib

    cycle = matplotlib.colormaps["tab10"].colors
    return {a: cycle[i % len(cycle)] for i, a in enumerate(agents)}


@dataclass
class _Series:
    """One evaluated configuration of an agent on a task: its label, colour and eval records."""

    label: str
    agent: str
    color: Any
    records: list[dict[str, Any]]
    row: SummaryRow


def _plot_all(d: Path, tasks: list[_Task], records: list[dict[str, Any]],
              rows: list[SummaryRow]) -> dict[Any, list[tuple[str, str]]]:
    """Every plot; returns ``{task key or "profiles": [(caption, path relative to d), ...]}``."""
    evals = groups(records, "eval")
    colors = _colors(list(dict.fromkeys(r.agent for r in rows)))
    out: dict[Any, list[tuple[str, str]]] = {}
    for task in tasks:
        series = _series(task, rows, evals, colors)
        if not series:
            continue
        env_id = task.info.get("env_id", "")
        plotters = [("curves", f"{task.metric} over training", _plot_curves)]
        if env_id == "TwoMode-v0":
            plotters.append(("neuron_cosines", "generator neurons' cosines to the modes", _plot_neuron_cosines))
        if env_id == "DiracGAN-v0":
            plotters.append(("trajectories", "trajectories in the (theta, psi) plane", _plot_dirac))
        if env_id.startswith("MoG-"):
            plotters.append(("samples", "generator samples over the modes", _plot_mog_samples))
        for name, what, plot in plotters:
            rel = f"{PLOTS}/{task.slug}_{name}.png"
            if plot(d / rel, task, series):
                out.setdefault(task.key, []).append((f"{task.label}: {what}", rel))
    rel = f"{PLOTS}/performance_profiles.png"
    if len({r.task_key for r in rows}) >= 2 and _plot_profiles(d / rel, rows, colors):
        out["profiles"] = [("performance profiles", rel)]
    return out


def _series(task: _Task, rows: list[SummaryRow], evals: dict[GroupKey, list[dict[str, Any]]],
            colors: dict[str, Any]) -> list[_Series]:
    task_rows = [r for r in rows if r.task_key == task.key]
    repeated = {a for a in (r.agent for r in task_rows) if sum(x.agent == a for x in task_rows) > 1}
    return [_Series(f"{r.agent} (lr_d={_num(r.lr_d, 3)})" if r.agent in repeated else r.agent, r.agent,
                    colors[r.agent], evals[r.key], r) for r in task_rows]


def _curve_matrix(records: list[dict[str, Any]], metric: str, worst: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps (T,), values (n, T))`` of ``metric`` over the records with the first record's evaluation
    points; a point that is not finite, or where the seed had diverged, counts as ``worst``."""
    curves = [r.get("curve") or {} for r in records]
    usable = [c for c in curves if metric in c and c.get("steps") == curves[0].get("steps")]
    if not usable or not usable[0].get("steps"):
        return None
    rows = []
    for c in usable:
        div = c.get("diverged") or [0.0] * len(c["steps"])
        rows.append([worst if v is None or not math.isfinite(v) or (dv or 0.0) > 0 else v
                     for v, dv in zip(c[metric], div)])
    return np.asarray(usable[0]["steps"], dtype=float), np.asarray(rows, dtype=float)


def _median_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: median and its 95% bootstrap CI (over seeds)."""
    with np.errstate(invalid="ignore"):
        med = np.median(values, axis=0)
    cis = [bootstrap_ci(values[:, j], np.median, n_resamples=N_RESAMPLES) for j in range(values.shape[1])]
    return med, np.array([c[0] for c in cis]), np.array([c[1] for c in cis])


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan)


def _log_scale(arrays: list[np.ndarray]) -> bool:
    """Whether positive values span at least :data:`LOG_DECADES` decades (a distance near convergence)."""
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    return vals.size > 0 and bool(np.all(vals > 0)) and math.log10(vals.max() / vals.min()) >= LOG_DECADES


def _plot_curves(path: Path, task: _Task, series: list[_Series]) -> bool:
    worst = worst_value(task.higher_is_better)
    lines = []
    for s in series:
        m = _curve_matrix(s.records, task.metric, worst)
        if m is not None:
            lines.append((s, m[0], *_median_band(m[1])))
    if not lines:
        return False
    with _figure(path, size=(6.4, 4.2), title=f"{task.label}: median over {lines[0][0].row.n} seeds, 95% CI") as axes:
        ax = axes[0]
        for s, steps, med, lo, hi in lines:
            ax.plot(steps, _finite(med), marker="o", ms=3, color=s.color, label=s.label)
            ax.fill_between(steps, _finite(lo), _finite(hi), color=s.color, alpha=0.18, linewidth=0)
        if task.info.get("target_metric") == task.metric and task.info.get("target") is not None:
            ax.axhline(task.info["target"], color="black", ls="--", lw=1, label="target")
        if _log_scale([a for _, _, med, lo, hi in lines for a in (med, lo, hi)]):
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{task.metric} ({'higher' if task.higher_is_better else 'lower'} is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return True


def _plot_neuron_cosines(path: Path, task: _Task, series: list[_Series]) -> bool:
    from minmax_envs.games.two_mode import RECOVERY_COSINE

    points = []
    for s in series:
        ok, bad = [], []
        for r in s.records:
            final = r.get("final") or {}
            pairs = [(a, b) for a, b in zip(final.get("cos_u1") or [], final.get("cos_u2") or [])
                     if a is not None and b is not None]
            (ok if r.get("success") else bad).extend(pairs)
        points.append((s, np.asarray(ok, dtype=float).reshape(-1, 2), np.asarray(bad, dtype=float).reshape(-1, 2)))
    if not any(len(ok) + len(bad) for _, ok, bad in points):
        return False
    with _figure(path, len(points), size=(3.6, 3.6), title=f"{task.label}: every generator neuron at the end, "
                 "all evaluation seeds") as axes:
        for ax, (s, ok, bad) in zip(axes, points):
            ax.scatter(bad[:, 0], bad[:, 1], s=9, color="0.6", alpha=0.6, label="seed fails")
            ax.scatter(ok[:, 0], ok[:, 1], s=9, color=s.color, alpha=0.8, label="seed recovers both")
            for line in (ax.axvline, ax.axhline):
                line(RECOVERY_COSINE, color="black", ls="--", lw=0.8)
            ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel="cos(neuron, u1)", ylabel="cos(neuron, u2)",
                   title=f"{s.label}: {s.row.successes}/{s.row.n} seeds recover both")
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, loc="lower left")
    return True


def _plot_dirac(path: Path, task: _Task, series: list[_Series]) -> bool:
    paths = []
    for s in series:
        recs = sorted((r for r in s.records if {"theta", "psi"} <= set(r.get("curve") or {})), key=lambda r: r["seed"])
        tracks = [(np.array([np.nan if v is None else v for v in r["curve"]["theta"]], dtype=float),
                   np.array([np.nan if v is None else v for v in r["curve"]["psi"]], dtype=float),
                   bool(r.get("diverged"))) for r in recs[:TRAJECTORY_SEEDS]]
        paths.append((s, tracks))
    if not any(tracks for _, tracks in paths):
        return False
    lim = _dirac_limit([t for _, tracks in paths for t in tracks])
    with _figure(path, len(paths), size=(3.4, 3.4), title=f"{task.label}: first {TRAJECTORY_SEEDS} evaluation seeds "
                 "(o start, s end)") as axes:
        for ax, (s, tracks) in zip(axes, paths):
            for theta, psi, diverged in tracks:
                ax.plot(theta, psi, color=s.color, lw=1, alpha=0.9, ls=":" if diverged else "-")
                ax.plot(theta[:1], psi[:1], "o", color=s.color, ms=4)
                ax.plot(theta[-1:], psi[-1:], "s", color=s.color, ms=4)
            ax.plot([0], [0], "*", color="black", ms=11, label="equilibrium")
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="theta (generator)", ylabel="psi (discriminator)",
                   title=f"{s.label}: {s.row.diverged}/{s.row.n} diverged")
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, loc="lower left")
    return True


def _dirac_limit(tracks: list[tuple[np.ndarray, np.ndarray, bool]]) -> float:
    """Half-width of the (theta, psi) window: every point of the seeds that did not diverge (all seeds if each
    diverged), with a margin; diverging trajectories leave the window."""
    kept = [t for t in tracks if not t[2]] or tracks
    vals = np.abs(np.concatenate([np.concatenate([a, b]) for a, b, _ in kept]))
    vals = vals[np.isfinite(vals)]
    return 1.1 * float(vals.max()) if vals.size and vals.max() > 0 else 1.0


def _mode_centres(task: _Task) -> np.ndarray:
    """The mixture's mode centres from the task's layout and radius (the registered id's defaults otherwise)."""
    from minmax_envs.games.mog import mode_layout
    from minmax_envs.registry import spec

    try:
        defaults = dict(spec(task.info["env_id"]).kwargs)
    except (KeyError, ValueError):
        defaults = {}
    kwargs = {**defaults, **(task.info.get("env_kwargs") or {})}
    layout = kwargs.get("layout", "ring")
    radius = kwargs.get("radius")
    modes = mode_layout(layout) if radius is None else mode_layout(layout, radius)
    return modes.numpy()


def _plot_mog_samples(path: Path, task: _Task, series: list[_Series]) -> bool:
    panels = []
    for s in series:
        rec = next((r for r in s.records if r.get("samples")), None)
        pts = None if rec is None else np.array([p for p in rec["samples"] if p is not None and None not in p], float)
        panels.append((s, rec, pts))
    if all(rec is None for _, rec, _ in panels):
        return False
    centres = _mode_centres(task)
    lim = float(np.abs(centres).max()) + 1.5
    with _figure(path, len(panels), size=(3.4, 3.4), title=f"{task.label}: generator samples of one evaluation "
                 "seed (x: modes)") as axes:
        for ax, (s, rec, pts) in zip(axes, panels):
            ax.plot(centres[:, 0], centres[:, 1], "x", color="red", ms=8, mew=2, zorder=3)
            if rec is None:
                ax.text(0.5, 0.5, "no samples stored", ha="center", va="center", transform=ax.transAxes)
                title = s.label
            else:
                ax.scatter(pts[:, 0], pts[:, 1], s=3, color=s.color, alpha=0.5)
                outside = int(np.sum(np.any(np.abs(pts) > lim, axis=1))) if len(pts) else 0
                covered = (rec.get("final") or {}).get(task.metric)
                title = f"{s.label}, seed {rec.get('seed')}: {task.metric} {_num(covered, 3)}"
                if outside:
                    title += f"\n({outside} of {len(pts)} samples outside)"
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title)
            ax.title.set_fontsize(9)
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
    return True


def _plot_profiles(path: Path, rows: list[SummaryRow], colors: dict[str, Any]) -> bool:
    ratios = time_ratios(rows)
    if not ratios:
        return False
    finite = [v for per_agent in ratios.values() for v in per_agent.values() if math.isfinite(v)]
    taus = np.linspace(1.0, max(PROFILE_TAU_MAX, 1.05 * max(finite)), 400)
    profiles = performance_profiles(rows, taus)
    n_tasks = len({r.task_key for r in rows})
    with _figure(path, size=(6.4, 4.2), title=f"Performance profiles over {len(ratios)} of {n_tasks} tasks "
                 "(tasks no agent solves left out)") as axes:
        ax = axes[0]
        for i, (agent, rho) in enumerate(profiles.items()):  # thinner and dashed in turn: ties stay visible
            ax.step(taus, rho, where="post", color=colors[agent], label=agent, lw=max(1.0, 3.2 - 0.5 * i),
                    ls=("-", "--", "-.", ":")[i % 4])
        ax.set(xlabel="tau (median time to target / fastest agent's)", ylabel="fraction of tasks within tau",
               ylim=(-0.03, 1.03), xlim=(1.0, taus[-1]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return True


__all__ = ["report"]

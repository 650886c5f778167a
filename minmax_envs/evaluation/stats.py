"""Statistics of stored episodes: robust aggregates with confidence intervals, tuning tables, performance profiles.

Every aggregate is over seeds (one record = one seed, see :mod:`.store`):

* **Final metric.** The median and the interquartile mean (IQM, the mean of the middle 50% of the seeds;
  Agarwal et al. 2021, "Deep reinforcement learning at the edge of the statistical precipice") of the
  task's metric at the end of the episode, each with a 95% percentile-bootstrap confidence interval over
  seeds. A diverged seed, or one whose final value is not finite, counts as the *worst* value: ``+inf`` for a
  lower-is-better metric, ``-inf`` for a higher-is-better one, so divergence can only make an agent look worse.
* **Success.** The fraction of seeds that reached the target at the end without diverging, with the Wilson
  score interval (which stays inside ``[0, 1]`` and is informative at 0 and ``n`` successes).
* **Time to target.** The median over seeds of the first evaluation point from which the target stays met to
  the end (the record's ``time_to_target``), a seed without one (it does not succeed) counting as ``+inf`` (so
  the median is ``inf`` when fewer than half of the seeds succeed).
* **Performance profiles** across tasks from the median times to target (Dahl et al. 2023, "Benchmarking
  neural network training algorithms"), see :func:`performance_profiles`.

Only numpy and scipy are used; nothing here reads files or plots.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

from minmax_envs._checks import check_choice
from minmax_envs.evaluation.record import PHASES

CONFIDENCE = 0.95
N_RESAMPLES = 2000

# (suite, suite_version, task, agent, lr_d, lr_g): the records aggregated into one SummaryRow / ConfigRow
GroupKey = tuple[str, int, str, str, float, float]
TaskKey = tuple[str, int, str]


# --- elementary statistics -----------------------------------------------------------------------------------------

def iqm(x: Any, axis: int | None = None) -> Any:
    """Interquartile mean: the mean of ``x`` after cutting 25% of the values at each end
    (``scipy.stats.trim_mean(x, 0.25)``; Agarwal et al. 2021). NaN for an empty sample.

    With ``axis=None`` (default) over every value, returning a float; otherwise along ``axis`` (the
    vectorized form used by :func:`bootstrap_ci`). ``+-inf`` values are allowed (the result is infinite
    when one of them survives the trimming)."""
    a = np.asarray(x, dtype=float)
    if axis is None:
        if a.size == 0:
            return math.nan
        with np.errstate(invalid="ignore"):
            return float(_st.trim_mean(a, 0.25, axis=None))
    with np.errstate(invalid="ignore"):
        return _st.trim_mean(a, 0.25, axis=axis)


def _median(x: Any, axis: int | None = None) -> Any:
    with np.errstate(invalid="ignore"):
        return np.median(x, axis=axis)


def _accepts_axis(statistic: Callable) -> bool:
    try:
        return "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):
        return False


def _percentile_no_nan(dist: np.ndarray, q: float, value: float) -> float:
    """``value``, scipy's percentile ``q`` of the bootstrap statistics ``dist``, unless it is ``nan``: numpy
    interpolates two equal infinities to ``nan``, where the nearest rank is the right answer."""
    if not math.isnan(value):
        return float(value)
    d = dist[~np.isnan(dist)]
    return float(np.percentile(d, q, method="nearest")) if d.size else math.nan


def bootstrap_ci(x: Any, statistic: Callable, confidence: float = CONFIDENCE,
                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval ``(lo, hi)`` of ``statistic`` over the sample ``x``.

    ``scipy.stats.bootstrap`` with ``method="percentile"``: ``n_resamples`` resamples of ``x`` with
    replacement (from ``np.random.default_rng(seed)``, so the interval is reproducible), the statistic of
    each, and the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those. The statistic is
    called as ``statistic(sample, axis=-1)`` on all resamples at once when it takes an ``axis`` argument
    (``np.median``, :func:`iqm`), else once per resample.

    Edge cases: an empty sample gives ``(nan, nan)``; one value, or a constant sample, gives ``(x0, x0)``;
    ``+-inf`` values (diverged seeds) are resampled like any other value, and a bound is infinite when that
    quantile of the bootstrap statistics is (never ``nan``, and no warning from the infinite arithmetic).
    """
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        return math.nan, math.nan
    if np.isnan(a).any():
        raise ValueError("bootstrap_ci: the sample contains NaN; map non-finite values to +-inf first")
    if a.size == 1 or np.all(a == a[0]):
        return float(a[0]), float(a[0])
    vectorized = _accepts_axis(statistic)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # inf - inf in scipy's standard error and numpy's percentile interpolation: handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _st.bootstrap((a,), statistic, n_resamples=n_resamples, confidence_level=confidence,
                            method="percentile", vectorized=vectorized, rng=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo = _percentile_no_nan(dist, alpha, float(res.confidence_interval.low))
    hi = _percentile_no_nan(dist, 100.0 - alpha, float(res.confidence_interval.high))
    return lo, hi


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval ``(lo, hi)`` of a binomial rate with ``k`` successes in ``n`` trials::

        (p + z^2 / 2n  -+  z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n),   p = k / n

    (Wilson 1927; ``z`` the normal quantile of ``confidence``), computed by SciPy's
    ``binomtest(k, n).proportion_ci(confidence, method="wilson")``. ``(nan, nan)`` when ``n == 0``."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    ci = _st.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


# --- records -------------------------------------------------------------------------------------------------------

def worst_value(higher_is_better: bool) -> float:
    """The value a diverged seed counts as: ``-inf`` if higher is better, ``+inf`` otherwise."""
    return -math.inf if higher_is_better else math.inf


def final_value(record: dict[str, Any]) -> float:
    """A record's final metric, the worst value if it diverged or the value is not finite (stored as null)."""
    v = record.get("value")
    if record.get("diverged") or v is None or not math.isfinite(v):
        return worst_value(bool(record.get("higher_is_better", False)))
    return float(v)


def group_key(record: dict[str, Any]) -> GroupKey:
    """``(suite, suite_version, task, agent, lr_d, lr_g)`` of a record."""
    c = record["config"]
    return (record.get("suite", ""), int(record.get("suite_version", 0)), record["task"], record["agent"],
            float(c["lr_d"]), float(c["lr_g"]))


def task_key(record: dict[str, Any]) -> TaskKey:
    return (record.get("suite", ""), int(record.get("suite_version", 0)), record["task"])


def groups(records: Iterable[dict[str, Any]], phase: str) -> dict[GroupKey, list[dict[str, Any]]]:
    """The records of ``phase`` (one of :data:`~minmax_envs.evaluation.record.PHASES`) grouped by
    :func:`group_key`, in order of first appearance. Results of one (task, agent) under two step-size
    configurations (e.g. evaluation runs of two tuning budgets written to one directory) stay apart: they are
    different experiments."""
    check_choice("phase", phase, PHASES)
    out: dict[GroupKey, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("phase") == phase:
            out.setdefault(group_key(r), []).append(r)
    return out


def _best_first(success_rate: float, median: float, higher_is_better: bool) -> tuple[float, float]:
    """Sort key, ascending = best first: higher success rate, then better median."""
    m = -median if higher_is_better else median
    return (-success_rate, m if not math.isnan(m) else math.inf)


def _median_time(records: Sequence[dict[str, Any]]) -> float:
    times = [math.inf if r.get("time_to_target") is None else float(r["time_to_target"]) for r in records]
    return float(_median(np.asarray(times))) if times else math.nan


# --- summary per (task, agent) -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SummaryRow:
    """Evaluation-phase aggregates of one agent, with its tuned configuration, on one task.

    ``median`` / ``iqm`` of the final metric (diverged = worst) with 95% bootstrap CIs ``*_lo``/``*_hi``;
    ``successes`` of ``n`` seeds, ``success_rate`` with the Wilson interval; ``time_to_target`` the median
    over seeds of the records' ``time_to_target`` (``inf``: fewer than half have one) and ``reached`` the
    seeds that have one; ``diverged`` seeds and ``divergence_rate``; ``wall_time_s`` the
    mean wall time per episode (seed)."""

    suite: str
    suite_version: int
    task: str
    env_id: str
    agent: str
    lr_d: float
    lr_g: float
    n: int
    metric: str
    higher_is_better: bool
    target: float
    target_metric: str
    median: float
    median_lo: float
    median_hi: float
    iqm: float
    iqm_lo: float
    iqm_hi: float
    successes: int
    success_rate: float
    success_lo: float
    success_hi: float
    time_to_target: float
    reached: int
    diverged: int
    divergence_rate: float
    wall_time_s: float

    @property
    def key(self) -> GroupKey:
        return (self.suite, self.suite_version, self.task, self.agent, self.lr_d, self.lr_g)

    @property
    def task_key(self) -> TaskKey:
        return (self.suite, self.suite_version, self.task)


def summarize(records: Iterable[dict[str, Any]], confidence: float = CONFIDENCE,
              n_resamples: int = N_RESAMPLES) -> list[SummaryRow]:
    """One :class:`SummaryRow` per (suite, version, task, agent, configuration) over the **eval-phase**
    records (tuning records are ignored; see :func:`config_table`).

    Rows are ordered by task (order of first appearance in ``records``), then best first: highest success
    rate, then best median final metric."""
    rows = []
    for key, rs in groups(records, "eval").items():
        suite, version, task, agent, lr_d, lr_g = key
        first = rs[0]
        hib = bool(first.get("higher_is_better", False))
        values = np.array([final_value(r) for r in rs])
        med_lo, med_hi = bootstrap_ci(values, _median, confidence=confidence, n_resamples=n_resamples)
        iqm_lo, iqm_hi = bootstrap_ci(values, iqm, confidence=confidence, n_resamples=n_resamples)
        k = sum(bool(r.get("success")) for r in rs)
        s_lo, s_hi = wilson(k, len(rs))
        n_div = sum(bool(r.get("diverged")) for r in rs)
        walls = [float(r["wall_time_s"]) for r in rs if r.get("wall_time_s") is not None]
        rows.append(SummaryRow(
            suite=suite, suite_version=version, task=task, env_id=first.get("env_id", ""), agent=agent,
            lr_d=lr_d, lr_g=lr_g, n=len(rs), metric=first.get("metric", ""), higher_is_better=hib,
            target=float(first.get("target", math.nan)),
            target_metric=first.get("target_metric") or first.get("metric", ""),
            median=float(_median(values)), median_lo=med_lo, median_hi=med_hi,
            iqm=iqm(values), iqm_lo=iqm_lo, iqm_hi=iqm_hi,
            successes=k, success_rate=k / len(rs), success_lo=s_lo, success_hi=s_hi,
            time_to_target=_median_time(rs), reached=sum(r.get("time_to_target") is not None for r in rs),
            diverged=n_div, divergence_rate=n_div / len(rs),
            wall_time_s=float(np.mean(walls)) if walls else math.nan,
        ))
    order = {}
    for r in rows:
        order.setdefault(r.task_key, len(order))
    return sorted(rows, key=lambda r: (order[r.task_key], *_best_first(r.success_rate, r.median, r.higher_is_better)))


# --- tuning table --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfigRow:
    """Tuning-phase aggregates of one step-size configuration of one agent on one task: ``successes`` of
    ``n`` tuning seeds, ``success_rate`` with the Wilson interval, ``median`` final metric (diverged =
    worst), ``divergence_rate``, and ``selected``: whether it is the configuration that agent was evaluated
    with (the configuration of its eval-phase records on that task)."""

    suite: str
    suite_version: int
    task: str
    agent: str
    config_index: int
    lr_d: float
    lr_g: float
    n: int
    successes: int
    success_rate: float
    success_lo: float
    success_hi: float
    median: float
    divergence_rate: float
    selected: bool


def config_table(records: Iterable[dict[str, Any]]) -> list[ConfigRow]:
    """One :class:`ConfigRow` per (suite, version, task, agent, configuration) over the **tune-phase**
    records, ordered by task and agent (first appearance), then configuration index."""
    records = list(records)
    evaluated = set(groups(records, "eval"))
    rows = []
    for key, rs in groups(records, "tune").items():
        suite, version, task, agent, lr_d, lr_g = key
        k = sum(bool(r.get("success")) for r in rs)
        lo, hi = wilson(k, len(rs))
        rows.append(ConfigRow(
            suite=suite, suite_version=version, task=task, agent=agent,
            config_index=int(rs[0].get("config_index", -1)), lr_d=lr_d, lr_g=lr_g, n=len(rs), successes=k,
            success_rate=k / len(rs), success_lo=lo, success_hi=hi,
            median=float(_median(np.array([final_value(r) for r in rs]))),
            divergence_rate=sum(bool(r.get("diverged")) for r in rs) / len(rs), selected=key in evaluated,
        ))
    order: dict[tuple, int] = {}
    for r in rows:
        order.setdefault((r.suite, r.suite_version, r.task), len(order))
        order.setdefault((r.suite, r.suite_version, r.task, r.agent), len(order))
    return sorted(rows, key=lambda r: (order[(r.suite, r.suite_version, r.task)],
                                       order[(r.suite, r.suite_version, r.task, r.agent)], r.config_index))


# --- performance profiles ------------------------------------------------------------------------------------------

def time_ratios(rows: Iterable[SummaryRow]) -> dict[TaskKey, dict[str, float]]:
    """Per task, each agent's median time to target divided by the best agent's on that task.

    ``inf`` for an agent that does not reach the target (median time ``inf``) or has no row on the task. Tasks
    that no agent solves are left out. Times are floored at 1 iteration, so that a target met at
    initialization (time 0) does not divide by zero. When an agent has several rows on a task (several
    evaluated configurations), the one with the most seeds is used."""
    rows = list(rows)
    agents = list(dict.fromkeys(r.agent for r in rows))
    per_task: dict[TaskKey, dict[str, SummaryRow]] = {}
    for r in rows:
        have = per_task.setdefault(r.task_key, {})
        if r.agent not in have or r.n > have[r.agent].n:
            have[r.agent] = r
    out: dict[TaskKey, dict[str, float]] = {}
    for task, by_agent in per_task.items():
        times = {a: max(1.0, by_agent[a].time_to_target) if a in by_agent else math.inf for a in agents}
        best = min(times.values())
        if not math.isfinite(best):
            continue
        out[task] = {a: t / best for a, t in times.items()}
    return out


def performance_profiles(rows: Iterable[SummaryRow], taus: Any) -> dict[str, np.ndarray]:
    """AlgoPerf-style performance profiles (Dahl et al. 2023, "Benchmarking neural network training
    algorithms", following Dolan & More 2002) from the median times to target of :func:`summarize`'s rows.

    For task ``t`` and agent ``a`` let ``r_{t,a} = T_{t,a} / min_b T_{t,b}``, the agent's median time to
    target over the best agent's (``inf`` if it does not reach the target; :func:`time_ratios`). Tasks no agent
    solves are left out, leaving ``K`` tasks. The profile is

        ``rho_a(tau) = |{t : r_{t,a} <= tau}| / K``,

    the fraction of tasks on which ``a`` reaches the target within a factor ``tau`` of the fastest agent:
    ``rho_a(1)`` is the fraction of tasks where ``a`` is the fastest, ``rho_a(inf)`` the fraction it solves
    at all. Returns ``{agent: rho_a(taus)}`` (arrays shaped like ``taus``) for every agent of ``rows``;
    all ``nan`` when no task is solved by any agent (``K = 0``)."""
    rows = list(rows)
    taus = np.asarray(taus, dtype=float)
    agents = list(dict.fromkeys(r.agent for r in rows))
    ratios = time_ratios(rows)
    if not ratios:
        return {a: np.full(taus.shape, math.nan) for a in agents}
    out = {}
    for a in agents:
        r = np.array([per_agent[a] for per_agent in ratios.values()])
        out[a] = (r[:, None] <= taus.ravel()[None, :]).mean(axis=0).reshape(taus.shape)
    return out


__all__ = ["CONFIDENCE", "ConfigRow", "N_RESAMPLES", "SummaryRow", "bootstrap_ci", "config_table", "final_value",
           "group_key", "groups", "iqm", "performance_profiles", "summarize", "task_key", "time_ratios", "wilson",
           "worst_value"]

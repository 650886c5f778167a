"""Plots of a results directory, drawn from its records alone (no game is imported, no env id is looked at).

* per task, the metric over training: the median over the evaluation seeds with its 95% bootstrap band, one
  line style and marker per agent (:func:`styles`), and a note on the plot when two agents' curves coincide
  (:func:`coinciding`);
* per task, the figures its records describe (``record["plots"]``, the game's
  :class:`~minmax_envs.Game` ``plots()`` stored by the protocol): ``"points"`` (pairs of two vector final
  metrics, e.g. every generator neuron's cosines to two modes, with threshold lines), ``"trajectory"`` (two
  scalar metrics against each other over training, e.g. the ``(theta, psi)`` plane of the Dirac GAN, with
  reference marks) and ``"samples"`` (the generator samples stored with a record, over reference marks such
  as a mixture's modes), one panel per agent;
* the performance profiles across tasks, whose ``tau`` axis reaches past the largest finite ratio
  (:func:`profile_taus`).

:func:`plot_all` draws them all for :func:`minmax_envs.evaluation.report`, into ``plots/`` of the results directory
(each PNG rendered in memory, then written atomically without following a link: :class:`minmax_envs._files.Folder`).
Names from the records (tasks, figure names) become file names through :func:`minmax_envs._files.path_part`.
"""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from minmax_envs._files import Folder, path_part
from minmax_envs.evaluation.formatting import ReportTask, num
from minmax_envs.evaluation.stats import (
    N_RESAMPLES,
    GroupKey,
    SummaryRow,
    bootstrap_ci,
    groups,
    performance_profiles,
    time_ratios,
    worst_value,
)
from minmax_envs.evaluation.store import PLOTS_DIR

PLOTS = PLOTS_DIR
TRAJECTORY_SEEDS = 4  # trajectories drawn per agent
PROFILE_TAU_MARGIN = 1.1  # the profiles' tau axis ends this factor past the largest finite ratio
PROFILE_TAU_MIN = 1.5  # ... and at least here (when every finite ratio is 1)
MIN_FIGURE_WIDTH = 6.0  # inches: room for a figure's title
LOG_DECADES = 2.0  # a positive metric spanning at least this many decades is drawn on a log axis
BAND_ALPHA = 0.07  # the bands' fill: faint, so that overlapping bands do not blend into one colour
COINCIDE_RTOL = 1e-5  # curves equal within these tolerances at every point are noted as coinciding (float32
COINCIDE_ATOL = 1e-9  # rounding apart: Adam and AdaLR on scalar parameters)
#: one line style and one marker per agent, in agent order; the pairs repeat only after 30 agents
LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")


# --- styles and coincidences ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    """How one agent is drawn in every plot."""

    color: Any
    linestyle: Any
    marker: str


def styles(agents: Sequence[str]) -> dict[str, Style]:
    """One :class:`Style` per agent, cycled deterministically by the agents' order: agent ``i`` gets colour
    ``i mod 10`` (tab10), line style ``i mod 6`` and marker ``i mod 10``, so the first six agents differ in all
    three and no two of the first 30 share both line style and marker."""
    import matplotlib

    colors = matplotlib.colormaps["tab10"].colors
    return {a: Style(colors[i % len(colors)], LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
            for i, a in enumerate(agents)}


def coinciding(curves: dict[str, np.ndarray], rtol: float = COINCIDE_RTOL,
               atol: float = COINCIDE_ATOL) -> list[list[str]]:
    """The groups (two labels or more, in the order of ``curves``) of curves equal within the tolerances at
    every point: same shape, NaN where the other is NaN, infinities equal."""
    out: list[list[str]] = []
    placed: set[str] = set()
    items = [(k, np.asarray(v, dtype=float)) for k, v in curves.items()]
    for i, (a, va) in enumerate(items):
        if a in placed:
            continue
        group = [a] + [b for b, vb in items[i + 1:] if b not in placed and va.shape == vb.shape
                       and bool(np.allclose(va, vb, rtol=rtol, atol=atol, equal_nan=True))]
        if len(group) > 1:
            out.append(group)
            placed.update(group)
    return out


def coincidence_note(groups_: list[list[str]]) -> str:
    """A line per group of coinciding curves: ``"identical curves: adam = adalr"``."""
    return "\n".join("identical curves: " + " = ".join(g) for g in groups_)


def _note(ax: Any, groups_: list[list[str]]) -> None:
    """Write the coincidence note in the lower right corner of ``ax``, if there is one."""
    if groups_:
        ax.text(0.98, 0.02, coincidence_note(groups_), transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "0.5", "alpha": 0.9})


def profile_taus(ratios: dict[Any, dict[str, float]], points: int = 400) -> np.ndarray:
    """The ``tau`` grid of the performance profiles: from 1 to :data:`PROFILE_TAU_MARGIN` times the largest
    finite ratio (at least :data:`PROFILE_TAU_MIN`), so every finite ratio is on the axis."""
    finite = [v for per_agent in ratios.values() for v in per_agent.values() if math.isfinite(v)]
    top = max([PROFILE_TAU_MIN] + [PROFILE_TAU_MARGIN * v for v in finite])
    return np.linspace(1.0, top, points)


# --- figures -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    """Where a figure goes: the file ``name`` inside ``folder``."""

    folder: Folder
    name: str


@contextmanager
def _figure(path: _Target, panels: int = 1, size: tuple[float, float] = (4.2, 3.6), title: str | None = None,
            max_cols: int = 5, **subplot_kw: Any) -> Iterator[list[Any]]:
    """A figure of ``panels`` axes on a grid (at most ``max_cols`` a row); yields the axes, then titles,
    lays out, renders as PNG and writes it to ``path`` (atomically), and closes the figure (also on error). Unused
    grid cells are hidden."""
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
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        path.folder.write(path.name, png.getvalue())
    finally:
        plt.close(fig)


@dataclass
class _Series:
    """One evaluated configuration of an agent on a task: its label, style and eval records."""

    label: str
    agent: str
    style: Style
    records: list[dict[str, Any]]
    row: SummaryRow


def plot_all(d: Folder, tasks: list[ReportTask], records: list[dict[str, Any]],
             rows: list[SummaryRow]) -> dict[Any, list[tuple[str, str]]]:
    """Every plot into ``plots/`` of the results directory ``d``; returns ``{task key or "profiles": [(caption,
    path relative to d), ...]}``."""
    evals = groups(records, "eval")
    agent_styles = styles(list(dict.fromkeys(r.agent for r in rows)))
    out: dict[Any, list[tuple[str, str]]] = {}
    for task in tasks:
        series = _series(task, rows, evals, agent_styles)
        if not series:
            continue
        plotters = [("curves", f"{task.metric} over training", lambda p, t, s: _plot_curves(p, t, s))]
        for spec in _specs([r for s in series for r in s.records]):
            draw = _KINDS[spec["kind"]]
            plotters.append((spec["name"], spec.get("caption") or spec["name"],
                             lambda p, t, s, spec=spec, draw=draw: draw(p, t, s, spec)))
        for name, what, plot in plotters:
            rel = f"{PLOTS}/{task.slug}_{name}.png"
            if plot(_Target(d, rel), task, series):
                out.setdefault(task.key, []).append((f"{task.label}: {what}", rel))
    rel = f"{PLOTS}/performance_profiles.png"
    if len({r.task_key for r in rows}) >= 2 and _plot_profiles(_Target(d, rel), rows, agent_styles):
        out["profiles"] = [("performance profiles", rel)]
    return out


def _series(task: ReportTask, rows: list[SummaryRow], evals: dict[GroupKey, list[dict[str, Any]]],
            agent_styles: dict[str, Style]) -> list[_Series]:
    task_rows = [r for r in rows if r.task_key == task.key]
    repeated = {a for a in (r.agent for r in task_rows) if sum(x.agent == a for x in task_rows) > 1}
    return [_Series(f"{r.agent} (lr_d={num(r.lr_d, 3)})" if r.agent in repeated else r.agent, r.agent,
                    agent_styles[r.agent], evals[r.key], r) for r in task_rows]


def _specs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figure descriptions the records carry (``record["plots"]``), each once by name in order of first
    appearance; a description of an unknown kind is left out with a warning, and a name is reduced to a safe
    file name part (:func:`minmax_envs._files.path_part`)."""
    out: dict[str, dict[str, Any]] = {}
    unknown, malformed = set(), set()
    for r in records:
        for spec in r.get("plots") or []:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
                continue
            if spec.get("kind") not in _KINDS:
                unknown.add(str(spec.get("kind")))
                continue
            problem = _spec_problem(spec)
            if problem:
                malformed.add(f"{spec['name']!r} ({problem})")
                continue
            name = path_part(spec["name"])
            out.setdefault(name, {**spec, "name": name})
    if unknown:
        warnings.warn(f"records describe plots of unknown kind(s) {', '.join(sorted(unknown))} (known: "
                      f"{', '.join(_KINDS)}); they are left out", stacklevel=3)
    if malformed:
        warnings.warn(f"records describe malformed plots {', '.join(sorted(malformed))}; they are left out",
                      stacklevel=3)
    return list(out.values())


def _spec_problem(spec: dict[str, Any]) -> str | None:
    """What is wrong with a figure description of a known kind (a stored file is not trusted), else ``None``:
    ``points`` and ``trajectory`` name two metrics ``x`` and ``y``; ``marks`` are pairs of numbers, ``limit`` a
    positive number."""
    if spec["kind"] in ("points", "trajectory") and not all(isinstance(spec.get(k), str) for k in ("x", "y")):
        return "x and y must name metrics"
    try:
        marks = _marks(spec)
    except (TypeError, ValueError):
        return "marks must be [x, y] pairs of numbers"
    if not np.isfinite(marks).all():
        return "marks must be finite"
    limit = spec.get("limit")
    if limit is not None and not (isinstance(limit, (int, float)) and not isinstance(limit, bool)
                                  and math.isfinite(limit) and limit > 0):
        return "limit must be a positive number"
    return None


# --- metric curves -------------------------------------------------------------------------------------------------

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


def _plot_curves(path: _Target, task: ReportTask, series: list[_Series]) -> bool:
    worst = worst_value(task.higher_is_better)
    lines = []
    for s in series:
        m = _curve_matrix(s.records, task.metric, worst)
        if m is not None:
            lines.append((s, m[0], *_median_band(m[1])))
    if not lines:
        return False
    same = coinciding({s.label: np.concatenate([steps, med]) for s, steps, med, _, _ in lines})
    with _figure(path, size=(6.4, 4.2), title=f"{task.label}: median over {lines[0][0].row.n} seeds, 95% CI") as axes:
        ax = axes[0]
        for s, steps, med, lo, hi in lines:
            st = s.style
            ax.plot(steps, _finite(med), marker=st.marker, ms=4, color=st.color, ls=st.linestyle, label=s.label)
            ax.fill_between(steps, _finite(lo), _finite(hi), color=st.color, alpha=BAND_ALPHA, linewidth=0)
            for edge in (lo, hi):  # the band's edges in the agent's style: bands stay told apart where they overlap
                ax.plot(steps, _finite(edge), color=st.color, ls=st.linestyle, lw=0.6, alpha=0.6)
        if task.info.get("target_metric") == task.metric and task.info.get("target") is not None:
            ax.axhline(task.info["target"], color="black", ls="--", lw=1, label="target")
        if _log_scale([a for _, _, med, lo, hi in lines for a in (med, lo, hi)]):
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{task.metric} ({'higher' if task.higher_is_better else 'lower'} is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _note(ax, same)
    return True


# --- figures the records describe ----------------------------------------------------------------------------------

def _values(v: Any) -> list[float]:
    """A stored metric as a list of floats (a scalar as one value; ``None`` as NaN)."""
    items = v if isinstance(v, list) else [v]
    return [math.nan if x is None else float(x) for x in items]


def _lines(ax: Any, spec: dict[str, Any]) -> None:
    for v in spec.get("lines") or []:
        ax.axvline(v, color="black", ls="--", lw=0.8)
        ax.axhline(v, color="black", ls="--", lw=0.8)


def _marks(spec: dict[str, Any]) -> np.ndarray:
    return np.asarray(spec.get("marks") or [], dtype=float).reshape(-1, 2)


def _square(ax: Any, lim: float, **labels: Any) -> None:
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), **labels)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)


def _plot_points(path: _Target, task: ReportTask, series: list[_Series], spec: dict[str, Any]) -> bool:
    """Every element ``(x[j], y[j])`` of two vector final metrics, over all evaluation seeds, one panel per agent;
    a succeeding seed's points in the agent's colour, a failing seed's in grey."""
    x, y = spec["x"], spec["y"]
    points = []
    for s in series:
        ok, bad = [], []
        for r in s.records:
            final = r.get("final") or {}
            if x not in final or y not in final:
                continue
            pairs = [(a, b) for a, b in zip(_values(final[x]), _values(final[y])) if math.isfinite(a + b)]
            (ok if r.get("success") else bad).extend(pairs)
        points.append((s, np.asarray(ok, dtype=float).reshape(-1, 2), np.asarray(bad, dtype=float).reshape(-1, 2)))
    if not any(len(ok) + len(bad) for _, ok, bad in points):
        return False
    every = np.concatenate([a for _, ok, bad in points for a in (ok, bad)])
    lim = spec.get("limit") or 1.1 * float(np.abs(every).max() or 1.0)
    with _figure(path, len(points), size=(3.6, 3.6), title=f"{task.label}: every element of {x} and {y} at the "
                 "end, all evaluation seeds") as axes:
        for ax, (s, ok, bad) in zip(axes, points):
            ax.scatter(bad[:, 0], bad[:, 1], s=9, color="0.6", alpha=0.6, marker=s.style.marker, label="seed fails")
            ax.scatter(ok[:, 0], ok[:, 1], s=9, color=s.style.color, alpha=0.8, marker=s.style.marker,
                       label="seed succeeds")
            _lines(ax, spec)
            _square(ax, lim, xlabel=x, ylabel=y, title=f"{s.label}: {s.row.successes}/{s.row.n} seeds succeed")
        axes[0].legend(fontsize=7, loc="lower left")
    return True


def _plot_trajectory(path: _Target, task: ReportTask, series: list[_Series], spec: dict[str, Any]) -> bool:
    """Scalar metric ``x`` against ``y`` over the evaluation points of the first :data:`TRAJECTORY_SEEDS`
    evaluation seeds, one panel per agent (dotted: a diverged seed)."""
    x, y = spec["x"], spec["y"]
    paths = []
    for s in series:
        recs = sorted((r for r in s.records if {x, y} <= set(r.get("curve") or {})), key=lambda r: r["seed"])
        tracks = [(np.array(_values(r["curve"][x])), np.array(_values(r["curve"][y])), bool(r.get("diverged")))
                  for r in recs[:TRAJECTORY_SEEDS]]
        paths.append((s, tracks))
    if not any(tracks for _, tracks in paths):
        return False
    lim = spec.get("limit") or _track_limit([t for _, tracks in paths for t in tracks], _marks(spec))
    marks = _marks(spec)
    with _figure(path, len(paths), size=(3.4, 3.4), title=f"{task.label}: first {TRAJECTORY_SEEDS} evaluation seeds "
                 "(o start, s end)") as axes:
        for ax, (s, tracks) in zip(axes, paths):
            for xs, ys, diverged in tracks:
                ax.plot(xs, ys, color=s.style.color, lw=1, alpha=0.9, ls=":" if diverged else "-")
                ax.plot(xs[:1], ys[:1], "o", color=s.style.color, ms=4)
                ax.plot(xs[-1:], ys[-1:], "s", color=s.style.color, ms=4)
            if len(marks):
                ax.plot(marks[:, 0], marks[:, 1], "*", color="black", ms=11, label=spec.get("mark_label") or None)
            _square(ax, lim, xlabel=x, ylabel=y, title=f"{s.label}: {s.row.diverged}/{s.row.n} diverged")
        if len(marks) and spec.get("mark_label"):
            axes[0].legend(fontsize=7, loc="lower left")
    return True


def _track_limit(tracks: list[tuple[np.ndarray, np.ndarray, bool]], marks: np.ndarray) -> float:
    """Half-width of the window: every point of the seeds that did not diverge (all seeds if each diverged) and
    the marks, with a margin; diverging trajectories leave the window."""
    kept = [t for t in tracks if not t[2]] or tracks
    vals = np.abs(np.concatenate([np.concatenate([a, b]) for a, b, _ in kept] + [marks.ravel()]))
    vals = vals[np.isfinite(vals)]
    return 1.1 * float(vals.max()) if vals.size and vals.max() > 0 else 1.0


def _plot_samples(path: _Target, task: ReportTask, series: list[_Series], spec: dict[str, Any]) -> bool:
    """The generator samples stored with the first record of each agent that has some, over the marks."""
    panels = []
    for s in series:
        rec = next((r for r in s.records if r.get("samples")), None)
        pts = None if rec is None else np.array([p for p in rec["samples"] if p is not None and None not in p], float)
        panels.append((s, rec, None if pts is None else pts.reshape(-1, 2)))
    if all(rec is None for _, rec, _ in panels):
        return False
    marks = _marks(spec)
    if spec.get("limit"):
        lim = float(spec["limit"])
    elif len(marks):
        lim = float(np.abs(marks).max()) + 1.5
    else:
        lim = _track_limit([(p[:, 0], p[:, 1], False) for _, _, p in panels if p is not None and len(p)], marks)
    label = spec.get("mark_label") or "marks"
    with _figure(path, len(panels), size=(3.4, 3.4), title=f"{task.label}: generator samples of one evaluation "
                 f"seed (x: {label})") as axes:
        for ax, (s, rec, pts) in zip(axes, panels):
            if len(marks):
                ax.plot(marks[:, 0], marks[:, 1], "x", color="red", ms=8, mew=2, zorder=3)
            if rec is None:
                ax.text(0.5, 0.5, "no samples stored", ha="center", va="center", transform=ax.transAxes)
                title = s.label
            else:
                ax.scatter(pts[:, 0], pts[:, 1], s=3, color=s.style.color, alpha=0.5)
                outside = int(np.sum(np.any(np.abs(pts) > lim, axis=1))) if len(pts) else 0
                value = (rec.get("final") or {}).get(task.metric)
                title = f"{s.label}, seed {rec.get('seed')}: {task.metric} {num(value, 3)}"
                if outside:
                    title += f"\n({outside} of {len(pts)} samples outside)"
            _square(ax, lim, title=title)
            ax.title.set_fontsize(9)
    return True


_KINDS = {"points": _plot_points, "trajectory": _plot_trajectory, "samples": _plot_samples}


# --- performance profiles ------------------------------------------------------------------------------------------

def _plot_profiles(path: _Target, rows: list[SummaryRow], agent_styles: dict[str, Style]) -> bool:
    ratios = time_ratios(rows)
    if not ratios:
        return False
    taus = profile_taus(ratios)
    profiles = performance_profiles(rows, taus)
    same = coinciding(profiles)
    n_tasks = len({r.task_key for r in rows})
    with _figure(path, size=(6.4, 4.2), title=f"Performance profiles over {len(ratios)} of {n_tasks} tasks "
                 "(tasks no agent solves left out)") as axes:
        ax = axes[0]
        every = max(1, len(taus) // 10)
        for i, (agent, rho) in enumerate(profiles.items()):  # thinner in turn and markers offset: ties stay visible
            st = agent_styles[agent]
            ax.step(taus, rho, where="post", color=st.color, label=agent, lw=max(1.0, 3.2 - 0.4 * i), ls=st.linestyle,
                    marker=st.marker, ms=5, markevery=(i * every // max(1, len(profiles)), every))
        ax.set(xlabel="tau (median time to target / fastest agent's)", ylabel="fraction of tasks within tau",
               ylim=(-0.03, 1.03), xlim=(1.0, taus[-1]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _note(ax, same)
    return True


__all__ = ["Style", "coincidence_note", "coinciding", "plot_all", "profile_taus", "styles"]

r"""Step-size schedules: functions $t \mapsto \eta_t$ of the number $t$ of updates already made ($t = 0$ first)
to the step size $\eta_t$.

Any callable of ``t`` (an int) returning a float is a schedule; every ``lr`` argument of :mod:`agents` accepts
one. The schedules here are module-level functions bound with ``functools.partial``, so that agents built with
them pickle.
"""

from __future__ import annotations

from functools import partial

from agents._base import Schedule, check_real


def constant(value: float) -> Schedule:
    r"""$\eta_t = \text{value}$ for every $t$."""
    return partial(_constant, check_real("value", value, low=0.0))


def _constant(value: float, t: int) -> float:
    return value


def linear(init: float, end: float, steps: int) -> Schedule:
    r"""$\eta_t$ goes linearly from ``init`` ($t = 0$) to ``end`` ($t = \text{steps}$) and stays at ``end`` after:
    $\eta_t = \text{init} + (\text{end} - \text{init}) \min(t, \text{steps}) / \text{steps}$."""
    init, end = check_real("init", init, low=0.0), check_real("end", end, low=0.0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return partial(_linear, init, end, steps)


def _linear(init: float, end: float, steps: int, t: int) -> float:
    frac = min(t, steps) / steps
    return init + (end - init) * frac


def linear_decay(init: float, steps: int) -> Schedule:
    r"""Linear decay to zero over ``steps`` updates, as in the image experiments of "Adam is no better than
    normalized SGD": $\eta_t = \text{init} \cdot (1 - t / \text{steps})$ (0 from $t = \text{steps}$ on)."""
    return linear(init, 0.0, steps)

"""Step-size schedules: functions of the number ``t`` of updates already made (``t = 0`` first).

Any callable ``t -> float`` is a schedule; every ``lr`` argument of :mod:`agents` accepts one. The schedules
here are module-level functions bound with ``functools.partial``, so that agents built with them pickle.
"""

from __future__ import annotations

from functools import partial

from agents._base import Schedule, check_number


def constant(value: float) -> Schedule:
    """``lr_t = value``."""
    return partial(_constant, check_number("value", value))


def _constant(value: float, t: int) -> float:
    return value


def linear(init: float, end: float, steps: int) -> Schedule:
    """``lr_t`` goes linearly from ``init`` (t = 0) to ``end`` (t = steps) and stays at ``end`` after."""
    init, end = check_number("init", init), check_number("end", end)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return partial(_linear, init, end, steps)


def _linear(init: float, end: float, steps: int, t: int) -> float:
    frac = min(t, steps) / steps
    return init + (end - init) * frac


def linear_decay(init: float, steps: int) -> Schedule:
    """Linear decay to zero over ``steps`` updates, as in the image experiments of "Adam is no better than normalized
    SGD":
    ``lr_t = init * (1 - t / steps)`` (0 from ``t = steps`` on)."""
    return linear(init, 0.0, steps)

"""Eager argument validation with messages that say what was wrong and what is allowed."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

import numpy as np

from agents._base import check_real  # noqa: F401 - the one number checker, shared with the agents


def check_int(name: str, value: Any, *, low: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an int ``>= low`` (or ``None`` where allowed), or a ``ValueError`` that says so."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``, or a ``ValueError`` that lists them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool (JSON ``true`` / ``false``; ``0``, ``1`` and ``"no"`` are not), or a ``ValueError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool (true or false), got {value!r}")
    return bool(value)


def check_str(name: str, value: Any, *, allow_none: bool = False, allow_empty: bool = False) -> str | None:
    """``value`` if it is a string (non-empty unless ``allow_empty``; ``None`` where allowed), else a ``ValueError``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or (not value and not allow_empty):
        what = "a string" if allow_empty else "a non-empty string"
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}")
    return value


def required_fields(cls: type) -> list[str]:
    """The fields of the dataclass ``cls`` that have no default."""
    return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]


def check_fields(where: str, kind: str, d: dict[str, Any], cls: type, sort_allowed: bool = False) -> None:
    """A ``ValueError`` naming the unknown and the missing fields of ``d``, a JSON object read as the dataclass
    ``cls`` (a suite, a task, a family...); the allowed fields in declaration order, or sorted."""
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(allowed), key=str)
    if unknown:
        listed = sorted(allowed) if sort_allowed else allowed
        raise ValueError(f"{where}: unknown {kind} field(s) {unknown}; allowed: {', '.join(listed)}")
    missing = [f for f in required_fields(cls) if f not in d]
    if missing:
        raise ValueError(f"{where}: missing {kind} field(s) {missing}; required: {', '.join(required_fields(cls))}")

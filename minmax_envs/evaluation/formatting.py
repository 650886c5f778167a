"""How reports show what they read: numbers, Markdown text from records and suite files, and the tasks' names.

Shared by the leaderboard (:mod:`minmax_envs.evaluation.report`) and the plots (:mod:`minmax_envs.evaluation.plots`),
which import it and never each other's internals.

Text that comes from a suite file or a record (a description, a task or agent name, a figure caption) is hostile
input: it goes into Markdown through :func:`md` only, which keeps it on its line and shows it as the text it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from minmax_envs._files import path_part
from minmax_envs.evaluation.stats import TaskKey

_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
_BACKSLASHED = set("\\`*_{}[]#!")  # escaped with a backslash by CommonMark and Python-Markdown alike
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "~": "&#126;"}  # not escapable in both
_BLOCK_START = re.compile(r"^(\s*(?:\d+)?)([-+.)])")


def md(text: Any, *, code: bool = False) -> str:
    """``text`` as Markdown that shows it literally, on one line (GitHub's CommonMark and the site's Python-Markdown).

    Line breaks become spaces, so no text can start a heading, a list, a table row or an HTML block. Otherwise
    ``\\ ` * _ { } [ ] # !`` are backslash-escaped, ``& < > | ~`` become character references (no link, image,
    emphasis, HTML or table cell), and a leading ``-``, ``+``, ``=`` or ``1.`` that would open a block is escaped.
    With ``code=True`` the text becomes a code span whose backtick fence is longer than any run of backticks inside
    it, with ``|`` escaped (``\\|``) so that it stays in its table cell."""
    s = _LINE_BREAKS.sub(" ", str(text))
    if code:
        fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", s)), default=0))
        pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
        return f"{fence}{pad}{s.replace('|', chr(92) + '|')}{pad}{fence}"
    s = "".join("\\" + c if c in _BACKSLASHED else _ENTITIES.get(c, c) for c in s)
    s = _BLOCK_START.sub(r"\1\\\2", s, count=1)
    return "&#61;" + s[1:] if s.startswith("=") else s


# --- numbers -------------------------------------------------------------------------------------------------------

def num(x: float | None, digits: int = 4) -> str:
    """A number for tables and plot titles: ``digits`` significant digits, ``n/a``, ``∞``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def with_ci(x: float, lo: float, hi: float) -> str:
    """``x [lo, hi]``."""
    return f"{num(x)} [{num(lo)}, {num(hi)}]"


def pct(x: float) -> str:
    """A rate as a percentage with 3 significant digits (``n/a`` for NaN)."""
    return "n/a" if math.isnan(x) else f"{100 * x:.3g}%"


def success(k: int, n: int, lo: float, hi: float) -> str:
    """``k/n = rate [lo, hi]`` (a Wilson interval), or ``n/a`` without seeds."""
    return f"{k}/{n} = {pct(k / n)} [{pct(lo)}, {pct(hi)}]" if n else "n/a"


def time_to_target(t: float, reached: int, n: int) -> str:
    return f"{num(t)} ({reached}/{n} reach)"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table whose cells are already Markdown (made with :func:`md` where they hold read text)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def span(values: Sequence[int]) -> str:
    """Sorted integers as ``a..b`` when consecutive, else listed (the first 8, then how many more)."""
    v = sorted(values)
    if not v:
        return "none"
    if v[-1] - v[0] == len(v) - 1:
        return f"{v[0]}..{v[-1]}" if len(v) > 1 else str(v[0])
    listed = ", ".join(map(str, v[:8]))
    return listed + (f" and {len(v) - 8} more" if len(v) > 8 else "")


# --- tasks ---------------------------------------------------------------------------------------------------------

@dataclass
class ReportTask:
    """What a report knows of one task: its identity and scoring (from its records or ``suite.json``), its label
    (the task's name, prefixed by its suite when a directory holds several) and its slug (the label as a file name
    part, :func:`minmax_envs._files.path_part`)."""

    key: TaskKey
    label: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return path_part(self.label)

    @property
    def metric(self) -> str:
        return self.info.get("metric", "")

    @property
    def higher_is_better(self) -> bool:
        return bool(self.info.get("higher_is_better", False))


__all__ = ["ReportTask", "md", "num", "pct", "span", "success", "table", "time_to_target", "with_ci"]

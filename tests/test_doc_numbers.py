"""Every number that docs/reproduction.md and docs/controllers.md quote from a sweep is recomputed from the committed
records behind it.

The claims are in ``docs/reproduction/numbers.json``. A claim is a piece of a page's text written as a template: the
text as it reads, with each number replaced by the statistic that gives it, e.g.

    {"doc": "reproduction.md", "records": "two-mode", "where": "phase=eval,task=correlated-modes,agent=nsgda",
     "text": "| nsgda | ({s.row.lr_d:.3g}, {s.row.lr_g:.3g}) | {s.row.successes}/{s.row.n} = {s.row.success_rate:.1%}"}

rendered with the records of ``records`` (a folder under ``docs/reproduction/`` or ``docs/controllers/``: its
``results.jsonl``, or ``outcomes.jsonl.gz``, the records without curves, samples and figure descriptions) filtered by
``where``; the rendered text must be found in the page. So a number that no longer matches its records, or a sentence
edited without its claim, fails here. What a template may ask of a selection ``s`` (``s[key=value,...]`` narrows it;
values may be names from ``"aliases"``, ``a|b`` is either; ``!=``, ``<``, ``<=``, ``>``, ``>=`` compare; a key may
be dotted, ``config.lr_d<=0.006``):

* ``s.row.FIELD``: the leaderboard row of its held-out records (one agent and configuration on one task;
  :class:`~minmax_envs.evaluation.stats.SummaryRow`: ``median``, ``median_lo``, ``successes``, ``success_rate``,
  ``divergence_rate``, ``lr_d``...); ``s.cfg.FIELD``: the tuning row of its tuning records (one configuration,
  :class:`~minmax_envs.evaluation.stats.ConfigRow`); ``s.cfgmin[FIELD]`` / ``s.cfgmax[FIELD]``: over its tuning rows;
  ``s.ncfg``: its tuning rows; ``s.beats[AGENT]``: its tuning rows whose Wilson interval of the success rate lies
  above ``AGENT``'s at the same configuration;
* ``s.med[M]``, ``s.q1[M]``, ``s.q3[M]``, ``s.min[M]``, ``s.max[M]``, ``s.mean[M]``: over its records, of ``M`` = a
  final metric, ``value``, ``METRIC@STEP`` (the curve at an evaluation point) or ``METRIC@start`` (its first point),
  leaving out seeds without a finite value (``M`` may also be a numeric field such as ``divergence_step``);
  ``s.first[M>=X]`` / ``s.first[M<=X]``: the first evaluation point whose median over the records meets the bound
  (``-1``: none); ``s.medlow[M@A..B]`` / ``s.medhigh[M@A..B]``: the lowest / highest median of ``M`` at the
  evaluation points from ``A`` to ``B``; ``s.rowmin[FIELD]`` / ``s.rowmax[FIELD]``: over its leaderboard rows;
  ``s.agentmin[M]`` / ``s.agentmax[M]``: over its agents, of their median of ``M``;
  ``s.n``: records; ``s.minutes``: their wall time in minutes; ``s.per_kiter``: minutes per 1000 iterations;
* formats: Python's, with exponents written short (``1.5e-20``), plus ``pN``: a rate as a percentage of ``N``
  significant digits (``0%`` and ``100%`` exact), ``pnN`` the same without the ``%``; a field may be the difference
  or the ratio of two: ``{A - B:.1f}``.

Tables with numbers that are not quoted from records (settings, replays drawn by scripts, runs without committed
records) are listed under ``"unchecked"`` with the reason; every other table row with a number in a page must be
covered by a claim.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import string
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minmax_envs.evaluation.stats import config_table, summarize
from minmax_envs.evaluation.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLAIMS = DOCS / "reproduction" / "numbers.json"
PAGES = ("reproduction.md", "controllers.md")


@cache
def claims() -> dict[str, Any]:
    return json.loads(CLAIMS.read_text(encoding="utf-8"))


@cache
def records(folder: str) -> tuple[dict[str, Any], ...]:
    """The committed records of ``docs/<folder>`` (``reproduction/two-mode``...)."""
    d = DOCS / folder
    if (d / "results.jsonl").is_file():
        return tuple(ResultStore(d).records())
    with gzip.open(d / "outcomes.jsonl.gz", "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f)


def _folder(name: str) -> str:
    return name if "/" in name and name.split("/")[0] in ("reproduction", "controllers") else f"reproduction/{name}"


def _value(r: dict[str, Any], metric: str) -> float | None:
    name, _, at = metric.partition("@")
    if not at:
        v = r["final"][name] if name in r["final"] else r[name]
    elif at == "start":
        v = r["start"][name] if "start" in r else r["curve"][name][0]
    else:
        v = r["curve"][name][r["curve"]["steps"].index(int(at))]
    return None if v is None or not math.isfinite(v) else float(v)


class _Over:
    """``sel.med[metric]`` and its kin: ``fn`` of the metric over the selection's records."""

    def __init__(self, sel: Sel, fn):
        self.sel, self.fn = sel, fn

    def __getitem__(self, metric: str) -> float:
        values = [v for v in (_value(r, metric) for r in self.sel.records) if v is not None]
        assert values, f"no finite value of {metric} in {self.sel}"
        return float(self.fn(np.asarray(values)))


class _First:
    def __init__(self, sel: Sel):
        self.sel = sel

    def __getitem__(self, bound: str) -> int:
        metric, op, x = re.fullmatch(r"(.+?)(>=|<=)(.+)", bound).groups()
        steps = self.sel.records[0]["curve"]["steps"]
        med = np.median([[np.nan if v is None else v for v in r["curve"][metric]] for r in self.sel.records], axis=0)
        met = med >= float(x) if op == ">=" else med <= float(x)
        return int(steps[int(np.argmax(met))]) if met.any() else -1


class _MedianCurve:
    """``sel.medlow[M@A..B]`` / ``sel.medhigh[M@A..B]``: the lowest / highest median over the records of metric ``M``
    at the evaluation points from ``A`` to ``B``."""

    def __init__(self, sel: Sel, fn):
        self.sel, self.fn = sel, fn

    def __getitem__(self, spec: str) -> float:
        metric, lo, hi = re.fullmatch(r"(.+)@(\d+)\.\.(\d+)", spec).groups()
        steps = [t for t in self.sel.records[0]["curve"]["steps"] if int(lo) <= t <= int(hi)]
        return self.fn(self.sel.med[f"{metric}@{t}"] for t in steps)


class _Agents:
    """``sel.agentmin[M]`` / ``sel.agentmax[M]``: over the selection's agents, of the median of ``M`` (as ``med``)."""

    def __init__(self, sel: Sel, fn):
        self.sel, self.fn = sel, fn

    def __getitem__(self, metric: str) -> float:
        agents = dict.fromkeys(r["agent"] for r in self.sel.records)
        return self.fn(Sel(self.sel.folder, self.sel.where + [("agent", "=", a)]).med[metric] for a in agents)


class _Rows:
    """``sel.rowmin[FIELD]`` / ``sel.rowmax[FIELD]``: over the leaderboard rows of the selection's held-out records."""

    def __init__(self, sel: Sel, fn):
        self.sel, self.fn = sel, fn

    def __getitem__(self, field: str) -> float:
        return self.fn(getattr(r, field) for r in summarize([r for r in self.sel.records if r["phase"] == "eval"]))


class _Configs:
    def __init__(self, sel: Sel, fn):
        self.sel, self.fn = sel, fn

    def __getitem__(self, field: str) -> float:
        rows = config_table([r for r in self.sel.records if r["phase"] == "tune"])
        assert rows, f"no tuning records in {self.sel}"
        return self.fn(getattr(c, field) for c in rows)


class _Beats:
    """``sel.beats[agent]``: the tuning configurations at which the selection's Wilson interval of the success rate
    lies above ``agent``'s at the same configuration of the same task."""

    def __init__(self, sel: Sel):
        self.sel = sel

    def __getitem__(self, agent: str) -> int:
        other = {(c.task, c.config_index): c for c in config_table(self.sel[f"agent={agent}"].records)}
        mine = config_table([r for r in self.sel.records if r["phase"] == "tune"])
        return sum(c.success_lo > other[(c.task, c.config_index)].success_hi for c in mine)


class Sel:
    """Records of one folder that match ``where``."""

    def __init__(self, folder: str, where: list[tuple[str, str, str]]):
        aliases = claims().get("aliases", {})
        self.folder = folder
        self.where = [(k, op, "|".join(aliases.get(a, a) for a in v.split("|"))) for k, op, v in where]
        self.records = [r for r in records(folder) if all(_holds(r, *condition) for condition in self.where)]
        assert self.records, f"no records in {self}"

    def __repr__(self) -> str:
        return f"docs/{self.folder} where {self.where}"

    def __getitem__(self, narrower: str) -> Sel:
        new = _where(narrower)  # a key given again replaces the claim's condition on it
        return Sel(self.folder, [c for c in self.where if c[0] not in {k for k, _, _ in new}] + new)

    @property
    def row(self):
        rows = summarize([r for r in self.records if r["phase"] == "eval"])
        assert len(rows) == 1, f"{len(rows)} leaderboard rows in {self}"
        return rows[0]

    @property
    def cfg(self):
        rows = config_table([r for r in self.records if r["phase"] == "tune"])
        assert len(rows) == 1, f"{len(rows)} tuning rows in {self}"
        return rows[0]

    n = property(lambda self: len(self.records))
    minutes = property(lambda self: sum(r["wall_time_s"] for r in self.records) / 60)
    med = property(lambda self: _Over(self, np.median))
    q1 = property(lambda self: _Over(self, lambda v: np.percentile(v, 25)))
    q3 = property(lambda self: _Over(self, lambda v: np.percentile(v, 75)))
    min = property(lambda self: _Over(self, np.min))
    max = property(lambda self: _Over(self, np.max))
    mean = property(lambda self: _Over(self, np.mean))
    first = property(lambda self: _First(self))
    beats = property(lambda self: _Beats(self))
    ncfg = property(lambda self: len(config_table([r for r in self.records if r["phase"] == "tune"])))
    per_kiter = property(lambda self: 1000 * self.minutes / self.records[0]["steps"])
    medlow = property(lambda self: _MedianCurve(self, min))
    medhigh = property(lambda self: _MedianCurve(self, max))
    agentmin = property(lambda self: _Agents(self, min))
    agentmax = property(lambda self: _Agents(self, max))
    rowmin = property(lambda self: _Rows(self, min))
    rowmax = property(lambda self: _Rows(self, max))
    cfgmin = property(lambda self: _Configs(self, min))
    cfgmax = property(lambda self: _Configs(self, max))


def _where(text: str) -> list[tuple[str, str, str]]:
    """``key=value,key<=number,...`` as ``[(key, operator, value), ...]`` (a key may be dotted: ``config.lr_d``)."""
    return [re.fullmatch(r"([\w.]+?)(<=|>=|!=|=|<|>)(.*)", part).groups() for part in text.split(",") if part]


def _holds(record: dict[str, Any], key: str, op: str, value: str) -> bool:
    x: Any = record
    for part in key.split("."):
        x = x[part]
    if op in ("=", "!="):
        return (str(x) in value.split("|")) == (op == "=")
    return {"<": x < float(value), "<=": x <= float(value), ">": x > float(value), ">=": x >= float(value)}[op]


class _Format(string.Formatter):
    """Python's format, with short exponents, ``pN`` percentages, and a field ``A - B`` or ``A / B`` of two fields."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        for op, fn in ((" - ", lambda a, b: a - b), (" / ", lambda a, b: a / b)):
            if op in field_name:
                a, b = field_name.split(op)
                return fn(super().get_field(a, args, kwargs)[0], super().get_field(b, args, kwargs)[0]), field_name
        return super().get_field(field_name, args, kwargs)

    def format_field(self, value: Any, spec: str) -> str:
        percent = re.fullmatch(r"p(n?)(\d)", spec)
        if percent:
            pct, sign = 100 * float(value), "" if percent.group(1) else "%"
            if pct in (0.0, 100.0):
                return f"{pct:.0f}{sign}"
            digits = max(int(percent.group(2)) - 1 - math.floor(math.log10(abs(pct))), 0)
            return f"{pct:.{digits}f}{sign}"
        text = format(value, spec)
        return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)


def render(claim: dict[str, Any]) -> str:
    return _Format().format(claim["text"], s=Sel(_folder(claim["records"]), _where(claim.get("where", ""))))


def _claims() -> list[Any]:
    return [pytest.param(c, id=f"{c['doc']}:{c['text'][:60]}") for c in claims()["claims"]]


@cache
def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("claim", _claims())
def test_a_quoted_number_is_what_its_records_give(claim):
    text = render(claim)
    if text not in page(claim["doc"]):
        pytest.fail(f"the records give\n  {text}\nwhich {claim['doc']} does not say", pytrace=False)


def test_the_formats_of_the_claims():
    f = _Format()
    assert f.format("{0:.2g} {1:p2} {2:p2} {3:p3} {4:.1%} {5:,.0f}", 1.5e-20, 0.0566, 1.0, 0.664, 0.0291, 7500) == \
        "1.5e-20 5.7% 100% 66.4% 2.9% 7,500"
    assert f.format("{0:.2g} {1:.3g}", 1.6e4, 0.1) == "1.6e4 0.1"


def _table_rows(name: str) -> list[str]:
    """The lines of a page that are table rows holding a digit, headers (a row above a separator) left out."""
    lines, rows, fence = page(name).splitlines(), [], False
    for i, line in enumerate(lines):
        fence ^= line.startswith("```")
        header = i + 1 < len(lines) and lines[i + 1].startswith("|") and set(lines[i + 1]) <= set("|-: ")
        if not fence and not header and line.startswith("| ") and re.search(r"\d", line):
            rows.append(line)
    return rows


def _uncovered_digits(row: str, pieces: list[str]) -> bool:
    """Whether a digit of ``row`` lies outside every occurrence of the ``pieces`` in it (a piece holding the whole row
    covers it)."""
    covered = [False] * len(row)
    for piece in pieces:
        if row in piece:
            return False
        start = row.find(piece)
        while piece and start >= 0:
            covered[start:start + len(piece)] = [True] * len(piece)
            start = row.find(piece, start + 1)
    return any(ch.isdigit() and not ok for ch, ok in zip(row, covered))


@pytest.mark.parametrize("name", PAGES)
def test_every_table_row_with_a_number_is_a_claim_or_said_not_to_come_from_records(name):
    pieces = [render(c) for c in claims()["claims"] if c["doc"] == name]
    unchecked = [u for u in claims().get("unchecked", []) if u["doc"] == name]
    for u in unchecked:
        assert u["line"] in page(name) and u.get("why"), u
    missing = [row for row in _table_rows(name) if _uncovered_digits(row, pieces)
               and not any(u["line"] in row for u in unchecked)]
    assert not missing, "table rows with numbers that no claim checks:\n" + "\n".join(missing)

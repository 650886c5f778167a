"""The episode record, declared once: every field of a stored record, its JSON type and its role.

A record (one line of ``results.jsonl``, :mod:`minmax_envs.evaluation.store`) describes one episode (one seed).
:data:`FIELDS` declares its fields in the order a record is written, each with its JSON type (:class:`FieldType`)
and its role:

* ``"identity"``: an input that can change the episode (the suite, the agent and its configuration, the phase, the
  seed, its block, the device, the instance family); with :data:`KEY_ONLY` they make the record's ``key``
  (:func:`minmax_envs.evaluation.store.episode_key` of :meth:`minmax_envs.evaluation.protocol.Unit.identity`);
* ``"task"``: an identity field that comes from the task (its episode and scoring: :data:`TASK_FIELDS`);
* ``"label"``: a function of the identity kept for the reader (the key, the configuration's index in the search
  space, the drawn instance);
* ``"outcome"``: what the episode produced (final metrics, success, divergence, curves, samples, figures);
* ``"run"``: how long and with what it ran (wall time, versions, time of the write): not part of the identity, and
  the only fields that differ between two runs of the same episode.

The table (all values JSON)::

    key            sha1 of the episode's identity (see episode_key and protocol.Unit.identity)
    suite, suite_version, task, env_id, env_kwargs, steps, eval_every, device
    metric, higher_is_better, target, target_metric     the task's scoring (see Task)
    agent          agent name (see minmax_envs.evaluation.agent_names)
    config         {"lr_d": float, "lr_g": float};  config_index: its index in the tuning search space
    phase          "tune" (tuning seeds) or "eval" (held-out seeds, tuned configuration)
    seed           the episode's seed;  seed_block: (optional) seeds per batched env of its phase (the layout)
    final          {metric: value} at the end: scalars, or lists for per-unit metrics (e.g. per-neuron cosines);
                   non-finite values are stored as null
    value          final value of `metric`, null if not finite
    success        target reached at the end without diverging
    diverged, divergence_step (env steps, -1 if none)
    curve          {"steps": [iterations...], metric name: [values...]} for every scalar metric at the
                   evaluation points
    time_to_target first evaluation point (iterations) from which target_metric meets the target until the end of
                   the episode; null for a seed that does not succeed
    wall_time_s    wall time of the batched run divided by its seeds
    versions       {"minmax_envs", "torch", "numpy", "python"};  time: ISO 8601 UTC of the write
    family         (optional) {"name", "digest", "split"} of the task's instance family;  instance: (optional) the
                   drawn arguments the seed played
    plots          (optional) the game's figure descriptions [{"kind", "name", "caption", ...}, ...] (Game.plots)
    samples        (optional) generator samples [[x, y], ...] of the first evaluation seed (2-D games)

:data:`RECORD_FIELDS` (the fields every record has) and :data:`OPTIONAL_FIELDS` (older records lack ``seed_block``
and ``plots``; only 2-D games store ``samples``; only tasks with an instance family store ``family`` and
``instance``) are derived from :data:`FIELDS`; :func:`validate_record` checks a record against them (other fields are
allowed and kept) and :func:`build_record` lays one out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PHASES = ("tune", "eval")
"""The phases of the protocol: tuning seeds, then held-out evaluation seeds."""

ROLES = ("identity", "task", "label", "outcome", "run")


@dataclass(frozen=True)
class FieldType:
    """The JSON type of a record field: ``what`` names it in messages, ``check`` tests a value."""

    what: str
    check: Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_values(v: Any) -> bool:
    """A metric value: a number, null, or a (nested) list of them."""
    return v is None or _is_number(v) or (isinstance(v, list) and all(_is_values(e) for e in v))


def _is_curve(v: Any) -> bool:
    if not (isinstance(v, dict) and isinstance(v.get("steps"), list) and all(map(_is_int, v["steps"]))):
        return False
    n = len(v["steps"])
    return all(isinstance(c, list) and len(c) == n and all(x is None or _is_number(x) for x in c)
               for k, c in v.items() if k != "steps")


STRING = FieldType("a string", lambda v: isinstance(v, str))
INT = FieldType("an integer", _is_int)
NUMBER = FieldType("a finite number", _is_number)
BOOL = FieldType("true or false", lambda v: isinstance(v, bool))
OBJECT = FieldType("an object", lambda v: isinstance(v, dict))
NUMBER_OR_NULL = FieldType("a finite number or null", lambda v: v is None or _is_number(v))


@dataclass(frozen=True)
class Field:
    """A record field: its JSON ``type``, its ``role`` (one of :data:`ROLES`) and whether a record may lack it."""

    type: FieldType
    role: str
    optional: bool = False


FIELDS: dict[str, Field] = {
    "key": Field(FieldType("a non-empty string", lambda v: isinstance(v, str) and v != ""), "label"),
    "suite": Field(STRING, "identity"),
    "suite_version": Field(INT, "identity"),
    "task": Field(STRING, "identity"),
    "env_id": Field(STRING, "task"),
    "env_kwargs": Field(OBJECT, "task"),
    "steps": Field(INT, "task"),
    "eval_every": Field(INT, "task"),
    "device": Field(STRING, "identity"),  # the key holds its type ("cuda" for "cuda:1")
    "metric": Field(STRING, "task"),
    "higher_is_better": Field(BOOL, "task"),
    "target": Field(NUMBER, "task"),
    "target_metric": Field(STRING, "task"),
    "agent": Field(STRING, "identity"),
    "config": Field(FieldType('an object {"lr_d": number, "lr_g": number}', lambda v: isinstance(v, dict)
                              and _is_number(v.get("lr_d")) and _is_number(v.get("lr_g"))), "identity"),
    "config_index": Field(INT, "label"),
    "phase": Field(FieldType(" or ".join(map(json.dumps, PHASES)), lambda v: isinstance(v, str) and v in PHASES),
                   "identity"),
    "seed": Field(INT, "identity"),
    "seed_block": Field(FieldType("a positive integer", lambda v: _is_int(v) and v >= 1), "identity", optional=True),
    "final": Field(FieldType("an object of metric values (numbers, null, or lists of them)",
                             lambda v: isinstance(v, dict) and all(_is_values(x) for x in v.values())), "outcome"),
    "value": Field(NUMBER_OR_NULL, "outcome"),
    "success": Field(BOOL, "outcome"),
    "diverged": Field(BOOL, "outcome"),
    "divergence_step": Field(INT, "outcome"),
    "curve": Field(FieldType('an object {"steps": [integers], metric: [numbers or null, one per step], ...}',
                             _is_curve), "outcome"),
    "time_to_target": Field(NUMBER_OR_NULL, "outcome"),
    "wall_time_s": Field(NUMBER, "run"),
    "versions": Field(FieldType("an object of strings", lambda v: isinstance(v, dict)
                                and all(isinstance(x, str) for x in v.values())), "run"),
    "time": Field(STRING, "run"),
    "family": Field(FieldType('an object {"name": string, "digest": string, "split": string}', lambda v: isinstance(
        v, dict) and all(isinstance(v.get(k), str) for k in ("name", "digest", "split"))), "identity", optional=True),
    "instance": Field(OBJECT, "label", optional=True),
    "plots": Field(FieldType("a list of figure objects with a kind and a name", lambda v: isinstance(v, list) and all(
        isinstance(p, dict) and isinstance(p.get("kind"), str) and isinstance(p.get("name"), str) for p in v)),
        "outcome", optional=True),
    "samples": Field(FieldType("a list of [x, y] points (numbers or null)", lambda v: isinstance(v, list) and all(
        isinstance(p, list) and all(x is None or _is_number(x) for x in p) for p in v)), "outcome", optional=True),
}
"""Every field of a record, in the order a record is written (the module docstring's table)."""

RECORD_FIELDS: dict[str, FieldType] = {name: f.type for name, f in FIELDS.items() if not f.optional}
"""The fields every record has, and their JSON types."""

OPTIONAL_FIELDS: dict[str, FieldType] = {name: f.type for name, f in FIELDS.items() if f.optional}
"""Fields a record may have, and their JSON types."""

TASK_FIELDS: tuple[str, ...] = tuple(name for name, f in FIELDS.items() if f.role == "task")
"""The fields that come from the task: its episode (env id and arguments, steps, evaluation points) and its scoring
(metric, direction, target, target metric)."""

OUTCOME_FIELDS: tuple[str, ...] = tuple(name for name, f in FIELDS.items() if f.role == "outcome")
"""What the episode produced."""

KEY_ONLY: tuple[str, ...] = ("schedule", "agent_digest")
"""Inputs of the key that a record does not store: the task's step-size schedule and the digest of the agent's files
(:func:`minmax_envs.evaluation.agent_names.agent_digest`)."""

IDENTITY: tuple[str, ...] = tuple(name for name, f in FIELDS.items() if f.role in ("identity", "task")) + KEY_ONLY
"""The names of an episode's identity, whose sha1 is the record's key (``family`` only for a task with an instance
family)."""


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(v), type(v).__name__)


def _short(v: Any, limit: int = 60) -> str:
    text = json.dumps(v, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_record(record: Any) -> dict[str, Any]:
    """``record`` if it is an episode record (every field of :data:`RECORD_FIELDS` with its type, and the
    :data:`OPTIONAL_FIELDS` it has with theirs), else a ``ValueError`` naming the missing fields and the
    fields of a wrong type with what they hold."""
    if not isinstance(record, dict):
        raise ValueError(f"a record is a JSON object, got {_json_kind(record)}: {_short(record)}")
    problems = []
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        problems.append(f"missing field(s) {', '.join(missing)}")
    for name, t in {**RECORD_FIELDS, **OPTIONAL_FIELDS}.items():
        if name in record and not t.check(record[name]):
            problems.append(f"{name} must be {t.what}, got {_short(record[name])}")
    if problems:
        raise ValueError("; ".join(problems))
    return record


def build_record(values: dict[str, Any]) -> dict[str, Any]:
    """The record of ``values`` (field name to JSON value), its fields in the order of :data:`FIELDS`; optional fields
    that ``values`` lacks are left out. A name :data:`FIELDS` does not declare, or a required field missing, is a
    ``ValueError`` naming them (types are checked when the store writes the record: :func:`validate_record`)."""
    unknown = [name for name in values if name not in FIELDS]
    missing = [name for name in RECORD_FIELDS if name not in values]
    if unknown or missing:
        raise ValueError("a record " + "; ".join(
            ([f"has undeclared field(s) {', '.join(unknown)}"] if unknown else [])
            + ([f"lacks field(s) {', '.join(missing)}"] if missing else []))
            + " (minmax_envs.evaluation.record.FIELDS)")
    return {name: values[name] for name in FIELDS if name in values}


__all__ = ["FIELDS", "IDENTITY", "KEY_ONLY", "OPTIONAL_FIELDS", "OUTCOME_FIELDS", "PHASES", "RECORD_FIELDS", "ROLES",
           "TASK_FIELDS", "Field", "FieldType", "build_record", "validate_record"]

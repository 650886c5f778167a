"""Suites: named, versioned sets of tasks, each an (env id, arguments, steps, evaluation points, metric, target).

A suite is the unit of a standardized evaluation (``minmax bench --suite NAME``). A change to a suite's
tasks that changes their numbers bumps its ``version``; the version is part of every stored result, so
results of different versions are never mixed.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from minmax_envs._checks import (
    check_bool,
    check_choice,
    check_fields,
    check_int,
    check_real,
    check_str,
    required_fields,
)
from minmax_envs._json import read_json
from minmax_envs.families import Family, resolve_family
from minmax_envs.registry import DEVICE_TYPES, game_kwargs_allowed, make, spec

DEFAULT_AGENTS = ("sgda", "nsgda", "adam", "adalr", "adadir")
SCHEDULES = ("constant", "linear_decay")
MAX_SEED_BLOCK = 2**16  # seeds in one batched env: beyond, a block is an allocation no machine makes

#: env_kwargs a task may not hold: what the protocol passes to make() and to a Runner itself, and where it comes from
RESERVED_ENV_KWARGS = {
    "num_seeds": "the protocol sets it (the seeds of a block: the suite's seed_block, tune_seeds or eval_seeds)",
    "count": "the protocol sets it (the seeds of a block: the suite's seed_block, tune_seeds or eval_seeds)",
    "device": "the suite's device field (or --device) sets it", "env_id": "the task's env_id field sets it",
    "steps": "the task's steps field sets it", "eval_every": "the task's eval_every field sets it",
    "seed": "the protocol sets it (tuning and held-out seeds)", "samples": "the protocol sets it",
}


@dataclass(frozen=True)
class Task:
    """One environment configuration of a suite and how an episode on it is scored.

    Attributes:
        name: short name, unique in its suite (``"dirac-wgan"``).
        env_id: a registered environment id.
        env_kwargs: arguments of :func:`minmax_envs.make` (game arguments, ``regularizer``...).
        steps: iterations per episode (see :func:`minmax_envs.run_episode`).
        eval_every: the evaluation points: metrics are recorded every this many iterations (and at 0).
        metric: the per-seed metric whose final value is reported (median, IQM).
        higher_is_better: the direction of ``metric`` (and of ``target_metric``).
        target: a seed succeeds when ``target_metric`` reaches this value (``>=`` if higher is better,
            ``<=`` otherwise) at the end of its episode without diverging; time to target is the first
            evaluation point where it does.
        target_metric: the metric compared with ``target`` (``metric`` by default).
        lr_range: ``(low, high)`` of the discriminator's step size searched in tuning (log scale).
        ratios: the generator-to-discriminator step-size ratios searched in tuning (TTUR).
        schedule: ``"constant"`` step sizes, or ``"linear_decay"`` to zero over the episode (the image runs of
            "Adam is no better than normalized SGD").
        description: one line for reports.
        agents: the only agents that play this task (of those a run names), ``None`` (default) for all of them:
            a task added for a comparison between some agents (a batch-size trend) costs nothing for the others.
        family: an instance family of the task's game (:mod:`minmax_envs.families`: a registered family's name, a
            family object or a :class:`~minmax_envs.families.Family`; stored as the ``Family``), or ``None``
            (default): one game. Tuning seeds play its train instances, held-out seeds its test instances (seed
            ``s`` plays instance ``s mod n`` of its split, whatever the batching); the family's definition is part of
            the suite's definition and its digest of every record key. ``env_kwargs`` may not set an argument the
            family sets.
    """

    name: str
    env_id: str
    steps: int
    eval_every: int
    metric: str
    higher_is_better: bool
    target: float
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    target_metric: str | None = None
    lr_range: tuple[float, float] = (1e-3, 1.0)
    ratios: tuple[float, ...] = (1.0,)
    schedule: str = "constant"
    description: str = ""
    agents: tuple[str, ...] | None = None
    family: Family | None = None

    def __post_init__(self) -> None:
        check_str("task name", self.name)
        where = f"task {self.name!r}"
        check_str(f"{where}: env_id", self.env_id)
        try:
            spec(self.env_id)  # unknown ids fail here, listing the registered ones
            check_choice("schedule", self.schedule, SCHEDULES)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        steps = check_int(f"{where}: steps", self.steps)
        every = check_int(f"{where}: eval_every", self.eval_every)
        if steps % every:
            raise ValueError(f"{where}: eval_every {every} must divide steps {steps}, so that the last evaluation "
                             "point is the end of the episode (time to target is read from the evaluation points)")
        check_str(f"{where}: metric", self.metric)
        check_bool(f"{where}: higher_is_better", self.higher_is_better)
        check_real(f"{where}: target", self.target)
        check_str(f"{where}: target_metric", self.target_metric, allow_none=True)
        _check_metrics(where, self.env_id, self.metric, self.target_metric)
        if not isinstance(self.env_kwargs, dict) or not all(isinstance(k, str) for k in self.env_kwargs):
            raise ValueError(f"{where}: env_kwargs must be an object (a dict of make() arguments by name), "
                             f"got {self.env_kwargs!r}")
        _check_env_kwargs(where, self.env_id, self.env_kwargs)
        if not isinstance(self.lr_range, (list, tuple)) or len(self.lr_range) != 2:
            raise ValueError(f"{where}: lr_range must be [low, high], two numbers with 0 < low <= high, "
                             f"got {self.lr_range!r}")
        lo, hi = self.lr_range
        check_real(f"{where}: lr_range[0]", lo, low=0.0, low_inclusive=False)
        check_real(f"{where}: lr_range[1]", hi, low=lo)
        if not isinstance(self.ratios, (list, tuple)) or not self.ratios:
            raise ValueError(f"{where}: ratios must be a non-empty list of positive numbers (lr_g / lr_d), "
                             f"got {self.ratios!r}")
        for i, r in enumerate(self.ratios):
            check_real(f"{where}: ratios[{i}]", r, low=0.0, low_inclusive=False)
            for j, lr in enumerate((lo, hi)):
                product = float(lr) * float(r)
                if not (math.isfinite(product) and product > 0):
                    raise ValueError(f"{where}: lr_range[{j}] * ratios[{i}] = {lr!r} * {r!r} = {product!r} is not a "
                                     "finite positive step size (lr_g = lr_d * ratio); narrow lr_range or the ratios")
        check_str(f"{where}: description", self.description, allow_empty=True)
        if self.family is not None:
            try:
                family = resolve_family(self.family)
                family.check_task(self.env_id, self.env_kwargs)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
            object.__setattr__(self, "family", family)
        if self.agents is not None:
            if not isinstance(self.agents, (list, tuple)) or not self.agents:
                raise ValueError(f"{where}: agents must be null (every agent) or a non-empty list of agent names, "
                                 f"got {self.agents!r}")
            for i, a in enumerate(self.agents):
                check_str(f"{where}: agents[{i}]", a)
            object.__setattr__(self, "agents", tuple(self.agents))
        object.__setattr__(self, "target", float(self.target))  # 1 and 1.0 are one target (and one record key)
        object.__setattr__(self, "lr_range", (float(lo), float(hi)))
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))

    @property
    def success_metric(self) -> str:
        return self.target_metric or self.metric

    def reached(self, value: float) -> bool:
        """Whether a value of :attr:`success_metric` meets the target (never for NaN)."""
        if math.isnan(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def plays(self, agent: str) -> bool:
        """Whether ``agent`` plays this task (see :attr:`agents`)."""
        return self.agents is None or agent in self.agents

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) if self.family is None else asdict(replace(self, family=None))
        d["lr_range"], d["ratios"] = list(self.lr_range), list(self.ratios)
        if self.agents is None:
            del d["agents"]  # the layout of suite files written before the field existed
        else:
            d["agents"] = list(self.agents)
        if self.family is None:
            del d["family"]  # likewise
        else:
            d["family"] = self.family.to_dict()
        return d


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of tasks and the protocol's defaults for it.

    Attributes:
        name, version, description: identity (the version is stored with every result).
        tasks: the tasks, run in order.
        budget: step-size configurations each agent may try per task in tuning (the same for every agent).
        tune_seeds: seeds per configuration in tuning (seeds ``TUNE_SEED_BASE + i``, disjoint from evaluation).
        eval_seeds: held-out evaluation seeds ``0 .. eval_seeds - 1`` for the tuned configuration.
        agents: the agents run when none are named.
        device: the device episodes run on unless overridden (``"cpu"``; ``"cuda"`` for ``paper``).
        seed_block: the canonical seed layout of batched games: a phase's seeds are always run in blocks of
            this many consecutive seeds, aligned on the phase's first seed, one block per batched env, whatever
            seeds a run asks for (see :meth:`block_size`). ``None``: the phase's own default number of seeds
            (``tune_seeds`` in tuning, ``eval_seeds`` in evaluation), so the default run is one batch per
            configuration.
    """

    name: str
    version: int
    tasks: tuple[Task, ...]
    budget: int = 4
    tune_seeds: int = 8
    eval_seeds: int = 32
    agents: tuple[str, ...] = DEFAULT_AGENTS
    device: str = "cpu"
    description: str = ""
    seed_block: int | None = None

    def __post_init__(self) -> None:
        check_str("suite name", self.name)
        where = f"suite {self.name!r}"
        check_int(f"{where}: version", self.version)
        check_int(f"{where}: seed_block", self.seed_block, allow_none=True)
        if self.seed_block is not None and self.seed_block > MAX_SEED_BLOCK:
            raise ValueError(f"{where}: seed_block {self.seed_block} is more seeds than one batched env holds here "
                             f"(at most {MAX_SEED_BLOCK}); a block is one allocation of every seed's tensors")
        check_int(f"{where}: budget", self.budget)
        check_int(f"{where}: tune_seeds", self.tune_seeds)
        check_int(f"{where}: eval_seeds", self.eval_seeds)
        if not isinstance(self.tasks, (list, tuple)):
            raise ValueError(f"{where}: tasks must be a list of Task, got {self.tasks!r}")
        if not self.tasks:
            raise ValueError(f"suite {self.name!r} has no tasks")
        for i, t in enumerate(self.tasks):
            if not isinstance(t, Task):
                raise ValueError(f"{where}: tasks[{i}] must be a Task, got {t!r}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"suite {self.name!r}: task names must be unique, got {names}")
        if not isinstance(self.agents, (list, tuple)) or not self.agents:
            hint = f" (a list: [{self.agents!r}])" if isinstance(self.agents, str) else ""
            raise ValueError(f"{where}: agents must be a non-empty list of agent names, got {self.agents!r}{hint}")
        for i, a in enumerate(self.agents):
            check_str(f"{where}: agents[{i}]", a)
        check_str(f"{where}: device", self.device)
        try:
            device_type = torch.device(self.device).type
        except (RuntimeError, TypeError):
            device_type = None
        if device_type not in DEVICE_TYPES:
            raise ValueError(f"{where}: device {self.device!r} is not a device episodes run on; use cpu, cuda, "
                             "cuda:N or mps")
        check_str(f"{where}: description", self.description, allow_empty=True)
        for t in self.tasks:
            lacking = [a for a in t.agents or () if a not in self.agents]
            if lacking:
                raise ValueError(f"{where}: task {t.name!r}: agents names {', '.join(map(repr, lacking))}, which the "
                                 f"suite's agents do not list ({', '.join(self.agents)}); a task's agents are some of "
                                 "the suite's")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "agents", tuple(self.agents))

    def block_size(self, phase: str) -> int:
        """Seeds per batched run in ``phase`` (``"tune"`` or ``"eval"``) for a batched game: a part of every
        record's identity, fixed by the suite, never by how many seeds a run asks for."""
        if self.seed_block is not None:
            return self.seed_block
        return self.tune_seeds if phase == "tune" else self.eval_seeds

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(f"suite {self.name!r} has no task {name!r}; tasks: {', '.join(t.name for t in self.tasks)}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["tasks"], d["agents"] = [t.to_dict() for t in self.tasks], list(self.agents)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Suite:
        """The suite of a :meth:`to_dict` layout (a parsed JSON suite file), validated field by field: a
        ``ValueError`` names the suite, the task, the field, what was given and what is allowed."""
        if not isinstance(d, dict):
            raise ValueError(f"a suite is a JSON object with the fields {', '.join(required_fields(cls))}, ..., "
                             f"got {d!r}")
        where = f"suite {d.get('name')!r}"
        check_fields(where, "suite", d, cls, sort_allowed=True)
        if not isinstance(d["tasks"], list):
            raise ValueError(f"{where}: tasks must be a list of task objects, got {d['tasks']!r}")
        tasks = []
        for i, t in enumerate(d["tasks"]):
            if not isinstance(t, dict):
                raise ValueError(f"{where}: tasks[{i}] must be a task object {{\"name\": ..., \"env_id\": ...}}, "
                                 f"got {t!r}")
            check_fields(f"{where}: task {t.get('name', i)!r}", "task", t, Task, sort_allowed=True)
            try:
                tasks.append(Task(**t))
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        return cls(**{**d, "tasks": tuple(tasks)})


def _check_metrics(where: str, env_id: str, metric: str, target_metric: str | None) -> None:
    """``metric`` and ``target_metric`` among the scalar metrics the game declares (``Game.scalar_metrics``)."""
    declared = spec(env_id).game_class().scalar_metrics
    if not declared:
        return
    names = (*declared, "diverged")
    for field_name, value in (("metric", metric), ("target_metric", target_metric)):
        if value is not None and value not in names:
            raise ValueError(f"{where}: {field_name} {value!r} is not a metric of {spec(env_id).id} (one number per "
                             f"seed); choose one of {', '.join(names)}")


def _check_env_kwargs(where: str, env_id: str, env_kwargs: dict[str, Any]) -> None:
    """No argument the protocol sets itself, and only arguments of :func:`minmax_envs.make` and of the game."""
    for key in env_kwargs:
        if key in RESERVED_ENV_KWARGS:
            raise ValueError(f"{where}: env_kwargs may not hold {key!r}: {RESERVED_ENV_KWARGS[key]}")
    allowed = [n for n, p in inspect.signature(make).parameters.items()
               if p.kind == p.KEYWORD_ONLY or n == "dtype"] + game_kwargs_allowed(spec(env_id).game_class())
    unknown = sorted(set(env_kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: env_kwargs: {spec(env_id).id} got unknown argument(s) {unknown}; allowed: "
                         f"{', '.join(allowed)}")


TUNE_SEED_BASE = 10_000

_SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite, *, overwrite: bool = False) -> None:
    """Make ``suite`` available by name (``minmax bench --suite NAME`` in this process)."""
    if suite.name in _SUITES and not overwrite:
        raise ValueError(f"suite {suite.name!r} is already registered")
    _SUITES[suite.name] = suite


def list_suites() -> list[str]:
    return sorted(_SUITES)


def get_suite(name: str | os.PathLike) -> Suite:
    """A registered suite by name, or a suite read from a JSON file (``Suite.to_dict`` layout)."""
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(f"a suite is a registered name or the path of a .json suite file, got {name!r}")
    key = os.fspath(name)
    if key in _SUITES:
        return _SUITES[key]
    if key.endswith(".json"):
        if os.path.isdir(key):
            raise ValueError(f"suite file {key!r} is a directory, not a .json suite file")
        if not os.path.exists(key):
            raise ValueError(f"suite file {key!r} does not exist")
        data = read_json(key, "suite file")  # regular files only, size and nesting bounded
        try:
            return Suite.from_dict(data)
        except ValueError as e:
            raise ValueError(f"suite file {key!r} is not a valid suite: {e}") from None
    raise ValueError(f"unknown suite {key!r}; registered suites: {', '.join(list_suites())} "
                     "(or give the path of a .json suite file)")


def __getattr__(name: str) -> Any:
    """The catalogue's public names (:data:`~minmax_envs.evaluation.catalogue.NK_ADAM`,
    :data:`~minmax_envs.evaluation.catalogue.BALANCE_CONTROLLERS`), still importable from here."""
    if name in ("NK_ADAM", "BALANCE_CONTROLLERS"):
        from minmax_envs.evaluation import catalogue

        return getattr(catalogue, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

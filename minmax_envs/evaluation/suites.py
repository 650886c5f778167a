"""Suites: named, versioned sets of tasks, each an (env id, arguments, steps, evaluation points, metric, target).

A suite is the unit of a standardized evaluation (``minmax bench --suite NAME``). A change to a suite's
tasks that changes their numbers bumps its ``version``; the version is part of every stored result, so
results of different versions are never mixed.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

import torch

from minmax_envs._checks import check_bool, check_choice, check_int, check_real, check_str
from minmax_envs._json import read_json
from minmax_envs.families import Family, resolve_family
from minmax_envs.registry import game_kwargs_allowed, make, spec

DEFAULT_AGENTS = ("sgda", "nsgda", "adam", "adalr", "adadir")
SCHEDULES = ("constant", "linear_decay")
DEVICE_TYPES = ("cpu", "cuda", "mps")
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
            raise ValueError(f"a suite is a JSON object with the fields {', '.join(_required(cls))}, ..., "
                             f"got {d!r}")
        where = f"suite {d.get('name')!r}"
        _check_fields(where, "suite", d, cls)
        if not isinstance(d["tasks"], list):
            raise ValueError(f"{where}: tasks must be a list of task objects, got {d['tasks']!r}")
        tasks = []
        for i, t in enumerate(d["tasks"]):
            if not isinstance(t, dict):
                raise ValueError(f"{where}: tasks[{i}] must be a task object {{\"name\": ..., \"env_id\": ...}}, "
                                 f"got {t!r}")
            _check_fields(f"{where}: task {t.get('name', i)!r}", "task", t, Task)
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


def _required(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]


def _check_fields(where: str, kind: str, d: dict[str, Any], cls: type) -> None:
    """Unknown and missing fields of a suite or task object."""
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown {kind} field(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
    missing = [f for f in _required(cls) if f not in d]
    if missing:
        raise ValueError(f"{where}: missing {kind} field(s) {missing}; required: {', '.join(_required(cls))}")


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


# --- the registered suites ----------------------------------------------------------------------------------------

_DIRAC = {"init_std": 0.5}  # theta0 = psi0 = 1 plus per-seed N(0, 0.5^2) offsets: seeds differ
_MOG_SMALL = {"hidden": 32, "batch_size": 64, "eval_samples": 500}
_MOG = {"hidden": 64, "batch_size": 128, "eval_samples": 2500}
_TWO_MODE_TARGET = {"metric": "mode_alignment", "higher_is_better": True, "target": 2.0,
                    "target_metric": "modes_recovered"}
_IMAGES_TINY = {"width": 8, "batch_size": 32, "eval_samples": 256, "classifier_epochs": 3}

_NK = {"regularizer": "nk", "reg_weight": 0.5}  # the regularizer of Nagarajan & Kolter (2017) with their eta


def _distance_task(name: str, env_id: str, steps: int, eval_every: int, env_kwargs: dict, description: str,
                   **extra: Any) -> Task:
    """A task whose metric is the distance to the game's unique equilibrium, solved below 0.1."""
    return Task(name, env_id, steps, eval_every, "distance", False, 0.1, env_kwargs, lr_range=(1e-2, 1.0),
                description=description, **extra)


register_suite(Suite(
    name="quick", version=1, budget=3, tune_seeds=8, eval_seeds=16,
    description="Small games, a few minutes on 2 CPU cores: the README's main job.",
    tasks=(
        _distance_task("dirac-wgan", "DiracGAN-v0", 300, 30, {"loss": "wgan", **_DIRAC},
                       "Dirac WGAN (Mescheder et al. 2018): converge to (0, 0)"),
        _distance_task("dirac-wgan-nk", "DiracGAN-v0", 300, 30, {"loss": "wgan", **_NK, **_DIRAC},
                       "Dirac WGAN with the NK regularizer (Nagarajan & Kolter 2017), eta = 0.5"),
        _distance_task("bilinear", "Bilinear-v0", 300, 30, {"n": 10},
                       "min_x max_y x^T A y + b^T x + c^T y, distance to equilibrium"),
        Task("two-mode-small", "TwoMode-v0", 500, 50, **_TWO_MODE_TARGET, env_kwargs={"d": 100},
             lr_range=(1e-2, 1.0), ratios=(0.5,),
             description='The two-mode problem of "Adam is no better than normalized SGD" at d = 100'),
        Task("mog-ring-small", "MoG-Ring-v0", 1000, 100, "modes_covered", True, 6.0, _MOG_SMALL,
             lr_range=(3e-4, 3e-2), description="8 Gaussians on a ring, small MLPs: cover at least 6 modes"),
    ),
))

register_suite(Suite(
    name="stability", version=1, budget=4, tune_seeds=8, eval_seeds=32,
    agents=("sgda", "nsgda", "adam", "extragradient"),
    description='Nagarajan & Kolter (2017), "Gradient descent GAN optimization is locally stable": simultaneous '
                "gradient play with and without the NK regularizer on the Dirac GAN, a bilinear game and a ring of "
                "Gaussians.",
    tasks=(
        _distance_task("dirac-gan", "DiracGAN-v0", 500, 25, {"loss": "gan", **_DIRAC},
                       "Dirac GAN, standard loss: outside the assumptions of Nagarajan & Kolter (2017), not locally "
                       "convergent (Mescheder et al. 2018)"),
        _distance_task("dirac-wgan", "DiracGAN-v0", 500, 25, {"loss": "wgan", **_DIRAC},
                       "Dirac WGAN: simultaneous gradient play spirals out"),
        _distance_task("dirac-wgan-nk", "DiracGAN-v0", 500, 25, {"loss": "wgan", **_NK, **_DIRAC},
                       "Dirac WGAN with the NK regularizer, eta = 0.5"),
        _distance_task("bilinear", "Bilinear-v0", 500, 25, {"n": 10},
                       "Bilinear game: SGDA diverges, extragradient converges"),
        _distance_task("bilinear-nk", "Bilinear-v0", 500, 25, {"n": 10, **_NK},
                       "Bilinear game with the NK regularizer"),
        Task("mog-ring", "MoG-Ring-v0", 2000, 200, "modes_covered", True, 8.0, _MOG,
             lr_range=(1e-4, 1e-1), description="8 Gaussians on a ring, standard GAN loss"),
        Task("mog-ring-nk", "MoG-Ring-v0", 2000, 200, "modes_covered", True, 8.0, {**_MOG, **_NK},
             lr_range=(1e-4, 1e-1), description="8 Gaussians on a ring with the NK regularizer"),
    ),
))

_QUICK = _SUITES["quick"]

register_suite(Suite(
    name="families", version=1, budget=3, tune_seeds=8, eval_seeds=16,
    description="The quick suite's games as instance families (docs/families.md): every agent tunes on train "
                "instances and is judged on 16 held-out seeds that play test instances, the same ones for every agent.",
    tasks=(
        _distance_task("dirac-wgan", "DiracGAN-v0", 300, 30, {}, "Dirac WGAN from a starting point drawn per seed",
                       family="dirac-wgan"),
        _distance_task("dirac-wgan-nk", "DiracGAN-v0", 300, 30, _NK,
                       "Dirac WGAN with the NK regularizer, eta = 0.5, from a starting point drawn per seed",
                       family="dirac-wgan"),
        _distance_task("dirac-r1", "DiracGAN-v0", 300, 30, {},
                       "Dirac GAN with the R1 penalty (Mescheder et al. 2018): weight per seed, loss per batch",
                       family="dirac-r1"),
        _distance_task("bilinear", "Bilinear-v0", 300, 30, {},
                       "Bilinear games: size per batch, conditioning per seed", family="bilinear-cond"),
        Task("two-mode-small", "TwoMode-v0", 500, 50, **_TWO_MODE_TARGET, lr_range=(1e-2, 1.0), ratios=(0.5,),
             description="The two-mode problem at d = 100: gamma per seed, data case and widths per batch",
             family="two-mode-small"),
        Task("mog-ring-small", "MoG-Ring-v0", 1000, 100, "modes_covered", True, 6.0, lr_range=(3e-4, 3e-2),
             description="Rings of 6, 8 or 10 Gaussians, radius and width per seed: cover at least 6 modes",
             family="mog-ring-small"),
    ),
))
register_suite(Suite(
    name="controllers", version=1, budget=3, tune_seeds=8, eval_seeds=32, agents=("sgda", "nsgda"),
    description="Learned step-size controllers (baselines/train_controller.py, agent learned:PATH) against SGDA "
                "and nSGDA with tuned constant step sizes, on the games they are trained on.",
    tasks=(_QUICK.task("two-mode-small"), _QUICK.task("mog-ring-small")),
))

register_suite(Suite(
    name="two-mode", version=1, budget=15, tune_seeds=64, eval_seeds=128, agents=("sgda", "nsgda", "adam"),
    description='"Adam is no better than normalized SGD", Theorems 4.1 / 4.2: does the generator learn each mode '
                'in a separate neuron?',
    tasks=(
        Task("correlated-modes", "TwoMode-v0", 1000, 100, **_TWO_MODE_TARGET,
             env_kwargs={"d": 1000, "case": "correlated_modes"}, lr_range=(1e-3, 1.0), ratios=(1.0, 0.4, 0.1),
             description="Case 1: <u1, u2> = gamma, d = 1000, m_D = m_G = 5 (Figure 5)"),
        Task("correlated-coefficients", "TwoMode-v0", 1000, 100, **_TWO_MODE_TARGET,
             env_kwargs={"d": 1000, "case": "correlated_coefficients"}, lr_range=(1e-3, 1.0),
             ratios=(1.0, 0.4, 0.1), description="Case 2: orthogonal modes, P[s1 = s2 = 1] = gamma"),
    ),
))

register_suite(Suite(
    name="images-tiny", version=1, budget=3, tune_seeds=1, eval_seeds=2, agents=("adam", "adalr", "nsgda", "sgda"),
    description="CPU-sized image GANs on scikit-learn's digits (offline); success: the classifier Frechet "
                "distance falls below 400 (about 560 at initialization).",
    tasks=(
        Task("digits-dcgan", "Digits-DCGAN-v0", 600, 100, "classifier_fd", False, 400.0, _IMAGES_TINY,
             lr_range=(1e-4, 1e-2), description="DCGAN, width 8, 16x16 digits"),
        Task("digits-resnet-wgangp", "Digits-ResNetWGANGP-v0", 600, 100, "classifier_fd", False, 400.0,
             {**_IMAGES_TINY, "n_critic": 1}, lr_range=(1e-4, 1e-2), ratios=(0.1,),
             description="ResNet WGAN-GP, width 8, 16x16 digits, one critic step per generator step"),
    ),
))

register_suite(Suite(
    name="paper", version=1, budget=3, tune_seeds=1, eval_seeds=3, agents=("adam", "adalr", "nsgda", "sgda"),
    device="cuda", description='The image setting of "Adam is no better than normalized SGD": CIFAR-10 at 32x32, for '
                              'a GPU and the local dataset.',
    tasks=(
        Task("cifar10-resnet-wgangp", "CIFAR10-ResNetWGANGP-v0", 100_000, 5_000, "classifier_fd", False, 30.0,
             {"n_critic": 5}, lr_range=(2e-5, 2e-3), ratios=(0.1,), schedule="linear_decay",
             description="ResNet WGAN-GP (Gidel et al. 2019), batch 64, n_critic 5"),
        Task("cifar10-dcgan", "CIFAR10-DCGAN-v0", 100_000, 5_000, "classifier_fd", False, 30.0, {},
             lr_range=(2e-5, 2e-3), ratios=(1.0,), schedule="linear_decay",
             description="DCGAN, standard loss, batch 64"),
    ),
))

# --- the papers' own settings --------------------------------------------------------------------------------------

# Nagarajan & Kolter's Gaussian experiment as their public code sets it (see MixtureOfGaussians' docstring), and
# the Adam both players use there (lr 1e-4, beta1 0.5, eps 1e-8, beta2 0.999), torch's own implementation.
NK_ADAM = "torch:torch.optim.Adam?betas=[0.5,0.999]"
_NK_MOG = {"z_dim": 256, "hidden": 128, "layers": 2, "d_layers": 1, "input_scale": 0.25, "init": "orthogonal",
           "init_gain": 0.8, "update": "alternating", "batch_size": 512, "eval_samples": 2500}
# MNIST at 16x16 with a width-8 DCGAN: the regularized gradient play of the paper is simultaneous.
_NK_MNIST = {"resolution": 16, "width": 8, "batch_size": 64, "eval_samples": 500, "classifier_epochs": 3,
             "update": "simultaneous"}


def _nk_pair(name: str, env_id: str, steps: int, eval_every: int, env_kwargs: dict, lr: float, metric: str,
             higher: bool, target: float, description: str) -> tuple[Task, Task]:
    """A task in its paper's fixed setting (one step size, no tuning) and its twin with the NK regularizer."""
    def task(suffix: str, extra: dict, what: str) -> Task:
        return Task(name + suffix, env_id, steps, eval_every, metric, higher, target, {**env_kwargs, **extra},
                    lr_range=(lr, lr), description=f"{description}, {what}")
    return task("", {}, "plain gradient play"), task("-nk", _NK, "NK regularizer, eta = 0.5")


register_suite(Suite(
    name="nk-mog", version=1, budget=1, tune_seeds=1, eval_seeds=16, seed_block=16, agents=(NK_ADAM,),
    description='Nagarajan & Kolter (2017), "Gradient descent GAN optimization is locally stable", in their own '
                "settings: the 8-Gaussian ring of their public code (Adam 1e-4, alternating updates, 7,500 of their "
                "up to 100k iterations: what about 45 minutes on 2 CPU cores allow) and MNIST digits at 16x16, each "
                "with and without the regularizer, no tuning.",
    tasks=(*_nk_pair("ring", "MoG-Ring-v0", 7500, 500, _NK_MOG, 1e-4, "modes_covered", True, 8.0,
                     "8 Gaussians on a ring, N&K's networks and Adam"),
           *_nk_pair("mnist-dcgan", "MNIST-DCGAN-v0", 2000, 200, _NK_MNIST, 2e-4, "classifier_fd", False, 150.0,
                     "MNIST 16x16, DCGAN width 8, Adam 2e-4 (Radford et al.), simultaneous updates")),
))

_IMAGES_CPU = {"width": 16, "eval_samples": 500, "classifier_epochs": 3}


def _digits_task(batch_size: int, description: str, agents: tuple[str, ...] | None = None) -> Task:
    suffix = "" if batch_size == 64 else f"-b{batch_size}"
    return Task(f"digits-dcgan{suffix}", "Digits-DCGAN-v0", 2000, 200, "classifier_fd", False, 300.0,
                {**_IMAGES_CPU, "batch_size": batch_size}, lr_range=(1e-4, 1e-1), schedule="linear_decay",
                description=description, agents=agents)


# Version 1 searched 1e-4..1e-2 (3 points): the normalized agents, Adam and AdaLR chose its top edge, 1e-2, and
# g- and l-nSGDA were still improving there; version 2 searches 1e-4..1e-1 (4 points).
register_suite(Suite(
    name="images-cpu", version=2, budget=4, tune_seeds=1, eval_seeds=8,
    agents=("sgdm", "nsgda-layer", "nsgda", "adam", "adalr", "adadir"),
    description='The image claims of "Adam is no better than normalized SGD" at CPU scale: a width-16 DCGAN on '
                "16x16 digits, step sizes decayed linearly, an equal tuning budget, 8 held-out seeds; the batch-size "
                "tasks (16, 128) are played by sgdm and nsgda only (Figure 3's trend).",
    tasks=(_digits_task(64, "DCGAN width 16, 16x16 digits, batch 64"),
           _digits_task(16, "the same at batch 16 (Figure 3)", ("sgdm", "nsgda")),
           _digits_task(128, "the same at batch 128 (Figure 3)", ("sgdm", "nsgda"))),
))

# --- balanced updates ----------------------------------------------------------------------------------------------

#: The learned balance controllers of the suite ``balance`` (baselines/train_controller.py --action balance), one per
#: two-mode case, each played on the task it was trained on.
BALANCE_CONTROLLERS = {case: f"learned:docs/controllers/balance-{case}/controller.pt"
                       for case in ("correlated-modes", "correlated-coefficients")}
_PACED = ("sgda", "nsgda", "adam", "balanced:sgda?ratio=tuned", "balanced:sgda?ratio=tuned&anchor=generator",
          "balanced:sgda?ratio=tuned&anchor=discriminator", "balanced:sgda?ratio=1", "balanced:adam?ratio=tuned",
          "balanced:sgda?ratio=tuned&anchor=fixed")


def _two_mode_section4(case: str, description: str) -> Task:
    """Section 4's setting of "Adam is no better than normalized SGD" with Theorem 4.2's widths at d = 1000. The
    step sizes span six decades: SGDA's update, balanced or not, has the size of the gradient, tiny at the
    initialization, and needs far larger step sizes than the normalized agents to move at all."""
    name = case.replace("_", "-")
    return Task(name, "TwoMode-v0", 3000, 300, **_TWO_MODE_TARGET,
                env_kwargs={"d": 1000, "m_d": 7, "m_g": 13, "case": case}, lr_range=(1e-3, 1e3),
                ratios=(1.0, 0.4, 0.1), description=description, agents=(*_PACED, BALANCE_CONTROLLERS[name]))


register_suite(Suite(
    name="balance", version=1, budget=15, tune_seeds=8, eval_seeds=64,
    agents=(*_PACED, *BALANCE_CONTROLLERS.values()),
    description='Does holding the players\' pace fixed explain normalized SGDA ("Adam is no better than normalized '
                'SGD": normalization "forces the discriminator and generator to be updated at the same pace")? '
                "SGDA, nSGDA and Adam against SGDA and Adam held at a pace ||u_D|| / ||u_G|| (agents.balanced: the "
                "pace tuned as the step-size ratio, or 1; three anchors; and the size fixed too, which is nSGDA), "
                "and a learned controller of the pace and the scale.",
    tasks=(
        _two_mode_section4("correlated_modes", "Case 1 (<u1, u2> = gamma), d = 1000, m_D = 7, m_G = 13"),
        _two_mode_section4("correlated_coefficients", "Case 2 (P[s1 = s2 = 1] = gamma), d = 1000, m_D = 7, m_G = 13"),
        Task("dirac-wgan", "DiracGAN-v0", 500, 25, "distance", False, 0.1, {"loss": "wgan", **_DIRAC},
             lr_range=(1e-2, 1.0), description="Dirac WGAN: simultaneous gradient play spirals out", agents=_PACED),
        Task("mog-ring", "MoG-Ring-v0", 2000, 200, "modes_covered", True, 8.0, _MOG, lr_range=(1e-4, 10.0),
             ratios=(1.0, 0.5, 0.25), description="8 Gaussians on a ring, standard GAN loss", agents=_PACED),
    ),
))

# --- learned controllers on instance families ----------------------------------------------------------------------

#: The base direction of each learned controller of the suite ``learned-controllers`` (baselines/ppo_step_size.py),
#: by task, and its action: the steps act on this agent's unit updates (docs/controllers.md says why each).
LEARNED_BASES = {"dirac-wgan": ("sgda", "step_sizes"), "dirac-wgan-nk": ("sgda", "step_sizes"),
                 "bilinear": ("sgda", "step_sizes"), "two-mode-small": ("nsgda", "step_sizes"),
                 "mog-ring-small": ("adam", "step_sizes"), "section4-correlated-modes": ("nsgda", "balance"),
                 "section4-correlated-coefficients": ("nsgda", "balance")}
#: The learned controller of each task of ``learned-controllers``, shipped as package data, played on its task only.
LEARNED_CONTROLLERS = {name: f"learned:minmax_envs/controllers_data/{name}" for name in LEARNED_BASES}
_FIXED_SIZE = "balanced:sgda?ratio=tuned&anchor=fixed"
_FAMILIES = _SUITES["families"]


def _section4_family_task(case: str) -> Task:
    """Section 4's two-mode problem (d = 1000, m_D = 7, m_G = 13) as its instance family (gamma per seed), with a
    step-size grid around the pace and size nSGDA is tuned to in the suite ``balance`` (lr_d 0.0316, ratio 0.4)."""
    name = f"section4-{case.replace('_', '-')}"
    return Task(name, "TwoMode-v0", 3000, 300, **_TWO_MODE_TARGET, lr_range=(10**-2.5, 10**-0.5), ratios=(0.4,),
                description=f"Section 4's two-mode problem ({case.replace('_', ' ')}), d = 1000, m_D = 7, m_G = 13, "
                            "gamma per seed", family=f"two-mode-section4-{case.replace('_', '-')}",
                agents=(*DEFAULT_AGENTS, _FIXED_SIZE, LEARNED_CONTROLLERS[name]))


register_suite(Suite(
    name="learned-controllers", version=1, budget=3, tune_seeds=8, eval_seeds=16,
    agents=(*DEFAULT_AGENTS, _FIXED_SIZE, *LEARNED_CONTROLLERS.values()),
    description="Step-size and balance controllers learned with baselines/ppo_step_size.py on the train instances of "
                "each task's family, judged on held-out seeds playing its test instances against the tuned agents "
                "(docs/controllers.md): the families suite's five quick-suite tasks and Section 4's two-mode cases.",
    tasks=(*(replace(_FAMILIES.task(name), agents=(*DEFAULT_AGENTS, LEARNED_CONTROLLERS[name]))
             for name in ("dirac-wgan", "dirac-wgan-nk", "bilinear", "two-mode-small", "mog-ring-small")),
           _section4_family_task("correlated_modes"), _section4_family_task("correlated_coefficients")),
))

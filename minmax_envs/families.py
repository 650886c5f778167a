r"""Instance families: a distribution over a game's arguments, with disjoint, seeded train and test instance sets.

A :class:`Family` turns one game into many (the instance sets of DACBench, the task families of
learned_optimization): each of its :class:`Param` entries draws one game argument, uniformly or log-uniformly over
an interval or uniformly from a list of choices, and its fixed ``kwargs`` set the others. A family has two finite
*splits*, ``"train"`` (trainers draw from it, the protocol tunes on it) and ``"test"`` (the protocol's held-out
seeds play it), drawn once from the family's ``seed``.

**Drawing.** Write $P_s$ for the parameters that vary per seed (``per_seed=True``: they change no tensor's shape,
so one batched game holds a different value in every slot) and $P_b$ for those drawn per batch (shapes, discrete
choices). A split of $n$ instances is cut into groups of $G$ consecutive instances (``group``; $G = n$ when $P_b$ is
empty). Instance $i$ of split $k$ (0 for train, 1 for test) is

$$x_i = \big(b_{\lfloor i / G \rfloor},\, p_i\big), \qquad b_g = F_{P_b}\big(U(\text{seed}, k, 0, g)\big), \qquad
p_i = F_{P_s}\big(U(\text{seed}, k, 1, i)\big),$$

with $U(\cdot)$ the uniforms in $[0, 1)$ of NumPy's PCG64 seeded by that tuple and $F$ each parameter's inverse
distribution function: $\ell + (h - \ell) u$ (uniform on $[\ell, h)$), $\exp(\log \ell + (\log h - \log \ell) u)$
(log-uniform), $c_{\lfloor u K \rfloor}$ (choice among $K$). So instance $i$ is a function of the family, its split
and $i$ alone. The streams of the two splits are disjoint, and every test instance is checked against the train
instances: one that equals a train instance is drawn again (the draw gets a further key, the attempt number), so
no test instance is ever a train instance.

**Seeds.** Seed $s$ plays instance $s \bmod n$ of its split. A batched env holds one value of each $P_b$
parameter: its slots play the group of its first slot's seed $s_0$, slot $j$ with seed $s_j$ the instance
$G \lfloor (s_0 \bmod n) / G \rfloor + (s_j \bmod G)$ (:meth:`Family.slots`), which is $s_j \bmod n$ whenever
$s_j$'s instance is in that group. The protocol runs each block of seeds as maximal runs of seeds of one group
(:meth:`Family.runs`), so a record's seed $s$ always plays instance $s \bmod n$, however the sweep is batched; the
step-size envs restart a slot within the batch's group, so a batch of trainer episodes shares its shapes and
differs in everything else.

The registered families (:func:`list_families`) and the math of each are documented in ``docs/families.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
from minmax_envs.registry import game_kwargs_allowed, make_game, spec

DISTRIBUTIONS: tuple[str, ...] = ("uniform", "log_uniform", "choice")
SPLITS: tuple[str, ...] = ("train", "test")
_SPLIT_CODE = {"train": 0, "test": 1}
_ATTEMPTS = 100  # draws of a test instance (or group) that may equal a train instance before giving up


def _json_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, str, int)) or (isinstance(v, float) and math.isfinite(v))


@dataclass(frozen=True)
class Param:
    """One game argument a family draws.

    Attributes:
        name: the game argument (a keyword of the game, see its card).
        distribution: ``"uniform"`` on ``[low, high)``, ``"log_uniform"`` on ``[low, high)`` (``low > 0``), or
            ``"choice"``: uniform over ``choices``.
        low, high: the interval (``uniform``, ``log_uniform``).
        choices: the values (``choice``): numbers, strings, booleans or null.
        per_seed: draw one value per seed (the argument changes no tensor's shape and the game accepts one value
            per seed: its ``Config.per_seed_args``); ``False``: one value per batch (group of instances).
    """

    name: str
    distribution: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    per_seed: bool = False

    def __post_init__(self) -> None:
        check_str("parameter name", self.name)
        where = f"parameter {self.name!r}"
        try:
            check_choice("distribution", self.distribution, DISTRIBUTIONS)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        check_bool(f"{where}: per_seed", self.per_seed)
        if self.distribution == "choice":
            if self.low is not None or self.high is not None:
                raise ValueError(f"{where}: a choice has choices, not low / high")
            if not isinstance(self.choices, (list, tuple)) or not self.choices:
                raise ValueError(f"{where}: choices must be a non-empty list of values, got {self.choices!r}")
            for i, c in enumerate(self.choices):
                if not _json_scalar(c):
                    raise ValueError(f"{where}: choices[{i}] must be a number, a string, a boolean or null, "
                                     f"got {c!r}")
                if self.per_seed and (isinstance(c, bool) or not isinstance(c, (int, float))):
                    raise ValueError(f"{where}: a parameter drawn per seed takes numbers, got choices[{i}] = {c!r}")
            if len({json.dumps(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"{where}: choices must be distinct, got {list(self.choices)}")
            object.__setattr__(self, "choices", tuple(self.choices))
            return
        if self.choices is not None:
            raise ValueError(f"{where}: a {self.distribution} distribution has low / high, not choices")
        positive = self.distribution == "log_uniform"
        low = check_real(f"{where}: low", self.low, low=0.0 if positive else None, low_inclusive=not positive)
        high = check_real(f"{where}: high", self.high, low=low, low_inclusive=False)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def draw(self, u: float) -> Any:
        """The value at uniform ``u`` in ``[0, 1)`` (the inverse distribution function)."""
        if self.distribution == "choice":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.distribution == "uniform":
            return self.low + (self.high - self.low) * u
        lo, hi = math.log(self.low), math.log(self.high)
        return min(math.exp(lo + (hi - lo) * u), self.high)

    def describe(self) -> str:
        """One line: ``gamma ~ U[0.1, 0.4) per seed``."""
        if self.distribution == "choice":
            law = "one of " + ", ".join(map(json.dumps, self.choices))
        else:
            law = f"{'U' if self.distribution == 'uniform' else 'logU'}[{self.low:g}, {self.high:g})"
        return f"{self.name} ~ {law} per {'seed' if self.per_seed else 'batch'}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "distribution": self.distribution}
        if self.distribution == "choice":
            d["choices"] = list(self.choices)
        else:
            d["low"], d["high"] = self.low, self.high
        d["per_seed"] = self.per_seed
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "parameter") -> Param:
        """The parameter of a :meth:`to_dict` layout (a parsed JSON object), validated."""
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be an object {{\"name\": ..., \"distribution\": ...}}, got {d!r}")
        check_fields(f"{where} {d.get('name')!r}", "parameter", d, cls)
        return cls(**d)


@dataclass(frozen=True)
class Family:
    """A distribution over a game's arguments with disjoint, seeded train and test instance sets (see the module).

    Attributes:
        name: the family's name (``get_family(name)`` once registered).
        env_id: the registered environment id whose game the family draws arguments of.
        params: the drawn arguments (:class:`Param`, or their dicts).
        kwargs: fixed game arguments of every instance.
        train, test: the number of instances of each split.
        group: instances that share the values of the parameters drawn per batch (``per_seed=False``); must divide
            ``train`` and ``test`` when there are such parameters, ignored otherwise.
        seed: the seed of both instance sets.
        description: one line for docs and reports (not part of the definition's digest).

    Validated on construction (a one-line ``ValueError`` naming the family and what is wrong), instance sets
    included: every group of instances of a batched game is built once, so an argument out of the game's range
    fails here.
    """

    name: str
    env_id: str
    params: tuple[Param, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    train: int = 64
    test: int = 32
    group: int = 16
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        check_str("family name", self.name)
        where = f"family {self.name!r}"
        try:
            check_str("env_id", self.env_id)
            object.__setattr__(self, "env_id", spec(self.env_id).id)
            self._check_params()
            for name in ("train", "test", "group"):
                check_int(name, getattr(self, name))
            check_int("seed", self.seed, low=0)
            check_str("description", self.description, allow_empty=True)
            if self.batch_params and (self.train % self.group or self.test % self.group):
                raise ValueError(f"group {self.group} must divide train {self.train} and test {self.test} (instances "
                                 f"of a group share {', '.join(p.name for p in self.batch_params)})")
            self._draw()
            self._check_games()
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def _check_params(self) -> None:
        if not isinstance(self.params, (list, tuple)) or not self.params:
            raise ValueError(f"params must be a non-empty list of parameters, got {self.params!r}")
        params = tuple(p if isinstance(p, Param) else Param.from_dict(p, f"params[{i}]")
                       for i, p in enumerate(self.params))
        object.__setattr__(self, "params", params)
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}")
        cls = spec(self.env_id).game_class()
        allowed = game_kwargs_allowed(cls)
        for p in params:
            if p.name not in allowed:
                raise ValueError(f"{self.env_id} has no argument {p.name!r}; its arguments: {', '.join(allowed)}")
            if p.per_seed and p.name not in cls.Config.per_seed_args:
                can = ", ".join(cls.Config.per_seed_args) or "none"
                raise ValueError(f"{p.name!r} cannot vary per seed in {self.env_id} (it changes a tensor's shape or "
                                 f"is discrete): set per_seed false; arguments that can: {can}")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise ValueError(f"kwargs must be an object of fixed game arguments, got {self.kwargs!r}")
        kwargs = dict(self.kwargs)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(f"kwargs {unknown} are not arguments of {self.env_id}; its arguments: "
                             f"{', '.join(allowed)}")
        both = sorted(set(kwargs) & set(names))
        if both:
            raise ValueError(f"{both} are both drawn (params) and fixed (kwargs)")
        try:
            json.dumps(kwargs, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"kwargs must hold JSON values (numbers, strings, booleans, null, lists), got {kwargs!r}"
                             ) from None
        object.__setattr__(self, "kwargs", kwargs)

    # --- the parameters ------------------------------------------------------------------------------------------
    @property
    def seed_params(self) -> tuple[Param, ...]:
        """The parameters drawn per seed."""
        return tuple(p for p in self.params if p.per_seed)

    @property
    def batch_params(self) -> tuple[Param, ...]:
        """The parameters drawn per batch (per group of instances)."""
        return tuple(p for p in self.params if not p.per_seed)

    def size(self, split: str) -> int:
        """The number of instances of ``split`` (``"train"`` or ``"test"``)."""
        return self.train if _split(split) == "train" else self.test

    def span(self, split: str) -> int:
        """$G$: the instances of ``split`` that share the per-batch values (``group``, or the whole split when no
        parameter is drawn per batch)."""
        return self.group if self.batch_params else self.size(split)

    # --- drawing -------------------------------------------------------------------------------------------------
    def _uniforms(self, *key: int, count: int) -> list[float]:
        return np.random.default_rng([self.seed, *key]).random(count).tolist() if count else []

    def _draw(self) -> None:
        sets: dict[str, tuple[dict[str, Any], ...]] = {}
        taken: set[str] = set()
        for split in SPLITS:
            code, span, out = _SPLIT_CODE[split], self.span(split), []
            for g in range(self.size(split) // span):
                for attempt in range(_ATTEMPTS if split == "test" else 1):
                    u = self._uniforms(code, 0, g, attempt, count=len(self.batch_params))
                    batch = {p.name: p.draw(x) for p, x in zip(self.batch_params, u)}
                    members = [self._member(code, i, batch, taken) for i in range(g * span, (g + 1) * span)]
                    if None not in members:
                        break
                else:
                    raise ValueError(f"cannot draw {self.test} test instances that differ from every train instance in "
                                     f"{_ATTEMPTS} attempts: its distributions hold too few distinct values (widen "
                                     "them, add a parameter or use fewer instances)")
                out += members
            sets[split] = tuple(out)
            taken = {_key(x) for x in out}
        object.__setattr__(self, "_instances", sets)

    def _member(self, code: int, i: int, batch: dict[str, Any], taken: set[str]) -> dict[str, Any] | None:
        """Instance ``i`` of the split ``code`` in a group of per-batch values ``batch``, redrawn (up to
        ``_ATTEMPTS`` times) while it equals an instance of ``taken``; ``None`` if it always does."""
        attempts = _ATTEMPTS if self.seed_params and taken else 1
        for attempt in range(attempts):
            u = self._uniforms(code, 1, i, attempt, count=len(self.seed_params))
            drawn = {**batch, **{p.name: p.draw(x) for p, x in zip(self.seed_params, u)}}
            instance = {p.name: drawn[p.name] for p in self.params}
            if _key(instance) not in taken:
                return instance
        return None

    def _check_games(self) -> None:
        """Build every group of instances once (batched games): a value out of the game's range fails here."""
        if not spec(self.env_id).game_class().batched:
            return
        for split in SPLITS:
            span = self.span(split)
            for g in range(self.size(split) // span):
                seeds = range(g * span, (g + 1) * span)
                try:
                    make_game(self.env_id, span, "cpu", torch.float64, **self.arguments(split, seeds))
                except ValueError as e:
                    raise ValueError(f"{split} instances {seeds.start}..{seeds.stop - 1}: {e}") from None

    # --- instances -----------------------------------------------------------------------------------------------
    def instances(self, split: str) -> tuple[dict[str, Any], ...]:
        """The instances of ``split``, in order: each a dict of the drawn arguments (the fixed ones are
        :attr:`kwargs`)."""
        return tuple(dict(x) for x in self._instances[_split(split)])

    def index(self, split: str, seed: int) -> int:
        """The instance seed ``seed`` plays: ``seed mod n``."""
        return check_int("seed", seed, low=0) % self.size(split)

    def instance(self, split: str, seed: int) -> dict[str, Any]:
        """The instance seed ``seed`` plays (:meth:`index`): the drawn arguments."""
        return dict(self._instances[_split(split)][self.index(split, seed)])

    def slots(self, split: str, seeds: Iterable[int]) -> list[int]:
        """The instances the slots of one batched env play, seeds ``seeds`` in slot order: the group of the first
        seed's instance, slot ``j`` its member ``seeds[j] mod G`` (:meth:`span`); ``seeds[j] mod n`` whenever that
        instance is in the group (always for a family without per-batch parameters)."""
        seeds = [check_int("seed", s, low=0) for s in seeds]
        if not seeds:
            raise ValueError("a batch needs at least one seed")
        span = self.span(split)
        first = self.index(split, seeds[0]) // span * span
        return [first + s % span for s in seeds]

    def arguments(self, split: str, seeds: Iterable[int]) -> dict[str, Any]:
        """The game arguments of one batched env whose slots have seeds ``seeds`` (:meth:`slots`): the fixed
        ``kwargs``, the group's per-batch values, and a list of one value per slot for each per-seed parameter.
        ``minmax_envs.make(env_id, len(seeds), **family.arguments(split, seeds))`` reset with ``seeds[0]`` (when
        they are consecutive) plays them."""
        chosen = [self._instances[_split(split)][i] for i in self.slots(split, seeds)]
        return {**self.kwargs, **{p.name: chosen[0][p.name] for p in self.batch_params},
                **{p.name: [x[p.name] for x in chosen] for p in self.seed_params}}

    def runs(self, split: str, start: int, count: int) -> list[tuple[int, int]]:
        """The seeds ``start .. start + count - 1`` as maximal runs ``(first seed, length)`` of consecutive seeds
        whose instances are in one group: each run is one batched env whose seed ``s`` plays instance
        ``s mod n``."""
        check_int("count", count)
        span, out = self.span(split), []
        for s in range(check_int("start", start, low=0), start + count):
            group = self.index(split, s) // span
            if out and out[-1][2] == group:
                out[-1][1] += 1
            else:
                out.append([s, 1, group])
        return [(first, length) for first, length, _ in out]

    def table(self, split: str, group: int, device: Any = "cpu") -> dict[str, torch.Tensor]:
        """The per-seed values of the instances of one group, a float64 tensor ``(G,)`` per per-seed parameter:
        member ``m`` at index ``m``."""
        span = self.span(split)
        members = self._instances[_split(split)][group * span:(group + 1) * span]
        return {p.name: torch.tensor([float(x[p.name]) for x in members], dtype=torch.float64, device=device)
                for p in self.seed_params}

    def check_task(self, env_id: str, env_kwargs: Mapping[str, Any]) -> None:
        """A ``ValueError`` unless a task (or env) of ``env_id`` with arguments ``env_kwargs`` can play this family:
        the same game, and no argument set both by the task and by the family."""
        if spec(env_id).id != self.env_id:
            raise ValueError(f"family {self.name!r} draws arguments of {self.env_id}, not of {spec(env_id).id}")
        both = sorted(set(env_kwargs) & ({p.name for p in self.params} | set(self.kwargs)))
        if both:
            raise ValueError(f"{both} are set by family {self.name!r}; leave them out of the task's arguments")

    # --- identity ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON values (a suite file's ``"family"``)."""
        return {"name": self.name, "env_id": self.env_id, "params": [p.to_dict() for p in self.params],
                "kwargs": dict(self.kwargs), "train": self.train, "test": self.test, "group": self.group,
                "seed": self.seed, "description": self.description}

    @classmethod
    def from_dict(cls, d: Any) -> Family:
        """The family of a :meth:`to_dict` layout (a parsed JSON object), validated field by field."""
        if not isinstance(d, dict):
            raise ValueError(f"a family is a registered family's name or an object with the fields "
                             f"{', '.join(required_fields(cls))}, ..., got {d!r}")
        check_fields(f"family {d.get('name')!r}", "family", d, cls)
        if not isinstance(d["params"], list):
            raise ValueError(f"family {d.get('name')!r}: params must be a list of parameter objects, got "
                             f"{d['params']!r}")
        return cls(**d)

    @property
    def digest(self) -> str:
        """A hash of the definition (every field but the description): part of every record key."""
        d = {k: v for k, v in self.to_dict().items() if k != "description"}
        return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]

    def key(self, split: str) -> dict[str, Any]:
        """What a record of ``split`` is keyed by: the family's name, digest and the split."""
        return {"name": self.name, "digest": self.digest, "split": _split(split)}

    def describe(self) -> str:
        """One line: the game, the drawn arguments, the fixed ones and the split sizes."""
        fixed = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.kwargs.items())
        return (f"{self.env_id}: {'; '.join(p.describe() for p in self.params)}"
                f"{f' (fixed: {fixed})' if fixed else ''}; {self.train} train / {self.test} test instances"
                f"{f', groups of {self.group}' if self.batch_params else ''}, seed {self.seed}")


def _split(split: Any) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; a family has the splits 'train' and 'test'")
    return split


def _key(instance: dict[str, Any]) -> str:
    return json.dumps(instance, sort_keys=True)


# --- the registry ----------------------------------------------------------------------------------------------------

_FAMILIES: dict[str, Family] = {}


def register_family(family: Family, *, overwrite: bool = False) -> None:
    """Make ``family`` available by name (a task's ``family``, the faces' ``family=``)."""
    if not isinstance(family, Family):
        raise ValueError(f"register_family takes a Family, got {family!r}")
    if family.name in _FAMILIES and not overwrite:
        raise ValueError(f"family {family.name!r} is already registered")
    _FAMILIES[family.name] = family


def list_families() -> list[str]:
    """The registered families' names, sorted."""
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    """A registered family by name."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown family {name!r}; registered families: {', '.join(list_families())}")
    return _FAMILIES[name]


def resolve_family(family: Any) -> Family:
    """A :class:`Family` from a family, a registered family's name or a :meth:`Family.to_dict` object."""
    if isinstance(family, Family):
        return family
    if isinstance(family, str):
        return get_family(family)
    if isinstance(family, dict):
        return Family.from_dict(family)
    raise ValueError(f"a family is a Family, a registered family's name ({', '.join(list_families())}) or a family "
                     f"object, got {family!r}")


# --- slots of batched envs -------------------------------------------------------------------------------------------

class FamilySlots:
    """The instances of one split of a family played by the ``N`` slots of batched envs (the step-size envs' core).

    :meth:`arguments` gives the game arguments of a batch whose slots start episodes with given seeds (the group
    is the first seed's, :meth:`Family.slots`); :meth:`assign` gives restarted slots the per-seed values of their new
    seeds' instances in the same group, on the device (no host transfer), before
    :meth:`~minmax_envs.env.BatchedEnv.reset_where`.
    """

    def __init__(self, family: Family, split: str, num_seeds: int):
        self.family, self.split = family, _split(split)
        self.num_seeds = check_int("num_seeds", num_seeds)
        self.group: int | None = None
        self._tables: dict[tuple[int, str], dict[str, torch.Tensor]] = {}

    def arguments(self, seeds: Sequence[int]) -> dict[str, Any]:
        """The game arguments of a batch whose slot ``j`` starts with seed ``seeds[j]``; sets :attr:`group`."""
        if len(seeds) != self.num_seeds:
            raise ValueError(f"need {self.num_seeds} seeds, got {len(seeds)}")
        f = self.family
        self.group = f.index(self.split, seeds[0]) // f.span(self.split)
        return f.arguments(self.split, seeds)

    def batch_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The part of :meth:`arguments` fixed for a whole batch (all but the per-seed lists)."""
        per_seed = {p.name for p in self.family.seed_params}
        return {k: v for k, v in arguments.items() if k not in per_seed}

    def seed_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The per-seed lists of :meth:`arguments`."""
        return {p.name: arguments[p.name] for p in self.family.seed_params}

    def assign(self, game: Any, mask: torch.Tensor, seeds: torch.Tensor) -> None:
        """Give the slots where ``mask`` is true the per-seed values of seed ``seeds[j]``'s member of the batch's
        group (``game.set_per_seed``, unchecked: the values were checked when the family was made)."""
        if not self.family.seed_params:
            return
        if self.group is None:
            raise RuntimeError("assign before the batch's first arguments()")
        device = mask.device
        key = (self.group, str(device))
        if key not in self._tables:
            self._tables[key] = self.family.table(self.split, self.group, device)
        member = torch.remainder(seeds.to(torch.int64), self.family.span(self.split))
        game.set_per_seed(check=False, **{name: torch.where(mask, values[member], game.seed_args[name])
                                          for name, values in self._tables[key].items()})


# --- the registered families -----------------------------------------------------------------------------------------

register_family(Family(
    "two-mode-small", "TwoMode-v0",
    (Param("gamma", "uniform", 0.1, 0.4, per_seed=True),
     Param("case", "choice", choices=("correlated_modes", "correlated_coefficients")),
     Param("m_d", "choice", choices=(4, 5, 6)), Param("m_g", "choice", choices=(4, 5, 6))),
    {"d": 100}, train=64, test=32, group=4, seed=0,
    description="The two-mode problem at d = 100: the correlation gamma per seed, the data case and both widths per "
                "batch"))

register_family(Family(
    "mog-ring-small", "MoG-Ring-v0",
    (Param("radius", "uniform", 1.0, 3.0, per_seed=True), Param("std", "log_uniform", 0.01, 0.05, per_seed=True),
     Param("num_modes", "choice", choices=(6, 8, 10))),
    {"hidden": 32, "batch_size": 64, "eval_samples": 500}, train=64, test=32, group=8, seed=0,
    description="Rings of Gaussians, small MLPs: the radius and the modes' width per seed, the number of modes per "
                "batch"))

register_family(Family(
    "dirac-r1", "DiracGAN-v0",
    (Param("loss", "choice", choices=("gan", "nsgan")),
     Param("penalty_weight", "log_uniform", 0.3, 3.0, per_seed=True)),
    {"penalty": "r1", "init_std": 0.5}, train=64, test=32, group=8, seed=0,
    description="The Dirac GAN with the R1 penalty: its weight per seed, the standard or non-saturating loss per "
                "batch"))

register_family(Family(
    "dirac-wgan", "DiracGAN-v0",
    (Param("theta0", "uniform", 0.5, 2.0, per_seed=True), Param("psi0", "uniform", 0.5, 2.0, per_seed=True)),
    {"loss": "wgan", "init_std": 0.5}, train=64, test=32, seed=0,
    description="The Dirac WGAN from a starting point drawn per seed"))

register_family(Family(
    "bilinear-cond", "Bilinear-v0",
    (Param("n", "choice", choices=(5, 10, 20)), Param("sigma_min", "log_uniform", 0.05, 0.5, per_seed=True)),
    {"sigma_max": 1.0}, train=64, test=32, group=8, seed=0,
    description="Bilinear games: the size per batch, the smallest singular value (the conditioning) per seed"))

for _case in ("correlated_modes", "correlated_coefficients"):
    register_family(Family(
        f"two-mode-section4-{_case.replace('_', '-')}", "TwoMode-v0",
        (Param("gamma", "uniform", 0.1, 0.3, per_seed=True),),
        {"d": 1000, "m_d": 7, "m_g": 13, "case": _case}, train=64, test=64, seed=0,
        description=f"Section 4's setting of the balance suite ({_case.replace('_', ' ')}), the correlation gamma "
                    "per seed"))


__all__ = ["DISTRIBUTIONS", "SPLITS", "Family", "FamilySlots", "Param", "get_family", "list_families",
           "register_family", "resolve_family"]

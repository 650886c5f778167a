"""Agents by name, for suites and the ``minmax`` command: each name maps step sizes to a pair of agents.

A benchmarked agent is a family of optimizers indexed by the two step sizes ``(lr_d, lr_g)``; tuning
searches them, the rest of the hyperparameters are the papers' ("Adam is no better than normalized SGD": betas
(0.5, 0.9); SGDA without momentum in Section 4's theory, ``sgdm`` with momentum 0.9 as in its experiments).

Every agent plays through one interface, a :class:`Runner` (:func:`make_runner`): pairs of pure or in-place
agents through the :class:`AgentRunner` adapter over :func:`~minmax_envs.run_episode`, agents that play episodes
themselves (a learned step-size controller) as they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import agents
import minmax_envs
from agents import GradientTransformation
from minmax_envs import Game
from minmax_envs.episode import EpisodeResult, EpisodeTask

Factory = Callable[[object], GradientTransformation]
NSGD = '"Adam is no better than normalized SGD"'  # the paper the built-ins come from (ICLR 2022 submission)

AGENTS: dict[str, tuple[Factory, str]] = {
    "sgda": (lambda lr: agents.sgda(lr), "SGDA, no momentum (eq. 5 with mu = 0 of " + NSGD + ")"),
    "sgdm": (lambda lr: agents.sgda(lr, momentum=0.9), "SGDA with heavy-ball momentum 0.9 (eq. 5 of " + NSGD + ")"),
    "nsgda": (lambda lr: agents.nsgda(lr), "global normalized SGDA (g-nSGDA, eq. 4 of " + NSGD + ")"),
    "nsgda-layer": (lambda lr: agents.nsgda(lr, scope="layer"), "layer-wise normalized SGDA (l-nSGDA)"),
    "adam": (lambda lr: agents.adam(lr), "Adam, betas (0.5, 0.9)"),
    "rmsprop": (lambda lr: agents.rmsprop(lr), "RMSprop, alpha 0.99"),
    "adagrad": (lambda lr: agents.adagrad(lr), "Adagrad"),
    "adalr": (lambda lr: agents.adalr(lr), "Adam's magnitude, SGDA-momentum's direction (eq. 2 of " + NSGD + ")"),
    "adadir": (lambda lr: agents.adadir(lr), "SGDA-momentum's magnitude, Adam's direction (eq. 3 of " + NSGD + ")"),
    "extragradient": (lambda lr: agents.extragradient(agents.sgda(lr)), "extra-SGD (Korpelevich; Gidel et al.)"),
    "extra-adam": (lambda lr: agents.extragradient(agents.adam(lr)), "ExtraAdam (Gidel et al. 2019)"),
    "optimistic": (lambda lr: agents.optimistic(lr), "optimistic gradient descent-ascent (OGDA)"),
    "optimistic-adam": (lambda lr: agents.optimistic_adam(lr), "optimistic Adam (Daskalakis et al. 2018)"),
}

# Names of the form "PREFIX:ARGUMENT" (e.g. a saved controller, "learned:PATH") resolve through these:
# prefix -> (build(ARG, lr_d, lr_g), check(ARG) or None, digest(ARG) or None).
_PREFIXES: dict[str, tuple[Callable[[str, object, object], object], Callable[[str], object] | None,
                           Callable[[str], str] | None]] = {}
PREFIX_SUMMARIES: dict[str, str] = {}  # "prefix:ARG" form -> one line, for ``minmax list agents``


def register_agent_prefix(prefix: str, build: Callable[[str, object, object], object],
                          check: Callable[[str], object] | None = None,
                          digest: Callable[[str], str] | None = None, summary: str = "") -> None:
    """Resolve names ``"prefix:ARG"`` with ``build(ARG, lr_d, lr_g)`` (returning anything ``run_episode`` takes,
    or a :class:`Runner` such as a :class:`~minmax_envs.controller_files.LearnedController`); ``check(ARG)``, if
    given, raises a ``ValueError`` for a bad ``ARG`` when the name is checked (before a sweep starts);
    ``digest(ARG)``, if given, is a string that changes whenever what ``ARG`` refers to changes (e.g. a hash of a
    saved controller's files): it is part of every stored record's key (:func:`agent_digest`), so a retrained
    controller at the same path is never mistaken for the old one."""
    _PREFIXES[prefix] = (build, check, digest)
    PREFIX_SUMMARIES[f"{prefix}:..."] = summary


def agent_digest(name: str) -> str | None:
    """What identifies agent ``name`` beyond its name: the prefix's ``digest(ARG)`` for ``"prefix:ARG"`` names
    that have one, else ``None`` (a registered agent is identified by its name)."""
    if name in AGENTS or ":" not in name:
        return None
    prefix, arg = name.split(":", 1)
    digest = _PREFIXES[prefix][2] if prefix in _PREFIXES else None
    return None if digest is None else digest(arg)


def register_agent(name: str, factory: Factory, summary: str = "", *, overwrite: bool = False) -> None:
    """Make ``factory(lr)`` (one player's transformation for step size ``lr``, a number or a schedule) the agent
    ``name`` of every suite: ``bench(..., agents=[name])`` / ``minmax bench --agents name`` (in this process)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"agent name must be a non-empty str without ':', got {name!r}")
    if name in AGENTS and not overwrite:
        raise ValueError(f"agent {name!r} is already registered (pass overwrite=True to replace it)")
    if not callable(factory):
        raise ValueError(f"factory of agent {name!r} must be callable lr -> GradientTransformation")
    AGENTS[name] = (factory, summary)


def list_agents() -> list[str]:
    return sorted(AGENTS)


def check_agent(name: str) -> str:
    """``name`` if it names an agent, or a ``ValueError`` that lists the known ones."""
    if not isinstance(name, str):
        raise ValueError(f"agent name must be a str, got {name!r}")
    prefix = name.split(":", 1)[0] if ":" in name else None
    if name not in AGENTS and prefix not in _PREFIXES:
        extra = f" or {', '.join(p + ':...' for p in sorted(_PREFIXES))}" if _PREFIXES else ""
        raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(list_agents())}{extra}")
    if name not in AGENTS and _PREFIXES[prefix][1] is not None:
        _PREFIXES[prefix][1](name.split(":", 1)[1])
    return name


def make_agent(name: str, lr_d: Any, lr_g: Any) -> Any:
    """The agents of ``name`` at these step sizes.

    Args:
        name: a registered agent (:data:`AGENTS`) or a ``"prefix:ARG"`` name (``learned:``, ``torch:``,
            ``balanced:``); checked by :func:`check_agent`.
        lr_d: the discriminator's step size, a number or a schedule.
        lr_g: the generator's step size, a number or a schedule.

    Returns:
        The pair ``{"discriminator": ..., "generator": ...}``, or what the prefix builds (a :class:`Runner`
            for a learned controller).
    """
    check_agent(name)
    if name in AGENTS:
        factory = AGENTS[name][0]
        return {"discriminator": factory(lr_d), "generator": factory(lr_g)}
    prefix, arg = name.split(":", 1)
    return _PREFIXES[prefix][0](arg, lr_d, lr_g)


# --- one interface to play an episode ------------------------------------------------------------------------------

@runtime_checkable
class Runner(Protocol):
    """What plays one batched episode for the protocol and ``minmax run``, whatever the agent's kind."""

    def run(self, task: EpisodeTask) -> EpisodeResult:
        """Play the batched episode ``task``: ``task.steps`` iterations on the seeds ``task.seed, task.seed + 1,
        ...`` (``task.count`` of them) of ``task.env_id`` as one batch, metrics every ``task.eval_every``
        iterations and ``task.samples`` generator samples per seed at the end (:func:`~minmax_envs.run_episode`'s
        conventions).

        Args:
            task: the episode (:class:`~minmax_envs.episode.EpisodeTask`).

        Returns:
            What the episode produced.
        """
        ...


class AgentRunner:
    """The :class:`Runner` of a pair of agents (pure or in place): :func:`~minmax_envs.run_episode` on a batched
    env that it makes once and reuses while the env's arguments stay the same (one env for all blocks of a unit).

    Args:
        build: ``build(game) -> agents`` (anything ``run_episode`` takes), called when an env is made: step-size
            schedules spanning the episode need the game's update schedule.
    """

    def __init__(self, build: Callable[[Game], Any]):
        self._build = build
        self._env: Any = None
        self._made: tuple | None = None
        self._agents: Any = None

    def run(self, task: EpisodeTask, *args: Any, **kwargs: Any) -> EpisodeResult:
        """:func:`~minmax_envs.run_episode` of the pair on the batched env of ``task`` (an
        :class:`~minmax_envs.episode.EpisodeTask`; the positional form ``run(env_id, steps, seed, count, ...)`` is
        deprecated), made anew only when the env's arguments change."""
        task = EpisodeTask.of(task, *args, **kwargs)
        made = (task.env_id, task.count, str(task.device), task.env_kwargs)
        if made != self._made:
            self._env = minmax_envs.make(task.env_id, num_seeds=task.count, device=task.device, **task.env_kwargs)
            self._made, self._agents = made, self._build(self._env.game)
        return minmax_envs.run_episode(self._env, self._agents, steps=task.steps, seed=task.seed,
                                       eval_every=task.eval_every, samples=task.samples)


def make_runner(name: str, lr_d: Any, lr_g: Any,
                schedule: Callable[[Game, Any], tuple[Any, Any]] | None = None) -> Runner:
    """The :class:`Runner` of agent ``name`` with step sizes ``(lr_d, lr_g)``.

    Args:
        name: the agent, as in :func:`make_agent`.
        lr_d: the discriminator's step size, a number or a schedule.
        lr_g: the generator's step size, a number or a schedule.
        schedule: ``schedule(game, agents) -> (lr_d, lr_g)``, if given, replaces the step sizes by what it returns
            once the game is known (``agents``: the pair built with the plain step sizes); it applies to pairs of
            agents only: an agent that plays its own episodes (a learned controller) keeps its base step sizes.

    Returns:
        The runner: an :class:`AgentRunner` for a pair of agents, the agent itself if it is a runner.
    """
    built = make_agent(name, lr_d, lr_g)
    if isinstance(built, Runner):
        return built
    if schedule is None:
        return AgentRunner(lambda game: built)
    return AgentRunner(lambda game: make_agent(name, *schedule(game, built)))


def _learned(path: str, lr_d, lr_g):
    from minmax_envs.controller_files import LearnedController

    return LearnedController.load(path, lr_d, lr_g)


def _check_learned(path: str) -> None:
    from minmax_envs.controller_files import check_controller

    check_controller(path)


def _digest_learned(path: str) -> str:
    """A hash of the controller's weights and description files: a retrained controller gets new keys."""
    import hashlib

    from minmax_envs.controller_files import controller_files

    h = hashlib.sha1()
    for f in controller_files(path):
        h.update(f.read_bytes() if f.is_file() else b"")
    return h.hexdigest()


register_agent_prefix("learned", _learned, _check_learned, _digest_learned,
                      "learned:PATH  a saved step-size controller (NAME.pt + NAME.json, baselines/train_controller.py; "
                      "learned:pkg:NAME for one shipped in the package)")


def resolve_agent(name: str, root: str | os.PathLike | None) -> str:
    """The name agent ``name`` plays under when a suite file in the directory ``root`` names it: a relative
    ``learned:PATH`` is ``learned:ROOT/PATH`` (a suite file's controllers are found beside it, from any working
    directory); every other name, and every name for ``root=None``, is itself. Records keep ``name``: the
    controller's files are identified by their hash (:func:`agent_digest`), not by where they lie."""
    if root is None or not isinstance(name, str) or not name.startswith("learned:"):
        return name
    path = name[len("learned:"):]
    if path.startswith("pkg:") or os.path.isabs(path):
        return name
    return "learned:" + os.path.join(os.fspath(root), path)


# --- any PyTorch optimizer: "torch:MODULE.CLASS" or "torch:MODULE.CLASS?key=JSON&key=JSON" ---------------------

TORCH_SYNTAX = ("torch:MODULE.CLASS[?key=value&key=value...], values in JSON "
                "(e.g. torch:torch.optim.Adam?betas=[0.5,0.9]&weight_decay=0.01)")


def parse_torch_agent(arg: str) -> tuple[str, dict]:
    """``"torch.optim.Adam?betas=[0.5,0.9]&weight_decay=0.01"`` -> ``("torch.optim.Adam", {"betas": (0.5, 0.9),
    "weight_decay": 0.01})``: the optimizer's dotted name and its hyperparameters (JSON values; lists become
    tuples, as torch.optim writes them). ``lr`` is the protocol's: it cannot be given."""
    import json

    from minmax_envs._json import loads

    dotted, _, query = arg.partition("?")
    if not dotted or "." not in dotted:
        raise ValueError(f"agent 'torch:{arg}': name the optimizer class by its dotted path, {TORCH_SYNTAX}")
    hyper: dict = {}
    for part in query.split("&") if query else []:
        key, eq, raw = part.partition("=")
        if not key or not eq:
            raise ValueError(f"agent 'torch:{arg}': {part!r} is not key=value; {TORCH_SYNTAX}")
        if key in hyper:
            raise ValueError(f"agent 'torch:{arg}': {key} given twice")
        if key == "lr":
            raise ValueError(f"agent 'torch:{arg}': lr is tuned by the protocol (lr_d, lr_g); do not give it")
        try:
            value = loads(raw)  # nesting bounded
        except json.JSONDecodeError as e:
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            raise ValueError(f"agent 'torch:{arg if len(arg) <= 200 else arg[:197] + '...'}': the value of {key} "
                             f"must be JSON (numbers, true/false, null, \"strings\", [lists]), got {shown!r} "
                             f"({e.msg})") from None
        hyper[key] = tuple(value) if isinstance(value, list) else value
    return dotted, hyper


def split_agent_names(text: str) -> list[str]:
    """Comma-separated agent names, where commas inside brackets (``betas=[0.5,0.9]``) belong to a name."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(text[start:i])
            start = i + 1
    names.append(text[start:])
    return [n.strip() for n in names if n.strip()]


def _typed_torch_agent(arg: str) -> tuple[str, dict]:
    """The optimizer's dotted name and its hyperparameters, each typed by the optimizer's own signature
    (:func:`agents.torch_optim.check_hyperparameter_types`: ``amsgrad="false"`` is refused, not taken as true).
    The class is imported only as :func:`agents.from_torch` allows (the installed optimizer packages, or modules
    opted in to: ``minmax --allow-module``, :func:`agents.allow_optimizer_modules`)."""
    from agents.torch_optim import check_hyperparameter_types, optimizer_class

    dotted, hyper = parse_torch_agent(arg)
    try:
        check_hyperparameter_types(optimizer_class(dotted), dotted, hyper)
    except ValueError as e:
        raise ValueError(f"agent 'torch:{arg}': {e}") from None
    return dotted, hyper


def _torch_pair(arg: str, lr_d, lr_g):
    from agents import from_torch

    dotted, hyper = _typed_torch_agent(arg)
    return {"discriminator": from_torch(dotted, lr=lr_d, **hyper), "generator": from_torch(dotted, lr=lr_g, **hyper)}


def _check_torch(arg: str) -> None:
    """Import the class (if allowed), type the hyperparameters and build it once (torch's own eager errors)."""
    from agents import from_torch

    dotted, hyper = _typed_torch_agent(arg)
    try:
        from_torch(dotted, lr=1e-3, **hyper)
    except (TypeError, ValueError) as e:
        raise ValueError(f"agent 'torch:{arg}': {e}") from None


def _digest_torch(arg: str) -> str:
    """The version of the package the optimizer comes from (records of another version are not reused), or, for
    a module of your own opted in to, a hash of its source files (an edited file gets new keys)."""
    from agents.torch_optim import optimizer_digest

    return optimizer_digest(parse_torch_agent(arg)[0])


register_agent_prefix("torch", _torch_pair, _check_torch, _digest_torch,
                      "torch:MODULE.CLASS[?key=JSON&...]  any torch.optim.Optimizer as it ships (agents.from_torch)")


# --- balanced updates: "balanced:BASE?ratio=R&anchor=A" -------------------------------------------------------------

BALANCED_SYNTAX = ("balanced:BASE[?ratio=R&anchor=A], BASE any agent name but learned: and balanced: ones (torch:... "
                   "with its own ?key=value, which are passed on), R a positive number or 'tuned' (default 1), A "
                   "geometric (default), generator, discriminator or fixed "
                   "(e.g. balanced:sgda?ratio=tuned&anchor=fixed)")
_BALANCED_KEYS = ("ratio", "anchor")


def parse_balanced_agent(arg: str) -> tuple[str, float | str, str]:
    """``"sgda?ratio=2&anchor=generator"`` -> ``("sgda", 2.0, "generator")``: the base agent's name, the pace
    ratio ``||u_D|| / ||u_G||`` (a number, or ``"tuned"``: ``lr_d / lr_g`` of the configuration the protocol
    tries, so the task's step-size ratios are searched as paces on the same budget) and the anchor
    (:func:`agents.balanced`). Keys other than ``ratio`` and ``anchor`` stay with the base (a ``torch:`` agent's
    hyperparameters)."""
    base, _, query = arg.partition("?")
    own: dict[str, str] = {}
    rest = []
    for part in query.split("&") if query else []:
        key, eq, raw = part.partition("=")
        if key in _BALANCED_KEYS:
            if not eq or not raw:
                raise ValueError(f"agent 'balanced:{arg}': {part!r} is not key=value; {BALANCED_SYNTAX}")
            if key in own:
                raise ValueError(f"agent 'balanced:{arg}': {key} given twice")
            own[key] = raw
        else:
            rest.append(part)
    if rest:
        base += "?" + "&".join(rest)
    if not base:
        raise ValueError(f"agent 'balanced:{arg}': name the base agent; {BALANCED_SYNTAX}")
    if base.startswith(("balanced:", "learned:")):
        raise ValueError(f"agent 'balanced:{arg}': the base {base!r} must be an optimizer (a built-in or a torch: "
                         "agent), not a balanced agent or a learned controller")
    raw_ratio = own.get("ratio", "1")
    if raw_ratio == "tuned":
        ratio: float | str = "tuned"
    else:
        try:
            ratio = float(raw_ratio)
        except ValueError:
            ratio = math.nan
        if not (math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"agent 'balanced:{arg}': ratio must be a positive number or 'tuned', got {raw_ratio!r}")
    anchor = own.get("anchor", "geometric")
    if anchor not in agents.pairs.ANCHORS:
        raise ValueError(f"agent 'balanced:{arg}': unknown anchor {anchor!r}; choose one of "
                         f"{', '.join(agents.pairs.ANCHORS)}")
    return base, ratio, anchor


def _initial(lr) -> float:
    """A step size's value at the first update (a number, or a schedule's first value)."""
    return float(lr(0)) if callable(lr) else float(lr)


def _balanced_pair(arg: str, lr_d, lr_g):
    base, ratio, anchor = parse_balanced_agent(arg)
    d0, g0 = _initial(lr_d), _initial(lr_g)
    if anchor == "fixed" and (callable(lr_d) or callable(lr_g)):
        raise ValueError(f"agent 'balanced:{arg}': anchor=fixed sets the update sizes from constant step sizes; "
                         "the task decays them (schedule linear_decay): use another anchor")
    pace = d0 / g0 if ratio == "tuned" else ratio
    return agents.balanced(make_agent(base, lr_d, lr_g), pace, anchor,
                           math.sqrt(d0 * g0) if anchor == "fixed" else None)


def _check_balanced(arg: str) -> None:
    check_agent(parse_balanced_agent(arg)[0])


def _digest_balanced(arg: str) -> str | None:
    return agent_digest(parse_balanced_agent(arg)[0])


register_agent_prefix("balanced", _balanced_pair, _check_balanced, _digest_balanced,
                      "balanced:BASE[?ratio=R|tuned&anchor=A]  BASE's updates held at the pace ||u_D|| / ||u_G|| = R "
                      "(agents.balanced; A: geometric, generator, discriminator, fixed)")

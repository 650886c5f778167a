"""Core types of the agents: pure gradient transformations, optax-style.

An agent is a pair of pure functions over dicts of tensors that carry a leading seed dimension ``N``::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)

``updates`` are *added* to the parameters. Every player minimizes its own loss, so one agent fits
either player. Transformations compose with :func:`chain`. A :class:`PairTransformation` acts on both
players at once (different agents per player, balanced updates).

Agents pickle (spawned workers, Ray actors): their functions are module-level functions bound to their
hyperparameters with ``functools.partial``, or methods of small classes, never closures.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import torch

from agents.types import Params, PlayerParams

State = Any


Schedule = Callable[[int], float]
"""A step size as a function of the number of updates made so far (0 for the first update)."""

# --- defaults, each declared once (the pure agents, their fused paths and their in-place twins take them from here)
#: ``(beta1, beta2)`` of the Adam-based named agents (adam, adalr, adadir, optimistic_adam, in place too): the rule
#: of thumb for GANs of "Adam is no better than normalized SGD" (beta1 = 0.5 as in Radford et al.'s DCGAN)
GAN_BETAS: tuple[float, float] = (0.5, 0.9)
#: ``(beta1, beta2)`` of the building block scale_by_adam: Adam's own (Kingma & Ba 2015; torch.optim.Adam's)
ADAM_BETAS: tuple[float, float] = (0.9, 0.999)
#: the epsilon added to a denominator (Adam's and RMSprop's square roots, grafting's norms)
EPS = 1e-8
#: RMSprop's decay of the squared gradients (torch.optim.RMSprop's)
RMSPROP_ALPHA = 0.99
#: Adagrad's epsilon (torch.optim.Adagrad's)
ADAGRAD_EPS = 1e-10
#: the norm scope of normalized SGDA: over all of a player's tensors ("Adam is no better than normalized SGD",
#: Section 4, g-nSGDA)
NSGDA_SCOPE = "global"
#: the norm scope of grafting (graft, adalr, adadir): per tensor, as in the paper's Figure 2
GRAFT_SCOPE = "layer"


class GradientTransformation(NamedTuple):
    """A pure transformation of gradients into updates: ``init(params) -> state`` and
    ``update(grads, state, params) -> (updates, state)``.

    ``evaluations`` is the number of gradient evaluations (env steps) that make one iteration of the
    method: 2 for extragradient (an extrapolation step, then the real step), 1 otherwise.
    """

    init: Callable[[Params], State]
    update: Callable[[Params, State, Params | None], tuple[Params, State]]
    evaluations: int = 1


class InPlaceTransformation(NamedTuple):
    """An agent that writes the new parameters into the parameter tensors themselves (torch.optim's contract)::

        state = tx.init(params)                # may keep references to params' tensors, as an optimizer does
        state = tx.step(grads, state, params)  # params[name] <- params[name] + u_t, in place

    ``params`` are the env's own tensors (a leading seed dimension ``N``, handed out by
    :meth:`~minmax_envs.env.BatchedEnv.writable`); ``step`` must write into them and never rebind them, and every
    seed must behave as an optimizer of its own (a seed's update depends on that seed's gradients and state
    alone). ``evaluations`` as in :class:`GradientTransformation`.

    ``state_dict(state)`` turns the state into tensors and plain containers for a checkpoint, and
    ``load_state_dict(state, saved)`` restores it into the state of a fresh ``init`` on the same tensors;
    both ``None`` when the state already is a tree of tensors and NamedTuples (saved like a pure agent's).
    """

    init: Callable[[Params], State]
    step: Callable[[Params, State, Params], State]
    evaluations: int = 1
    state_dict: Callable[[State], Any] | None = None
    load_state_dict: Callable[[State, Any], State] | None = None


Agent = GradientTransformation | InPlaceTransformation
"""One player's agent, of either kind."""

class PairTransformation(NamedTuple):
    """An agent for both players at once, over dicts ``{player: {name: tensor}}``:
    ``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)``.

    ``updates[player]`` is ``None`` for a player in ``in_place``: its agent already wrote the new parameters
    into ``params[player]`` (see :class:`InPlaceTransformation`; in an env, inside
    :meth:`~minmax_envs.env.BatchedEnv.writable`, which settles them), and that player is left out of the step.
    ``state_dict``, when set, turns the state into ``(tree, plain)`` for a checkpoint: ``tree`` a tree of tensors
    and NamedTuples (restored into the structure of a fresh ``init``), ``plain`` plain containers;
    ``load_state_dict(fresh, (tree, plain))`` rebuilds the state from them."""

    init: Callable[[PlayerParams], State]
    update: Callable[[PlayerParams, State, PlayerParams | None], tuple[PlayerParams, State]]
    evaluations: int = 1
    in_place: tuple[str, ...] = ()
    state_dict: Callable[[State], Any] | None = None
    load_state_dict: Callable[[State, Any], State] | None = None


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


def empty_state(params: Params) -> EmptyState:
    """The ``init`` of a stateless transformation."""
    return EmptyState()


def stateless(fn: Callable[[Params, Params | None], Params]) -> GradientTransformation:
    """A transformation that keeps no state: ``updates = fn(grads, params)``. It pickles when ``fn`` does (a
    module-level function, or a ``functools.partial`` of one)."""
    return GradientTransformation(empty_state, partial(_stateless_update, fn))


def _stateless_update(fn: Callable[[Params, Params | None], Params], grads: Params, state: EmptyState,
                      params: Params | None = None) -> tuple[Params, EmptyState]:
    return fn(grads, params), state


class ChainState(tuple):
    """The state of a :func:`chain` (the tuple of its parts' states, in order) whose parts also have names.

    A named optimizer that is a chain (:func:`agents.adam` is ``chain(scale_by_adam(...),
    scale_by_learning_rate(lr))``) declares its state as a subclass whose properties name the parts
    (:class:`agents.transforms.AdamState`: ``state.moments``, ``state.schedule``), so that its fast paths read names
    instead of positions. It stays the chain's tuple: :func:`chain` updates it part by part and keeps its class,
    it equals the plain tuple of the same parts, a checkpoint stores it as a tuple (rebuilt into the class of a
    fresh ``init``), and a state's structure in messages is that of the tuple."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}{tuple.__repr__(self)}"

    @classmethod
    def named(cls, state: tuple) -> ChainState:
        """``state`` as this class: itself, or a plain tuple of the same parts (as a generic tree map, which
        rebuilds tuples as tuples, returns it) given the names; the fast paths accept either."""
        return state if type(state) is cls else cls(state)


def chain(*transforms: GradientTransformation, state: type[ChainState] | None = None) -> GradientTransformation:
    """Apply transformations one after the other; the state is the tuple of their states (of the class ``state``,
    a :class:`ChainState` that names them, where given)."""
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"chain() argument {i} must be a GradientTransformation, got {type(t).__name__}")
    if state is not None and not (isinstance(state, type) and issubclass(state, ChainState)):
        raise TypeError(f"chain(state=...) must be a ChainState subclass, got {state!r}")
    evaluations = max((t.evaluations for t in transforms), default=1)
    return GradientTransformation(partial(chain_init, tuple(t.init for t in transforms), named=state),
                                  partial(_chain_update, transforms), evaluations)


def chain_init(inits: tuple[Callable[[Params], State], ...], params: Params,
               named: type[ChainState] | None = None) -> tuple:
    """The state of a chain: the tuple of its parts' states, ``tuple(init(params) for init in inits)`` (of the class
    ``named`` where given)."""
    parts = tuple(init(params) for init in inits)
    return parts if named is None else named(parts)


def _chain_update(transforms: tuple[GradientTransformation, ...], grads: Params, state: tuple,
                  params: Params | None = None) -> tuple[Params, tuple]:
    check_chain_state(state, len(transforms))
    new_state = []
    for t, s in zip(transforms, state):
        grads, s = t.update(grads, s, params)
        new_state.append(s)
    return grads, type(state)(new_state) if isinstance(state, ChainState) else tuple(new_state)


def check_chain_state(state: object, n: int) -> None:
    """That ``state`` is a chain's state of ``n`` parts (a tuple of ``n`` states): :func:`chain` checks it, and so
    do the fast paths that stand for chains (:mod:`agents.fused`, :mod:`agents.inplace`)."""
    if not isinstance(state, tuple) or len(state) != n:
        raise ValueError(f"chain state must be the tuple of {n} states made by init(), got {state!r}")


def seed_view(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-seed ``(N,)`` tensor so it broadcasts against ``like`` of shape ``(N, ...)``."""
    return x.reshape(x.shape + (1,) * (like.ndim - 1))


def check_real(name: str, value: Any, *, low: float | None = None, low_inclusive: bool = True,
               high: float | None = None, high_inclusive: bool = True) -> float:
    """``value`` as a float if it is a finite real number (not a bool; numpy's numbers too) within the bounds, else
    a ``ValueError`` naming ``name`` and the allowed interval: the one number checker of both packages (the
    agents' hyperparameters, torch.optim-style, eagerly; :mod:`minmax_envs`'s arguments through
    ``minmax_envs._checks``).

    Args:
        name: what the value is, as the message names it (``"lr"``, ``"betas[0]"``).
        value: the number to check.
        low, high: the bounds (``None``: unbounded on that side).
        low_inclusive, high_inclusive: whether a bound itself is allowed.

    Returns:
        ``float(value)``.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok and low is not None:
        ok = float(value) >= low if low_inclusive else float(value) > low
    if ok and high is not None:
        ok = float(value) <= high if high_inclusive else float(value) < high
    if not ok:
        lb = "[" if low is not None and low_inclusive else "("
        hb = "]" if high is not None and high_inclusive else ")"
        raise ValueError(f"{name} must be a finite number in {lb}{'-inf' if low is None else low}, "
                         f"{'inf' if high is None else high}{hb}, got {value!r}")
    return float(value)


def check_fraction(name: str, value: Any) -> float:
    r"""A decay rate or momentum in $[0, 1)$ (``betas`` entries, ``momentum``, ``alpha``): :func:`check_real`."""
    return check_real(name, value, low=0.0, high=1.0, high_inclusive=False)


def check_lr(lr: Any) -> float | Schedule:
    r"""A step size: a number $\ge 0$ or a schedule (a callable of the update count)."""
    if callable(lr):
        return lr
    return check_real("lr", lr, low=0.0)


def check_betas(betas: Any) -> tuple[float, float]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return check_fraction("betas[0]", betas[0]), check_fraction("betas[1]", betas[1])

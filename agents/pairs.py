"""Agents for both players at once: different agents per player (TTUR) and balanced updates (picklable:
module-level functions bound with ``functools.partial``)."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch

from agents._base import (
    Agent,
    GradientTransformation,
    InPlaceTransformation,
    PairTransformation,
    PlayerParams,
    check_number,
)
from agents.norms import per_seed_norms, rescale

PLAYERS = ("generator", "discriminator")
ANCHORS = ("geometric", "generator", "discriminator")


def _check_agent(what: str, t: object) -> None:
    if not isinstance(t, (GradientTransformation, InPlaceTransformation)):
        raise TypeError(f"{what} must be a GradientTransformation or an InPlaceTransformation, got {type(t).__name__}")


def pair(generator: Agent, discriminator: Agent) -> PairTransformation:
    """Give the generator and the discriminator their own agent, or the same agent with different step
    sizes (two time-scale updates, TTUR; Heusel et al. 2017), e.g.
    ``pair(generator=adam(1e-4), discriminator=adam(4e-4))``. Each agent sees only its own player.

    Either agent may be pure (:class:`GradientTransformation`: returns updates) or in place
    (:class:`InPlaceTransformation`: writes the new parameters; its player's update is ``None``)."""
    txs = {"generator": generator, "discriminator": discriminator}
    for pl, t in txs.items():
        _check_agent(f"pair {pl}", t)
    in_place = tuple(pl for pl in PLAYERS if isinstance(txs[pl], InPlaceTransformation))
    evals = {t.evaluations for t in txs.values()}
    if len(evals) > 1:
        raise ValueError("both players' agents must use the same number of gradient evaluations per "
                         f"iteration (extragradient uses 2), got {sorted(evals)}")
    custom = frozenset(pl for pl in PLAYERS if getattr(txs[pl], "state_dict", None) is not None)
    return PairTransformation(partial(_pair_init, txs), partial(_pair_update, txs), evals.pop(), in_place,
                              partial(_pair_state_dict, txs, custom) if custom else None,
                              partial(_pair_load_state_dict, txs, custom) if custom else None)


def _pair_init(txs: dict[str, Agent], params: PlayerParams) -> dict:
    return {pl: txs[pl].init(params[pl]) for pl in PLAYERS}


def _pair_update(txs: dict[str, Agent], grads: PlayerParams, state: dict,
                 params: PlayerParams | None = None) -> tuple[dict, dict]:
    """Update the players present in ``grads`` (both, or only the one that moves in an alternating
    schedule); the other player's state is kept."""
    out, new = {}, dict(state)
    for pl in grads:
        t = txs[pl]
        if isinstance(t, InPlaceTransformation):
            if params is None:
                raise ValueError(f"the {pl}'s agent updates parameters in place: update() needs params")
            new[pl], out[pl] = t.step(grads[pl], state[pl], params[pl]), None
        else:
            out[pl], new[pl] = t.update(grads[pl], state[pl], None if params is None else params[pl])
    return out, new


def _pair_state_dict(txs: dict[str, Agent], custom: frozenset[str], state: dict) -> tuple[dict, dict]:
    """``(tree, plain)``: the states of the players whose agents keep a tree of tensors and NamedTuples (restored
    into the structure of a fresh init), and the ``state_dict`` of the others (plain containers)."""
    return ({pl: state[pl] for pl in PLAYERS if pl not in custom},
            {pl: txs[pl].state_dict(state[pl]) for pl in PLAYERS if pl in custom})


def _pair_load_state_dict(txs: dict[str, Agent], custom: frozenset[str], state: dict,
                          saved: tuple[dict, dict]) -> dict:
    tree, plain = saved
    return {pl: txs[pl].load_state_dict(state[pl], plain[pl]) if pl in custom else tree[pl] for pl in PLAYERS}


def as_pair(agents) -> PairTransformation:
    """A :class:`PairTransformation` from one agent (of either kind) for both players, a dict
    ``{"generator": tx, "discriminator": tx}`` or a pair agent."""
    if isinstance(agents, PairTransformation):
        return agents
    if isinstance(agents, (GradientTransformation, InPlaceTransformation)):
        return pair(agents, agents)
    if isinstance(agents, dict) and set(agents) == set(PLAYERS):
        return pair(**agents)
    raise TypeError("agents must be a GradientTransformation or InPlaceTransformation (used by both players), a "
                    "dict {'generator': tx, 'discriminator': tx} of them, or a PairTransformation; got "
                    f"{agents!r}")


class BalancedState(NamedTuple):
    base: object


def balanced(base, ratio: float = 1.0, anchor: str = "geometric") -> PairTransformation:
    r"""Balanced updates ("Adam is no better than normalized SGD", Sec. 1 and 4.3): rescale the players' base updates so
    that, per seed,
    $\lVert u_D \rVert / \lVert u_G \rVert = r$ with $r$ = ``ratio`` (global norms over each player's tensors).

    ``anchor`` says which norm is kept: ``"generator"`` keeps $\lVert u_G \rVert$ and sets
    $\lVert u_D \rVert = r \lVert u_G \rVert$; ``"discriminator"`` the converse; ``"geometric"`` keeps the product
    $\lVert u_D \rVert \lVert u_G \rVert$ (both rescaled by the square root of the correction). Where either
    base update is zero the ratio is undefined and both updates pass unchanged.
    """
    base = as_pair(base)
    if base.in_place:
        raise ValueError(f"balanced() rescales its base agent's updates, but the {' and '.join(base.in_place)}'s "
                         "agent updates parameters in place (no update to rescale); use a pure agent as the base")
    ratio = check_number("ratio", ratio, low_inclusive=False)
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; choose one of {', '.join(ANCHORS)}")

    return PairTransformation(partial(_balanced_init, base), partial(_balanced_update, base, ratio, anchor),
                              base.evaluations)


def _balanced_init(base: PairTransformation, params: PlayerParams) -> BalancedState:
    return BalancedState(base.init(params))


def _balanced_update(base: PairTransformation, ratio: float, anchor: str, grads: PlayerParams, state: BalancedState,
                     params: PlayerParams | None = None) -> tuple[PlayerParams, BalancedState]:
    if set(grads) != set(PLAYERS):
        raise ValueError("balanced updates need both players to move at every step (simultaneous updates)")
    u, s = base.update(grads, state.base, params)
    n_g = per_seed_norms(u["generator"], "global")
    n_d = per_seed_norms(u["discriminator"], "global")
    ng, nd = next(iter(n_g.values())), next(iter(n_d.values()))
    both = (ng > 0) & (nd > 0)
    one = torch.ones_like(ng)
    correction = torch.where(both, ratio * ng / torch.where(both, nd, one), one)  # puts ||u_D|| at ratio ||u_G||
    if anchor == "generator":
        f_d, f_g = correction, one
    elif anchor == "discriminator":
        f_d, f_g = one, 1.0 / correction
    else:
        f_d = correction.sqrt()
        f_g = 1.0 / f_d
    out = {"generator": rescale(u["generator"], dict.fromkeys(u["generator"], f_g)),
           "discriminator": rescale(u["discriminator"], dict.fromkeys(u["discriminator"], f_d))}
    return out, BalancedState(s)

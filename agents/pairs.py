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
    check_real,
)
from agents.norms import per_seed_norms, rescale
from agents.types import PLAYERS

ANCHORS = ("geometric", "generator", "discriminator", "fixed")


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


def balance_factors(norm_d: torch.Tensor, norm_g: torch.Tensor, ratio: torch.Tensor | float, anchor: str,
                    norm: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The per-seed factors $(f_D, f_G)$ that give updates of norms $n_D$ = ``norm_d`` and $n_G$ = ``norm_g``
    the pace $f_D n_D / (f_G n_G) = r$ (``ratio``, a number or per seed), keeping what ``anchor`` says:

    | anchor | $f_D n_D$ | $f_G n_G$ |
    |---|---|---|
    | ``"generator"`` | $r\, n_G$ | $n_G$ |
    | ``"discriminator"`` | $n_D$ | $n_D / r$ |
    | ``"geometric"`` | $\sqrt{r\, n_D n_G}$ | $\sqrt{n_D n_G / r}$ |
    | ``"fixed"`` | $c \sqrt{r}$ | $c / \sqrt{r}$ |

    with $c$ = ``norm`` (``"fixed"`` only: the overall size no longer follows the gradients' scale). Where either
    norm is zero (or not finite) the pace is undefined and both factors are 1."""
    both = (norm_g > 0) & (norm_d > 0) & torch.isfinite(norm_g) & torch.isfinite(norm_d)
    one = torch.ones_like(norm_g)
    safe_d, safe_g = torch.where(both, norm_d, one), torch.where(both, norm_g, one)
    if anchor == "fixed":
        root = torch.sqrt(torch.as_tensor(ratio, dtype=norm_g.dtype, device=norm_g.device))
        f_d, f_g = norm * root / safe_d, norm / (root * safe_g)
    else:
        correction = ratio * safe_g / safe_d  # puts ||u_D|| at ratio ||u_G||
        if anchor == "generator":
            f_d, f_g = correction, one
        elif anchor == "discriminator":
            f_d, f_g = one, 1.0 / correction
        else:
            f_d = correction.sqrt()
            f_g = 1.0 / f_d
    return torch.where(both, f_d, one), torch.where(both, f_g, one)


def balanced(base, ratio: float = 1.0, anchor: str = "geometric", norm: float | None = None) -> PairTransformation:
    r"""Balanced updates ("Adam is no better than normalized SGD", Sec. 1 and 4.3): rescale the players' base updates so
    that, per seed,
    $\lVert u_D \rVert / \lVert u_G \rVert = r$ with $r$ = ``ratio`` (global norms over each player's tensors).

    ``anchor`` says which size is kept (:func:`balance_factors`): ``"generator"`` keeps $\lVert u_G \rVert$ and sets
    $\lVert u_D \rVert = r \lVert u_G \rVert$; ``"discriminator"`` the converse; ``"geometric"`` keeps the product
    $\lVert u_D \rVert \lVert u_G \rVert$ (both rescaled by the square root of the correction); ``"fixed"`` sets
    the product to $c^2$, $c$ = ``norm`` ($\lVert u_D \rVert = c \sqrt r$, $\lVert u_G \rVert = c / \sqrt r$):
    the pace and the size both fixed, whatever the gradients' scale. With SGD as the base, ``"fixed"`` at
    $r = \eta_D / \eta_G$ and $c = \sqrt{\eta_D \eta_G}$ is global nSGDA (eq. 4) at every step where both
    gradients are non-zero. Where either base update is zero the ratio is undefined and both updates pass
    unchanged: the other player then takes its raw base step, which nSGDA would still normalize (the two-mode
    game's generator gradient can vanish exactly; docs/reproduction.md, the ``balance`` suite).

    The base may update in place (:func:`~agents.from_torch`, :mod:`agents.inplace`): its step is taken on the
    parameters, read back as the difference $u$ it made and rescaled like a pure agent's update, and the
    parameters are set to $\theta + f u$ in place (equal to the base's own step up to one rounding where $f = 1$),
    so the balanced agent updates those players in place too. It needs both players to move at every step
    (simultaneous updates).
    """
    base = as_pair(base)
    ratio = check_real("ratio", ratio, low=0.0, low_inclusive=False)
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; choose one of {', '.join(ANCHORS)}")
    if (anchor == "fixed") != (norm is not None):
        raise ValueError("norm (the fixed size c of the updates) is given with anchor='fixed' and only then, got "
                         f"anchor={anchor!r}, norm={norm!r}")
    if norm is not None:
        norm = check_real("norm", norm, low=0.0, low_inclusive=False)
    return PairTransformation(partial(_balanced_init, base), partial(_balanced_update, base, ratio, anchor, norm),
                              base.evaluations, base.in_place,
                              None if base.state_dict is None else partial(_balanced_state_dict, base),
                              None if base.load_state_dict is None else partial(_balanced_load_state_dict, base))


def _balanced_init(base: PairTransformation, params: PlayerParams) -> BalancedState:
    return BalancedState(base.init(params))


def _balanced_state_dict(base: PairTransformation, state: BalancedState):
    return base.state_dict(state.base)


def _balanced_load_state_dict(base: PairTransformation, state: BalancedState, saved) -> BalancedState:
    return BalancedState(base.load_state_dict(state.base, saved))


def _balanced_update(base: PairTransformation, ratio: float, anchor: str, norm: float | None, grads: PlayerParams,
                     state: BalancedState, params: PlayerParams | None = None) -> tuple[PlayerParams, BalancedState]:
    if set(grads) != set(PLAYERS):
        raise ValueError("balanced updates need both players to move at every step (simultaneous updates)")
    if base.in_place and params is None:
        raise ValueError("the base agent updates parameters in place: balanced update() needs params")
    before = {pl: {k: v.clone() for k, v in params[pl].items()} for pl in base.in_place}
    u, s = base.update(grads, state.base, params)
    u = dict(u)
    for pl in base.in_place:  # the step the base wrote into the parameters
        u[pl] = {k: params[pl][k] - before[pl][k] for k in before[pl]}
    ng = next(iter(per_seed_norms(u["generator"], "global").values()))
    nd = next(iter(per_seed_norms(u["discriminator"], "global").values()))
    f_d, f_g = balance_factors(nd, ng, ratio, anchor, norm)
    out = {pl: rescale(u[pl], dict.fromkeys(u[pl], f)) for pl, f in (("generator", f_g), ("discriminator", f_d))}
    for pl in base.in_place:  # written back in place (the base's optimizer holds these tensors): theta + f u
        for k, v in params[pl].items():
            v.copy_(before[pl][k] + out[pl][k])
        out[pl] = None
    return out, BalancedState(s)

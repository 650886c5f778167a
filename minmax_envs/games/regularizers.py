r"""Gradient-field regularizers: they change the gradient each player sees, chosen by name when an env is made.

* ``"nk"`` — Nagarajan & Kolter (2017), "Gradient descent GAN optimization is locally stable", Sec. 5:
  the generator descends $f + \eta\, \lVert \nabla_D f \rVert^2$ ($f$ its loss, $\eta$ = ``reg_weight``, the squared
  norm over all discriminator parameters, per seed) while the discriminator follows its own gradient unchanged.
  In a game with alternating updates that allows it (:attr:`Game.nk_alternates`, the mixtures of Gaussians) the
  generator's steps see the regularized gradient, computed at the parameters of that step, and the
  discriminator's steps their plain gradient; other games need simultaneous updates.
* ``"consensus"`` — Mescheder, Nowozin & Geiger (2017), "The Numerics of GANs": with $v$ the joint
  gradient field (both players' gradients of their own losses) and $R = \lVert v \rVert^2 / 2$, every player
  $p$ follows $v_p + \gamma\, \nabla_p R$ ($\gamma$ = ``reg_weight``).

Both are computed by double backpropagation through :meth:`Game.losses`; the losses the env reports
stay the game's own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from minmax_envs._checks import check_real
from minmax_envs.games._base import PLAYERS, Game, PlayerParams, autograd_grads, leaf_params, per_seed_sq_norm

#: ``(params, instance, batch, players) -> (losses, grads)``: what an env calls to observe gradients.
GradientField = Callable[..., tuple[dict[str, torch.Tensor], PlayerParams]]
#: The regularizers by name (``make(..., regularizer=NAME)``).
REGULARIZERS = ("nk", "consensus")


def _both(players: tuple[str, ...]) -> None:
    if set(players) != set(PLAYERS):
        raise ValueError("gradient-field regularizers need both players to move at every step "
                         f"(simultaneous updates); this step moves only {list(players)}")


def _nk(game: Game, eta: float) -> GradientField:
    def field(params, instance, batch, players=PLAYERS):
        if not game.nk_alternates:
            _both(players)
        elif "generator" not in players:  # a discriminator-only step (alternating updates): its gradient is plain
            return autograd_grads(game, params, instance, batch, players)
        with torch.enable_grad():
            leaves = leaf_params(params)
            losses = game.losses(leaves, instance, batch)
            d_names = list(leaves["discriminator"])
            g_d = torch.autograd.grad(losses["discriminator"].sum(), [leaves["discriminator"][k] for k in d_names],
                                      create_graph=True)
            penalty = per_seed_sq_norm(dict(zip(d_names, g_d)))
            g_names = list(leaves["generator"])
            g_g = torch.autograd.grad((losses["generator"] + eta * penalty).sum(),
                                      [leaves["generator"][k] for k in g_names])
        grads = {"generator": dict(zip(g_names, g_g)),
                 "discriminator": {k: g.detach() for k, g in zip(d_names, g_d)}}
        return {pl: v.detach() for pl, v in losses.items()}, grads
    return field


def _consensus(game: Game, gamma: float) -> GradientField:
    def field(params, instance, batch, players=PLAYERS):
        _both(players)
        with torch.enable_grad():
            leaves = leaf_params(params)
            losses = game.losses(leaves, instance, batch)
            names = {pl: list(leaves[pl]) for pl in PLAYERS}
            v = {pl: dict(zip(names[pl], torch.autograd.grad(losses[pl].sum(), [leaves[pl][k] for k in names[pl]],
                                                              create_graph=True)))
                 for pl in PLAYERS}
            half_sq = 0.5 * sum(per_seed_sq_norm(v[pl]) for pl in PLAYERS)
            flat = [leaves[pl][k] for pl in PLAYERS for k in names[pl]]
            reg = torch.autograd.grad(half_sq.sum(), flat, allow_unused=True)
        grads: PlayerParams = {pl: {} for pl in PLAYERS}
        it = iter(reg)
        for pl in PLAYERS:
            for k in names[pl]:
                r = next(it)
                grads[pl][k] = v[pl][k].detach() + (0.0 if r is None else gamma * r)
        return {pl: x.detach() for pl, x in losses.items()}, grads
    return field


def gradient_field(game: Game, regularizer: str | None, reg_weight: float | None) -> GradientField:
    r"""The gradient field an env observes: the game's own gradients, or a regularizer's.

    Args:
        game: the game whose losses the field differentiates.
        regularizer: ``None``, or one of :data:`REGULARIZERS` (``"nk"``, ``"consensus"``).
        reg_weight: the regularizer's weight ($\eta$ for NK, $\gamma$ for consensus, default 0.5); must be
            ``None`` without a regularizer.

    Returns:
        The function ``(params, instance, batch, players) -> (losses, grads)``: the losses the game reports and
        each moving player's gradient under the field.
    """
    if regularizer is None:
        if reg_weight is not None:
            raise ValueError("reg_weight is given but regularizer is None; choose one of " + ", ".join(REGULARIZERS))
        return game.grads
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; choose one of {', '.join(REGULARIZERS)} or None")
    weight = check_real("reg_weight", 0.5 if reg_weight is None else reg_weight, low=0)
    return _nk(game, weight) if regularizer == "nk" else _consensus(game, weight)

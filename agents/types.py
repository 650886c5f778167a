"""The names both packages share: the players and the dicts of per-seed tensors that agents and games exchange.

Defined here, in :mod:`agents`, the package :mod:`minmax_envs` builds on: :mod:`minmax_envs` imports
:mod:`agents` and never the reverse (importing ``minmax_envs`` from ``agents`` would run ``minmax_envs/__init__``,
which imports the episode runner, which imports ``agents``: a circle). :mod:`minmax_envs.types` is the same names
for users of the environments.
"""

from __future__ import annotations

import torch

#: The two players, in the order every per-player table uses: the generator minimizes, the discriminator (critic)
#: maximizes the payoff (each minimizes its own loss).
PLAYERS: tuple[str, str] = ("generator", "discriminator")

Params = dict[str, torch.Tensor]
"""One player's parameters (or gradients, or updates): ``{tensor name: tensor}``, each with a leading seed
dimension ``N``."""

PlayerParams = dict[str, Params]
"""Both players' parameters: ``{player: Params}``, keyed by :data:`PLAYERS`."""

__all__ = ["PLAYERS", "Params", "PlayerParams"]

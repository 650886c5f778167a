"""The names every layer of the suite shares: :data:`PLAYERS`, :data:`Params`, :data:`PlayerParams`.

They are defined in :mod:`agents.types` (the package this one builds on, so that agents use them without importing
``minmax_envs``) and are the same objects here: ``minmax_envs.types.PLAYERS is agents.types.PLAYERS``.

* ``PLAYERS = ("generator", "discriminator")``: the players, in the order of every per-player table.
* ``Params = dict[str, torch.Tensor]``: one player's tensors by name, each with a leading seed dimension ``N``.
* ``PlayerParams = dict[str, Params]``: both players' tensors, ``{player: Params}``.
"""

from agents.types import PLAYERS, Params, PlayerParams

__all__ = ["PLAYERS", "Params", "PlayerParams"]

"""Gymnasium single-agent face of the games: a learned controller sets both players' step sizes.

The control problem itself is :class:`~minmax_envs.step_size_control.StepSizeCore`, over the ``N`` slots of one
:class:`~minmax_envs.env.BatchedEnv`; :class:`StepSizeEnv` is its stateful single-seed shell and
:class:`~minmax_envs.vector_env.StepSizeVectorEnv` its natively batched shell, so "vector slot ``i`` ==
single env seeded ``s + i``" holds by construction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from minmax_envs.charts import check_render_mode, step_size_chart
from minmax_envs.env import BatchedEnv
from minmax_envs.registry import NAMESPACE, list_envs, spec
from minmax_envs.step_size_control import (
    StepSizeCore,
    Transition,
    actions_array,
    configs,
)


class RegisteredGame:
    """The game of a Gymnasium id is the game it names: ``gymnasium.make("minmax_envs/DiracGAN-v0",
    env_id="TwoMode-v0")`` would build the two-mode game under the Dirac id (Gymnasium merges ``make``'s arguments
    into the id's own ``env_id``), so it is refused when Gymnasium attaches the id's spec to the env (the
    ``spec`` property). Ids outside the ``minmax_envs/`` namespace (your own registrations) are not checked."""

    env_id: str
    _gym_spec: Any = None

    @property
    def spec(self) -> Any:
        return self._gym_spec

    @spec.setter
    def spec(self, value: Any) -> None:
        gym_id = getattr(value, "id", None)
        if isinstance(gym_id, str) and gym_id.startswith(NAMESPACE + "/") and gym_id.removeprefix(
                NAMESPACE + "/") in list_envs() and spec(gym_id).id != self.env_id:
            raise ValueError(f"gymnasium id {gym_id!r} is the game {spec(gym_id).id}; env_id={self.env_id!r} names "
                             f"another game: make {NAMESPACE}/{self.env_id} instead (an id's env_id cannot be "
                             "changed)")
        self._gym_spec = value


class StepSizeEnv(RegisteredGame, gym.Env):
    """Step-size control of simultaneous gradient play on a min-max game (one seed).

    ## Description
    A GAN-style game of the suite (``env_id``, any id of :func:`minmax_envs.list_envs`) is trained by
    simultaneous gradient descent-ascent; the agent chooses, at every env step, the step size of each
    player. The step *direction* comes from a fixed base optimizer at unit learning rate: ``base="sgda"``
    (SGDA with heavy-ball momentum, eq. (5) of "Adam is no better than normalized SGD"), ``base="nsgda"``
    (normalized SGDA, eq. (4) there, norm per player or per tensor by ``scope``) or ``base="adam"`` (Adam, betas
    (0.5, 0.9)).
    This is the learned-step-size-controller setting of the suite's design (RL research on the same games
    the optimizer benchmark uses).

    ## Game
    ``min_G max_D f(G, D)`` as the chosen game defines it (both players minimize their own loss; see the
    game's card, e.g. the Dirac GAN ``min_theta max_psi f(psi * theta) + f(0)`` of Mescheder et al. 2018).

    ## Action Space
    ``Box(-1, 1, shape=(2,), float32)``, ``a = [a_G, a_D]`` (generator first, the order of
    :data:`~minmax_envs.PLAYERS`). Player ``p`` steps with
    ``lr_p = base_lr_p * 10 ** (a_p * log10_range)``, i.e. ``a = 0`` is the base step size and ``a = +-1``
    one ``log10_range`` decade above or below. The update is ``lr_p * u_p`` with ``u_p`` the update of the
    base agent at learning rate 1. Actions outside ``[-1, 1]`` are clipped; a wrong shape or a non-finite
    action raises ``ValueError``.

    With ``action="balance"`` the same box holds ``a = [a_pace, a_scale]``: the base agent's unit updates
    ``u_G``, ``u_D`` at the base step sizes are held at the pace
    ``||u_D|| / ||u_G|| = (base_lr_D / base_lr_G) * 10 ** (a_pace * log10_range)`` (their product of norms kept,
    the geometric anchor of ``agents.balanced``) and both are multiplied by ``10 ** (a_scale * log10_range)``;
    ``a = 0`` is ``agents.balanced(base, base_lr_D / base_lr_G)``. Both players must move at every step
    (simultaneous games; an alternating one raises ``ValueError``). ``info`` reports the step sizes this gives.

    ## Observation Space
    ``Box(float32, shape=(11,))``; every entry is made finite (NaN -> 0) and clipped to its bounds.

    | Num | Observation | Min | Max |
    |-----|-------------|-----|-----|
    | 0 | generator: log10 of its gradient norm | -30 | 30 |
    | 1 | generator: log10 of its parameter norm | -30 | 30 |
    | 2 | generator: its loss | -1e6 | 1e6 |
    | 3 | discriminator: log10 of its gradient norm | -30 | 30 |
    | 4 | discriminator: log10 of its parameter norm | -30 | 30 |
    | 5 | discriminator: its loss | -1e6 | 1e6 |
    | 6 | log10(generator gradient norm / discriminator gradient norm) | -30 | 30 |
    | 7 | progress: env steps since reset / ``horizon`` | 0 | 1 |
    | 8 | quality: the game's quality metric, signed so that larger is better (``BatchedEnv.quality()``) | -1e6 | 1e6 |
    | 9 | generator: log10 of the norm of its last update (0 before the first) | -30 | 30 |
    | 10 | discriminator: log10 of the norm of its last update (0 before the first) | -30 | 30 |

    Norms are Euclidean over all of a player's tensors; gradients are the (possibly regularized) gradient
    field the players see. Names in :data:`~minmax_envs.step_size_control.OBS_NAMES`.

    ## Rewards
    The improvement of the quality (entry 8) since the previous action: ``q_t - q_{t-1}``, so the return
    of an episode is the total improvement of the game's quality metric (e.g. minus the decrease of the
    distance to equilibrium for the Dirac GAN). On the step where the seed diverges, the reward is
    ``divergence_penalty`` instead (default -1.0). Rewards are clipped to ``[-1e6, 1e6]``.

    ## Starting State
    The game's own initialization, seeded: ``reset(seed=s)`` plays the batched env's seed ``s`` (so it
    matches slot ``i`` of a batched env reset with ``s - i``); ``reset()`` draws the game seed (and so the
    game instance: Bilinear's matrix, TwoMode's modes...) from the env's ``np_random``, within the range of
    ``split``: ``"train"`` seeds ``[2**20, 2**40)``, ``"eval"`` seeds ``[0, 2**20)`` (every seed the
    evaluation suites use), ``None`` (default) any seed. The base agent's state (momentum) starts at zero.

    ## Episode End
    * Termination: the seed diverges (non-finite or beyond ``divergence_threshold``; see ``BatchedEnv``).
    * Truncation: by the ``TimeLimit`` of the registry (``gymnasium.make("minmax_envs/<id>")`` uses the
      spec's ``max_episode_steps``); the env itself never truncates. Keep ``horizon`` equal to the time
      limit so that the progress entry reaches 1 at the end.

    ## Arguments
    * ``env_id``: a registered id, e.g. ``"DiracGAN-v0"``.
    * ``base``: ``"sgda"``, ``"nsgda"`` or ``"adam"``; ``momentum`` in ``[0, 1)`` (0 for adam); ``scope`` (nsgda):
      ``"global"`` or ``"layer"``.
    * ``split``: the seeds ``reset()`` draws from: ``None`` (any), ``"train"`` or ``"eval"`` (see Starting State).
    * ``family``: an instance family of the game (``minmax_envs.families``: a ``Family`` or a registered family's
      name, e.g. ``"dirac-r1"``): every reset plays its seed's instance, from the family's test set with
      ``split="eval"`` and its train set otherwise (instance ``seed mod n``); the game is made again when an
      argument drawn per batch (a width, a loss) changes. ``None`` (default): one game.
    * ``action``: ``"step_sizes"`` (default) or ``"balance"`` (see Action Space).
    * ``base_lr``: a positive number, or a dict ``{"generator": .., "discriminator": ..}`` (default 0.01).
    * ``log10_range``: decades of step size the action spans on each side (default 1.0).
    * ``steps_per_action``: game steps per env step (default: one update cycle of the game, i.e. 1, or
      ``n_critic + 1`` for an alternating image game; in an alternating game the action of the player
      whose turn it is not is ignored and the observation shows its last gradient norm and loss).
    * ``horizon``: env steps of an episode for the progress entry (default the spec's ``max_episode_steps``).
    * ``divergence_penalty``: reward on divergence (default -1.0).
    * ``device``, ``dtype``, ``regularizer``, ``reg_weight``, ``divergence_threshold``: as in
      :func:`minmax_envs.make`; any other keyword goes to the game.
    * ``render_mode``: ``None`` (default) or ``"rgb_array"``: :meth:`render` then returns an ``(H, W, 3)``
      uint8 chart of the episode so far (the quality, and ``log10`` of both step sizes).

    The keywords become a :class:`~minmax_envs.step_size_control.ControlConfig` (the control settings, defaults as
    above) and a :class:`~minmax_envs.step_size_control.GameConfig` (the rest) by
    :func:`~minmax_envs.step_size_control.configs` (``env.control``, ``env.game``), both validated eagerly.

    ``info`` holds ``quality`` (the unclipped quality), ``diverged``, ``game_step`` and, after a step,
    ``lr_generator`` / ``lr_discriminator``.

    ## Version History
    * v0: initial version. Before the first release: the update-norm entries 9, 10, ``base="adam"`` and
      ``split`` were added with the learned controllers; the action and the per-player blocks of the
      observation follow ``PLAYERS`` order (generator first; they were discriminator first, the order
      the committed controllers were trained in, see ``minmax_envs.controller_files``); ``render_mode="rgb_array"``
      was added; ``action="balance"`` was added.
    """


    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, env_id: str, *, render_mode: str | None = None, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, "StepSizeEnv")
        self.game, self.control = configs(env_id, **kwargs)
        self._core = StepSizeCore(self.game, self.control, 1)
        self.env_id = self._core.env_id
        self.horizon = self._core.horizon
        self.observation_space = self._core.observation_space()
        self.action_space = self._core.action_space()
        self._started = False
        self._history: list[tuple[float, float, float]] = []  # (quality, lr_G, lr_D) per step, when rendering

    @property
    def batched_env(self) -> BatchedEnv:
        """The underlying torch-native env (one seed): its params, metrics, quality."""
        return self._core.env

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        game_seed = seed if seed is not None else self._core.draw_seed(self.np_random)
        tr = self._core.reset([game_seed])
        self._started = True
        self._history = []
        self._record(tr)
        return tr.obs[0], self._info(tr, with_lr=False)

    def step(self, action: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = actions_array(action, (2,))
        tr = self._core.step(torch.as_tensor(a[None], device=self._core.env.device))
        self._record(tr)
        return tr.obs[0], float(tr.reward[0]), bool(tr.terminated[0]), False, self._info(tr, with_lr=True)

    def _record(self, tr: Transition) -> None:
        if self.render_mode is not None:  # host values the step returns anyway: no extra transfer
            self._history.append((float(tr.quality[0]), float(tr.lr[0, 0]), float(tr.lr[0, 1])))

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: an ``(H, W, 3)`` uint8 chart of the episode so far, the quality
        (green, top) and ``log10`` of the generator's (blue) and the discriminator's (red) step sizes (bottom).
        With ``render_mode=None``: nothing (``None``)."""
        if self.render_mode is None:
            return None
        if not self._started:
            raise RuntimeError("call reset() before render(): there is no episode to draw yet")
        return step_size_chart(self._history)

    @staticmethod
    def _info(tr: Transition, with_lr: bool) -> dict[str, Any]:
        info: dict[str, Any] = {"quality": float(tr.quality[0]), "diverged": bool(tr.diverged[0]),
                                "game_step": int(tr.game_step[0])}
        if with_lr:
            info["lr_generator"], info["lr_discriminator"] = float(tr.lr[0, 0]), float(tr.lr[0, 1])
        return info

    def __repr__(self) -> str:
        return f"StepSizeEnv({self.env_id})"

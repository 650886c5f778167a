"""PettingZoo face of the games: the generator and the discriminator as two agents of a ParallelEnv."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from minmax_envs._checks import check_choice, check_int, check_real
from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import PLAYERS
from minmax_envs.gym_env import (
    LOG_BOUND,
    SEED_HIGH,
    VALUE_BOUND,
    actions_array,
    direction_agent,
    per_player_base_lr,
)
from minmax_envs.registry import NAMESPACE, make, spec

ACTION_MODES: tuple[str, ...] = ("update", "step_size")
REWARD_MODES: tuple[str, ...] = ("zero_sum", "quality")


def _opponent(agent: str) -> str:
    return PLAYERS[1 - PLAYERS.index(agent)]


class MinMaxParallelEnv(ParallelEnv):
    """A game of the suite as a two-agent PettingZoo ``ParallelEnv`` over one seed.

    ## Description
    Agents ``["generator", "discriminator"]`` act simultaneously; each step applies both agents' updates
    to their parameters at once (simultaneous gradient play when the agents follow their gradients) and
    advances the game by one step. Each player minimizes its own loss: the generator ``f``, the
    discriminator ``-f`` (plus its penalty), for the game's payoff ``f``.

    ## Game
    ``min_G max_D f(G, D)`` as the chosen game (``env_id``) defines it; see the game's card.

    ## Action Space
    Per agent, by ``action_mode``:

    * ``"update"``: ``Box(-max_update, max_update, (P,), float32)``, the flat update of the player's ``P``
      parameters, added to them (tensors in the order of ``tensor_names[agent]``, each flattened
      row-major). For small games (Dirac, bilinear, two-mode): ``P`` is the parameter count.
    * ``"step_size"`` (default): ``Box(-1, 1, (T,), float32)``, one entry per parameter tensor ``k``:
      tensor ``k`` steps with ``lr_k = base_lr_p * 10 ** (a_k * log10_range)`` along the update of the base
      agent at learning rate 1 (``agents.sgda(1.0, momentum)``, ``agents.nsgda(1.0, momentum, scope)`` or
      ``agents.adam(1.0)``; ``scope="layer"`` by default so that every tensor's step has norm exactly
      ``lr_k`` under nSGDA).

    Out-of-bound actions are clipped; a wrong shape, a non-finite action or a missing agent raises
    ``ValueError``.

    ## Observation Space
    Per agent, ``Box(float32, (2T + 2,))`` with ``T`` the agent's number of parameter tensors; every entry
    is made finite (NaN -> 0) and clipped to its bounds.

    | Entries | Observation | Min | Max |
    |---------|-------------|-----|-----|
    | ``0 .. T-1`` | log10 of the gradient norm of each own tensor | -30 | 30 |
    | ``T .. 2T-1`` | log10 of the norm of each own tensor | -30 | 30 |
    | ``2T`` | own loss | -1e6 | 1e6 |
    | ``2T+1`` | opponent's loss | -1e6 | 1e6 |

    ## Rewards
    * ``reward_mode="zero_sum"`` (default): each agent gets minus its own loss after the step (the game's
      payoff ``-f`` for the generator, ``f - penalty`` for the discriminator).
    * ``reward_mode="quality"``: both agents get the improvement ``q_t - q_{t-1}`` of the game's quality
      metric (``BatchedEnv.quality()``, larger is better): a cooperative task.

    On divergence both agents get ``divergence_penalty`` (default -1.0). Rewards are clipped to ``+-1e6``.

    ## Starting State
    The game's own initialization: ``reset(seed=s)`` plays the batched env's seed ``s``; ``reset()``
    draws the game seed from the env's ``np_random``.

    ## Episode End
    * Termination (both agents): the seed diverges (see ``BatchedEnv``).
    * Truncation (both agents): after ``max_cycles`` steps (default: the spec's ``max_episode_steps``).

    ## Arguments
    ``env_id``, ``action_mode``, ``reward_mode``, ``max_cycles``, ``max_update`` (default 0.1), ``base``
    (``"sgda"`` | ``"nsgda"`` | ``"adam"``), ``momentum``, ``scope``, ``base_lr`` (number or per-player dict, default
    0.01), ``log10_range`` (default 1.0), ``divergence_penalty``; ``device``, ``dtype``, ``regularizer``,
    ``reg_weight``, ``divergence_threshold`` as in :func:`minmax_envs.make`; other keywords go to the game.
    ``infos[agent]`` holds ``diverged``, ``game_step`` and, with ``reward_mode="quality"``, ``quality``.

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"name": "minmax_envs", "render_modes": []}

    def __init__(self, env_id: str, *, action_mode: str = "step_size", reward_mode: str = "zero_sum",
                 max_cycles: int | None = None, max_update: float = 0.1, base: str = "sgda", momentum: float = 0.0,
                 scope: str = "layer", base_lr: float | dict[str, float] = 0.01, log10_range: float = 1.0,
                 divergence_penalty: float = -1.0, device: Any = "cpu", dtype: Any = torch.float32,
                 regularizer: str | None = None, reg_weight: float | None = None, divergence_threshold: float = 1e6,
                 render_mode: str | None = None, **game_kwargs: Any):
        s = spec(env_id)
        check_choice("action_mode", action_mode, ACTION_MODES)
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        if render_mode is not None:
            raise ValueError(f"MinMaxParallelEnv does not render; render_mode must be None, got {render_mode!r}")
        self.env_id, self.action_mode, self.reward_mode = s.id, action_mode, reward_mode
        self.max_cycles = check_int("max_cycles", max_cycles, allow_none=True) or s.max_episode_steps
        self.max_update = check_real("max_update", max_update, low=0.0, low_inclusive=False)
        self.tx = direction_agent(base, momentum, scope)
        self.base_lr = per_player_base_lr(base_lr)
        self.log10_range = check_real("log10_range", log10_range, low=0.0)
        self.divergence_penalty = check_real("divergence_penalty", divergence_penalty)
        self.render_mode = None
        self.metadata = {**type(self).metadata, "name": f"{NAMESPACE}/{s.id}"}
        self.env: BatchedEnv = make(s.id, 1, device, dtype, regularizer=regularizer, reg_weight=reg_weight,
                                    divergence_threshold=divergence_threshold, **game_kwargs)
        obs, _ = self.env.reset(seed=0)  # to learn the parameter shapes
        self.tensor_names = {pl: list(obs[pl].params) for pl in PLAYERS}
        self._shapes = {pl: {k: tuple(v.shape[1:]) for k, v in obs[pl].params.items()} for pl in PLAYERS}
        self.possible_agents = list(PLAYERS)
        self.agents: list[str] = []
        self.observation_spaces = {pl: self._make_observation_space(pl) for pl in PLAYERS}
        self.action_spaces = {pl: self._make_action_space(pl) for pl in PLAYERS}
        self._np_random: np.random.Generator | None = None
        self._dev, self._dt = self.env.device, self.env.dtype

    # --- spaces -------------------------------------------------------------------------------
    def _make_observation_space(self, agent: str) -> spaces.Box:
        t = len(self.tensor_names[agent])
        high = np.array([LOG_BOUND] * (2 * t) + [VALUE_BOUND] * 2, dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32)

    def _make_action_space(self, agent: str) -> spaces.Box:
        if self.action_mode == "update":
            size = sum(math.prod(s) for s in self._shapes[agent].values())
            return spaces.Box(-self.max_update, self.max_update, shape=(size,), dtype=np.float32)
        return spaces.Box(-1.0, 1.0, shape=(len(self.tensor_names[agent]),), dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        if agent not in self.observation_spaces:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        if agent not in self.action_spaces:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return self.action_spaces[agent]

    @property
    def batched_env(self) -> BatchedEnv:
        """The underlying torch-native env (one seed)."""
        return self.env

    # --- episode ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, _ = seeding.np_random(seed)
            game_seed = int(seed)
        else:
            if self._np_random is None:
                self._np_random, _ = seeding.np_random()
            game_seed = int(self._np_random.integers(0, SEED_HIGH))
        obs, _ = self.env.reset(seed=game_seed)
        self._obs, self._seen = obs, {}
        self._remember()
        self._states = {pl: self.tx.init(obs[pl].params) for pl in PLAYERS}
        self._t = 0
        self._quality = self.env.quality()[0] if self.reward_mode == "quality" else None
        self.agents = list(self.possible_agents)
        observations, _, _ = self._emit(None)
        return observations, {pl: self._agent_info() for pl in PLAYERS}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("no live agents: call reset() (the episode ended or never started)")
        if not isinstance(actions, dict) or set(actions) != set(self.agents):
            got = sorted(actions) if isinstance(actions, dict) else type(actions).__name__
            raise ValueError(f"actions must be a dict with one action per live agent {self.agents}, got {got}")
        obs = self._obs
        updates = {}
        for pl in PLAYERS:
            space = self.action_spaces[pl]
            a = torch.as_tensor(actions_array(actions[pl], space.shape, float(space.low[0]), float(space.high[0])),
                                dtype=self._dt, device=self._dev)
            if not obs[pl].moving:  # an alternating game: this player's action waits for its turn
                continue
            if self.action_mode == "update":
                updates[pl], offset = {}, 0
                for k, shape in self._shapes[pl].items():
                    size = math.prod(shape)
                    updates[pl][k] = a[offset:offset + size].reshape((1, *shape))
                    offset += size
            else:
                lr = self.base_lr[pl] * torch.pow(10.0, a * self.log10_range)
                d, self._states[pl] = self.tx.update(obs[pl].grads, self._states[pl], obs[pl].params)
                updates[pl] = {k: d[k] * lr[i] for i, k in enumerate(self.tensor_names[pl])}
        self._obs, *_ = self.env.step(updates, validate=False)
        self._remember()
        self._t += 1
        observations, rewards, diverged = self._emit(self._rewards())
        truncated = self._t >= self.max_cycles
        terminations = dict.fromkeys(PLAYERS, diverged)
        truncations = dict.fromkeys(PLAYERS, truncated)
        infos = {pl: self._agent_info(diverged) for pl in PLAYERS}
        if diverged or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _remember(self) -> None:
        """Keep each player's latest gradient and loss: in an alternating game the player that waits
        observes the ones of its last move (NaN, shown as 0, before its first)."""
        for pl in PLAYERS:
            o = self._obs[pl]
            if o.moving:
                self._seen[pl] = (o.grads, o.loss)
            elif pl not in self._seen:
                nan = torch.full((1,), float("nan"), dtype=self._dt, device=self._dev)
                self._seen[pl] = ({k: torch.full_like(v, float("nan")) for k, v in o.params.items()}, nan)

    def _rewards(self) -> torch.Tensor:
        """Both agents' rewards, ``(2,)`` in the order of ``PLAYERS`` (before the divergence rule)."""
        if self.reward_mode == "zero_sum":
            return torch.stack([-self._obs[pl].loss[0] if self._obs[pl].moving
                                else torch.zeros((), device=self._dev) for pl in PLAYERS]).double()
        q = self.env.quality()[0]
        r = (q - self._quality).double()
        self._quality = q
        return r.expand(2)

    def _emit(self, rewards: torch.Tensor | None):
        """Observations, rewards and the divergence flag with one device-to-host transfer."""
        obs, cols = self._obs, []
        for pl in PLAYERS:
            p, (g, loss) = obs[pl].params, self._seen[pl]
            for src in (g, p):
                cols += [0.5 * torch.log10(src[k].reshape(-1).double().pow(2).sum()) for k in self.tensor_names[pl]]
            cols += [loss[0].double(), self._seen[_opponent(pl)][1][0].double()]
        extra = torch.zeros(2, dtype=torch.float64, device=self._dev) if rewards is None else rewards.to(self._dev)
        packed = torch.stack(cols + list(extra) + [self.env.done[0].double()]).cpu().numpy()
        packed = np.nan_to_num(packed, nan=0.0, posinf=VALUE_BOUND, neginf=-VALUE_BOUND)
        observations, i = {}, 0
        for pl in PLAYERS:
            space = self.observation_spaces[pl]
            size = space.shape[0]
            observations[pl] = np.clip(packed[i:i + size], space.low, space.high).astype(np.float32)
            i += size
        diverged = bool(packed[-1] > 0.5)
        r = np.clip(packed[i:i + 2], -VALUE_BOUND, VALUE_BOUND)
        if diverged:
            r = np.full(2, self.divergence_penalty)
        return observations, {pl: float(r[j]) for j, pl in enumerate(PLAYERS)}, diverged

    def _agent_info(self, diverged: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"diverged": diverged, "game_step": self._t}
        if self.reward_mode == "quality":
            info["quality"] = float(self._quality)
        return info

    def render(self) -> None:
        """Nothing to render (``metadata["render_modes"]`` is empty)."""
        return None

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"MinMaxParallelEnv({self.env_id}, action_mode={self.action_mode!r}, reward_mode={self.reward_mode!r})"


def parallel_env(env_id: str, **kwargs: Any) -> MinMaxParallelEnv:
    """The PettingZoo ``ParallelEnv`` of a registered id: ``parallel_env("TwoMode-v0", action_mode="update")``.

    See :class:`MinMaxParallelEnv` for the arguments; unknown ids and bad mode names raise ``ValueError``.
    """
    return MinMaxParallelEnv(env_id, **kwargs)

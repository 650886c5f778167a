"""PettingZoo face of the games: the generator and the discriminator as two agents of a ParallelEnv
(:func:`parallel_env`), and the same game as an AEC env by PettingZoo's convention (:func:`env`, :func:`raw_env`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import wrappers
from pettingzoo.utils.conversions import parallel_to_aec_wrapper

from minmax_envs._checks import check_choice, check_int, check_real
from minmax_envs.charts import DISCRIMINATOR_COLOR, GENERATOR_COLOR, QUALITY_COLOR, chart, check_render_mode
from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import PLAYERS
from minmax_envs.registry import NAMESPACE, spec
from minmax_envs.step_size_control import (
    LOG_BOUND,
    SPLITS,
    VALUE_BOUND,
    ControlledGame,
    actions_array,
    bounded,
    configs,
    log10_norm,
)

ACTION_MODES: tuple[str, ...] = ("update", "step_size")
REWARD_MODES: tuple[str, ...] = ("zero_sum", "quality")
#: Render modes of the PettingZoo env: the chart as an array, or shown in a matplotlib window.
PETTINGZOO_RENDER_MODES: tuple[str, ...] = ("human", "rgb_array")


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

    ## State
    :meth:`state` is both agents' observations concatenated, generator first (``state_space``: the
    ``Box(float32, (2T_G + 2T_D + 4,))`` of their bounds): the global view a centralized critic (MAPPO, QMIX,
    COMA) learns from while each agent acts on its own observation.

    ## Rewards
    * ``reward_mode="zero_sum"`` (default): each agent gets minus its own loss after the step (the game's
      payoff ``-f`` for the generator, ``f - penalty`` for the discriminator).
    * ``reward_mode="quality"``: both agents get the improvement ``q_t - q_{t-1}`` of the game's quality
      metric (``BatchedEnv.quality()``, larger is better): a cooperative task.

    On divergence both agents get ``divergence_penalty`` (default -1.0). Rewards are clipped to ``+-1e6``.

    ## Starting State
    The game's own initialization: ``reset(seed=s)`` plays the batched env's seed ``s``; ``reset()``
    draws the game seed from the env's ``np_random`` (within ``split``'s seeds, as ``StepSizeEnv``). With an instance
    ``family``, every reset plays its seed's instance of the family's train set (test set with ``split="eval"``).

    ## Episode End
    * Termination (both agents): the seed diverges (see ``BatchedEnv``).
    * Truncation (both agents): after ``max_cycles`` steps (default: the spec's ``max_episode_steps``).

    ## Arguments
    ``env_id``, ``action_mode``, ``reward_mode``, ``max_cycles``, ``max_update`` (default 0.1), ``base``
    (``"sgda"`` | ``"nsgda"`` | ``"adam"``), ``momentum``, ``scope``, ``base_lr`` (number or per-player dict, default
    0.01), ``log10_range`` (default 1.0), ``divergence_penalty``; ``split`` (``None``, ``"train"``, ``"eval"``) and
    ``family`` (an instance family: a ``minmax_envs.families.Family`` or a registered family's name; its per-batch
    arguments may not change a player's parameter tensors' number, nor, with ``action_mode="update"``, their
    shapes: the spaces are fixed); ``device``, ``dtype``, ``regularizer``,
    ``reg_weight``, ``divergence_threshold`` as in :func:`minmax_envs.make`; other keywords go to the game;
    ``render_mode``: ``None`` (default) or ``"rgb_array"`` (see Rendering). They become a
    :class:`~minmax_envs.step_size_control.GameConfig` (``env.game``) and a
    :class:`~minmax_envs.step_size_control.ControlConfig` (``env.control``: one game step per env step,
    ``horizon = max_cycles``), both validated eagerly.
    ``infos[agent]`` holds ``diverged``, ``game_step`` and, with ``reward_mode="quality"``, ``quality``.

    ## Rendering
    With ``render_mode="rgb_array"``, :meth:`render` returns an ``(H, W, 3)`` uint8 chart of the episode so
    far: the game's quality (green, top) and both players' losses (bottom: generator blue, discriminator
    red). With ``render_mode="human"`` the same chart is drawn in a matplotlib window at every reset and step
    (and by :meth:`render`, which then returns ``None``); :meth:`close` closes it. The quality is then computed
    at every step, in the step's one device-to-host transfer.

    ## AEC
    :func:`env` gives the same game as a PettingZoo ``AECEnv`` (the agents act in turn, generator first; the
    game steps once both have acted), by PettingZoo's convention: :func:`raw_env` wrapped in
    ``ClipOutOfBoundsWrapper`` and ``OrderEnforcingWrapper``.

    ## Version History
    * v0: initial version. Before the first release: :meth:`state` / ``state_space``, ``render_mode="human"``
      and the AEC :func:`env` were added.
    """

    metadata: dict[str, Any] = {"name": "minmax_envs", "render_modes": list(PETTINGZOO_RENDER_MODES), "render_fps": 30}

    def __init__(self, env_id: str, *, action_mode: str = "step_size", reward_mode: str = "zero_sum",
                 max_cycles: int | None = None, max_update: float = 0.1, base: str = "sgda", momentum: float = 0.0,
                 scope: str = "layer", base_lr: float | dict[str, float] = 0.01, log10_range: float = 1.0,
                 divergence_penalty: float = -1.0, device: Any = "cpu", dtype: Any = torch.float32,
                 regularizer: str | None = None, reg_weight: float | None = None, divergence_threshold: float = 1e6,
                 render_mode: str | None = None, split: str | None = None, family: Any = None, **game_kwargs: Any):
        s = spec(env_id)
        check_choice("action_mode", action_mode, ACTION_MODES)
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        self.render_mode = check_render_mode(render_mode, "MinMaxParallelEnv", PETTINGZOO_RENDER_MODES)
        self.env_id, self.action_mode, self.reward_mode = s.id, action_mode, reward_mode
        self.max_cycles = check_int("max_cycles", max_cycles, allow_none=True) or s.max_episode_steps
        self.max_update = check_real("max_update", max_update, low=0.0, low_inclusive=False)
        self.game, self.control = configs(
            s.id, base=base, momentum=momentum, scope=scope, base_lr=base_lr, log10_range=log10_range,
            divergence_penalty=divergence_penalty, steps_per_action=1, horizon=self.max_cycles, split=split,
            device=device, dtype=dtype, regularizer=regularizer, reg_weight=reg_weight,
            divergence_threshold=divergence_threshold, family=family, **game_kwargs)
        if action_mode == "update" and self.game.family is not None and self.game.family.batch_params:
            raise ValueError(f"action_mode='update' needs fixed parameter shapes; family {self.game.family.name!r} "
                             f"draws {[p.name for p in self.game.family.batch_params]} per batch: use "
                             "action_mode='step_size' or a family without per-batch parameters")
        self.metadata = {**type(self).metadata, "name": f"{NAMESPACE}/{s.id}"}
        self._core = ControlledGame(self.game, self.control, 1)
        self.env: BatchedEnv = self._core.env
        obs, _ = self.env.reset(seed=0)  # to learn the parameter shapes
        self.tensor_names = {pl: list(obs[pl].params) for pl in PLAYERS}
        self._shapes = {pl: {k: tuple(v.shape[1:]) for k, v in obs[pl].params.items()} for pl in PLAYERS}
        self.possible_agents = list(PLAYERS)
        self.agents: list[str] = []
        self.observation_spaces = {pl: self._make_observation_space(pl) for pl in PLAYERS}
        self.action_spaces = {pl: self._make_action_space(pl) for pl in PLAYERS}
        self._np_random: np.random.Generator | None = None
        self._dev, self._dt = self.env.device, self.env.dtype
        self._low = torch.as_tensor(np.concatenate([self.observation_spaces[pl].low for pl in PLAYERS]),
                                    dtype=torch.float64, device=self._dev)
        self._high = -self._low
        self.state_space = spaces.Box(np.concatenate([self.observation_spaces[pl].low for pl in PLAYERS]),
                                      np.concatenate([self.observation_spaces[pl].high for pl in PLAYERS]),
                                      dtype=np.float32)
        self._state: np.ndarray | None = None
        self._history: list[tuple[float, float, float]] = []  # (quality, loss_G, loss_D) per step, when rendering
        self._window: Any = None  # render_mode="human": the matplotlib figure and its image

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
            game_seed = int(self._np_random.integers(*SPLITS[self.control.split]))
        self._core.play_instances([game_seed])
        if self._core.env is not self.env:  # an instance family's per-batch arguments changed: a new game
            self._adopt(self._core.env)
        obs, _ = self.env.reset(seed=game_seed)
        self._core.begin(obs)
        self._t = 0
        self._quality = self.env.quality()[0] if self._tracks_quality else None
        self.agents = list(self.possible_agents)
        self._history = []
        observations, _, _ = self._emit(None)
        if self.render_mode == "human":
            self.render()
        return observations, {pl: self._agent_info() for pl in PLAYERS}

    def _adopt(self, env: BatchedEnv) -> None:
        """Play the batched env ``env`` from now on, if its players have the tensors the spaces were made for."""
        obs, _ = env.reset(seed=0)
        names = {pl: list(obs[pl].params) for pl in PLAYERS}
        shapes = {pl: {k: tuple(v.shape[1:]) for k, v in obs[pl].params.items()} for pl in PLAYERS}
        if names != self.tensor_names or (self.action_mode == "update" and shapes != self._shapes):
            raise ValueError(f"family {self.game.family.name!r} drew an instance whose players have other parameter "
                             f"tensors ({names}) than the spaces were made for ({self.tensor_names})")
        self.env, self._shapes = env, shapes

    @property
    def _tracks_quality(self) -> bool:
        return self.reward_mode == "quality" or self.render_mode is not None

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("no live agents: call reset() (the episode ended or never started)")
        if not isinstance(actions, dict) or set(actions) != set(self.agents):
            got = sorted(actions) if isinstance(actions, dict) else type(actions).__name__
            raise ValueError(f"actions must be a dict with one action per live agent {self.agents}, got {got}")
        a = {}
        for pl in PLAYERS:
            space = self.action_spaces[pl]
            a[pl] = torch.as_tensor(actions_array(actions[pl], space.shape, float(space.low[0]),
                                                  float(space.high[0])), dtype=self._dt, device=self._dev)
        was_done = self.env.done.clone()
        if self.action_mode == "update":
            updates = {pl: self._unflatten(pl, a[pl]) for pl in PLAYERS if self._core.obs[pl].moving}
        else:  # one step size per tensor; a waiting player's action waits for its turn (alternating games)
            updates = self._core.moves({pl: self._core.step_sizes(a[pl], pl)[None] for pl in PLAYERS})
        self._core.advance(updates)
        self._t += 1
        observations, rewards, diverged = self._emit(self._rewards(was_done))
        truncated = self._t >= self.max_cycles
        terminations = dict.fromkeys(PLAYERS, diverged)
        truncations = dict.fromkeys(PLAYERS, truncated)
        infos = {pl: self._agent_info(diverged) for pl in PLAYERS}
        if diverged or truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return observations, rewards, terminations, truncations, infos

    def _unflatten(self, agent: str, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat update of ``agent`` (``action_mode="update"``) as its tensors, with the seed dimension."""
        out, offset = {}, 0
        for k, shape in self._shapes[agent].items():
            size = math.prod(shape)
            out[k] = flat[offset:offset + size].reshape((1, *shape))
            offset += size
        return out

    def _rewards(self, was_done: torch.Tensor) -> torch.Tensor:
        """Both agents' rewards, ``(1, 2)`` in the order of ``PLAYERS``, after the divergence rule and bounds."""
        obs = self._core.obs
        if self._tracks_quality:
            q = self.env.quality()[0]
            improvement, self._quality = (q - self._quality).double(), q
        if self.reward_mode == "zero_sum":
            r = torch.stack([-obs[pl].loss[0] if obs[pl].moving else torch.zeros((), device=self._dev)
                             for pl in PLAYERS]).double()
        else:
            r = improvement.expand(2)
        return self._core.reward(r[None], was_done)[0]

    def _emit(self, rewards: torch.Tensor | None):
        """Observations, rewards and the divergence flag (and the quality when rendering) with one
        device-to-host transfer."""
        core, cols = self._core, []
        for pl in PLAYERS:
            (g, loss), p = core.last_move[pl], core.obs[pl].params
            for src in (g, p):
                cols += [log10_norm({k: src[k]})[0] for k in self.tensor_names[pl]]
            cols += [loss[0].double(), core.last_move[_opponent(pl)][1][0].double()]
        obs_vec = bounded(torch.stack(cols), self._low, self._high)
        extra = torch.zeros(2, dtype=torch.float64, device=self._dev) if rewards is None else rewards.to(self._dev)
        tail = [self.env.done[0].double()]
        if self.render_mode is not None:
            tail.append(self._quality.double())
        packed = torch.cat([obs_vec, extra, torch.stack(tail)]).cpu().numpy()
        observations, i = {}, 0
        for pl in PLAYERS:
            size = self.observation_spaces[pl].shape[0]
            observations[pl] = packed[i:i + size].astype(np.float32)
            i += size
        self._state = packed[:i].astype(np.float32)
        diverged = bool(packed[i + 2] > 0.5)
        if self.render_mode is not None:
            t = {pl: len(self.tensor_names[pl]) for pl in PLAYERS}
            g_loss = float(packed[2 * t["generator"]])
            d_loss = float(packed[2 * t["generator"] + 2 + 2 * t["discriminator"]])
            self._history.append((float(packed[i + 3]), g_loss, d_loss))
        return observations, {pl: float(packed[i + j]) for j, pl in enumerate(PLAYERS)}, diverged

    def _agent_info(self, diverged: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"diverged": diverged, "game_step": self._t}
        if self.reward_mode == "quality":
            info["quality"] = float(self._quality)
        return info

    def state(self) -> np.ndarray:
        """Both agents' current observations concatenated, generator first: a float32 array in
        ``state_space`` (see State)."""
        if self._state is None:
            raise RuntimeError("call reset() before state()")
        return self._state.copy()

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: an ``(H, W, 3)`` uint8 chart of the episode so far (see Rendering);
        with ``"human"``: that chart drawn in a matplotlib window (returns ``None``); with ``None``: nothing."""
        if self.render_mode is None:
            return None
        h = np.asarray(self._history, dtype=np.float64).reshape(-1, 3)
        frame = chart([(h[:, :1], [QUALITY_COLOR]), (h[:, 1:], [GENERATOR_COLOR, DISCRIMINATOR_COLOR])])
        if self.render_mode == "rgb_array":
            return frame
        self._show(frame)
        return None

    def _show(self, frame: np.ndarray) -> None:
        """Draw ``frame`` in this env's matplotlib window (opened at the first call)."""
        import matplotlib.pyplot as plt

        if self._window is None:
            figure, axes = plt.subplots(num=f"{self.metadata['name']} ({id(self):x})")
            axes.set_axis_off()
            self._window = (figure, axes.imshow(frame))
            plt.show(block=False)
        figure, image = self._window
        image.set_data(frame)
        figure.canvas.draw_idle()
        figure.canvas.flush_events()

    def close(self) -> None:
        if self._window is not None:
            import matplotlib.pyplot as plt

            plt.close(self._window[0])
            self._window = None

    def __repr__(self) -> str:
        return f"MinMaxParallelEnv({self.env_id}, action_mode={self.action_mode!r}, reward_mode={self.reward_mode!r})"


def parallel_env(env_id: str, **kwargs: Any) -> MinMaxParallelEnv:
    """The PettingZoo ``ParallelEnv`` of a registered id: ``parallel_env("TwoMode-v0", action_mode="update")``.

    See :class:`MinMaxParallelEnv` for the arguments; unknown ids and bad mode names raise ``ValueError``.
    """
    return MinMaxParallelEnv(env_id, **kwargs)


def raw_env(env_id: str, **kwargs: Any) -> AECEnv:
    """The AEC env of :func:`parallel_env`'s game, unwrapped: PettingZoo's ``parallel_to_aec`` conversion (the
    generator acts, then the discriminator; the game steps once both have acted). Prefer :func:`env`."""
    return parallel_to_aec_wrapper(parallel_env(env_id, **kwargs))


def env(env_id: str, **kwargs: Any) -> AECEnv:
    """The PettingZoo AEC env of a registered id, by PettingZoo's convention for continuous actions:
    :func:`raw_env` in ``ClipOutOfBoundsWrapper`` (an action outside its box is clipped, with a warning) and
    ``OrderEnforcingWrapper`` (``step`` before ``reset`` raises). ``env("DiracGAN-v0", render_mode="rgb_array")``;
    the arguments are :class:`MinMaxParallelEnv`'s, and ``env.state()`` / ``env.state_space`` its state."""
    return wrappers.OrderEnforcingWrapper(wrappers.ClipOutOfBoundsWrapper(raw_env(env_id, **kwargs)))

"""Gymnasium single-agent face of the games: a learned controller sets both players' step sizes.

The control problem is written once, as a functional core over the ``N`` slots of one
:class:`~minmax_envs.env.BatchedEnv` (:class:`StepSizeCore`); :class:`StepSizeEnv` is its stateful
single-seed shell and :class:`~minmax_envs.vector_env.StepSizeVectorEnv` its natively batched shell, so
"vector slot ``i`` == single env seeded ``s + i``" holds by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

import agents
from agents import GradientTransformation
from minmax_envs._checks import check_choice, check_int, check_real
from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import PLAYERS
from minmax_envs.registry import make, spec

#: Order of the players in the action vector and in the per-player blocks of the observation.
CONTROLLED: tuple[str, str] = ("discriminator", "generator")
#: Base direction agents, by name.
BASES: tuple[str, ...] = ("sgda", "nsgda", "adam")
#: Bound of every log10 entry of an observation.
LOG_BOUND = 30.0
#: Bound of every loss / quality / reward entry (the default divergence threshold of the batched env).
VALUE_BOUND = 1e6
#: Names of the observation entries of :class:`StepSizeEnv`, in order.
OBS_NAMES: tuple[str, ...] = (
    "discriminator/log10_grad_norm", "discriminator/log10_param_norm", "discriminator/loss",
    "generator/log10_grad_norm", "generator/log10_param_norm", "generator/loss",
    "log10_grad_ratio", "progress", "quality",
    "discriminator/log10_update_norm", "generator/log10_update_norm",
)
SEED_HIGH = 2**62
#: Game seeds drawn by a reset without a seed, by ``split``: learned controllers train on ``"train"``
#: seeds; every evaluation of the suite (``minmax bench``: held-out seeds 0.., tuning seeds 10000..) uses
#: seeds below 2**20, the ``"eval"`` range, so a controller is never evaluated on a seed it trained on.
SPLITS: dict[str | None, tuple[int, int]] = {None: (0, SEED_HIGH), "train": (2**20, 2**40), "eval": (0, 2**20)}


def direction_agent(base: str, momentum: float, scope: str) -> GradientTransformation:
    """The unit-step direction agent: ``agents.sgda(1.0, momentum)``, ``agents.nsgda(1.0, momentum, scope)``
    or ``agents.adam(1.0)`` (betas (0.5, 0.9) of seed 001; ``momentum`` must then be 0).

    Its update is the step of the base optimizer at learning rate 1; a controller multiplies it by the
    step size it chooses.
    """
    check_choice("base", base, BASES)
    momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_inclusive=False)
    if scope not in agents.transforms.SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose 'layer' (per tensor) or 'global' (per player)")
    if base == "adam":
        if momentum:
            raise ValueError(f"base='adam' has its own moments (betas 0.5, 0.9); momentum must be 0, got {momentum}")
        return agents.adam(1.0)
    return agents.sgda(1.0, momentum) if base == "sgda" else agents.nsgda(1.0, momentum, scope)


def per_player_base_lr(base_lr: Any) -> dict[str, float]:
    """``base_lr`` as ``{player: lr}``: a positive number for both players or a dict with both players."""
    if isinstance(base_lr, dict):
        if set(base_lr) != set(PLAYERS):
            raise ValueError(f"base_lr as a dict must have exactly the keys {list(PLAYERS)}, got {sorted(base_lr)}")
        return {pl: check_real(f"base_lr[{pl!r}]", base_lr[pl], low=0.0, low_inclusive=False) for pl in PLAYERS}
    lr = check_real("base_lr", base_lr, low=0.0, low_inclusive=False)
    return dict.fromkeys(PLAYERS, lr)


def log10_norm(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """``log10`` of the per-seed Euclidean norm over all tensors of a dict, shape ``(N,)`` (``-inf`` for 0)."""
    sq = sum(t.reshape(t.shape[0], -1).double().pow(2).sum(dim=1) for t in tensors.values())
    return 0.5 * torch.log10(sq)


def tree_where(mask: torch.Tensor, new: Any, old: Any) -> Any:
    """Per-slot select between two agent states (tensors, dicts, tuples and NamedTuples of them)."""
    if isinstance(new, torch.Tensor):
        return torch.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)
    if isinstance(new, dict):
        return {k: tree_where(mask, new[k], old[k]) for k in new}
    if isinstance(new, tuple):
        vals = [tree_where(mask, a, b) for a, b in zip(new, old)]
        return type(new)(*vals) if hasattr(new, "_fields") else tuple(vals)
    return new


def actions_array(action: Any, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Validate an action batch (shape, finiteness) and clip it into ``[low, high]``."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"action must be an array of numbers of shape {shape}, got {action!r}") from e
    if a.shape != shape:
        raise ValueError(f"action must have shape {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"action must be finite, got {a}")
    return np.clip(a, low, high)


class Transition(NamedTuple):
    """One step of :class:`StepSizeCore`, as numpy arrays over the ``N`` slots."""

    obs: np.ndarray  # (N, 11) float32
    reward: np.ndarray  # (N,) float64
    terminated: np.ndarray  # (N,) bool
    quality: np.ndarray  # (N,) float64 (nan where not finite)
    lr: np.ndarray  # (N, 2) float64, [discriminator, generator]
    game_step: np.ndarray  # (N,) int64, game steps run in the episode
    env_steps: np.ndarray  # (N,) int64, env steps (actions) since reset
    diverged: np.ndarray  # (N,) bool


class StepSizeCore:
    """The step-size control problem over the ``N`` slots of one :class:`BatchedEnv` (no Python loop over
    slots). Shells (:class:`StepSizeEnv`, :class:`~minmax_envs.vector_env.StepSizeVectorEnv`) own the
    seeding, action validation, time limits and numpy conversion. See :class:`StepSizeEnv` for the
    definitions of actions, observations and rewards."""

    def __init__(self, env_id: str, num_seeds: int, *, base: str = "sgda", momentum: float = 0.0,
                 scope: str = "global", base_lr: float | dict[str, float] = 0.01, log10_range: float = 1.0,
                 steps_per_action: int | None = None, horizon: int | None = None, divergence_penalty: float = -1.0,
                 split: str | None = None, device: Any = "cpu", dtype: Any = torch.float32,
                 regularizer: str | None = None,
                 reg_weight: float | None = None, divergence_threshold: float = 1e6, **game_kwargs: Any):
        s = spec(env_id)
        self.tx = direction_agent(base, momentum, scope)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of None, 'train', 'eval'")
        self.seed_range = SPLITS[split]
        lrs = per_player_base_lr(base_lr)
        self.log10_range = check_real("log10_range", log10_range, low=0.0)
        self.horizon = check_int("horizon", horizon, allow_none=True) or s.max_episode_steps
        self.divergence_penalty = check_real("divergence_penalty", divergence_penalty)
        self.env: BatchedEnv = make(s.id, num_seeds, device, dtype, regularizer=regularizer, reg_weight=reg_weight,
                                    divergence_threshold=divergence_threshold, **game_kwargs)
        self.env_id = s.id
        self.num_seeds = num_seeds
        # default: one update cycle of the game (1 step; n_critic + 1 for an alternating image game)
        self.steps_per_action = check_int("steps_per_action", steps_per_action, allow_none=True) or self.env.game.cycle
        dev, dt = self.env.device, self.env.dtype
        self.base_lr = torch.tensor([lrs[pl] for pl in CONTROLLED], dtype=dt, device=dev)
        log_b, val_b = LOG_BOUND, VALUE_BOUND
        self.obs_low = np.array([-log_b, -log_b, -val_b] * 2 + [-log_b, 0.0, -val_b] + [-log_b] * 2, dtype=np.float32)
        self.obs_high = np.array([log_b, log_b, val_b] * 2 + [log_b, 1.0, val_b] + [log_b] * 2, dtype=np.float32)
        self._low_t = torch.as_tensor(self.obs_low, dtype=torch.float64, device=dev)
        self._high_t = torch.as_tensor(self.obs_high, dtype=torch.float64, device=dev)

    # --- spaces -------------------------------------------------------------------------------
    def observation_space(self) -> spaces.Box:
        return spaces.Box(self.obs_low.copy(), self.obs_high.copy(), dtype=np.float32)

    @staticmethod
    def action_space() -> spaces.Box:
        return spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def draw_seed(self, rng: np.random.Generator) -> int:
        """A game seed of this core's split (see ``SPLITS``), drawn from ``rng``."""
        return int(rng.integers(*self.seed_range))

    # --- episode ------------------------------------------------------------------------------
    def reset(self, seeds: Sequence[int]) -> Transition:
        """Start new episodes, slot ``i`` with game seed ``seeds[i]``."""
        env, n = self.env, self.num_seeds
        seeds = [int(s) for s in seeds]
        if len(seeds) != n:
            raise ValueError(f"need {n} seeds, got {len(seeds)}")
        obs, _ = env.reset(seed=seeds[0])
        if any(s != seeds[0] + i for i, s in enumerate(seeds)):
            # arbitrary per-slot seeds: restart every slot; the next step gives their first observation
            env.reset_where(torch.ones(n, dtype=torch.bool, device=env.device),
                            torch.tensor(seeds, dtype=torch.int64, device=env.device))
            obs, *_ = env.step({pl: {k: torch.zeros_like(v) for k, v in obs[pl].params.items()} for pl in PLAYERS},
                                validate=False)
        self._obs, self._seen = obs, {}
        nan = torch.full((n,), float("nan"), dtype=torch.float64, device=env.device)
        self._update_logs = {pl: nan for pl in CONTROLLED}
        self._remember()
        self._states = {pl: self.tx.init(obs[pl].params) for pl in PLAYERS}
        self._t = torch.zeros(n, dtype=torch.int64, device=env.device)
        self._quality = env.quality().to(torch.float64)
        zeros = torch.zeros(n, dtype=torch.float64, device=env.device)
        return self._transition(zeros, torch.zeros_like(self._t, dtype=torch.bool),
                                torch.full((n, 2), float("nan"), dtype=torch.float64, device=env.device))

    def step(self, actions: torch.Tensor, reset_mask: torch.Tensor | None = None,
             reset_seeds: torch.Tensor | None = None) -> Transition:
        """Apply actions ``(N, 2)`` in ``[-1, 1]`` for ``steps_per_action`` game steps.

        Slots in ``reset_mask`` ignore their action and restart with ``reset_seeds`` instead: after this
        call they hold exactly the first observation of a fresh episode with that seed (reward 0).
        """
        env, k = self.env, self.steps_per_action
        was_done = env.done.clone()
        lr = self.base_lr * torch.pow(10.0, actions.to(self.base_lr.dtype) * self.log10_range)  # (N, 2)
        if reset_mask is not None:
            lr = torch.where(reset_mask[:, None], torch.zeros_like(lr), lr)
        obs = self._obs
        for i in range(k):
            if reset_mask is not None and i == k - 1:
                env.reset_where(reset_mask, reset_seeds)
            updates = {}
            for j, pl in enumerate(CONTROLLED):
                if not obs[pl].moving:  # alternating game: only the players whose turn it is move
                    continue
                d, self._states[pl] = self.tx.update(obs[pl].grads, self._states[pl], obs[pl].params)
                updates[pl] = {name: u * lr[:, j].reshape((-1,) + (1,) * (u.ndim - 1)) for name, u in d.items()}
                self._update_logs[pl] = log10_norm(updates[pl])
            obs, *_ = env.step(updates, validate=False)
            self._obs = obs
            self._remember()
        quality = env.quality().to(torch.float64)
        reward = quality - self._quality
        diverged_now = env.done & ~was_done
        reward = torch.where(diverged_now, torch.full_like(reward, self.divergence_penalty), reward)
        reward = torch.where(was_done, torch.zeros_like(reward), reward)
        terminated = env.done.clone()
        self._t = self._t + 1
        if reset_mask is not None:
            nan = torch.full_like(self._quality, float("nan"))
            self._update_logs = {pl: torch.where(reset_mask, nan, u) for pl, u in self._update_logs.items()}
            fresh = {pl: self.tx.init(obs[pl].params) for pl in PLAYERS}
            self._states = {pl: tree_where(reset_mask, fresh[pl], self._states[pl]) for pl in PLAYERS}
            self._t = torch.where(reset_mask, torch.zeros_like(self._t), self._t)
            reward = torch.where(reset_mask, torch.zeros_like(reward), reward)
            terminated = terminated & ~reset_mask
            lr = torch.where(reset_mask[:, None], torch.full_like(lr, float("nan")), lr)
        self._quality = quality
        reward = torch.nan_to_num(reward, nan=0.0, posinf=VALUE_BOUND, neginf=-VALUE_BOUND).clamp(-VALUE_BOUND,
                                                                                                 VALUE_BOUND)
        return self._transition(reward, terminated, lr.to(torch.float64))

    # --- observation --------------------------------------------------------------------------
    def _remember(self) -> None:
        """Keep each player's latest log gradient norm and loss: in an alternating game the player that
        waits shows the ones of its last move (NaN, shown as 0, before its first)."""
        for pl in PLAYERS:
            o = self._obs[pl]
            if o.moving:
                self._seen[pl] = (log10_norm(o.grads), o.loss.double())
            elif pl not in self._seen:
                nan = torch.full((self.num_seeds,), float("nan"), dtype=torch.float64, device=self.env.device)
                self._seen[pl] = (nan, nan)

    def _observe(self) -> torch.Tensor:
        obs, cols, grad_logs = self._obs, [], {}
        for pl in CONTROLLED:
            grad_logs[pl], loss = self._seen[pl]
            cols += [grad_logs[pl], log10_norm(obs[pl].params), loss]
        cols += [grad_logs["generator"] - grad_logs["discriminator"], self._t.double() / self.horizon, self._quality]
        cols += [self._update_logs[pl] for pl in CONTROLLED]
        vec = torch.stack(cols, dim=1)
        vec = torch.nan_to_num(vec, nan=0.0, posinf=VALUE_BOUND, neginf=-VALUE_BOUND)
        return torch.clamp(vec, self._low_t, self._high_t)

    def _transition(self, reward: torch.Tensor, terminated: torch.Tensor, lr: torch.Tensor) -> Transition:
        """Pack everything into one float64 tensor: a single device-to-host transfer per step."""
        env = self.env
        packed = torch.cat([self._observe(), reward[:, None], terminated.double()[:, None], self._quality[:, None],
                            lr, env._t.double()[:, None], self._t.double()[:, None],
                            env.diverged.double()[:, None]], dim=1)
        a = packed.cpu().numpy()
        k = len(OBS_NAMES)
        quality = a[:, k + 2].copy()
        quality[~np.isfinite(quality)] = np.nan
        return Transition(obs=a[:, :k].astype(np.float32), reward=a[:, k].copy(), terminated=a[:, k + 1] > 0.5,
                          quality=quality, lr=a[:, k + 3:k + 5].copy(), game_step=a[:, k + 5].astype(np.int64),
                          env_steps=a[:, k + 6].astype(np.int64), diverged=a[:, k + 7] > 0.5)


class StepSizeEnv(gym.Env):
    """Step-size control of simultaneous gradient play on a min-max game (one seed).

    ## Description
    A GAN-style game of the suite (``env_id``, any id of :func:`minmax_envs.list_envs`) is trained by
    simultaneous gradient descent-ascent; the agent chooses, at every env step, the step size of each
    player. The step *direction* comes from a fixed base optimizer at unit learning rate: ``base="sgda"``
    (SGDA with heavy-ball momentum, seed 001 eq. (5)), ``base="nsgda"`` (normalized SGDA, seed 001
    eq. (4), norm per player or per tensor by ``scope``) or ``base="adam"`` (Adam, betas (0.5, 0.9)).
    This is the learned-step-size-controller setting of the suite's design (RL research on the same games
    the optimizer benchmark uses).

    ## Game
    ``min_G max_D f(G, D)`` as the chosen game defines it (both players minimize their own loss; see the
    game's card, e.g. the Dirac GAN ``min_theta max_psi f(psi * theta) + f(0)`` of Mescheder et al. 2018).

    ## Action Space
    ``Box(-1, 1, shape=(2,), float32)``, ``a = [a_D, a_G]`` (discriminator first). Player ``p`` steps with
    ``lr_p = base_lr_p * 10 ** (a_p * log10_range)``, i.e. ``a = 0`` is the base step size and ``a = +-1``
    one ``log10_range`` decade above or below. The update is ``lr_p * u_p`` with ``u_p`` the update of the
    base agent at learning rate 1. Actions outside ``[-1, 1]`` are clipped; a wrong shape or a non-finite
    action raises ``ValueError``.

    ## Observation Space
    ``Box(float32, shape=(11,))``; every entry is made finite (NaN -> 0) and clipped to its bounds.

    | Num | Observation | Min | Max |
    |-----|-------------|-----|-----|
    | 0 | discriminator: log10 of its gradient norm | -30 | 30 |
    | 1 | discriminator: log10 of its parameter norm | -30 | 30 |
    | 2 | discriminator: its loss | -1e6 | 1e6 |
    | 3 | generator: log10 of its gradient norm | -30 | 30 |
    | 4 | generator: log10 of its parameter norm | -30 | 30 |
    | 5 | generator: its loss | -1e6 | 1e6 |
    | 6 | log10(generator gradient norm / discriminator gradient norm) | -30 | 30 |
    | 7 | progress: env steps since reset / ``horizon`` | 0 | 1 |
    | 8 | quality: the game's quality metric, signed so that larger is better (``BatchedEnv.quality()``) | -1e6 | 1e6 |
    | 9 | discriminator: log10 of the norm of its last update (0 before the first) | -30 | 30 |
    | 10 | generator: log10 of the norm of its last update (0 before the first) | -30 | 30 |

    Norms are Euclidean over all of a player's tensors; gradients are the (possibly regularized) gradient
    field the players see. Names in ``OBS_NAMES``.

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
    * ``base_lr``: a positive number, or a dict ``{"generator": .., "discriminator": ..}`` (default 0.01).
    * ``log10_range``: decades of step size the action spans on each side (default 1.0).
    * ``steps_per_action``: game steps per env step (default: one update cycle of the game, i.e. 1, or
      ``n_critic + 1`` for an alternating image game; in an alternating game the action of the player
      whose turn it is not is ignored and the observation shows its last gradient norm and loss).
    * ``horizon``: env steps of an episode for the progress entry (default the spec's ``max_episode_steps``).
    * ``divergence_penalty``: reward on divergence (default -1.0).
    * ``device``, ``dtype``, ``regularizer``, ``reg_weight``, ``divergence_threshold``: as in
      :func:`minmax_envs.make`; any other keyword goes to the game.

    ``info`` holds ``quality`` (the unclipped quality), ``diverged``, ``game_step`` and, after a step,
    ``lr_discriminator`` / ``lr_generator``.

    ## Version History
    * v0: initial version (before the first release: the update-norm entries 9, 10, ``base="adam"`` and
      ``split`` were added with the learned controllers).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_id: str, *, base: str = "sgda", momentum: float = 0.0, scope: str = "global",
                 base_lr: float | dict[str, float] = 0.01, log10_range: float = 1.0,
                 steps_per_action: int | None = None, horizon: int | None = None,
                 divergence_penalty: float = -1.0, split: str | None = None, device: Any = "cpu",
                 dtype: Any = torch.float32, regularizer: str | None = None, reg_weight: float | None = None,
                 divergence_threshold: float = 1e6, render_mode: str | None = None, **game_kwargs: Any):
        if render_mode is not None:
            raise ValueError(f"StepSizeEnv does not render; render_mode must be None, got {render_mode!r}")
        self.render_mode = None
        self._core = StepSizeCore(env_id, 1, base=base, momentum=momentum, scope=scope, base_lr=base_lr,
                                  log10_range=log10_range, steps_per_action=steps_per_action, horizon=horizon,
                                  divergence_penalty=divergence_penalty, split=split, device=device, dtype=dtype,
                                  regularizer=regularizer, reg_weight=reg_weight,
                                  divergence_threshold=divergence_threshold, **game_kwargs)
        self.env_id = self._core.env_id
        self.horizon = self._core.horizon
        self.observation_space = self._core.observation_space()
        self.action_space = self._core.action_space()
        self._started = False

    @property
    def batched_env(self) -> BatchedEnv:
        """The underlying torch-native env (one seed): its params, metrics, quality."""
        return self._core.env

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        game_seed = seed if seed is not None else self._core.draw_seed(self.np_random)
        tr = self._core.reset([game_seed])
        self._started = True
        return tr.obs[0], self._info(tr, with_lr=False)

    def step(self, action: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = actions_array(action, (2,))
        tr = self._core.step(torch.as_tensor(a[None], device=self._core.env.device))
        return tr.obs[0], float(tr.reward[0]), bool(tr.terminated[0]), False, self._info(tr, with_lr=True)

    @staticmethod
    def _info(tr: Transition, with_lr: bool) -> dict[str, Any]:
        info: dict[str, Any] = {"quality": float(tr.quality[0]), "diverged": bool(tr.diverged[0]),
                                "game_step": int(tr.game_step[0])}
        if with_lr:
            info["lr_discriminator"], info["lr_generator"] = float(tr.lr[0, 0]), float(tr.lr[0, 1])
        return info

    def __repr__(self) -> str:
        return f"StepSizeEnv({self.env_id})"

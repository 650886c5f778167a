"""The step-size control problem, written once for the Gymnasium, vector and PettingZoo faces.

Two base agents (a fixed direction optimizer at learning rate 1, :func:`direction_agent`) play a game of
the suite; a controller chooses their step sizes. :class:`ControlledGame` holds what every face shares:
the batched env, the base agents' states, the step sizes ``lr = base_lr * 10 ** (a * log10_range)`` times
the base agents' unit updates (one step size per player or one per tensor), the memory of each player's
last gradient and loss (the waiting player's in an alternating game), the divergence rule of the rewards
and the bounds of every observation. :class:`StepSizeCore` is the single-agent problem over the ``N``
slots of one :class:`~minmax_envs.env.BatchedEnv` (no Python loop over slots); the Gymnasium env
(:class:`~minmax_envs.gym_env.StepSizeEnv`), its native vector env
(:class:`~minmax_envs.vector_env.StepSizeVectorEnv`) and the PettingZoo env
(:class:`~minmax_envs.pettingzoo_env.MinMaxParallelEnv`, over a :class:`ControlledGame`) are thin shells:
seeding, validation, numpy conversion, dict packing. Players are always in the order of
:data:`~minmax_envs.games._base.PLAYERS`, generator first.

What a face is made with is two frozen, validated configurations: :class:`GameConfig` (which game, on
which device) and :class:`ControlConfig` (how the controller's actions become steps, and what an episode
is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

import agents
from agents import GradientTransformation
from minmax_envs._checks import check_choice, check_int, check_real
from minmax_envs.env import BatchedEnv, Observation
from minmax_envs.games._base import PLAYERS
from minmax_envs.registry import make, spec

#: Base direction agents, by name.
BASES: tuple[str, ...] = ("sgda", "nsgda", "adam")
#: What a controller's action sets (:class:`ControlConfig` ``action``), and the names of its two entries in order:
#: ``"step_sizes"`` each player's step size (generator first), ``"balance"`` the pace ratio and the overall scale.
ACTIONS: dict[str, tuple[str, str]] = {"step_sizes": PLAYERS, "balance": ("pace", "scale")}
#: Bound of every log10 entry of an observation.
LOG_BOUND = 30.0
#: Bound of every loss / quality / reward entry (the default divergence threshold of the batched env).
VALUE_BOUND = 1e6
#: The observation of the step-size control problem (:class:`StepSizeCore`), declared once: its entries in order,
#: each ``(name, low, high)``; the per-player blocks follow ``PLAYERS`` (generator first). Every entry is clipped
#: into its bounds (:func:`bounded`).
OBSERVATION: tuple[tuple[str, float, float], ...] = (
    ("generator/log10_grad_norm", -LOG_BOUND, LOG_BOUND),
    ("generator/log10_param_norm", -LOG_BOUND, LOG_BOUND),
    ("generator/loss", -VALUE_BOUND, VALUE_BOUND),
    ("discriminator/log10_grad_norm", -LOG_BOUND, LOG_BOUND),
    ("discriminator/log10_param_norm", -LOG_BOUND, LOG_BOUND),
    ("discriminator/loss", -VALUE_BOUND, VALUE_BOUND),
    ("log10_grad_ratio", -LOG_BOUND, LOG_BOUND),
    ("progress", 0.0, 1.0),
    ("quality", -VALUE_BOUND, VALUE_BOUND),
    ("generator/log10_update_norm", -LOG_BOUND, LOG_BOUND),
    ("discriminator/log10_update_norm", -LOG_BOUND, LOG_BOUND),
)
#: The names of the :data:`OBSERVATION` entries, in order.
OBS_NAMES: tuple[str, ...] = tuple(name for name, _, _ in OBSERVATION)
#: Game seeds are drawn below this bound (``[0, SEED_HIGH)``).
SEED_HIGH = 2**62
#: Game seeds drawn by a reset without a seed, by ``split``: learned controllers train on ``"train"``
#: seeds; every evaluation of the suite (``minmax bench``: held-out seeds 0.., tuning seeds 10000..) uses
#: seeds below 2**20, the ``"eval"`` range, so a controller is never evaluated on a seed it trained on.
SPLITS: dict[str | None, tuple[int, int]] = {None: (0, SEED_HIGH), "train": (2**20, 2**40), "eval": (0, 2**20)}


# --- small pieces -------------------------------------------------------------------------------------------
def direction_agent(base: str, momentum: float, scope: str) -> GradientTransformation:
    """The unit-step direction agent: ``agents.sgda(1.0, momentum)``, ``agents.nsgda(1.0, momentum, scope)``
    or ``agents.adam(1.0)`` (betas (0.5, 0.9), as in
    "Adam is no better than normalized SGD"; ``momentum`` must then be 0).

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
    if isinstance(base_lr, Mapping):
        if set(base_lr) != set(PLAYERS):
            raise ValueError(f"base_lr as a dict must have exactly the keys {list(PLAYERS)}, got {sorted(base_lr)}")
        return {pl: check_real(f"base_lr[{pl!r}]", base_lr[pl], low=0.0, low_inclusive=False) for pl in PLAYERS}
    lr = check_real("base_lr", base_lr, low=0.0, low_inclusive=False)
    return dict.fromkeys(PLAYERS, lr)


def log10_norm(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """``log10`` of the per-seed Euclidean norm over all tensors of a dict, shape ``(N,)`` (``-inf`` for 0)."""
    sq = sum(_squares(t.reshape(t.shape[0], -1).double()).sum(dim=1) for t in tensors.values())
    return 0.5 * torch.log10(sq)


def _squares(x: torch.Tensor) -> torch.Tensor:
    return x * x  # what x.pow(2) gives, bit for bit, in one product


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


def bounded(values: torch.Tensor, low: torch.Tensor | float = -VALUE_BOUND,
            high: torch.Tensor | float = VALUE_BOUND) -> torch.Tensor:
    """``values`` made finite (NaN -> 0, +-inf -> +-``VALUE_BOUND``) and clipped into ``[low, high]``: what
    every observation entry and every reward of the control envs goes through."""
    return torch.nan_to_num(values, nan=0.0, posinf=VALUE_BOUND, neginf=-VALUE_BOUND).clamp(low, high)


# --- configurations --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GameConfig:
    """Which game a control env plays, and how its batched env is made (:func:`minmax_envs.make`'s arguments).

    ``env_id`` is checked here and stored as its canonical id; the other arguments are checked by
    :func:`~minmax_envs.make` when :meth:`make` builds the env (its messages name them). ``family``: an instance
    family of the game (a :class:`~minmax_envs.families.Family`, a registered family's name or a family object),
    stored as the :class:`~minmax_envs.families.Family`: every reset then plays the instances of its seeds
    (:class:`ControlledGame`); ``game_kwargs`` may not set an argument the family sets.
    """

    env_id: str
    device: Any = "cpu"
    dtype: Any = torch.float32
    regularizer: str | None = None
    reg_weight: float | None = None
    divergence_threshold: float = 1e6
    game_kwargs: Mapping[str, Any] = field(default_factory=dict)  # the game's own arguments
    family: Any = None  # an instance family (minmax_envs.families), or None: one game

    def __post_init__(self) -> None:
        object.__setattr__(self, "env_id", spec(self.env_id).id)
        object.__setattr__(self, "game_kwargs", dict(self.game_kwargs))
        if self.family is not None:
            from minmax_envs.families import resolve_family

            family = resolve_family(self.family)
            family.check_task(self.env_id, self.game_kwargs)
            object.__setattr__(self, "family", family)

    @classmethod
    def from_kwargs(cls, env_id: str, **kwargs: Any) -> GameConfig:
        """The config of ``env_id`` from flat keywords: the fields of this class by name, any other one the
        game's (as :func:`minmax_envs.make` takes them)."""
        names = {f.name for f in fields(cls)} - {"env_id", "game_kwargs"}
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        return cls(env_id, **own, game_kwargs=kwargs)

    def make(self, num_seeds: int, **instance: Any) -> BatchedEnv:
        """The batched env of this game over ``num_seeds`` seeds (``instance``: more game arguments, those a
        family draws)."""
        return make(self.env_id, num_seeds, self.device, self.dtype, regularizer=self.regularizer,
                    reg_weight=self.reg_weight, divergence_threshold=self.divergence_threshold,
                    **self.game_kwargs, **instance)


@dataclass(frozen=True)
class ControlConfig:
    """How a controller's actions become steps, and what an episode of the control problem is.

    * ``base``, ``momentum``, ``scope``: the unit-step direction agent (:func:`direction_agent`).
    * ``base_lr``: the step size of action 0, a positive number or ``{player: lr}`` (stored as the dict).
    * ``log10_range``: action ``a`` in ``[-1, 1]`` gives ``lr = base_lr * 10 ** (a * log10_range)``.
    * ``steps_per_action``: game steps per action (``None``: one update cycle of the game).
    * ``horizon``: actions per episode, the denominator of the progress entry (``None``: the spec's
      ``max_episode_steps``).
    * ``divergence_penalty``: the reward of the step on which a seed diverges.
    * ``split``: the game seeds a reset without a seed draws from (``None``, ``"train"``, ``"eval"``;
      see :data:`SPLITS`), and, with an instance family, the instances: its test set for ``"eval"``, its train
      set otherwise (:func:`family_split`).
    * ``action``: ``"step_sizes"`` (default): action ``(a_G, a_D)`` sets each player's step size;
      ``"balance"``: action ``(a_pace, a_scale)`` holds the base agents' updates at the pace
      ``||u_D|| / ||u_G|| = (base_lr_D / base_lr_G) * 10 ** (a_pace * log10_range)`` and scales both by
      ``10 ** (a_scale * log10_range)`` (:meth:`StepSizeCore.balance_rates`; simultaneous games only).

    Every field is validated on construction (``ValueError`` naming it).
    """

    base: str = "sgda"
    momentum: float = 0.0
    scope: str = "global"
    base_lr: float | Mapping[str, float] = 0.01
    log10_range: float = 1.0
    steps_per_action: int | None = None
    horizon: int | None = None
    divergence_penalty: float = -1.0
    split: str | None = None
    action: str = "step_sizes"

    def __post_init__(self) -> None:
        direction_agent(self.base, self.momentum, self.scope)
        check_choice("action", self.action, tuple(ACTIONS))
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of None, 'train', 'eval'")
        checked = {"momentum": check_real("momentum", self.momentum, low=0.0, high=1.0, high_inclusive=False),
                   "base_lr": per_player_base_lr(self.base_lr),
                   "log10_range": check_real("log10_range", self.log10_range, low=0.0),
                   "horizon": check_int("horizon", self.horizon, allow_none=True),
                   "divergence_penalty": check_real("divergence_penalty", self.divergence_penalty),
                   "steps_per_action": check_int("steps_per_action", self.steps_per_action, allow_none=True)}
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def direction_agent(self) -> GradientTransformation:
        """The unit-step direction agent of ``base``, ``momentum`` and ``scope``."""
        return direction_agent(self.base, self.momentum, self.scope)


def family_split(split: str | None) -> str:
    """The split of an instance family that a control env of seed split ``split`` plays: ``"test"`` for
    ``"eval"``, ``"train"`` for ``"train"`` and ``None``."""
    return "test" if split == "eval" else "train"


def configs(env_id: str, **kwargs: Any) -> tuple[GameConfig, ControlConfig]:
    """Both configurations from the flat keywords of the step-size envs: :class:`ControlConfig`'s fields by
    name, :class:`GameConfig`'s fields by name, any other keyword the game's."""
    names = {f.name for f in fields(ControlConfig)}
    control = ControlConfig(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})
    return GameConfig.from_kwargs(env_id, **kwargs), control


# --- the shared core -------------------------------------------------------------------------------------------
class ControlledGame:
    """The game of a :class:`GameConfig` over ``N`` seeds, each player stepped by its base agent (the direction
    agent of a :class:`ControlConfig` at learning rate 1) times the step sizes a controller chooses.

    A face calls :meth:`begin` with the observation of a reset, then, per game step, :meth:`moves` (the updates
    of the players whose turn it is) and :meth:`advance` (apply them). Between steps, ``last_move[player]`` is
    that player's latest ``(grads, loss)``: in an alternating game the player that waits keeps the ones of its
    last move (NaN, which :func:`bounded` shows as 0, before its first).

    With an instance family (``game.family``), a face calls :meth:`play_instances` with the seeds of a reset
    before resetting :attr:`env`: the slots then play their seeds' instances of the split of ``control.split``
    (:func:`family_split`; the batch's group is that of the first seed, :meth:`~minmax_envs.families.Family.slots`),
    and :attr:`env` is a new batched env when the arguments drawn per batch change: read it after the call.
    """

    def __init__(self, game: GameConfig, control: ControlConfig, num_seeds: int):
        self.game_config, self.control = game, control
        self.instances = None
        instance: dict[str, Any] = {}
        if game.family is not None:
            from minmax_envs.families import FamilySlots

            self.instances = FamilySlots(game.family, family_split(control.split), num_seeds)
            instance = self.instances.arguments(range(num_seeds))
        self.env: BatchedEnv = game.make(num_seeds, **instance)
        self._batch = None if self.instances is None else self.instances.batch_arguments(instance)
        self.num_seeds = num_seeds
        self.tx = control.direction_agent()
        self.base_lr = torch.tensor([control.base_lr[pl] for pl in PLAYERS], dtype=self.env.dtype,
                                    device=self.env.device)  # (2,), in PLAYERS order
        self.obs: Observation = {}
        self.states: dict[str, Any] = {}
        self.last_move: dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]] = {}

    def play_instances(self, seeds: Sequence[int]) -> None:
        """With an instance family: give slot ``j`` the instance of seed ``seeds[j]`` for the next reset of
        :attr:`env` (a new env when the per-batch arguments change). Nothing without a family."""
        if self.instances is None:
            return
        instance = self.instances.arguments([int(s) for s in seeds])
        batch = self.instances.batch_arguments(instance)
        if batch != self._batch:
            self.env, self._batch = self.game_config.make(self.num_seeds, **instance), batch
        else:
            self.env.game.set_per_seed(**self.instances.seed_arguments(instance))

    def begin(self, obs: Observation) -> None:
        """Start an episode at the observation ``obs`` of a reset: fresh base agent states, nothing seen yet."""
        self.obs, self.last_move = obs, {}
        self.states = {pl: self.tx.init(obs[pl].params) for pl in PLAYERS}
        self._remember()

    def step_sizes(self, actions: torch.Tensor, player: str | None = None) -> torch.Tensor:
        """``lr = base_lr * 10 ** (a * log10_range)``, elementwise: ``actions`` of shape ``(N, 2)``, a column per
        player in ``PLAYERS`` order, or, with ``player``, of any shape, all of that player (e.g. one per tensor).

        Computed on the whole action tensor at once (a column view would take torch's strided path, which can
        round ``10 **`` differently in the last bit): the same actions give the same steps in every face.
        """
        base = self.base_lr if player is None else self.base_lr[PLAYERS.index(player)]
        return base * torch.pow(10.0, actions.to(self.env.dtype) * self.control.log10_range)

    def moves(self, lr: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """The updates of the players that move at this step (a waiting player is left out): the base agent's
        unit update times ``lr[player]``, of shape ``(N,)`` (one step size per player) or ``(N, T)`` (one per
        tensor, in the order of the player's parameters). Advances the movers' base agent states."""
        return self.scaled(self.directions(), lr)

    def directions(self) -> dict[str, dict[str, torch.Tensor]]:
        """The base agent's unit updates of the players that move at this step; advances their states."""
        out = {}
        for pl in PLAYERS:
            o = self.obs[pl]
            if o.moving:
                out[pl], self.states[pl] = self.tx.update(o.grads, self.states[pl], o.params)
        return out

    def scaled(self, directions: dict[str, dict[str, torch.Tensor]],
               lr: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """Each unit update times its player's step sizes (see :meth:`moves`; per-tensor step sizes follow the
        order of the player's parameters)."""
        updates = {}
        for pl, d in directions.items():
            rates = lr[pl].reshape(lr[pl].shape[0], -1)
            per_tensor = rates.shape[1] > 1
            updates[pl] = {k: d[k] * rates[:, i if per_tensor else 0].reshape((-1,) + (1,) * (d[k].ndim - 1))
                           for i, k in enumerate(self.obs[pl].params)}
        return updates

    def advance(self, updates: dict[str, dict[str, torch.Tensor]]) -> Observation:
        """One game step with ``updates`` (one entry per moving player); returns the new observation."""
        self.obs, *_ = self.env.step(updates, validate=False)
        self._remember()
        return self.obs

    def reward(self, reward: torch.Tensor, was_done: torch.Tensor) -> torch.Tensor:
        """The divergence rule and bounds of every reward: ``divergence_penalty`` on the step a seed diverges,
        0 once it was done before this step, then :func:`bounded`. ``reward`` is ``(N,)`` or ``(N, k)``."""
        done = self.env.done
        shape = (-1,) + (1,) * (reward.ndim - 1)
        diverged_now = (done & ~was_done).reshape(shape)
        reward = torch.where(diverged_now, torch.full_like(reward, self.control.divergence_penalty), reward)
        return bounded(torch.where(was_done.reshape(shape), torch.zeros_like(reward), reward))

    def _remember(self) -> None:
        for pl in PLAYERS:
            o = self.obs[pl]
            if o.moving:
                self.last_move[pl] = (o.grads, o.loss)
            elif pl not in self.last_move:
                nan = torch.full((self.num_seeds,), float("nan"), dtype=self.env.dtype, device=self.env.device)
                self.last_move[pl] = ({k: torch.full_like(v, float("nan")) for k, v in o.params.items()}, nan)


class Transition(NamedTuple):
    """One step of :class:`StepSizeCore`, as numpy arrays over the ``N`` slots (packed into one transfer from the
    device in the order of these fields, :data:`TRANSITION_WIDTHS` columns each)."""

    obs: np.ndarray  # (N, len(OBSERVATION)) float32, the entries of OBSERVATION
    reward: np.ndarray  # (N,) float64
    terminated: np.ndarray  # (N,) bool
    quality: np.ndarray  # (N,) float64 (nan where not finite)
    lr: np.ndarray  # (N, 2) float64, the step sizes of the players in PLAYERS order: [generator, discriminator]
    game_step: np.ndarray  # (N,) int64, game steps run in the episode
    env_steps: np.ndarray  # (N,) int64, env steps (actions) since reset
    diverged: np.ndarray  # (N,) bool


#: Columns of each :class:`Transition` field in the packed transfer (1 if not listed): the observation's entries
#: and the players' step sizes.
TRANSITION_WIDTHS: dict[str, int] = {"obs": len(OBSERVATION), "lr": len(PLAYERS)}
#: The numpy dtype of each :class:`Transition` field (``bool``: the packed value is above 0.5).
_TRANSITION_DTYPES: dict[str, type] = {"obs": np.float32, "reward": np.float64, "terminated": np.bool_,
                                       "quality": np.float64, "lr": np.float64, "game_step": np.int64,
                                       "env_steps": np.int64, "diverged": np.bool_}


class TensorStep(NamedTuple):
    """One step of :class:`StepSizeCore` as tensors on the env's device (:meth:`StepSizeCore.step_tensors`)."""

    obs: torch.Tensor  # (N, len(OBSERVATION)) float64, the entries of OBSERVATION
    reward: torch.Tensor  # (N,) float64
    terminated: torch.Tensor  # (N,) bool


class StepSizeCore(ControlledGame):
    """The step-size control problem over the ``N`` slots of one :class:`BatchedEnv` (no Python loop over
    slots): an action ``(N, 2)`` sets the step sizes of ``PLAYERS`` (generator first) for ``steps_per_action``
    game steps. Shells (:class:`~minmax_envs.gym_env.StepSizeEnv`,
    :class:`~minmax_envs.vector_env.StepSizeVectorEnv`, the learned controllers) own the seeding, action
    validation, time limits and numpy conversion. See :class:`~minmax_envs.gym_env.StepSizeEnv` for the
    definitions of actions, observations (named by :data:`OBS_NAMES`) and rewards."""

    def __init__(self, game: GameConfig, control: ControlConfig, num_seeds: int):
        super().__init__(game, control, num_seeds)
        self.env_id = game.env_id
        self.seed_range = SPLITS[control.split]
        self.horizon = control.horizon or spec(game.env_id).max_episode_steps
        # default: one update cycle of the game (1 step; n_critic + 1 for an alternating image game)
        self.steps_per_action = control.steps_per_action or self.env.game.cycle
        self.obs_low = np.array([low for _, low, _ in OBSERVATION], dtype=np.float32)
        self.obs_high = np.array([high for _, _, high in OBSERVATION], dtype=np.float32)
        self._low_t = torch.as_tensor(self.obs_low, dtype=torch.float64, device=self.env.device)
        self._high_t = torch.as_tensor(self.obs_high, dtype=torch.float64, device=self.env.device)
        if control.action == "balance" and self.env.game.cycle != 1:
            raise ValueError(f"action='balance' holds both players' updates at a pace, so both must move at every "
                             f"step; {game.env_id} as configured alternates (an update cycle of "
                             f"{self.env.game.cycle} steps): use update='simultaneous' or action='step_sizes'")

    # --- spaces -------------------------------------------------------------------------------
    def observation_space(self) -> spaces.Box:
        return spaces.Box(self.obs_low.copy(), self.obs_high.copy(), dtype=np.float32)

    @staticmethod
    def action_space() -> spaces.Box:
        return spaces.Box(-1.0, 1.0, shape=(len(PLAYERS),), dtype=np.float32)

    def draw_seed(self, rng: np.random.Generator) -> int:
        """A game seed of this core's split (see ``SPLITS``), drawn from ``rng``."""
        return int(rng.integers(*self.seed_range))

    # --- episode ------------------------------------------------------------------------------
    def reset(self, seeds: Sequence[int]) -> Transition:
        """Start new episodes, slot ``i`` with game seed ``seeds[i]``."""
        seeds = [int(s) for s in seeds]
        if len(seeds) != self.num_seeds:
            raise ValueError(f"need {self.num_seeds} seeds, got {len(seeds)}")
        self.play_instances(seeds)
        env, n = self.env, self.num_seeds
        obs, _ = env.reset(seed=seeds[0])
        if any(s != seeds[0] + i for i, s in enumerate(seeds)):
            # arbitrary per-slot seeds: restart every slot; the next step gives their first observation
            env.reset_where(torch.ones(n, dtype=torch.bool, device=env.device),
                            torch.tensor(seeds, dtype=torch.int64, device=env.device))
            obs, *_ = env.step({pl: {k: torch.zeros_like(v) for k, v in obs[pl].params.items()} for pl in PLAYERS},
                                validate=False)
        self.begin(obs)
        nan = torch.full((n,), float("nan"), dtype=torch.float64, device=env.device)
        self._update_logs = dict.fromkeys(PLAYERS, nan)
        self._t = torch.zeros(n, dtype=torch.int64, device=env.device)
        self._quality = env.quality().to(torch.float64)
        zeros = torch.zeros(n, dtype=torch.float64, device=env.device)
        return self._transition(zeros, torch.zeros_like(self._t, dtype=torch.bool),
                                torch.full((n, 2), float("nan"), dtype=torch.float64, device=env.device))

    def step(self, actions: torch.Tensor, reset_mask: torch.Tensor | None = None,
             reset_seeds: torch.Tensor | None = None) -> Transition:
        """Apply actions ``(N, 2)`` in ``[-1, 1]`` (columns in ``PLAYERS`` order) for ``steps_per_action`` game
        steps.

        Slots in ``reset_mask`` ignore their action and restart with ``reset_seeds`` instead: after this
        call they hold exactly the first observation of a fresh episode with that seed (reward 0).
        """
        return self._transition(*self._act(actions, reset_mask, reset_seeds))

    def step_tensors(self, actions: torch.Tensor, reset_mask: torch.Tensor | None = None,
                     reset_seeds: torch.Tensor | None = None) -> TensorStep:
        """:meth:`step` without the transfer to the host: the observation, reward and termination as tensors on
        the env's device (for a trainer that keeps its policy there, e.g. ``baselines/ppo_step_size.py``)."""
        reward, terminated, _ = self._act(actions, reset_mask, reset_seeds)
        return TensorStep(self._observe(), reward, terminated)

    def observation(self) -> torch.Tensor:
        """The current observation of every slot, ``(N, len(OBSERVATION))`` float64 on the env's device (the
        entries of :data:`OBSERVATION`, bounded as in :meth:`step`)."""
        return self._observe()

    def _act(self, actions: torch.Tensor, reset_mask: torch.Tensor | None,
             reset_seeds: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The game steps of one action (see :meth:`step`); returns the reward, termination and step sizes."""
        env, k = self.env, self.steps_per_action
        was_done = env.done.clone()
        balance = self.control.action == "balance"
        lr = self.step_sizes(actions)  # (N, 2): the step sizes, or the pace and scale factors times base_lr
        for i in range(k):
            if reset_mask is not None and i == k - 1:
                if self.instances is not None:  # the restarted slots' instances, in the batch's group
                    self.instances.assign(env.game, reset_mask, reset_seeds)
                env.reset_where(reset_mask, reset_seeds)
            directions = self.directions()
            rates = self.balance_rates(directions, actions) if balance else lr
            if reset_mask is not None:
                rates = torch.where(reset_mask[:, None], torch.zeros_like(rates), rates)
            if balance:
                lr = rates
            updates = self.scaled(directions, {pl: rates[:, j] for j, pl in enumerate(PLAYERS)})
            for pl, u in updates.items():
                self._update_logs[pl] = log10_norm(u)
            self.advance(updates)
        quality = env.quality().to(torch.float64)
        reward = self.reward(quality - self._quality, was_done)
        terminated = env.done.clone()
        self._t = self._t + 1
        if reset_mask is not None:
            nan = torch.full_like(self._quality, float("nan"))
            self._update_logs = {pl: torch.where(reset_mask, nan, u) for pl, u in self._update_logs.items()}
            fresh = {pl: self.tx.init(self.obs[pl].params) for pl in PLAYERS}
            self.states = {pl: tree_where(reset_mask, fresh[pl], self.states[pl]) for pl in PLAYERS}
            self._t = torch.where(reset_mask, torch.zeros_like(self._t), self._t)
            reward = torch.where(reset_mask, torch.zeros_like(reward), reward)
            terminated = terminated & ~reset_mask
            lr = torch.where(reset_mask[:, None], torch.full_like(lr, float("nan")), lr)
        self._quality = quality
        return reward, terminated, lr.to(torch.float64)

    def restart(self, mask: torch.Tensor, seeds: torch.Tensor) -> Transition:
        """Start new episodes now on the slots in ``mask``, with ``seeds``, without stepping the others
        (:meth:`BatchedEnv.restart_where <minmax_envs.env.BatchedEnv.restart_where>`): the returned transition
        holds, for the restarted slots, exactly what :meth:`reset` with those seeds gives (reward 0, step sizes
        NaN); for the other slots, their observation as it was."""
        env = self.env
        self.obs = env.restart_where(mask, seeds)
        self._remember()
        fresh = {pl: self.tx.init(self.obs[pl].params) for pl in PLAYERS}
        self.states = {pl: tree_where(mask, fresh[pl], self.states[pl]) for pl in PLAYERS}
        nan = torch.full_like(self._quality, float("nan"))
        self._update_logs = {pl: torch.where(mask, nan, u) for pl, u in self._update_logs.items()}
        self._t = torch.where(mask, torch.zeros_like(self._t), self._t)
        self._quality = torch.where(mask, env.quality().to(torch.float64), self._quality)
        nan_lr = torch.full((self.num_seeds, 2), float("nan"), dtype=torch.float64, device=env.device)
        return self._transition(torch.zeros_like(self._quality), torch.zeros_like(mask), nan_lr)

    def balance_rates(self, directions: dict[str, dict[str, torch.Tensor]], actions: torch.Tensor) -> torch.Tensor:
        r"""The step sizes ``(N, 2)`` (``PLAYERS`` order) of ``action="balance"``: with $b_p$ = ``base_lr`` and
        $n_p = \lVert d_p \rVert$ the norm of player $p$'s unit update, $a$ = ``actions`` and $R$ = ``log10_range``,
        the pace $r = (b_D / b_G)\, 10^{a_0 R}$ and the scale $s = 10^{a_1 R}$,

        $$\eta_D = s\, b_D f_D, \qquad \eta_G = s\, b_G f_G$$

        with $(f_D, f_G)$ the geometric factors of :func:`agents.pairs.balance_factors` for the norms $b_D n_D$ and
        $b_G n_G$: $\lVert u_D \rVert / \lVert u_G \rVert = r$ and $\lVert u_D \rVert \lVert u_G \rVert =
        s^2 b_D n_D\, b_G n_G$. Action 0 is ``agents.balanced(base, b_D / b_G)`` at the base step sizes."""
        from agents.norms import per_seed_norms
        from agents.pairs import balance_factors

        g, d = PLAYERS.index("generator"), PLAYERS.index("discriminator")
        norms = [next(iter(per_seed_norms(directions[pl], "global").values())).to(self.env.dtype) * self.base_lr[i]
                 for i, pl in enumerate(PLAYERS)]
        factors = torch.pow(10.0, actions.to(self.env.dtype) * self.control.log10_range)  # (N, 2): pace, scale
        pace = self.base_lr[d] / self.base_lr[g] * factors[:, 0]
        f_d, f_g = balance_factors(norms[d], norms[g], pace, "geometric")
        per_player = {"generator": f_g, "discriminator": f_d}
        return torch.stack([self.base_lr[i] * per_player[pl] for i, pl in enumerate(PLAYERS)], dim=1) * factors[:, 1:]

    # --- observation --------------------------------------------------------------------------
    def _observe(self) -> torch.Tensor:
        """The entries of :data:`OBSERVATION`, by name, bounded: ``(N, len(OBSERVATION))`` float64."""
        entries = {}
        for pl in PLAYERS:
            grads, loss = self.last_move[pl]
            entries[f"{pl}/log10_grad_norm"] = log10_norm(grads)
            entries[f"{pl}/log10_param_norm"] = log10_norm(self.obs[pl].params)
            entries[f"{pl}/loss"] = loss.double()
            entries[f"{pl}/log10_update_norm"] = self._update_logs[pl]
        entries["log10_grad_ratio"] = entries["generator/log10_grad_norm"] - entries["discriminator/log10_grad_norm"]
        entries["progress"] = self._t.double() / self.horizon
        entries["quality"] = self._quality
        return bounded(torch.stack([entries[name] for name in OBS_NAMES], dim=1), self._low_t, self._high_t)

    def _transition(self, reward: torch.Tensor, terminated: torch.Tensor, lr: torch.Tensor) -> Transition:
        """Pack the fields of a :class:`Transition` into one float64 tensor: a single device-to-host transfer per
        step."""
        env = self.env
        columns = {"obs": self._observe(), "reward": reward, "terminated": terminated, "quality": self._quality,
                   "lr": lr, "game_step": env.t, "env_steps": self._t, "diverged": env.diverged}
        packed = torch.cat([columns[name].double().reshape(self.num_seeds, -1) for name in Transition._fields], dim=1)
        a = packed.cpu().numpy()
        fields, start = {}, 0
        for name in Transition._fields:
            width = TRANSITION_WIDTHS.get(name, 1)
            part = a[:, start:start + width] if name in TRANSITION_WIDTHS else a[:, start]
            start += width
            dtype = _TRANSITION_DTYPES[name]
            fields[name] = part > 0.5 if dtype is np.bool_ else part.astype(dtype)  # astype copies
        fields["quality"][~np.isfinite(fields["quality"])] = np.nan
        return Transition(**fields)

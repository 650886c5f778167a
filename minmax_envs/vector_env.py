"""Gymnasium vector face: the step-size control problem of :class:`~minmax_envs.gym_env.StepSizeEnv`
natively batched over ``N`` seeds in one :class:`~minmax_envs.env.BatchedEnv`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from minmax_envs._checks import check_int
from minmax_envs.charts import check_render_mode, step_size_chart
from minmax_envs.env import BatchedEnv
from minmax_envs.gym_env import RegisteredGame
from minmax_envs.registry import spec
from minmax_envs.step_size_control import (
    SEED_HIGH,
    StepSizeCore,
    Transition,
    actions_array,
    configs,
)

#: The autoreset modes of :class:`StepSizeVectorEnv`: every one of gymnasium's.
AUTORESET_MODES: tuple[AutoresetMode, ...] = tuple(AutoresetMode)


def check_autoreset_mode(mode: Any) -> AutoresetMode:
    """``mode`` as an :class:`~gymnasium.vector.AutoresetMode` (the enum or its value, ``"NextStep"``...), or a
    ``ValueError`` listing them."""
    if isinstance(mode, AutoresetMode):
        return mode
    for m in AUTORESET_MODES:
        if mode == m.value:
            return m
    allowed = ", ".join(f"AutoresetMode.{m.name} ({m.value!r})" for m in AUTORESET_MODES)
    raise ValueError(f"unknown autoreset_mode {mode!r}; choose one of {allowed}")


class StepSizeVectorEnv(RegisteredGame, VectorEnv):
    """``N`` independent copies of :class:`~minmax_envs.gym_env.StepSizeEnv`, stepped as one batched game.

    ## Description
    Same actions, observations, rewards and arguments as :class:`~minmax_envs.gym_env.StepSizeEnv` (see its
    card); all ``N`` seeds live in one :class:`BatchedEnv` (``num_seeds=N``), so a step is one set of
    tensor operations whatever ``N`` is, on any device. Made by
    ``gymnasium.make_vec("minmax_envs/<id>", num_envs=N, vectorization_mode="vector_entry_point")``.

    ## Spaces
    ``single_action_space = Box(-1, 1, (2,), float32)``, ``single_observation_space`` the 11-entry Box of
    ``StepSizeEnv``; ``action_space`` / ``observation_space`` are their batches (``(N, 2)``, ``(N, 11)``).
    Outputs are numpy arrays: observations ``float32 (N, 11)``, rewards ``float64 (N,)``, terminations and
    truncations ``bool (N,)``.

    ## Seeding
    ``reset(seed=s)`` gives sub-env ``i`` the seed ``s + i`` (a list of ``N`` seeds, ``None`` entries
    allowed, is also accepted): its episode is exactly that of ``StepSizeEnv`` reset with ``s + i``. Each
    sub-env keeps its own ``np_random`` (seeded ``s + i``) from which its later episodes draw their game
    seeds, as a ``StepSizeEnv`` reset without a seed does; so this env steps like gymnasium's
    ``SyncVectorEnv`` of ``StepSizeEnv``, autoresets included.

    ## Episode End and autoreset
    A sub-env terminates when its seed diverges and is truncated after ``max_episode_steps`` env steps
    (default: the spec's). What happens next is ``autoreset_mode`` (:class:`gymnasium.vector.AutoresetMode`,
    also in ``metadata["autoreset_mode"]``), each exactly as gymnasium's ``SyncVectorEnv`` of ``StepSizeEnv``:

    * ``NEXT_STEP`` (default): the step after a sub-env ended ignores its action and returns the first
      observation of its next episode, with reward 0 and terminated = truncated = False.
    * ``SAME_STEP``: the step on which a sub-env ends returns its reward and flags with the first observation
      of its next episode; its last observation is ``info["final_obs"]`` (an object array, ``None`` for the
      others, mask ``info["_final_obs"]``) and its last step's info ``info["final_info"]`` (the info dict, masked
      to the sub-envs that ended; mask ``info["_final_info"]``); the top-level info of such a sub-env is that of
      its reset (no step sizes).
    * ``DISABLED``: nothing restarts by itself; stepping a sub-env that ended raises ``RuntimeError``: restart it
      with ``reset(options={"reset_mask": mask})`` first.

    In every mode ``reset(seed=..., options={"reset_mask": mask})`` (``mask`` a bool numpy array ``(N,)``)
    restarts only the masked sub-envs (the seeds of the others are ignored) and leaves the others as they are:
    the returned observation holds the others' current ones and the info only the masked sub-envs' entries.
    Restarts are batched (:meth:`BatchedEnv.reset_where`, :meth:`BatchedEnv.restart_where`), never a loop.

    ## Info
    Arrays over sub-envs with ``_key`` masks: ``quality``, ``diverged``, ``game_step`` and
    ``lr_generator`` / ``lr_discriminator`` (masked out for sub-envs that were reset in that step).

    ## Rendering
    With ``render_mode="rgb_array"``, :meth:`render` returns a tuple of ``N`` frames, sub-env ``i``'s the
    chart ``StepSizeEnv.render`` draws of its current episode (gymnasium's vector convention, as
    ``SyncVectorEnv`` of ``StepSizeEnv`` gives).

    ## Arguments
    ``num_envs``, ``env_id``, ``max_episode_steps`` (default the spec's; also the default ``horizon``),
    ``autoreset_mode`` (an ``AutoresetMode`` or its value: ``"NextStep"``, ``"SameStep"``, ``"Disabled"``),
    ``render_mode`` and every argument of ``StepSizeEnv``.

    ## Version History
    * v0: initial version. Before the first release: ``autoreset_mode`` and ``options["reset_mask"]`` were added
      (the default, ``NEXT_STEP``, steps as before).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30,
                                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, env_id: str, *, max_episode_steps: int | None = None,
                 horizon: int | None = None, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 render_mode: str | None = None, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, "StepSizeVectorEnv")
        self.autoreset_mode = check_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = check_int("num_envs", num_envs)
        s = spec(env_id)
        self.max_episode_steps = check_int("max_episode_steps", max_episode_steps, allow_none=True) \
            or s.max_episode_steps
        self.game, self.control = configs(s.id, horizon=horizon or self.max_episode_steps, **kwargs)
        self._core = StepSizeCore(self.game, self.control, self.num_envs)
        self.env_id = s.id
        self.horizon = self._core.horizon
        self._history: list[list[tuple[float, float, float]]] = [[] for _ in range(self.num_envs)]
        self.single_observation_space = self._core.observation_space()
        self.single_action_space = self._core.action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._slot_rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._started = False

    @property
    def batched_env(self) -> BatchedEnv:
        """The underlying torch-native env over ``N`` seeds."""
        return self._core.env

    @property
    def sub_env_np_randoms(self) -> tuple[np.random.Generator | None, ...]:
        """Each sub-env's own generator, from which its unseeded resets draw game seeds (``None`` before its first
        reset): the ``np_random`` of the ``StepSizeEnv`` it plays as."""
        return tuple(self._slot_rngs)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        n = self.num_envs
        mask = self._reset_mask(options)
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            super().reset(seed=int(seed))
            seeds = [int(seed) + i for i in range(n)]
        elif isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise ValueError(f"a list of seeds must have num_envs={n} entries, got {len(seed)}")
            seeds = list(seed)
        else:
            raise ValueError(f"seed must be an int, a list of {n} ints or None, got {seed!r}")
        for i, s in enumerate(seeds):
            if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0):
                raise ValueError(f"seeds must be non-negative ints or None, got {s!r} at position {i}")
        if mask is None:
            tr = self._core.reset(self._game_seeds(seeds, np.ones(n, dtype=np.bool_)).tolist())
            self._autoreset = np.zeros(n, dtype=np.bool_)
            self._started = True
            self._record(tr, restarted=np.ones(n, dtype=np.bool_))
            return tr.obs, self._info(tr, lr_mask=np.zeros(n, dtype=np.bool_))
        tr = self._restart(mask, self._game_seeds(seeds, mask))
        self._autoreset = self._autoreset & ~mask
        return tr.obs, self._info(tr, lr_mask=np.zeros(n, dtype=np.bool_), mask=mask)

    def _reset_mask(self, options: dict[str, Any] | None) -> np.ndarray | None:
        """``options["reset_mask"]``, checked as gymnasium's ``SyncVectorEnv`` checks it, or ``None``."""
        if not options or "reset_mask" not in options:
            return None
        mask, n = options["reset_mask"], self.num_envs
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise TypeError(f"options['reset_mask'] must be a numpy array of dtype bool, got {mask!r}")
        if mask.shape != (n,) or not mask.any():
            raise ValueError(f"options['reset_mask'] must have shape ({n},) and at least one True entry, "
                             f"got {mask!r}")
        if not self._started:
            raise RuntimeError("call reset() without a reset_mask first: every sub-env must have started")
        return mask.copy()

    def _game_seeds(self, seeds: list[int | None], which: np.ndarray) -> np.ndarray:
        """The game seeds of the sub-envs in ``which`` (0 elsewhere): ``seeds[i]`` where given (it reseeds the
        sub-env's ``np_random``), else a draw from that ``np_random``, as ``StepSizeEnv.reset`` does."""
        out = np.zeros(self.num_envs, dtype=np.int64)
        for i in np.flatnonzero(which):
            s = seeds[i]
            if s is not None:
                self._slot_rngs[i], _ = seeding.np_random(int(s))
                out[i] = int(s)
            else:
                if self._slot_rngs[i] is None:
                    self._slot_rngs[i], _ = seeding.np_random(int(self.np_random.integers(0, SEED_HIGH)))
                out[i] = self._core.draw_seed(self._slot_rngs[i])
        return out

    def _restart(self, mask: np.ndarray, game_seeds: np.ndarray) -> Transition:
        """Restart the sub-envs in ``mask`` now (the others stay where they are)."""
        dev = self._core.env.device
        tr = self._core.restart(torch.as_tensor(mask, device=dev), torch.as_tensor(game_seeds, device=dev))
        self._record(tr, restarted=mask, rows=mask)
        return tr

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        n, env = self.num_envs, self._core.env
        a = torch.as_tensor(actions_array(actions, (n, 2)), device=env.device)
        mask = self._autoreset
        if self.autoreset_mode is AutoresetMode.DISABLED and mask.any():
            raise RuntimeError(f"sub-env(s) {np.flatnonzero(mask).tolist()} ended and autoreset_mode is DISABLED: "
                               "restart them with reset(options={'reset_mask': mask}) before stepping")
        if mask.any():  # NEXT_STEP: the sub-envs that ended restart in this step, ignoring their action
            seeds = self._game_seeds([None] * n, mask)
            tr = self._core.step(a, reset_mask=torch.as_tensor(mask, device=env.device),
                                 reset_seeds=torch.as_tensor(seeds, device=env.device))
        else:
            tr = self._core.step(a)
        terminated = tr.terminated
        truncated = (tr.env_steps >= self.max_episode_steps) & ~mask
        self._record(tr, restarted=mask)
        ended = terminated | truncated
        info = self._info(tr, lr_mask=~mask)
        obs = tr.obs
        if self.autoreset_mode is AutoresetMode.SAME_STEP and ended.any():
            final_obs = np.full(n, None, dtype=object)
            for i in np.flatnonzero(ended):
                final_obs[i] = tr.obs[i].copy()
            final_info = {k: (v & ended if k.startswith("_") else np.where(ended, v, np.zeros_like(v)))
                          for k, v in info.items()}
            fresh = self._restart(ended, self._game_seeds([None] * n, ended))
            obs = np.where(ended[:, None], fresh.obs, tr.obs)
            reset_info = self._info(fresh, lr_mask=np.zeros(n, dtype=np.bool_))
            info = {k: np.where(ended, reset_info[k], v) for k, v in info.items()}
            info.update(final_obs=final_obs, _final_obs=ended.copy(), final_info=final_info,
                        _final_info=ended.copy())
            ended = np.zeros(n, dtype=np.bool_)
        self._autoreset = ended
        return obs, tr.reward, terminated, truncated, info

    def _record(self, tr: Transition, restarted: np.ndarray, rows: np.ndarray | None = None) -> None:
        if self.render_mode is None:
            return
        for i in range(self.num_envs) if rows is None else np.flatnonzero(rows):  # host values: no extra transfer
            if restarted[i]:
                self._history[i] = []
            self._history[i].append((float(tr.quality[i]), float(tr.lr[i, 0]), float(tr.lr[i, 1])))

    def render(self) -> tuple[np.ndarray, ...] | None:
        """With ``render_mode="rgb_array"``: one ``(H, W, 3)`` uint8 chart per sub-env of its current episode
        (see :meth:`StepSizeEnv.render <minmax_envs.gym_env.StepSizeEnv.render>`); with ``None``: ``None``."""
        if self.render_mode is None:
            return None
        if not all(self._history):
            raise RuntimeError("call reset() before render(): there is no episode to draw yet")
        return tuple(step_size_chart(h) for h in self._history)

    def _info(self, tr: Transition, lr_mask: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
        """The info of gymnasium's vector convention: arrays over sub-envs with ``_key`` masks; only the sub-envs
        in ``mask`` (all by default) have entries, the step sizes only those in ``lr_mask`` too."""
        ones = np.ones(self.num_envs, dtype=np.bool_) if mask is None else mask.copy()
        lr_mask = lr_mask & ones
        lr = np.where(lr_mask[:, None], tr.lr, 0.0)
        if mask is not None:
            tr = tr._replace(quality=np.where(mask, tr.quality, 0.0), diverged=tr.diverged & mask,
                             game_step=np.where(mask, tr.game_step, 0))
        return {"quality": tr.quality, "_quality": ones, "diverged": tr.diverged, "_diverged": ones.copy(),
                "game_step": tr.game_step, "_game_step": ones.copy(),
                "lr_generator": lr[:, 0].copy(), "_lr_generator": lr_mask.copy(),
                "lr_discriminator": lr[:, 1].copy(), "_lr_discriminator": lr_mask.copy()}

    def __repr__(self) -> str:
        return f"StepSizeVectorEnv({self.env_id}, num_envs={self.num_envs})"

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
from minmax_envs.control import (
    SEED_HIGH,
    StepSizeCore,
    Transition,
    actions_array,
    check_render_mode,
    configs,
    step_size_chart,
)
from minmax_envs.env import BatchedEnv
from minmax_envs.gym_env import RegisteredGame
from minmax_envs.registry import spec


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
    (default: the spec's). Autoreset is ``AutoresetMode.NEXT_STEP``: the step after a sub-env ended ignores
    its action and returns the first observation of its next episode, with reward 0 and
    terminated = truncated = False (done with :meth:`BatchedEnv.reset_where`, batched).

    ## Info
    Arrays over sub-envs with ``_key`` masks: ``quality``, ``diverged``, ``game_step`` and
    ``lr_generator`` / ``lr_discriminator`` (masked out for sub-envs that were reset in that step).

    ## Rendering
    With ``render_mode="rgb_array"``, :meth:`render` returns a tuple of ``N`` frames, sub-env ``i``'s the
    chart ``StepSizeEnv.render`` draws of its current episode (gymnasium's vector convention, as
    ``SyncVectorEnv`` of ``StepSizeEnv`` gives).

    ## Arguments
    ``num_envs``, ``env_id``, ``max_episode_steps`` (default the spec's; also the default ``horizon``),
    ``render_mode`` and every argument of ``StepSizeEnv``.

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30,
                                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, env_id: str, *, max_episode_steps: int | None = None,
                 horizon: int | None = None, render_mode: str | None = None, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, "StepSizeVectorEnv")
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
        self._slot_rngs: list[np.random.Generator] | None = None
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._started = False

    @property
    def batched_env(self) -> BatchedEnv:
        """The underlying torch-native env over ``N`` seeds."""
        return self._core.env

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        n = self.num_envs
        if options and "reset_mask" in options:
            raise ValueError("options['reset_mask'] is not supported: this env autoresets in NEXT_STEP mode")
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
        if self._slot_rngs is None:
            self._slot_rngs = [None] * n  # type: ignore[list-item]
        game_seeds = []
        for i, s in enumerate(seeds):
            if s is not None:
                if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                    raise ValueError(f"seeds must be non-negative ints or None, got {s!r} at position {i}")
                self._slot_rngs[i], _ = seeding.np_random(int(s))
                game_seeds.append(int(s))
            else:
                if self._slot_rngs[i] is None:
                    self._slot_rngs[i], _ = seeding.np_random(int(self.np_random.integers(0, SEED_HIGH)))
                game_seeds.append(self._core.draw_seed(self._slot_rngs[i]))
        tr = self._core.reset(game_seeds)
        self._autoreset = np.zeros(n, dtype=np.bool_)
        self._started = True
        self._record(tr, restarted=np.ones(n, dtype=np.bool_))
        return tr.obs, self._info(tr, lr_mask=np.zeros(n, dtype=np.bool_))

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        n, env = self.num_envs, self._core.env
        a = torch.as_tensor(actions_array(actions, (n, 2)), device=env.device)
        mask = self._autoreset
        if mask.any():
            seeds = np.zeros(n, dtype=np.int64)
            for i in np.flatnonzero(mask):  # only the sub-envs that ended: off the hot path
                seeds[i] = self._core.draw_seed(self._slot_rngs[i])
            tr = self._core.step(a, reset_mask=torch.as_tensor(mask, device=env.device),
                                 reset_seeds=torch.as_tensor(seeds, device=env.device))
        else:
            tr = self._core.step(a)
        terminated = tr.terminated
        truncated = (tr.env_steps >= self.max_episode_steps) & ~mask
        self._record(tr, restarted=mask)
        self._autoreset = terminated | truncated
        return tr.obs, tr.reward, terminated, truncated, self._info(tr, lr_mask=~mask)

    def _record(self, tr: Transition, restarted: np.ndarray) -> None:
        if self.render_mode is None:
            return
        for i in range(self.num_envs):  # host values the step returns anyway: no extra transfer
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

    def _info(self, tr: Transition, lr_mask: np.ndarray) -> dict[str, Any]:
        ones = np.ones(self.num_envs, dtype=np.bool_)
        lr = np.where(lr_mask[:, None], tr.lr, 0.0)
        return {"quality": tr.quality, "_quality": ones, "diverged": tr.diverged, "_diverged": ones.copy(),
                "game_step": tr.game_step, "_game_step": ones.copy(),
                "lr_generator": lr[:, 0].copy(), "_lr_generator": lr_mask.copy(),
                "lr_discriminator": lr[:, 1].copy(), "_lr_discriminator": lr_mask.copy()}

    def __repr__(self) -> str:
        return f"StepSizeVectorEnv({self.env_id}, num_envs={self.num_envs})"

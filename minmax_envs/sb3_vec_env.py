"""stable-baselines3 face of the native vector env: :class:`StepSizeSB3VecEnv`, an SB3 ``VecEnv`` whose ``N``
sub-envs are the ``N`` seeds of one batched game.

stable-baselines3 refuses Gymnasium vector envs and steps its own ``DummyVecEnv`` one sub-env at a time; this
adapter hands it the native :class:`~minmax_envs.vector_env.StepSizeVectorEnv` (one set of tensor operations per
step whatever ``N`` is) in SB3's own conventions, so ``PPO("MlpPolicy", StepSizeSB3VecEnv(256, "TwoMode-v0"))``
trains on it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from minmax_envs.vector_env import StepSizeVectorEnv


class StepSizeSB3VecEnv(VecEnv):
    """``N`` copies of :class:`~minmax_envs.gym_env.StepSizeEnv` as one stable-baselines3 ``VecEnv``.

    ## Description
    The step-size control problem of ``StepSizeEnv`` (see its card: actions, observations, rewards, arguments)
    over the ``N`` seeds of a :class:`~minmax_envs.vector_env.StepSizeVectorEnv` (``vector_env``) run with
    ``autoreset_mode=SAME_STEP``. It steps exactly as SB3's ``DummyVecEnv`` of ``N`` ``gymnasium.make``
    envs of the same id and arguments, seeded alike (tested), at the cost of one batched step.

    ## SB3's conventions
    * ``step`` returns ``(obs, rewards, dones, infos)``: ``obs`` float32 ``(N, 11)``, ``rewards`` float32 ``(N,)``,
      ``dones = terminated | truncated`` bool ``(N,)``, ``infos`` a list of ``N`` dicts (``quality``, ``diverged``,
      ``game_step``, ``lr_generator``, ``lr_discriminator``, ``TimeLimit.truncated``).
    * Same-step reset: a sub-env that ends returns, in that step, its reward and ``done=True`` with the first
      observation of its next episode; its last observation is ``infos[i]["terminal_observation"]`` and the
      info of the reset ``reset_infos[i]``. Every transition is a real one: no step ignores its action (as the
      Gymnasium ``NEXT_STEP`` autoreset does), whichever sub-envs end and when.
    * ``seed(s)`` seeds sub-env ``i`` with ``s + i`` at the next ``reset()`` (SB3's rule); a ``reset()`` without
      seeds draws each sub-env's next game seed from its own ``np_random``, as ``StepSizeEnv.reset()`` does.
    * ``get_attr(name)`` gives per sub-env: ``observation_space`` / ``action_space`` (the single spaces),
      ``np_random`` (its generator), any other attribute of ``vector_env`` (``render_mode``, ``metadata``,
      ``env_id``, ``max_episode_steps``, ``game``, ``control``...). ``set_attr`` sets an attribute of the vector
      env, so for every sub-env at once. ``env_method`` calls ``render`` (each sub-env's chart) and
      ``get_wrapper_attr``; other methods act on the whole batch and are refused (``ValueError``).
    * Numpy only at this boundary: the game and the control core stay torch tensors on ``device``.

    ## Arguments
    ``num_envs``, ``env_id`` and every argument of :class:`~minmax_envs.vector_env.StepSizeVectorEnv` but
    ``autoreset_mode`` (SB3's convention is ``SAME_STEP``): ``max_episode_steps``, ``render_mode``, the control and
    game arguments of ``StepSizeEnv``.
    """

    def __init__(self, num_envs: int, env_id: str, **kwargs: Any):
        if "autoreset_mode" in kwargs:
            raise ValueError("StepSizeSB3VecEnv resets a sub-env in the step that ends it (SB3's convention, "
                             f"AutoresetMode.SAME_STEP); do not pass autoreset_mode, got {kwargs['autoreset_mode']!r}")
        self.vector_env = StepSizeVectorEnv(num_envs, env_id, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        venv = self.vector_env
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.metadata = {**venv.metadata, **self.metadata}
        self._actions: np.ndarray | None = None

    # --- stepping -----------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, info = self.vector_env.reset(seed=seeds)
        self.reset_infos = _per_env(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, info = self.vector_env.step(actions)
        dones = terminated | truncated
        ended = np.flatnonzero(dones)
        step_info = info
        if len(ended):  # the info of an ended sub-env's last step is final_info; the top level is its reset's
            final = info["final_info"]
            step_info = {k: np.where(dones, final[k], v) if k in final else v for k, v in info.items()}
        infos = _per_env(step_info, self.num_envs)
        time_limit = (truncated & ~terminated).tolist()
        for i, d in enumerate(infos):
            d["TimeLimit.truncated"] = time_limit[i]
        if len(ended):
            reset_infos = _per_env(info, self.num_envs)
            for i in ended:
                infos[i]["terminal_observation"] = info["final_obs"][i]
                self.reset_infos[i] = reset_infos[i]
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.vector_env.render()
        return [None] * self.num_envs if frames is None else list(frames)

    # --- SB3's access to sub-envs -----------------------------------------------------------------------
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        venv, idx = self.vector_env, list(self._get_indices(indices))
        if attr_name == "np_random":
            return [venv.sub_env_np_randoms[i] for i in idx]
        per_env = {"observation_space": venv.single_observation_space, "action_space": venv.single_action_space}
        value = per_env[attr_name] if attr_name in per_env else getattr(venv, attr_name)
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"the {self.num_envs} sub-envs are one batched env: set_attr({attr_name!r}) sets it for "
                             f"all of them; pass indices=None, got {indices!r}")
        setattr(self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        idx = list(self._get_indices(indices))
        if method_name == "render":
            frames = self.get_images()
            return [frames[i] for i in idx]
        if method_name == "get_wrapper_attr":
            return self.get_attr(*method_args, indices=idx, **method_kwargs)
        raise ValueError(f"env_method({method_name!r}): the {self.num_envs} sub-envs are one batched env, whose "
                         "methods act on all of them; per sub-env, env_method calls 'render' and 'get_wrapper_attr'")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # no per-sub-env wrappers (Monitor: use VecMonitor)

    def __repr__(self) -> str:
        return f"StepSizeSB3VecEnv({self.vector_env.env_id}, num_envs={self.num_envs})"


def _per_env(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (arrays with ``_key`` masks) as SB3's list of ``n`` per-env dicts of Python
    scalars; ``final_obs`` / ``final_info`` are left out."""
    columns = [(k, v.tolist(), info[f"_{k}"].tolist()) for k, v in info.items()
               if not k.startswith("_") and f"_{k}" in info and k not in ("final_obs", "final_info")]
    return [{k: values[i] for k, values, mask in columns if mask[i]} for i in range(n)]

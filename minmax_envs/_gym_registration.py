"""Gymnasium ids ``minmax_envs/<id>`` for every registered game (step-size control, single and vector)."""

from __future__ import annotations

import gymnasium

from minmax_envs.registry import NAMESPACE, list_envs, spec

SINGLE_ENTRY_POINT = "minmax_envs.gym_env:StepSizeEnv"
VECTOR_ENTRY_POINT = "minmax_envs.vector_env:StepSizeVectorEnv"


def register_gymnasium_envs() -> list[str]:
    """Register ``minmax_envs/<id>`` with Gymnasium for every id of :func:`minmax_envs.list_envs`.

    ``gymnasium.make("minmax_envs/<id>", **kwargs)`` gives a :class:`~minmax_envs.gym_env.StepSizeEnv`
    under a ``TimeLimit`` of the spec's ``max_episode_steps``; ``gymnasium.make_vec("minmax_envs/<id>",
    num_envs=N)`` a :class:`~minmax_envs.vector_env.StepSizeVectorEnv` (batched games only: an image game is
    one seed per env). Called at import; call it again
    after :func:`minmax_envs.register` adds games (ids already known to Gymnasium are left alone).
    Returns the Gymnasium ids.
    """
    ids = []
    for env_id in list_envs():
        gym_id = f"{NAMESPACE}/{env_id}"
        if gym_id not in gymnasium.registry:
            batched = spec(env_id).game_class().batched  # single-seed (image) games have no native vector env
            gymnasium.register(id=gym_id, entry_point=SINGLE_ENTRY_POINT,
                               vector_entry_point=VECTOR_ENTRY_POINT if batched else None,
                               max_episode_steps=spec(env_id).max_episode_steps, kwargs={"env_id": env_id})
        ids.append(gym_id)
    return ids


register_gymnasium_envs()

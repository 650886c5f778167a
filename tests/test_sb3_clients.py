"""Stable-Baselines3 as its users call it, with a string id (it then asks for render_mode="rgb_array"), and
the rendering of every control face."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

import minmax_envs
from minmax_envs.gym_env import StepSizeEnv
from minmax_envs.vector_env import StepSizeVectorEnv


@pytest.fixture(autouse=True)
def _one_thread():
    yield
    torch.set_num_threads(1)  # SB3 models set torch's thread count; keep the suite's


def test_ppo_trains_on_a_string_id():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "minmax_envs/DiracGAN-v0", n_steps=64, batch_size=32, n_epochs=1, seed=0,
                device="cpu", policy_kwargs={"net_arch": [8]})
    assert model.get_env().render_mode == "rgb_array"
    model.learn(128)
    assert model.num_timesteps == 128
    frames = model.get_env().get_images()
    assert len(frames) == 1 and frames[0].ndim == 3 and frames[0].shape[2] == 3 and frames[0].dtype == np.uint8


def test_make_vec_env_with_vec_normalize():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(make_vec_env("minmax_envs/DiracGAN-v0", n_envs=4, seed=0))
    obs = venv.reset()
    assert obs.shape == (4, 11) and np.isfinite(obs).all()
    for _ in range(5):
        obs, rewards, dones, infos = venv.step(np.zeros((4, 2), dtype=np.float32))
        assert obs.shape == (4, 11) and rewards.shape == (4,) and np.isfinite(obs).all()
        assert {"lr_generator", "lr_discriminator", "quality"} <= set(infos[0])
    venv.close()


def _is_frame(frame) -> bool:
    return isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_step_size_env_renders_a_chart_of_the_episode_so_far():
    env = gymnasium.make("minmax_envs/DiracGAN-v0", render_mode="rgb_array", init_std=0.5)
    env.reset(seed=0)
    first = env.render()
    assert _is_frame(first)
    for a in ([1.0, -1.0], [-1.0, 1.0], [0.5, 0.0]):
        env.step(np.array(a, dtype=np.float32))
    later = env.render()
    assert _is_frame(later) and later.shape == first.shape and not np.array_equal(later, first)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), first)  # a new episode starts a new chart
    quiet = StepSizeEnv("DiracGAN-v0")
    quiet.reset(seed=0)
    quiet.step(np.zeros(2))
    assert quiet.render() is None and quiet._history == []  # nothing recorded without a render mode


def test_vector_env_renders_one_chart_per_sub_env():
    vec = gymnasium.make_vec("minmax_envs/DiracGAN-v0", num_envs=3, vectorization_mode="vector_entry_point",
                             render_mode="rgb_array", max_episode_steps=2, init_std=0.5)
    assert isinstance(vec, StepSizeVectorEnv) and vec.render_mode == "rgb_array"
    vec.reset(seed=0)
    for _ in range(2):
        vec.step(np.zeros((3, 2), dtype=np.float32))
    frames = vec.render()
    assert len(frames) == 3 and all(_is_frame(f) for f in frames)
    assert [len(h) for h in vec._history] == [3, 3, 3]
    vec.step(np.zeros((3, 2), dtype=np.float32))  # all truncated: the autoreset step starts new charts
    assert [len(h) for h in vec._history] == [1, 1, 1]
    assert StepSizeVectorEnv(2, "DiracGAN-v0").render() is None


def test_parallel_env_renders_a_chart():
    env = minmax_envs.parallel_env("Bilinear-v0", render_mode="rgb_array", n=3)
    env.reset(seed=0)
    env.step({a: env.action_space(a).sample() for a in env.agents})
    assert _is_frame(env.render()) and len(env._history) == 2
    plain = minmax_envs.parallel_env("Bilinear-v0", n=3)
    plain.reset(seed=0)
    assert plain.render() is None


@pytest.mark.parametrize("make", [lambda: StepSizeEnv("DiracGAN-v0", render_mode="human"),
                                  lambda: StepSizeVectorEnv(2, "DiracGAN-v0", render_mode="ansi"),
                                  lambda: minmax_envs.parallel_env("DiracGAN-v0", render_mode="human")])
def test_unknown_render_modes_are_refused(make):
    with pytest.raises(ValueError, match=r"renders 'rgb_array' \(a chart of the episode so far\); render_mode must "
                                         r"be None or one of them, got '(human|ansi)'"):
        make()

"""The RL libraries people use, as their users call them: TorchRL (GymEnv by id, GymWrapper of the native vector
env) and RLlib (a string id in remote env runners). stable-baselines3 is in tests/test_sb3_clients.py and PettingZoo
in tests/test_pettingzoo_env.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from minmax_envs.gym_env import StepSizeEnv
from minmax_envs.step_size_control import OBS_NAMES
from minmax_envs.vector_env import StepSizeVectorEnv

PROGRESS = OBS_NAMES.index("progress")


def _play(env, actions: torch.Tensor):
    """Step a TorchRL env through ``actions`` as TorchRL's collectors do (``step_and_maybe_reset``, which resets
    what ended); returns the stacked step tensordicts (``observation``, ``action``, ``next``)."""
    import tensordict

    td, steps = env.reset(), []
    for a in actions:
        td["action"] = a
        step, td = env.step_and_maybe_reset(td)
        steps.append(step.clone())
    return tensordict.stack(steps, dim=-1)


@pytest.fixture(autouse=True)
def _one_thread():
    yield
    torch.set_num_threads(1)  # the clients may set torch's thread count; keep the suite's


# --- TorchRL ------------------------------------------------------------------------------------------------------
def test_torchrl_gym_env_by_id_plays_the_step_size_env():
    """TorchRL's GymEnv passes frameskip to gymnasium.make and drops it on Python's unknown-keyword TypeError; the
    env it makes then plays exactly StepSizeEnv."""
    pytest.importorskip("torchrl", reason="the torchrl extra (pulled by test): pip install -e '.[torchrl]'")
    from torchrl.envs import GymEnv
    from torchrl.envs.utils import check_env_specs

    env = GymEnv("minmax_envs/DiracGAN-v0", init_std=0.5)
    assert isinstance(env._env.unwrapped, StepSizeEnv) and env.wrapper_frame_skip == 1
    check_env_specs(env, seed=0)
    env.set_seed(3)
    actions = torch.tensor([[0.5, -0.5], [1.0, 0.0], [-1.0, 1.0]])
    td = _play(env, actions)
    single = StepSizeEnv("DiracGAN-v0", init_std=0.5)
    single.reset(seed=3)  # set_seed resets with the seed; the rollout's reset draws the next episode from it
    obs, _ = single.reset()
    np.testing.assert_array_equal(td["observation"][0].numpy(), obs)
    for t, a in enumerate(actions):
        obs, reward, *_ = single.step(a.numpy())
        np.testing.assert_array_equal(td["next", "observation"][t].numpy(), obs)
        assert float(td["next", "reward"][t]) == pytest.approx(reward, rel=1e-6)


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_torchrl_gym_wrapper_of_the_native_vector_env(mode):
    """GymWrapper accepts the native vector env in the two autoreset modes TorchRL supports; a rollout through
    episode ends (different per sub-env) gives, at each end, the episode's last observation as the next one and
    then the first observation of the next episode, as the native vector env itself plays them."""
    pytest.importorskip("torchrl", reason="the torchrl extra (pulled by test): pip install -e '.[torchrl]'")
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    kw = {"max_episode_steps": 4, "loss": "wgan", "base_lr": 0.2, "divergence_threshold": 3.0, "init_std": 0.5}
    env = GymWrapper(StepSizeVectorEnv(3, "DiracGAN-v0", autoreset_mode=mode, **kw))
    assert env.batch_size == torch.Size([3])
    check_env_specs(env, seed=0)
    env.set_seed(7)
    actions = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (12, 3, 2)), dtype=torch.float32)
    td = _play(env, actions)

    ref = StepSizeVectorEnv(3, "DiracGAN-v0", autoreset_mode=AutoresetMode.SAME_STEP, **kw)
    ref.reset(seed=7)  # as set_seed does; the rollout's reset then draws each sub-env's next episode
    obs, _ = ref.reset()
    done = td["next", "done"].squeeze(-1).numpy().T  # (12, 3)
    assert done.any(axis=1).sum() >= 3 and not done.all(axis=1).all()  # ends, at different steps per sub-env
    for t in range(12):
        np.testing.assert_allclose(td["observation"][:, t].numpy(), obs, atol=1e-6)
        obs, reward, terminated, truncated, info = ref.step(actions[t].numpy())
        ended = terminated | truncated
        np.testing.assert_array_equal(done[t], ended)
        last = np.stack([info["final_obs"][i] if ended[i] else obs[i] for i in range(3)])
        np.testing.assert_allclose(td["next", "observation"][:, t].numpy(), last, atol=1e-6)
        np.testing.assert_allclose(td["next", "reward"][:, t, 0].numpy(), reward, rtol=1e-6, atol=1e-6)
        assert (obs[ended, PROGRESS] == 0).all()


# --- RLlib --------------------------------------------------------------------------------------------------------
def test_rllib_remote_env_runners_make_the_env_from_a_module_prefixed_id():
    """An env runner is another process that never imported minmax_envs: the plain id "minmax_envs/DiracGAN-v0"
    is unknown there (NamespaceNotFound); Gymnasium's "minmax_envs:minmax_envs/DiracGAN-v0" imports the module that
    registers it. One PPO iteration with one remote env runner (about 45 s on 2 cores, mostly Ray's start)."""
    pytest.importorskip("ray.rllib", reason="RLlib: pip install 'ray[rllib]' (see docs/rl-interfaces.md)")
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        config = (PPOConfig()
                  .environment("minmax_envs:minmax_envs/DiracGAN-v0",
                               env_config={"init_std": 0.5, "max_episode_steps": 16, "horizon": 16})
                  .env_runners(num_env_runners=1, num_envs_per_env_runner=1, rollout_fragment_length=64)
                  .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)
                  .debugging(seed=0))
        algo = config.build_algo()
        try:
            result = algo.train()
        finally:
            algo.stop()
    finally:
        ray.shutdown()
    assert result["num_env_steps_sampled_lifetime"] == 64
    assert result["env_runners"]["num_episodes"] == 4  # four 16-step episodes, sampled in the remote runner
    assert np.isfinite(result["env_runners"]["episode_return_mean"])

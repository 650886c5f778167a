"""The PettingZoo face: MinMaxParallelEnv, checked with PettingZoo's own API and seed tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pettingzoo import AECEnv
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test, seed_test
from pettingzoo.test.state_test import state_test

import minmax_envs
from minmax_envs.pettingzoo_env import MinMaxParallelEnv, parallel_env
from minmax_envs.pettingzoo_env import env as aec_env
from tests.helpers import ENV_IDS, SMALL_KWARGS

MODES = ["update", "step_size"]


@pytest.mark.usefixtures("no_warnings")
@pytest.mark.parametrize("action_mode", MODES)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_parallel_api_test(env_id, action_mode):
    env = parallel_env(env_id, action_mode=action_mode, **SMALL_KWARGS[env_id])
    parallel_api_test(env, num_cycles=8)


@pytest.mark.usefixtures("no_warnings")
@pytest.mark.parametrize("action_mode", MODES)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_parallel_seed_test(env_id, action_mode):
    parallel_seed_test(lambda: parallel_env(env_id, action_mode=action_mode, reward_mode="quality", max_cycles=6,
                                            **SMALL_KWARGS[env_id]), num_cycles=6)


def test_exported_and_metadata():
    env = minmax_envs.parallel_env("DiracGAN-v0")
    assert isinstance(env, MinMaxParallelEnv)
    assert env.possible_agents == ["generator", "discriminator"]
    assert env.metadata["name"] == "minmax_envs/DiracGAN-v0" and env.metadata["render_modes"] == ["human", "rgb_array"]
    assert env.max_cycles == minmax_envs.spec("DiracGAN-v0").max_episode_steps


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_are_cached_and_sized_per_tensor(env_id):
    for mode in MODES:
        env = parallel_env(env_id, action_mode=mode, **SMALL_KWARGS[env_id])
        obs, infos = env.reset(seed=0)
        for agent in env.possible_agents:
            assert env.action_space(agent) is env.action_space(agent)
            assert env.observation_space(agent) is env.observation_space(agent)
            params = env.batched_env.params[agent]
            n_tensors = len(params)
            assert env.observation_space(agent).shape == (2 * n_tensors + 2,)
            assert obs[agent] in env.observation_space(agent) and obs[agent].dtype == np.float32
            size = (sum(v[0].numel() for v in params.values()) if mode == "update" else n_tensors)
            assert env.action_space(agent).shape == (size,) and env.action_space(agent).dtype == np.float32


def test_observation_layout():
    env = parallel_env("DiracGAN-v0", dtype=torch.float64, init_std=0.5)
    obs, _ = env.reset(seed=3)
    o = env.batched_env._obs
    for agent, other, name in [("generator", "discriminator", "theta"), ("discriminator", "generator", "psi")]:
        expected = [np.log10(abs(float(o[agent].grads[name]))), np.log10(abs(float(o[agent].params[name]))),
                    float(o[agent].loss), float(o[other].loss)]
        np.testing.assert_allclose(obs[agent], np.array(expected, dtype=np.float32), rtol=1e-5, atol=1e-6)


def test_update_mode_adds_the_actions_to_the_parameters():
    env = parallel_env("Bilinear-v0", action_mode="update", max_update=0.5, dtype=torch.float64, n=3)
    env.reset(seed=0)
    x0 = env.batched_env.params["generator"]["x"].clone()
    y0 = env.batched_env.params["discriminator"]["y"].clone()
    a = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    env.step({"generator": a, "discriminator": np.array([9.0, 0.0, -9.0])})  # out of bounds: clipped
    torch.testing.assert_close(env.batched_env.params["generator"]["x"], x0 + torch.tensor(a, dtype=torch.float64))
    torch.testing.assert_close(env.batched_env.params["discriminator"]["y"],
                               y0 + torch.tensor([[0.5, 0.0, -0.5]], dtype=torch.float64))


def test_step_size_mode_scales_the_base_direction_per_tensor():
    env = parallel_env("DiracGAN-v0", base_lr={"generator": 0.1, "discriminator": 0.2}, log10_range=1.0,
                       dtype=torch.float64, init_std=0.5)
    env.reset(seed=1)
    o = env.batched_env._obs
    theta, psi = o["generator"].params["theta"].clone(), o["discriminator"].params["psi"].clone()
    g_theta, g_psi = o["generator"].grads["theta"].clone(), o["discriminator"].grads["psi"].clone()
    env.step({"generator": np.array([1.0]), "discriminator": np.array([0.0])})
    torch.testing.assert_close(env.batched_env.params["generator"]["theta"], theta - 1.0 * g_theta)
    torch.testing.assert_close(env.batched_env.params["discriminator"]["psi"], psi - 0.2 * g_psi)


def test_rewards_zero_sum_and_quality():
    env = parallel_env("DiracGAN-v0", dtype=torch.float64, init_std=0.5)
    env.reset(seed=0)
    _, rew, *_ = env.step({a: np.zeros(1) for a in env.agents})
    o = env.batched_env._obs
    assert rew["generator"] == pytest.approx(-float(o["generator"].loss))
    assert rew["discriminator"] == pytest.approx(-float(o["discriminator"].loss))
    assert rew["generator"] == pytest.approx(-rew["discriminator"])  # the plain GAN loss is zero-sum

    env = parallel_env("DiracGAN-v0", reward_mode="quality", dtype=torch.float64, init_std=0.5)
    _, infos = env.reset(seed=0)
    q0, total = infos["generator"]["quality"], 0.0
    for _ in range(5):
        _, rew, _, _, infos = env.step({a: np.full(1, 0.5) for a in env.agents})
        assert rew["generator"] == rew["discriminator"]
        total += rew["generator"]
    assert total == pytest.approx(infos["generator"]["quality"] - q0, abs=1e-9)


def test_divergence_terminates_both_agents_with_the_penalty():
    env = parallel_env("DiracGAN-v0", loss="wgan", action_mode="step_size", base_lr=1.0,
                       divergence_threshold=20.0, divergence_penalty=-3.0)
    env.reset(seed=0)
    for _ in range(100):
        obs, rew, term, trunc, infos = env.step({a: np.ones(1) for a in env.agents})
        if term["generator"]:
            break
    assert term == {"generator": True, "discriminator": True}
    assert rew == {"generator": -3.0, "discriminator": -3.0} and infos["generator"]["diverged"]
    assert env.agents == []
    for a in env.possible_agents:
        assert obs[a] in env.observation_space(a)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_truncation_at_max_cycles():
    env = parallel_env("Bilinear-v0", max_cycles=3, n=3)
    env.reset(seed=0)
    truncs = []
    while env.agents:
        *_, trunc, _ = env.step({a: env.action_space(a).sample() for a in env.agents})
        truncs.append(trunc["generator"])
    assert truncs == [False, False, True]


@pytest.mark.parametrize("kwargs, match", [
    ({"env_id": "Nope-v0"}, "unknown environment id"),
    ({"env_id": "DiracGAN-v0", "action_mode": "lr"}, "unknown action_mode"),
    ({"env_id": "DiracGAN-v0", "reward_mode": "win"}, "unknown reward_mode"),
    ({"env_id": "DiracGAN-v0", "base": "rmsprop"}, "unknown base"),
    ({"env_id": "DiracGAN-v0", "max_update": 0.0}, "max_update"),
    ({"env_id": "DiracGAN-v0", "max_cycles": 0}, "max_cycles"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        parallel_env(**kwargs)


def test_bad_actions_raise_clear_errors():
    env = parallel_env("Bilinear-v0", action_mode="update", n=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    env.reset(seed=0)
    ok = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="one action per live agent"):
        env.step({"generator": ok})
    with pytest.raises(ValueError, match="shape"):
        env.step({"generator": ok, "discriminator": np.zeros(2)})
    with pytest.raises(ValueError, match="finite"):
        env.step({"generator": ok, "discriminator": np.array([0.0, np.inf, 0.0])})
    with pytest.raises(ValueError, match="unknown agent"):
        env.action_space("critic")


# --- state, the AEC env, rendering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_aec_env_passes_api_test(env_id):
    aec = aec_env(env_id, **SMALL_KWARGS[env_id])
    assert isinstance(aec, AECEnv) and aec.possible_agents == ["generator", "discriminator"]
    # api_test's advice (it warns, never fails): name agents "<descriptor>_<number>" (these are the game's two
    # players) and, where the players have different numbers of tensors, that their observations differ in size
    advice = ["We recommend agents to be named"]
    if aec.observation_space("generator") != aec.observation_space("discriminator"):
        advice += ["Agents have different observation space sizes", "Observations are different shapes"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api_test(aec, num_cycles=8)
    assert [str(w.message) for w in caught if not any(a in str(w.message) for a in advice)] == []


def test_aec_env_seed_test_and_state_test():
    seed_test(lambda: aec_env("Bilinear-v0", reward_mode="quality", max_cycles=6, n=3), num_cycles=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # state_test only warns
        state_test(aec_env("Bilinear-v0", n=3, max_cycles=6), parallel_env("Bilinear-v0", n=3), num_cycles=6)


def test_aec_env_plays_the_parallel_game_and_clips_out_of_box_actions(caplog):
    """The generator acts, then the discriminator; the game steps when both have acted, exactly as the parallel
    env does with the same actions (an out-of-box action clipped, with PettingZoo's logged warning)."""
    par = parallel_env("DiracGAN-v0", dtype=torch.float64, init_std=0.5)
    aec = aec_env("DiracGAN-v0", dtype=torch.float64, init_std=0.5)
    par.reset(seed=2)
    aec.reset(seed=2)
    actions = [{"generator": np.array([0.5]), "discriminator": np.array([-0.25])},
               {"generator": np.array([1.0]), "discriminator": np.array([1.0])}]
    for a in actions:
        obs, rewards, *_ = par.step(a)
        for agent in aec.agents:
            assert aec.agent_selection == agent
            aec.step(a[agent])
        for agent in par.possible_agents:
            np.testing.assert_array_equal(aec.observe(agent), obs[agent])
            assert aec.rewards[agent] == rewards[agent]
        np.testing.assert_array_equal(aec.state(), par.state())
    aec.step(np.array([7.0], dtype=np.float32))
    assert "Received an action [7.] that was outside action space" in caplog.text  # PettingZoo's EnvLogger
    aec.step(np.array([0.0], dtype=np.float32))
    par.step({"generator": np.array([1.0]), "discriminator": np.array([0.0])})
    np.testing.assert_array_equal(aec.state(), par.state())
    with pytest.raises(AssertionError, match=r"reset\(\) needs to be called before step"):  # OrderEnforcingWrapper
        aec_env("DiracGAN-v0").step(np.zeros(1))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_is_both_observations_for_a_centralized_critic(env_id):
    par = parallel_env(env_id, **SMALL_KWARGS[env_id])
    with pytest.raises(RuntimeError, match="call reset"):
        par.state()
    obs, _ = par.reset(seed=0)
    spaces_ = [par.observation_space(a) for a in par.possible_agents]
    assert par.state_space.shape == (sum(s.shape[0] for s in spaces_),) and par.state_space.dtype == np.float32
    np.testing.assert_array_equal(par.state_space.low, np.concatenate([s.low for s in spaces_]))
    for _ in range(3):
        state = par.state()
        assert state in par.state_space
        np.testing.assert_array_equal(state, np.concatenate([obs["generator"], obs["discriminator"]]))
        obs, *_ = par.step({a: par.action_space(a).sample() for a in par.agents})


def test_render_test_passes_on_the_aec_and_parallel_envs():
    """PettingZoo's render_test (it makes the env with render_mode="human", then plays every mode of the
    metadata): rgb_array charts, and the human window (matplotlib, headless here) with render() -> None."""
    import matplotlib

    matplotlib.use("Agg")
    render_test(lambda render_mode=None: aec_env("DiracGAN-v0", init_std=0.5, render_mode=render_mode))
    shown, drawn = (parallel_env("Bilinear-v0", render_mode=mode, n=3) for mode in ("human", "rgb_array"))
    for e in (shown, drawn):
        e.reset(seed=0)
        e.step({a: np.full(e.action_space(a).shape, 0.5, dtype=np.float32) for a in e.agents})
    assert shown.render() is None
    np.testing.assert_array_equal(np.asarray(shown._window[1].get_array()), drawn.render())  # the same chart
    shown.close()
    assert shown._window is None

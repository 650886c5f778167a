"""The Gymnasium faces: StepSizeEnv (single seed), StepSizeVectorEnv (batched) and their registration."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import minmax_envs
from minmax_envs.gym_env import StepSizeEnv
from minmax_envs.step_size_control import OBS_NAMES
from minmax_envs.vector_env import StepSizeVectorEnv
from tests.helpers import BATCHED_IDS, ENV_IDS, SMALL_KWARGS


def _gym_id(env_id: str) -> str:
    return f"minmax_envs/{env_id}"


# --- registration -------------------------------------------------------------------------------
def test_every_id_is_registered_with_gymnasium():
    ids = minmax_envs.register_gymnasium_envs()  # idempotent
    assert ids == [_gym_id(i) for i in ENV_IDS]
    for env_id in ENV_IDS:
        gspec = gymnasium.spec(_gym_id(env_id))
        assert gspec.max_episode_steps == minmax_envs.spec(env_id).max_episode_steps
        assert gspec.kwargs == {"env_id": env_id}
        assert (gspec.vector_entry_point is not None) == (env_id in BATCHED_IDS)


def test_make_gives_step_size_env_under_time_limit(no_warnings):
    env = gymnasium.make("minmax_envs/DiracGAN-v0", **SMALL_KWARGS["DiracGAN-v0"])
    assert isinstance(env.unwrapped, StepSizeEnv)
    assert env.spec.max_episode_steps == minmax_envs.spec("DiracGAN-v0").max_episode_steps
    short = gymnasium.make("minmax_envs/DiracGAN-v0", max_episode_steps=3, horizon=3)
    short.reset(seed=0)
    flags = [short.step(short.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


# --- checkers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id, no_warnings):
    env = gymnasium.make(_gym_id(env_id), **SMALL_KWARGS[env_id])
    gym_check_env(env.unwrapped)  # the raw env, as check_env recommends; its spec comes from make
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id, no_warnings):
    env = gymnasium.make(_gym_id(env_id), **SMALL_KWARGS[env_id])
    sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_wrapped_episode_stays_in_spaces_without_warnings(env_id, no_warnings):
    # PassiveEnvChecker (added by make) warns on any out-of-space or malformed output
    env = gymnasium.make(_gym_id(env_id), max_episode_steps=4, horizon=4, steps_per_action=2, **SMALL_KWARGS[env_id])
    env.action_space.seed(0)
    obs, info = env.reset(seed=5)
    assert obs in env.observation_space and obs.shape == (len(OBS_NAMES),)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space and isinstance(reward, float) and np.isfinite(reward)
        done = terminated or truncated
    assert info["game_step"] == 8 or info["diverged"]


# --- behaviour of the single env ---------------------------------------------------------------------
def test_action_maps_to_log_step_sizes_and_sgda_direction():
    env = StepSizeEnv("DiracGAN-v0", base_lr={"generator": 0.02, "discriminator": 0.05}, log10_range=2.0,
                      dtype=torch.float64)
    env.reset(seed=0)
    b = env.batched_env
    theta, psi = b.params["generator"]["theta"].clone(), b.params["discriminator"]["psi"].clone()
    g_theta = b._obs["generator"].grads["theta"].clone()
    g_psi = b._obs["discriminator"].grads["psi"].clone()
    _, _, _, _, info = env.step(np.array([-0.5, 0.5], dtype=np.float32))  # [generator, discriminator]
    lr_d, lr_g = 0.05 * 10 ** (0.5 * 2.0), 0.02 * 10 ** (-0.5 * 2.0)
    assert info["lr_discriminator"] == pytest.approx(lr_d) and info["lr_generator"] == pytest.approx(lr_g)
    torch.testing.assert_close(b.params["generator"]["theta"], theta - lr_g * g_theta)
    torch.testing.assert_close(b.params["discriminator"]["psi"], psi - lr_d * g_psi)


def test_nsgda_base_steps_have_the_chosen_norm_and_steps_per_action_counts():
    env = StepSizeEnv("Bilinear-v0", base="nsgda", base_lr=0.03, steps_per_action=3, dtype=torch.float64, n=4)
    env.reset(seed=1)
    x0 = env.batched_env.params["generator"]["x"].clone()
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert info["game_step"] == 3
    # three normalized steps of norm 0.03 each: the displacement is at most 0.09 and more than 0
    moved = float((env.batched_env.params["generator"]["x"] - x0).norm())
    assert 0 < moved <= 0.09 + 1e-12


def test_observation_layout():
    env = StepSizeEnv("DiracGAN-v0", dtype=torch.float64, horizon=10, init_std=0.5)
    obs, info = env.reset(seed=2)
    o = env.batched_env._obs
    g_t, g_p = float(o["generator"].grads["theta"].abs()), float(o["discriminator"].grads["psi"].abs())
    p_t, p_p = float(o["generator"].params["theta"].abs()), float(o["discriminator"].params["psi"].abs())
    expected = [np.log10(g_t), np.log10(p_t), float(o["generator"].loss), np.log10(g_p), np.log10(p_p),
                float(o["discriminator"].loss), np.log10(g_t / g_p), 0.0, info["quality"], 0.0, 0.0]  # no update yet
    assert OBS_NAMES[:3] == ("generator/log10_grad_norm", "generator/log10_param_norm", "generator/loss")
    assert OBS_NAMES[6] == "log10_grad_ratio" and OBS_NAMES[9] == "generator/log10_update_norm"
    np.testing.assert_allclose(obs, np.array(expected, dtype=np.float32), rtol=1e-5, atol=1e-6)
    assert info["quality"] == pytest.approx(-np.hypot(p_t, p_p))
    before = {pl: float(env.batched_env._obs[pl].params[k]) for pl, k in (("generator", "theta"),
                                                                          ("discriminator", "psi"))}
    obs, *_ = env.step(np.array([0.5, -0.5]))
    assert obs[OBS_NAMES.index("progress")] == pytest.approx(0.1)
    after = {pl: float(env.batched_env._obs[pl].params[k]) for pl, k in (("generator", "theta"),
                                                                         ("discriminator", "psi"))}
    for pl in ("generator", "discriminator"):  # |update| = |param change| for these scalar players
        assert obs[OBS_NAMES.index(f"{pl}/log10_update_norm")] == pytest.approx(
            np.log10(abs(after[pl] - before[pl])), rel=1e-5)


def test_rewards_sum_to_the_quality_improvement():
    env = StepSizeEnv("DiracGAN-v0", base_lr=0.1, dtype=torch.float64, init_std=0.5)
    _, info = env.reset(seed=3)
    q0, total = info["quality"], 0.0
    rng = np.random.default_rng(0)
    for _ in range(10):
        _, r, terminated, _, info = env.step(rng.uniform(-1, 1, 2))
        assert not terminated
        total += r
    assert total == pytest.approx(info["quality"] - q0, abs=1e-9)


def test_divergence_terminates_with_the_penalty_and_obs_stay_in_space():
    env = StepSizeEnv("DiracGAN-v0", loss="wgan", base_lr=1.0, divergence_threshold=20.0, divergence_penalty=-2.5)
    env.reset(seed=0)
    for _ in range(100):
        obs, r, terminated, truncated, info = env.step(np.ones(2, dtype=np.float32))
        assert obs in env.observation_space and np.isfinite(r)
        if terminated:
            break
    assert terminated and info["diverged"] and r == -2.5 and not truncated
    obs, r, terminated, *_ = env.step(np.ones(2))  # stepping a finished episode: frozen, no reward
    assert terminated and r == 0.0 and obs in env.observation_space


def test_seeding_reset_without_seed_follows_np_random():
    a, b = StepSizeEnv("Bilinear-v0", n=3), StepSizeEnv("Bilinear-v0", n=3)
    np.testing.assert_array_equal(a.reset(seed=11)[0], b.reset(seed=11)[0])
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])
    assert not np.array_equal(a.reset(seed=11)[0], a.reset(seed=12)[0])


def test_train_split_draws_seeds_disjoint_from_every_evaluation_seed():
    train, held = StepSizeEnv("Bilinear-v0", split="train", n=3), StepSizeEnv("Bilinear-v0", split="eval", n=3)
    train.reset(seed=0)
    held.reset(seed=0)
    for _ in range(20):
        _, info = train.reset()
        assert 2**20 <= int(train.batched_env.seeds[0]) < 2**40
        held.reset()
        assert 0 <= int(held.batched_env.seeds[0]) < 2**20
    venv = gymnasium.make_vec("minmax_envs/Bilinear-v0", num_envs=4, vectorization_mode="vector_entry_point",
                              split="train", n=3)
    venv.reset()  # no seed: every slot draws a training seed
    assert (venv.unwrapped.batched_env.seeds >= 2**20).all()


def test_adam_base_steps_along_adams_first_step():
    """Adam's first step at learning rate 1 is the sign of the gradient per coordinate, so the update
    norm is lr for the scalar Dirac players."""
    env = StepSizeEnv("DiracGAN-v0", base="adam", base_lr=0.1, dtype=torch.float64, init_std=0.5)
    obs, _ = env.reset(seed=1)
    obs, *_ = env.step(np.zeros(2))
    for pl in ("generator", "discriminator"):
        assert obs[OBS_NAMES.index(f"{pl}/log10_update_norm")] == pytest.approx(-1.0, abs=1e-5)


def test_actions_outside_the_box_are_clipped():
    a, b = StepSizeEnv("DiracGAN-v0"), StepSizeEnv("DiracGAN-v0")
    a.reset(seed=0)
    b.reset(seed=0)
    np.testing.assert_array_equal(a.step(np.array([5.0, -7.0]))[0], b.step(np.array([1.0, -1.0]))[0])


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"env_id": "Nope-v0"}, "unknown environment id"),
    ({"env_id": "DiracGAN-v0", "base": "rmsprop"}, "unknown base 'rmsprop'; choose one of sgda, nsgda, adam"),
    ({"env_id": "DiracGAN-v0", "base": "adam", "momentum": 0.9}, "base='adam' has its own moments"),
    ({"env_id": "DiracGAN-v0", "split": "test"}, "unknown split 'test'; choose one of None, 'train', 'eval'"),
    ({"env_id": "DiracGAN-v0", "base": "nsgda", "scope": "row"}, "unknown scope"),
    ({"env_id": "DiracGAN-v0", "momentum": 1.0}, "momentum"),
    ({"env_id": "DiracGAN-v0", "base_lr": -0.1}, "base_lr"),
    ({"env_id": "DiracGAN-v0", "base_lr": {"generator": 0.1}}, "base_lr"),
    ({"env_id": "DiracGAN-v0", "log10_range": float("nan")}, "log10_range"),
    ({"env_id": "DiracGAN-v0", "steps_per_action": 0}, "steps_per_action"),
    ({"env_id": "DiracGAN-v0", "horizon": 2.5}, "horizon"),
    ({"env_id": "DiracGAN-v0", "divergence_penalty": float("-inf")}, "divergence_penalty"),
    ({"env_id": "DiracGAN-v0", "not_a_game_arg": 1}, "unexpected keyword argument 'not_a_game_arg'"),
    ({"env_id": "DiracGAN-v0", "render_mode": "human"}, "render"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StepSizeEnv(**kwargs)


def test_bad_ids_and_actions_raise_clear_errors():
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("minmax_envs/Nope-v0")
    env = StepSizeEnv("DiracGAN-v0")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    for bad, match in [(np.zeros(3), "shape"), (np.zeros((1, 2)), "shape"), ([0.0, np.nan], "finite"),
                       ("fast", "action")]:
        with pytest.raises(ValueError, match=match):
            env.step(bad)
    vec = StepSizeVectorEnv(2, "DiracGAN-v0")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros(2))
    with pytest.raises(ValueError, match="num_envs"):
        vec.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="num_envs"):
        StepSizeVectorEnv(0, "DiracGAN-v0")


# --- vector env --------------------------------------------------------------------------------------
def test_make_vec_gives_the_native_vector_env_with_gymnasium_spaces(no_warnings):
    n = 3
    vec = gymnasium.make_vec("minmax_envs/DiracGAN-v0", num_envs=n, vectorization_mode="vector_entry_point",
                             **SMALL_KWARGS["DiracGAN-v0"])
    assert isinstance(vec, StepSizeVectorEnv) and vec.num_envs == n
    assert vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert vec.max_episode_steps == minmax_envs.spec("DiracGAN-v0").max_episode_steps
    single = StepSizeEnv("DiracGAN-v0")
    assert vec.single_observation_space == single.observation_space
    assert vec.single_action_space == single.action_space
    assert vec.observation_space == batch_space(single.observation_space, n)
    assert vec.action_space == batch_space(single.action_space, n)
    obs, info = vec.reset(seed=0)
    assert obs in vec.observation_space and obs.dtype == np.float32
    vec.action_space.seed(0)
    obs2, rew, term, trunc, info2 = vec.step(vec.action_space.sample())
    assert obs2 in vec.observation_space
    assert rew.shape == (n,) and rew.dtype == np.float64
    assert term.shape == trunc.shape == (n,) and term.dtype == trunc.dtype == np.bool_
    assert not np.shares_memory(obs, obs2) and info2["quality"].shape == (n,) and info2["_quality"].all()


@pytest.mark.parametrize("env_id", BATCHED_IDS)
def test_vector_slot_i_equals_single_env_seeded_s_plus_i(env_id):
    n, s, steps = 3, 20, 3
    kw = {**SMALL_KWARGS[env_id], "dtype": torch.float64, "steps_per_action": 2}
    vec = StepSizeVectorEnv(n, env_id, **kw)
    obs_v, _ = vec.reset(seed=s)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    traj_v = [obs_v]
    rew_v = []
    for t in range(steps):
        o, r, *_ = vec.step(actions[t])
        traj_v.append(o)
        rew_v.append(r)
    for i in range(n):
        single = StepSizeEnv(env_id, **kw)
        o, _ = single.reset(seed=s + i)
        np.testing.assert_allclose(o, traj_v[0][i], rtol=1e-5, atol=1e-5)
        for t in range(steps):
            o, r, *_ = single.step(actions[t, i])
            np.testing.assert_allclose(o, traj_v[t + 1][i], rtol=1e-5, atol=1e-5)
            assert r == pytest.approx(rew_v[t][i], abs=1e-6)


def _sync_and_native(num_envs, **kw):
    sync = gymnasium.make_vec("minmax_envs/DiracGAN-v0", num_envs=num_envs, vectorization_mode="sync", **kw)
    native = gymnasium.make_vec("minmax_envs/DiracGAN-v0", num_envs=num_envs,
                                vectorization_mode="vector_entry_point", **kw)
    return sync, native


@pytest.mark.parametrize("agent_kw", [{"base": "sgda"},
                                      {"base": "nsgda", "momentum": 0.5, "steps_per_action": 2}])
def test_vector_env_matches_gymnasiums_sync_vector_env_through_autoresets(agent_kw):
    # short episodes and a low divergence threshold: both truncation and divergence autoresets happen;
    # with momentum, the base agent's state must restart with each new episode
    kw = {"max_episode_steps": 4, "horizon": 4, "loss": "wgan", "base_lr": 0.2, "divergence_threshold": 3.0,
          "init_std": 0.5, "dtype": torch.float64, **agent_kw}
    sync, native = _sync_and_native(3, **kw)
    assert sync.metadata["autoreset_mode"] == native.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    o_s, _ = sync.reset(seed=7)
    o_n, _ = native.reset(seed=7)
    np.testing.assert_allclose(o_n, o_s, atol=1e-6)
    rng = np.random.default_rng(1)
    saw_term = saw_trunc = False
    for _ in range(14):
        a = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        o_s, r_s, te_s, tr_s, _ = sync.step(a)
        o_n, r_n, te_n, tr_n, _ = native.step(a)
        np.testing.assert_allclose(o_n, o_s, atol=1e-6)
        np.testing.assert_allclose(r_n, r_s, atol=1e-9)
        np.testing.assert_array_equal(te_n, te_s)
        np.testing.assert_array_equal(tr_n, tr_s)
        saw_term |= te_n.any()
        saw_trunc |= (tr_n & ~te_n).any()
    assert saw_term and saw_trunc


def test_next_step_autoreset_ignores_the_action_and_restarts():
    vec = StepSizeVectorEnv(2, "DiracGAN-v0", max_episode_steps=2, init_std=0.5)
    first, _ = vec.reset(seed=0)
    for _ in range(2):
        obs, rew, term, trunc, _ = vec.step(np.zeros((2, 2), dtype=np.float32))
    assert trunc.all() and not term.any()
    obs, rew, term, trunc, info = vec.step(np.ones((2, 2), dtype=np.float32))
    assert (rew == 0).all() and not term.any() and not trunc.any()
    assert (obs[:, OBS_NAMES.index("progress")] == 0).all() and (info["game_step"] == 0).all()
    assert not info["_lr_generator"].any()
    # the new episodes draw fresh game seeds from each sub-env's own np_random
    assert not np.array_equal(obs, first)
    single = StepSizeEnv("DiracGAN-v0", init_std=0.5)
    single.reset(seed=1)
    np.testing.assert_allclose(single.reset()[0], obs[1], atol=1e-6)


def test_vector_env_records_episode_statistics():
    vec = gymnasium.wrappers.vector.RecordEpisodeStatistics(
        StepSizeVectorEnv(2, "Bilinear-v0", max_episode_steps=3, n=3))
    vec.reset(seed=0)
    for _ in range(3):
        *_, info = vec.step(np.zeros((2, 2), dtype=np.float32))
    assert info["_episode"].all() and (info["episode"]["l"] == 3).all()


def test_vector_reset_accepts_a_list_of_seeds():
    vec = StepSizeVectorEnv(3, "Bilinear-v0", n=3, dtype=torch.float64)
    obs, _ = vec.reset(seed=[5, 9, 2])
    for i, s in enumerate([5, 9, 2]):
        np.testing.assert_allclose(obs[i], StepSizeEnv("Bilinear-v0", n=3, dtype=torch.float64).reset(seed=s)[0],
                                   atol=1e-6)


# --- Stable-Baselines3 -------------------------------------------------------------------------------
def test_sb3_ppo_trains_briefly_and_predicts_valid_actions():
    from stable_baselines3 import PPO

    env = gymnasium.make("minmax_envs/DiracGAN-v0", **SMALL_KWARGS["DiracGAN-v0"])
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    model.learn(total_timesteps=256)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action in env.action_space
    obs, reward, *_ = env.step(action)
    assert obs in env.observation_space and np.isfinite(reward)


# --- autoreset modes ---------------------------------------------------------------------------------
def _assert_infos_equal(native: dict, sync: dict, where: str = "info") -> None:
    """Equal infos by gymnasium's convention: a key whose ``_key`` mask is all false is the same as no key (the
    native env always reports the step sizes, masked out where a sub-env has none)."""
    native = {k: v for k, v in native.items()
              if not (f"_{k}" in native and not native[f"_{k}"].any()) and not (k[1:] in native
                                                                                 and not v.any())}
    assert set(native) == set(sync), (where, sorted(native), sorted(sync))
    for k, v in sync.items():
        if isinstance(v, dict):
            _assert_infos_equal(native[k], v, f"{where}[{k!r}]")
        elif v.dtype == object:  # final_obs: one observation per sub-env that ended, None elsewhere
            assert [x is None for x in native[k]] == [x is None for x in v], (where, k)
            for a, b in zip(native[k], v):
                if b is not None:
                    np.testing.assert_allclose(a, b, atol=1e-6)
        else:
            assert native[k].dtype == v.dtype, (where, k, native[k].dtype, v.dtype)
            np.testing.assert_allclose(native[k], v, atol=1e-9, equal_nan=True, err_msg=f"{where}[{k!r}]")


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_env_matches_gymnasiums_sync_vector_env_in_every_autoreset_mode(mode):
    """Observations, rewards, flags and infos (``final_obs`` / ``final_info`` in SAME_STEP) equal those of
    gymnasium's own SyncVectorEnv of StepSizeEnv, through truncations and divergences; with DISABLED both are
    restarted by ``reset(options={"reset_mask": ...})`` whenever a sub-env ended."""
    kw = {"max_episode_steps": 4, "horizon": 4, "loss": "wgan", "base_lr": 0.2, "divergence_threshold": 3.0,
          "init_std": 0.5, "dtype": torch.float64, "base": "sgda", "momentum": 0.5}
    sync = gymnasium.make_vec("minmax_envs/DiracGAN-v0", num_envs=3, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": mode}, **kw)
    native = gymnasium.make_vec("minmax_envs/DiracGAN-v0", num_envs=3, vectorization_mode="vector_entry_point",
                                autoreset_mode=mode, **kw)
    assert native.autoreset_mode is mode and native.metadata["autoreset_mode"] is mode
    assert sync.metadata["autoreset_mode"] is mode
    o_s, i_s = sync.reset(seed=7)
    o_n, i_n = native.reset(seed=7)
    np.testing.assert_allclose(o_n, o_s, atol=1e-6)
    _assert_infos_equal(i_n, i_s)
    rng = np.random.default_rng(1)
    saw_term = saw_trunc = restarted = False
    for _ in range(14):
        a = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        o_s, r_s, te_s, tr_s, i_s = sync.step(a)
        o_n, r_n, te_n, tr_n, i_n = native.step(a)
        np.testing.assert_allclose(o_n, o_s, atol=1e-6)
        np.testing.assert_allclose(r_n, r_s, atol=1e-9)
        np.testing.assert_array_equal(te_n, te_s)
        np.testing.assert_array_equal(tr_n, tr_s)
        _assert_infos_equal(i_n, i_s)
        assert ("final_obs" in i_n) == (mode is AutoresetMode.SAME_STEP and (te_n | tr_n).any())
        saw_term |= te_n.any()
        saw_trunc |= (tr_n & ~te_n).any()
        if mode is AutoresetMode.DISABLED and (te_n | tr_n).any():
            ended = te_n | tr_n
            o_s, i_s = sync.reset(options={"reset_mask": ended.copy()})
            o_n, i_n = native.reset(options={"reset_mask": ended.copy()})
            np.testing.assert_allclose(o_n, o_s, atol=1e-6)
            _assert_infos_equal(i_n, i_s)
            restarted = True
    assert saw_term and saw_trunc
    assert restarted == (mode is AutoresetMode.DISABLED)


def test_disabled_autoreset_refuses_to_step_an_ended_sub_env():
    vec = StepSizeVectorEnv(2, "DiracGAN-v0", max_episode_steps=2, autoreset_mode="Disabled", init_std=0.5)
    vec.reset(seed=0)
    for _ in range(2):
        *_, trunc, _ = vec.step(np.zeros((2, 2), dtype=np.float32))
    assert trunc.all()
    with pytest.raises(RuntimeError, match=r"sub-env\(s\) \[0, 1\] ended and autoreset_mode is DISABLED: restart "
                                           r"them with reset\(options=\{'reset_mask': mask\}\)"):
        vec.step(np.zeros((2, 2), dtype=np.float32))
    obs, info = vec.reset(seed=[None, 5], options={"reset_mask": np.array([False, True])})
    assert info["_quality"].tolist() == [False, True]
    np.testing.assert_allclose(obs[1], StepSizeEnv("DiracGAN-v0", init_std=0.5).reset(seed=5)[0], atol=1e-6)
    with pytest.raises(RuntimeError, match=r"sub-env\(s\) \[0\] ended"):
        vec.step(np.zeros((2, 2), dtype=np.float32))


def test_reset_mask_restarts_only_the_masked_sub_envs_in_next_step_mode():
    vec = StepSizeVectorEnv(3, "Bilinear-v0", n=3, dtype=torch.float64)
    twin = StepSizeVectorEnv(3, "Bilinear-v0", n=3, dtype=torch.float64)
    vec.reset(seed=0)
    twin.reset(seed=0)
    a = np.full((3, 2), 0.3, dtype=np.float32)
    for _ in range(2):
        before, *_ = vec.step(a)
        twin.step(a)
    obs, info = vec.reset(seed=40, options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs[[0, 2]], before[[0, 2]])  # the others are where they were
    np.testing.assert_allclose(obs[1], StepSizeEnv("Bilinear-v0", n=3, dtype=torch.float64).reset(seed=41)[0],
                               atol=1e-6)
    assert info["game_step"].tolist() == [0, 0, 0] and info["_game_step"].tolist() == [False, True, False]
    o_v, *_ = vec.step(a)
    o_t, *_ = twin.step(a)
    np.testing.assert_array_equal(o_v[[0, 2]], o_t[[0, 2]])


@pytest.mark.parametrize("options, error, match", [
    ({"reset_mask": [True, False]}, TypeError, "must be a numpy array of dtype bool"),
    ({"reset_mask": np.array([1, 0])}, TypeError, "must be a numpy array of dtype bool"),
    ({"reset_mask": np.array([True])}, ValueError, r"must have shape \(2,\) and at least one True entry"),
    ({"reset_mask": np.array([False, False])}, ValueError, "at least one True entry"),
])
def test_bad_reset_masks_raise_clear_errors(options, error, match):
    vec = StepSizeVectorEnv(2, "DiracGAN-v0")
    with pytest.raises(RuntimeError, match="call reset"):
        vec.reset(options={"reset_mask": np.array([True, False])})
    vec.reset(seed=0)
    with pytest.raises(error, match=match):
        vec.reset(options=options)

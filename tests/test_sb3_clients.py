"""Stable-Baselines3 as its users call it, with a string id (it then asks for render_mode="rgb_array"), and
the rendering of every control face."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils import seeding

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
                                  lambda: minmax_envs.parallel_env("DiracGAN-v0", render_mode="ansi")])
def test_unknown_render_modes_are_refused(make):
    with pytest.raises(ValueError, match=r"renders ('human', )?'rgb_array' \(a chart of the episode so far\); "
                                         r"render_mode must be None or one of them, got '(human|ansi)'"):
        make()


# --- the SB3 VecEnv over the native vector env ---------------------------------------------------------------------
def _both(n: int, **kw):
    """The native SB3 VecEnv and SB3's DummyVecEnv of n gymnasium.make envs, same id and arguments."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from minmax_envs.sb3_vec_env import StepSizeSB3VecEnv

    def make():
        return gymnasium.make("minmax_envs/DiracGAN-v0", **kw)

    return StepSizeSB3VecEnv(n, "DiracGAN-v0", **kw), DummyVecEnv([make] * n)


def _assert_same_infos(native: list[dict], dummy: list[dict]) -> None:
    assert len(native) == len(dummy)
    for a, b in zip(native, dummy):
        assert set(a) == set(b), (sorted(a), sorted(b))
        for k, v in b.items():
            if k == "terminal_observation":
                np.testing.assert_allclose(a[k], v, atol=1e-6)
            else:
                assert type(a[k]) is type(v), (k, type(a[k]), type(v))
                assert a[k] == pytest.approx(v, abs=1e-9, nan_ok=True), k


def test_sb3_vec_env_steps_as_dummy_vec_env_of_the_single_env_through_same_step_resets():
    """Observations, rewards, dones, infos (terminal_observation, TimeLimit.truncated) and reset_infos equal
    those of SB3's DummyVecEnv of gymnasium.make envs, seeded alike, through truncations and divergences."""
    kw = {"max_episode_steps": 4, "horizon": 4, "loss": "wgan", "base_lr": 0.2, "divergence_threshold": 3.0,
          "init_std": 0.5, "dtype": torch.float64, "momentum": 0.5}
    native, dummy = _both(3, **kw)
    assert native.seed(7) == dummy.seed(7) == [7, 8, 9]
    np.testing.assert_allclose(native.reset(), dummy.reset(), atol=1e-6)
    _assert_same_infos(native.reset_infos, dummy.reset_infos)
    rng = np.random.default_rng(1)
    saw_term = saw_trunc = False
    for _ in range(14):
        a = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        o_n, r_n, d_n, i_n = native.step(a)
        o_d, r_d, d_d, i_d = dummy.step(a)
        np.testing.assert_allclose(o_n, o_d, atol=1e-6)
        assert r_n.dtype == r_d.dtype == np.float32 and o_n.dtype == o_d.dtype == np.float32
        np.testing.assert_allclose(r_n, r_d, atol=1e-6)
        np.testing.assert_array_equal(d_n, d_d)
        _assert_same_infos(i_n, i_d)
        _assert_same_infos(native.reset_infos, dummy.reset_infos)
        saw_term |= any(d and not i["TimeLimit.truncated"] for d, i in zip(d_n, i_n))
        saw_trunc |= any(i["TimeLimit.truncated"] for i in i_n)
    assert saw_term and saw_trunc
    np.testing.assert_allclose(native.reset(), dummy.reset(), atol=1e-6)  # unseeded: each sub-env's np_random


def test_sb3_vec_env_makes_no_spurious_transitions_when_some_seeds_end():
    """Every step applies every action: a sub-env that ends (diverging or at the time limit, while others go on)
    returns done with its next episode's first observation (progress 0) and its last one in terminal_observation;
    no step ever ignores an action (as Gymnasium's NEXT_STEP autoreset does)."""
    from minmax_envs.sb3_vec_env import StepSizeSB3VecEnv
    from minmax_envs.step_size_control import OBS_NAMES

    horizon = 6
    venv = StepSizeSB3VecEnv(4, "DiracGAN-v0", max_episode_steps=horizon, loss="wgan", base_lr=0.2,
                             divergence_threshold=3.0, init_std=0.5)
    venv.seed(0)
    obs = venv.reset()
    progress = OBS_NAMES.index("progress")
    rng = np.random.default_rng(0)
    some_but_not_all = 0
    for _ in range(30):
        before = obs
        obs, rewards, dones, infos = venv.step(rng.uniform(-1, 1, (4, 2)).astype(np.float32))
        some_but_not_all += 0 < dones.sum() < 4
        for i in range(4):
            if dones[i]:
                assert obs[i, progress] == 0
                last = infos[i]["terminal_observation"][progress]
                assert last == pytest.approx(before[i, progress] + 1 / horizon)
                assert infos[i]["diverged"] or last == pytest.approx(1)
            else:
                assert obs[i, progress] == pytest.approx(before[i, progress] + 1 / horizon)
    assert some_but_not_all >= 3


def test_ppo_trains_on_the_sb3_vec_env_with_its_wrappers():
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor, VecNormalize

    from minmax_envs.sb3_vec_env import StepSizeSB3VecEnv

    venv = VecNormalize(VecMonitor(VecCheckNan(StepSizeSB3VecEnv(8, "DiracGAN-v0", max_episode_steps=8,
                                                                 init_std=0.5), raise_exception=True)))
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    model.learn(256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) == 256 // 8  # 8 episodes of 8 steps per 64
    rewards, lengths = evaluate_policy(model, venv, n_eval_episodes=4, return_episode_rewards=True)
    assert lengths == [8] * 4 and all(np.isfinite(rewards))


def test_sb3_vec_env_attributes_methods_and_seeds_as_sb3_expects():
    from minmax_envs.sb3_vec_env import StepSizeSB3VecEnv

    venv = StepSizeSB3VecEnv(3, "DiracGAN-v0", render_mode="rgb_array", max_episode_steps=5, init_std=0.5)
    single = StepSizeEnv("DiracGAN-v0")
    assert venv.num_envs == 3 and venv.observation_space == single.observation_space
    assert venv.action_space == single.action_space and venv.render_mode == "rgb_array"
    assert venv.get_attr("max_episode_steps") == [5, 5, 5] and venv.get_attr("env_id", indices=[1]) == ["DiracGAN-v0"]
    assert venv.get_attr("observation_space")[0] == single.observation_space
    assert venv.has_attr("control") and not venv.has_attr("nope")
    assert venv.env_is_wrapped(gymnasium.Wrapper) == [False] * 3
    venv.seed(3)
    venv.reset()
    assert [int(r.integers(1 << 30)) for r in venv.get_attr("np_random")] == \
        [int(seeding.np_random(s)[0].integers(1 << 30)) for s in (3, 4, 5)]  # each sub-env's own generator
    assert venv.vector_env.batched_env.seeds.tolist() == [3, 4, 5]
    venv.step(np.zeros((3, 2), dtype=np.float32))
    frames = venv.env_method("render", indices=[0, 2])
    assert len(frames) == 2 and all(_is_frame(f) for f in frames)
    assert _is_frame(venv.render())  # SB3 tiles the sub-envs' charts
    assert venv.env_method("get_wrapper_attr", "horizon") == [5, 5, 5]
    venv.set_attr("max_episode_steps", 7)
    assert venv.get_attr("max_episode_steps") == [7, 7, 7]
    with pytest.raises(ValueError, match=r"one batched env: set_attr\('max_episode_steps'\) sets it for all"):
        venv.set_attr("max_episode_steps", 3, indices=[0])
    with pytest.raises(ValueError, match=r"env_method\('reset'\): the 3 sub-envs are one batched env"):
        venv.env_method("reset")
    with pytest.raises(ValueError, match="do not pass autoreset_mode"):
        StepSizeSB3VecEnv(2, "DiracGAN-v0", autoreset_mode="SameStep")


def test_train_controller_trains_on_the_batched_vec_env_as_it_did_on_single_envs(tmp_path, monkeypatch):
    """baselines/train_controller.py steps its episodes as the seeds of one batched game (StepSizeSB3VecEnv); the
    controller it trains is the one SB3's DummyVecEnv of single envs gives with the same seeds."""
    import json

    from stable_baselines3.common.vec_env import DummyVecEnv

    import minmax_envs.sb3_vec_env as sb3_vec_env
    from baselines import train_controller
    from minmax_envs.evaluation import Suite, Task

    task = Task("dirac", "DiracGAN-v0", 20, 10, "distance", False, 0.5,
                {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.05, 0.2))
    (tmp_path / "suite.json").write_text(json.dumps(Suite("ctl", 1, (task,), budget=1, agents=("sgda",)).to_dict()))
    argv = ["--suite", str(tmp_path / "suite.json"), "--task", "dirac", "--total-timesteps", "256", "--num-envs", "4",
            "--n-steps", "32", "--out", str(tmp_path), "--evaluate", "false"]
    made = []
    native_class = sb3_vec_env.StepSizeSB3VecEnv

    def native(*args, **kwargs):
        made.append(native_class(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sb3_vec_env, "StepSizeSB3VecEnv", native)
    train_controller.main(argv + ["--name", "native"])
    assert len(made) == 1 and made[0].num_envs == 4

    def singles(num_envs, env_id, **kwargs):
        return DummyVecEnv([lambda: gymnasium.make(f"minmax_envs/{env_id}", **kwargs)] * num_envs)

    monkeypatch.setattr(sb3_vec_env, "StepSizeSB3VecEnv", singles)
    train_controller.main(argv + ["--name", "singles"])
    a = torch.load(tmp_path / "native.pt", weights_only=True)
    b = torch.load(tmp_path / "singles.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)

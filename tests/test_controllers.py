"""Learned step-size controllers: training with PPO, saving, loading, acting as an agent of the evaluation."""

from __future__ import annotations

import json
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from baselines import train_controller
from minmax_envs.cli import main as minmax
from minmax_envs.controllers import ControllerConfig, LearnedController, save_controller
from minmax_envs.evaluation import ResultStore, Suite, Task, bench
from minmax_envs.gym_env import StepSizeEnv

TASK = Task("dirac", "DiracGAN-v0", 20, 10, "distance", False, 0.5,
            {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.05, 0.2))
SUITE = Suite("ctl-tiny", 1, (TASK,), budget=1, tune_seeds=2, eval_seeds=3, agents=("sgda",))


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    """A controller from a tiny PPO run of baselines/train_controller.py (and its evaluation)."""
    out = tmp_path_factory.mktemp("ctl")
    suite = out / "suite.json"
    suite.write_text(json.dumps(SUITE.to_dict()))
    train_controller.main(["--suite", str(suite), "--task", "dirac", "--total-timesteps", "128", "--num-envs", "2",
                           "--n-steps", "32", "--eval-seeds", "3", "--out", str(out), "--threads", "1"])
    return out


@pytest.mark.parametrize("kwargs", [{"base": "adam"}, {"base": "nsgda", "split": "train"}, {"split": "eval"}])
def test_control_envs_pass_the_gymnasium_and_sb3_checkers(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(StepSizeEnv("MoG-Ring-v0", hidden=8, batch_size=16, eval_samples=50, **kwargs),
                      skip_render_check=True)
        sb3_check_env(StepSizeEnv("TwoMode-v0", d=30, **kwargs), warn=True)


def test_a_tiny_ppo_run_yields_a_loadable_agent_evaluated_on_held_out_seeds(controller):
    path = controller / "dirac.zip"
    assert path.is_file() and (controller / "dirac.json").is_file()
    settings = json.loads((controller / "dirac.json").read_text())
    assert settings["algorithm"] == "PPO" and settings["trained_on"]["split"] == "train"
    agent = LearnedController.load(path, 0.1, 0.1)
    assert agent.model.observation_space.shape == StepSizeEnv("DiracGAN-v0").observation_space.shape
    records = list(ResultStore(controller / "dirac-eval").records())
    learned = [r for r in records if r["agent"] == f"learned:{path}"]
    assert sorted(r["seed"] for r in learned if r["phase"] == "eval") == [0, 1, 2]  # held out: below 2**20
    assert {r["agent"] for r in records} == {"sgda", "nsgda", f"learned:{path}"}


def test_the_controller_acts_in_bench_as_it_does_in_its_gymnasium_env(controller):
    """A stored episode of learned:PATH is the StepSizeEnv episode of that seed with the policy's
    deterministic actions."""
    path = controller / "dirac.zip"
    agent = LearnedController.load(path, 0.1, 0.1)
    env = StepSizeEnv("DiracGAN-v0", base_lr=0.1, horizon=TASK.steps, **TASK.env_kwargs)
    for seed in (0, 2):
        obs, _ = env.reset(seed=seed)
        for _ in range(TASK.steps):
            obs, _, terminated, _, info = env.step(agent.model.predict(obs, deterministic=True)[0])
        batched = agent.run("DiracGAN-v0", TASK.steps, 0, 3, **TASK.env_kwargs)
        assert float(batched.metrics["distance"][seed]) == pytest.approx(-info["quality"], rel=1e-5, abs=1e-7)


def test_learned_agents_in_a_sweep_and_from_the_command_line(controller, tmp_path, capsys):
    path = controller / "dirac.zip"
    bench(SUITE, ["sgda", f"learned:{path}"], tmp_path, progress=False)
    ev = [r for r in ResultStore(tmp_path).records() if r["agent"] == f"learned:{path}"]
    assert len(ev) == 3 and all(np.isfinite(r["value"]) for r in ev)
    assert minmax(["run", "DiracGAN-v0", "--agent", f"learned:{path}", "--lr", "0.1", "--steps", "5", "--seeds", "2",
                   "--arg", "loss=wgan"]) == 0
    assert "distance" in capsys.readouterr().out


def test_bad_controller_paths_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="controller file .*missing.zip' does not exist"):
        LearnedController.load(tmp_path / "missing.zip")
    (tmp_path / "nojson.zip").write_bytes(b"PK")
    with pytest.raises(ValueError, match="has no settings file"):
        LearnedController.load(tmp_path / "nojson.zip")
    (tmp_path / "nojson.json").write_text("{not json")
    with pytest.raises(ValueError, match="settings .* are not valid"):
        LearnedController.load(tmp_path / "nojson.zip")
    (tmp_path / "nojson.json").write_text(json.dumps({"algorithm": "DQN"}))
    with pytest.raises(ValueError, match="unknown algorithm 'DQN'; choose one of PPO"):
        LearnedController.load(tmp_path / "nojson.zip")
    (tmp_path / "nojson.json").write_text(json.dumps({"algorithm": "PPO"}))
    with pytest.raises(ValueError, match="could not be loaded by stable-baselines3 PPO"):
        LearnedController.load(tmp_path / "nojson.zip")
    assert minmax(["bench", "--suite", "quick", "--agents", f"sgda,learned:{tmp_path / 'missing.zip'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_controller_for_another_observation_layout_is_refused(tmp_path):
    from stable_baselines3 import PPO

    small = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    env = gymnasium.make("Pendulum-v1")
    env.observation_space = small
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu")
    path = save_controller(model, ControllerConfig(), tmp_path / "odd")
    with pytest.raises(ValueError, match=r"expects observations of shape \(3,\)"):
        LearnedController.load(path, 0.1, 0.1).run("DiracGAN-v0", 2, 0, 1)
    torch.set_num_threads(1)  # keep the suite's setting whatever SB3 did

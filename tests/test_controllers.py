"""Learned step-size controllers: training with PPO, saving, loading, acting as an agent of the evaluation; the
saved format holds no code. Every bad controller file (crafted ones included: their code does not run) is a row of
the bad-input table, tests/test_bad_inputs.py; the controls here show that the crafted files do run code when
loaded unsafely."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from baselines import train_controller
from minmax_envs import controller_files
from minmax_envs.cli import main as minmax
from minmax_envs.controller_files import (
    LEGACY_CONTROL_KEYS,
    LEGACY_LAYOUT,
    ControllerConfig,
    Layout,
    LearnedController,
    check_controller,
    convert_sb3_zip,
    save_controller,
)
from minmax_envs.episode import EpisodeTask
from minmax_envs.evaluation import ResultStore, Suite, Task, bench
from minmax_envs.gym_env import StepSizeEnv
from minmax_envs.step_size_control import OBS_NAMES, ControlConfig
from tests.helpers import MALICIOUS_WEIGHTS, crafted_sb3_zip, marker

TASK = Task("dirac", "DiracGAN-v0", 20, 10, "distance", False, 0.5,
            {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.05, 0.2))
SUITE = Suite("ctl-tiny", 1, (TASK,), budget=1, tune_seeds=2, eval_seeds=3, agents=("sgda",))
DOCS = Path(__file__).resolve().parents[1] / "docs" / "controllers"


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    """A controller from a tiny PPO run of baselines/train_controller.py (and its evaluation)."""
    out = tmp_path_factory.mktemp("ctl")
    suite = out / "suite.json"
    suite.write_text(json.dumps(SUITE.to_dict()))
    train_controller.main(["--suite", str(suite), "--task", "dirac", "--total-timesteps", "128", "--num-envs", "2",
                           "--n-steps", "32", "--eval-seeds", "3", "--out", str(out), "--threads", "1"])
    torch.set_num_threads(1)  # keep the suite's setting whatever SB3 did
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    yield
    torch.set_num_threads(1)  # SB3 models set torch's thread count; keep the suite's


def _observations(n: int = 32, seed: int = 0) -> np.ndarray:
    """Observations of the step-size env's shape, spread over a range the policies saturate in and not."""
    return np.random.default_rng(seed).uniform(-3.0, 3.0, size=(n, 11)).astype(np.float32)


@pytest.mark.parametrize("kwargs", [{"base": "adam"}, {"base": "nsgda", "split": "train"}, {"split": "eval"}])
def test_control_envs_pass_the_gymnasium_and_sb3_checkers(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(StepSizeEnv("MoG-Ring-v0", hidden=8, batch_size=16, eval_samples=50, **kwargs),
                      skip_render_check=True)
        sb3_check_env(StepSizeEnv("TwoMode-v0", d=30, **kwargs), warn=True)


def test_a_tiny_ppo_run_yields_a_loadable_agent_evaluated_on_held_out_seeds(controller):
    path = controller / "dirac.pt"
    assert path.is_file() and (controller / "dirac.json").is_file() and not (controller / "dirac.zip").exists()
    settings = json.loads((controller / "dirac.json").read_text())
    assert settings["format"] == "minmax_envs.controller" and settings["format_version"] == 1
    assert settings["algorithm"] == "PPO" and settings["control"]["split"] == "train"
    assert settings["policy"]["class"] == "MlpPolicy" and settings["policy"]["kwargs"]["activation_fn"] == "Tanh"
    assert settings["layout"] == {"action": ["generator", "discriminator"], "observation": list(OBS_NAMES)}
    agent = LearnedController.load(path, 0.1, 0.1)
    assert agent.policy.observation_space.shape == StepSizeEnv("DiracGAN-v0").observation_space.shape
    records = list(ResultStore(controller / "dirac-eval").records())
    learned = [r for r in records if r["agent"] == f"learned:{path}"]
    assert sorted(r["seed"] for r in learned if r["phase"] == "eval") == [0, 1, 2]  # held out: below 2**20
    assert {r["agent"] for r in records} == {"sgda", "nsgda", f"learned:{path}"}


def test_the_controller_acts_in_bench_as_it_does_in_its_gymnasium_env(controller):
    """A stored episode of learned:PATH is the StepSizeEnv episode of that seed with the policy's
    deterministic actions."""
    agent = LearnedController.load(controller / "dirac.pt", 0.1, 0.1)
    env = StepSizeEnv("DiracGAN-v0", base_lr=0.1, horizon=TASK.steps, **TASK.env_kwargs)
    batched = agent.run(EpisodeTask("DiracGAN-v0", TASK.steps, 0, 3, env_kwargs=TASK.env_kwargs))
    for seed in (0, 2):
        obs, _ = env.reset(seed=seed)
        for _ in range(TASK.steps):
            obs, _, terminated, _, info = env.step(agent.policy.predict(obs, deterministic=True)[0])
        assert float(batched.metrics["distance"][seed]) == pytest.approx(-info["quality"], rel=1e-5, abs=1e-7)


def test_learned_agents_in_a_sweep_and_from_the_command_line(controller, tmp_path, capsys):
    path = controller / "dirac.pt"
    bench(SUITE, ["sgda", f"learned:{path}"], tmp_path, progress=False)
    ev = [r for r in ResultStore(tmp_path).records() if r["agent"] == f"learned:{path}"]
    assert len(ev) == 3 and all(np.isfinite(r["value"]) for r in ev)
    for name in (path, controller / "dirac", controller / "dirac.json"):  # NAME, NAME.pt or NAME.json
        assert minmax(["run", "DiracGAN-v0", "--agent", f"learned:{name}", "--lr", "0.1", "--steps", "5",
                       "--seeds", "2", "--arg", "loss=wgan"]) == 0
        assert "distance" in capsys.readouterr().out


# --- the format: round trips, the committed controllers, conversion --------------------------------------------
def _model(algorithm: str, **policy_kwargs):
    import stable_baselines3

    env = StepSizeEnv("DiracGAN-v0")
    extra = {"buffer_size": 64, "learning_starts": 0} if algorithm in ("SAC", "TD3", "DDPG") else {}
    return getattr(stable_baselines3, algorithm)("MlpPolicy", env, policy_kwargs=policy_kwargs or None, seed=0,
                                                 device="cpu", **extra)


@pytest.mark.parametrize("algorithm, policy_kwargs", [
    ("PPO", {}), ("PPO", {"net_arch": [16, 8], "activation_fn": torch.nn.ReLU, "log_std_init": -0.5}),
    ("A2C", {}), ("SAC", {"net_arch": [32]}), ("TD3", {}), ("DDPG", {"net_arch": {"pi": [8], "qf": [16]}}),
])
def test_save_then_load_gives_identical_weights_and_actions(tmp_path, algorithm, policy_kwargs):
    model = _model(algorithm, **policy_kwargs)
    config = ControllerConfig(algorithm=algorithm, control=ControlConfig(base="nsgda", log10_range=2.0))
    path = save_controller(model, config, tmp_path / "c")
    assert path == tmp_path / "c.pt" and (tmp_path / "c.json").is_file()
    loaded = LearnedController.load(path, 0.1, 0.2)
    assert type(loaded.policy) is type(model.policy) and loaded.config.control.base == "nsgda" and loaded.lr_g == 0.2
    for key, value in model.policy.state_dict().items():
        assert torch.equal(loaded.policy.state_dict()[key], value), key
    obs = _observations()
    np.testing.assert_array_equal(loaded.policy.predict(obs, deterministic=True)[0],
                                  model.predict(obs, deterministic=True)[0])


def test_loading_a_controller_leaves_torchs_global_generator_alone(controller):
    state = torch.random.get_rng_state()
    LearnedController.load(controller / "dirac.pt")
    assert torch.equal(torch.random.get_rng_state(), state)


# Observations of seed 0 (steps 0, 100, 300) and the actions the SB3 originals (controller.zip, PPO.load) took
# on them before their conversion to the weights-only format.
COMMITTED = {
    "two-mode-small": [
        ([-2.3865952491760254, 0.36015474796295166, 1.386174201965332, -4.38601016998291, -0.662623405456543,
          -1.386174201965332, -1.9994151592254639, 0.0, 0.05374883860349655, 0.0, 0.0],
         [-0.08237054198980331, 0.6680205464363098]),
        ([-1.8195747137069702, 0.3625462055206299, 1.3851306438446045, -4.147979259490967, -0.6575345396995544,
          -1.3851306438446045, -2.328404188156128, 0.20000000298023224, 0.05682355910539627, -2.518631935119629,
          -2.9825921058654785], [-0.318256139755249, 0.6667835712432861]),
        ([-2.5338945388793945, 0.8536428213119507, 0.002919726772233844, -2.6258444786071777, -0.17275084555149078,
          -0.002919726772233844, -0.09194996953010559, 0.6000000238418579, 0.26097264885902405, -1.5492746829986572,
          -3.3693385124206543], [0.4943930506706238, -0.23951247334480286]),
    ],
    "mog-ring-small": [
        ([-0.2864105701446533, 0.7344996929168701, 1.3212754726409912, -1.185802936553955, 0.7402600049972534,
          -1.3212754726409912, -0.8993923664093018, 0.0, 0.0, 0.0, 0.0], [0.29215583205223083, 0.2578901946544647]),
        ([-0.23333115875720978, 0.7665191888809204, 0.6381746530532837, -0.21551263332366943, 0.7584241628646851,
          -0.6381746530532837, 0.01781853288412094, 0.10000000149011612, 1.0, -1.9993362426757812,
          -2.1362595558166504], [-0.08889902383089066, -0.21954740583896637]),
        ([-0.35629644989967346, 0.7668565511703491, 1.0919594764709473, -0.45869120955467224, 0.7716218829154968,
          -1.0919594764709473, -0.10239475965499878, 0.30000001192092896, 2.0, -2.2060723304748535,
          -3.553781747817993], [-0.15809479355812073, -0.7157583832740784]),
    ],
}


@pytest.mark.parametrize("task", sorted(COMMITTED))
def test_the_committed_controllers_act_as_their_sb3_originals(task):
    assert not (DOCS / task / "controller.zip").exists()
    path, config = check_controller(DOCS / task / "controller.pt")
    assert config.trained_on["task"] == task and config.control.log10_range == 2.0
    policy = LearnedController.load(path).policy
    obs, actions = (np.array(x, dtype=np.float32) for x in zip(*COMMITTED[task]))
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], actions, rtol=1e-6, atol=1e-7)


# Final parameter sums of the committed controllers' episodes (20 actions, seeds 0 and 1, base step sizes
# lr_d = 0.1, lr_g = 0.05), as they were before the step-size env took the PLAYERS order: the controllers,
# trained discriminator first, must keep playing exactly these episodes.
COMMITTED_EPISODES = {
    "two-mode-small": ("TwoMode-v0", {"d": 100}, {"generator": [-0.18874131853954168, -0.1354805345290515],
                                                  "discriminator": [-0.7123785535486604, 1.1576811078393803]}),
    "mog-ring-small": ("MoG-Ring-v0", {"hidden": 32, "batch_size": 64, "eval_samples": 500},
                       {"generator": [2.861891436506994, -8.15774382854579],
                        "discriminator": [5.106243231392, 2.428998881325242]}),
}


def _param_sums(env) -> dict[str, list[float]]:
    return {pl: [float(sum(v[i].double().sum() for v in ps.values())) for i in range(env.num_seeds)]
            for pl, ps in env.params.items()}


WGAN = {"loss": "wgan", "init_std": 0.5}  # the Dirac GAN the layout tests play


def _played(agent, monkeypatch, *args, **kwargs):
    """``agent.run(EpisodeTask(*args, **kwargs))`` and the final parameter sums of the batched env it played on."""
    cores, make_core = [], controller_files.StepSizeCore

    def core(*a, **k):
        cores.append(make_core(*a, **k))
        return cores[-1]

    with monkeypatch.context() as m:
        m.setattr(controller_files, "StepSizeCore", core)
        result = agent.run(EpisodeTask(*args, **kwargs))
    return result, _param_sums(cores[-1].env)


@pytest.mark.parametrize("task", sorted(COMMITTED_EPISODES))
def test_the_committed_controllers_are_read_in_the_legacy_layout_and_replay_their_episodes(task, monkeypatch):
    assert "layout" not in json.loads((DOCS / task / "controller.json").read_text())
    agent = LearnedController.load(DOCS / task / "controller.pt", 0.1, 0.05)
    assert agent.layout == LEGACY_LAYOUT and agent.layout.action == ("discriminator", "generator")
    env_id, kwargs, sums = COMMITTED_EPISODES[task]
    _, got = _played(agent, monkeypatch, env_id, 20, 0, 2, env_kwargs=kwargs)
    for pl, expected in sums.items():
        np.testing.assert_allclose(got[pl], expected, rtol=1e-6, atol=1e-7)


def _legacy_and_default_twin(tmp_path):
    """The same policy twice: saved in the legacy layout, and with its input columns and its action rows
    permuted, saved in the default layout (``Layout()``). Each first-layer unit reads one observation entry only,
    so both compute exactly the same numbers (no sum changes its order)."""
    from stable_baselines3 import PPO

    legacy = PPO("MlpPolicy", StepSizeEnv("DiracGAN-v0"), seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
    twin = PPO("MlpPolicy", StepSizeEnv("DiracGAN-v0"), seed=1, device="cpu", policy_kwargs={"net_arch": [16]})
    state = legacy.policy.state_dict()
    for net in ("policy_net", "value_net"):
        w = state[f"mlp_extractor.{net}.0.weight"]
        keep = torch.zeros_like(w)
        keep[torch.arange(w.shape[0]), torch.arange(w.shape[0]) % w.shape[1]] = 1.0
        state[f"mlp_extractor.{net}.0.weight"] = w * keep
    state["action_net.bias"] = torch.tensor([0.3, -0.2])  # the two players act differently
    legacy.policy.load_state_dict(state)
    columns = [LEGACY_LAYOUT.observation.index(name) for name in OBS_NAMES]
    rows = [LEGACY_LAYOUT.action.index(pl) for pl in Layout().action]
    permuted = dict(state)
    for net in ("policy_net", "value_net"):
        permuted[f"mlp_extractor.{net}.0.weight"] = state[f"mlp_extractor.{net}.0.weight"][:, columns].contiguous()
    for key in ("action_net.weight", "action_net.bias", "log_std"):
        permuted[key] = state[key][rows].contiguous()
    twin.policy.load_state_dict(permuted)
    config = ControllerConfig(control=ControlConfig(log10_range=2.0))
    return (save_controller(legacy, config, tmp_path / "legacy", layout=LEGACY_LAYOUT),
            save_controller(twin, config, tmp_path / "default"))


def test_a_legacy_layout_controller_and_its_twin_in_the_default_layout_play_identical_episodes(tmp_path, monkeypatch):
    legacy_path, default_path = _legacy_and_default_twin(tmp_path)
    description = json.loads((tmp_path / "legacy.json").read_text())
    assert description["layout"]["action"] == ["discriminator", "generator"]
    del description["layout"]  # a description without a layout is read in the legacy layout
    (tmp_path / "legacy.json").write_text(json.dumps(description))
    runs = []
    for path in (legacy_path, default_path):
        agent = LearnedController.load(path, 0.1, 0.03)
        runs.append(_played(agent, monkeypatch, "DiracGAN-v0", 15, 0, 3, eval_every=5, env_kwargs=WGAN))
    (a, a_sums), (b, b_sums) = runs
    assert a_sums == b_sums
    assert [t for t, _ in a.trajectory] == [t for t, _ in b.trajectory] == [0, 5, 10, 15]
    for (_, ma), (_, mb) in zip(a.trajectory, b.trajectory):
        for key in ma:
            assert torch.equal(ma[key], mb[key]), key
    # the players do act differently: the twin with its action rows left in place plays another episode
    agent = LearnedController.load(default_path, 0.1, 0.03)
    agent.layout = Layout(action=("discriminator", "generator"))
    assert _played(agent, monkeypatch, "DiracGAN-v0", 15, 0, 3, env_kwargs=WGAN)[1] != b_sums


def test_a_description_holds_the_control_config_and_the_form_before_it_still_loads(tmp_path):
    control = ControlConfig(base="nsgda", scope="layer", log10_range=2.0, base_lr={"generator": 0.1,
                            "discriminator": 0.3}, horizon=9, split="train")
    path = save_controller(_model("PPO", net_arch=[8]), ControllerConfig(control=control), tmp_path / "c")
    description = json.loads((tmp_path / "c.json").read_text())
    assert description["control"] == json.loads(json.dumps(dataclasses.asdict(control)))
    assert not set(LEGACY_CONTROL_KEYS) & set(description)
    assert check_controller(path)[1].control == control
    # the form before "control": six of its settings at the top level, the others at their defaults
    old = {k: v for k, v in description.items() if k != "control"}
    old.update({k: description["control"][k] for k in LEGACY_CONTROL_KEYS})
    (tmp_path / "c.json").write_text(json.dumps(old))
    assert check_controller(path)[1].control == ControlConfig(base="nsgda", scope="layer", log10_range=2.0)
    del old["action"]  # the oldest descriptions have no action
    (tmp_path / "c.json").write_text(json.dumps(old))
    assert check_controller(path)[1].control.action == "step_sizes"
    (tmp_path / "c.json").write_text(json.dumps({**description, "base": "nsgda"}))
    with pytest.raises(ValueError, match=r"c\.json': the control settings are in 'control'; the top-level 'base'"):
        check_controller(path)
    (tmp_path / "c.json").write_text(json.dumps({**description, "control": {**description["control"], "lr": 1}}))
    with pytest.raises(ValueError, match=r"c\.json': control: unknown setting\(s\) 'lr'; allowed: base, momentum"):
        check_controller(path)


@pytest.mark.parametrize("layout, match", [
    ({"action": ["generator"], "observation": list(OBS_NAMES)}, r"layout action must list each of generator, "
                                                                 r"discriminator once"),
    ({"action": ["generator", "discriminator"], "observation": list(OBS_NAMES[:-1]) + ["quality"]},
     r"layout observation must list each of generator/log10_grad_norm, .* once, in the policy's order"),
    ({"action": ["generator", "discriminator"]}, r"layout must be an object with exactly the keys action, "
                                                 r"observation"),
])
def test_a_bad_layout_is_refused_naming_the_file(tmp_path, layout, match):
    path = save_controller(_model("PPO", net_arch=[8]), ControllerConfig(), tmp_path / "c")
    description = json.loads((tmp_path / "c.json").read_text())
    description["layout"] = layout
    (tmp_path / "c.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match=r"controller description '.*c\.json': " + match):
        check_controller(path)


def test_convert_sb3_zip_needs_the_explicit_opt_in_and_keeps_the_actions(tmp_path):
    model = _model("PPO", net_arch=[8])
    model.save(str(tmp_path / "old.zip"))
    (tmp_path / "old.json").write_text(json.dumps({"algorithm": "PPO", "base": "adam", "log10_range": 0.5}))
    with pytest.raises(ValueError, match=r"convert_sb3_zip unpickles .*old\.zip.*pass allow_pickle=True only for a "
                                         "file you trust"):
        convert_sb3_zip(tmp_path / "old.zip")
    assert not (tmp_path / "old.pt").exists()
    with pytest.raises(ValueError, match=r"old\.zip' is a stable-baselines3 \.zip, which is not loaded.*"
                                         r"convert_sb3_zip\('.*old\.zip', allow_pickle=True\) and use learned:"):
        LearnedController.load(tmp_path / "old.zip")
    path = convert_sb3_zip(tmp_path / "old.zip", allow_pickle=True)
    assert path == tmp_path / "old.pt"
    loaded = LearnedController.load(path)
    assert loaded.config.control.base == "adam" and loaded.config.control.log10_range == 0.5
    assert loaded.layout == Layout()  # the default layout, unless told otherwise
    old = convert_sb3_zip(tmp_path / "old.zip", tmp_path / "older", allow_pickle=True, layout=LEGACY_LAYOUT)
    assert LearnedController.load(old).layout == LEGACY_LAYOUT
    obs = _observations()
    np.testing.assert_array_equal(loaded.policy.predict(obs, deterministic=True)[0],
                                  model.predict(obs, deterministic=True)[0])
    with pytest.raises(ValueError, match=r"a converted controller '.*old\.pt' is next to it: use learned:"):
        check_controller(tmp_path / "old.zip")


def test_save_controller_refuses_what_it_cannot_describe(tmp_path):
    class Swish(torch.nn.SiLU):  # not torch.nn's own class: its name alone would not rebuild it
        pass

    with pytest.raises(ValueError, match=r"activation_fn .*Swish.* is not one of torch.nn's Tanh, ReLU"):
        save_controller(_model("PPO", activation_fn=Swish), ControllerConfig(), tmp_path / "c")
    with pytest.raises(ValueError, match="config.algorithm is 'PPO' but the model is A2C"):
        save_controller(_model("A2C"), ControllerConfig(), tmp_path / "c")
    with pytest.raises(ValueError, match=r"save_controller writes NAME\.pt and NAME\.json; pass NAME or NAME\.pt"):
        save_controller(_model("PPO"), ControllerConfig(), tmp_path / "c.zip")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_controller_for_another_observation_layout_is_refused(tmp_path):
    from stable_baselines3 import PPO

    small = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    env = gymnasium.make("Pendulum-v1")
    env.observation_space = small
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu")
    path = save_controller(model, ControllerConfig(), tmp_path / "odd")
    with pytest.raises(ValueError, match=r"expects observations of shape \(3,\), the step-size env has \(11,\)"):
        LearnedController.load(path, 0.1, 0.1).run(EpisodeTask("DiracGAN-v0", 2, 0, 1))


# --- crafted files: the controls of the crafted-file rows of tests/test_bad_inputs.py ------------------------------
# There each is refused without running its code; here each does run its code when loaded unsafely.
def test_the_crafted_sb3_zip_runs_its_code_under_sb3s_own_loader(tmp_path):
    from stable_baselines3 import PPO

    crafted = crafted_sb3_zip(tmp_path / "evil.zip", marker(tmp_path))
    assert not marker(tmp_path).exists()
    try:  # the file is live: SB3's own loader runs its code
        PPO.load(str(crafted), device="cpu")
    except Exception:  # noqa: BLE001 - it fails once the payload has run
        pass
    assert marker(tmp_path).exists()


@pytest.mark.parametrize("write", list(MALICIOUS_WEIGHTS.values()), ids=list(MALICIOUS_WEIGHTS))
def test_the_malicious_weights_files_run_their_code_under_an_unrestricted_torch_load(tmp_path, write):
    write(tmp_path / "c.pt", marker(tmp_path))
    assert not marker(tmp_path).exists()
    try:
        torch.load(tmp_path / "c.pt", weights_only=False)
    except Exception:  # noqa: BLE001 - a raw pickle is no torch file, but reading its header ran the payload
        pass
    assert marker(tmp_path).exists()


def test_a_learned_controller_returns_generator_samples_through_the_runner_interface():
    agent = LearnedController.load(DOCS / "mog-ring-small" / "controller.pt", 0.01, 0.01)
    kwargs = COMMITTED_EPISODES["mog-ring-small"][1]
    result = agent.run(EpisodeTask("MoG-Ring-v0", 3, 0, 2, samples=7, env_kwargs=kwargs))
    assert result.samples.shape == (2, 7, 2) and torch.isfinite(result.samples).all()
    assert result.plots and result.plots[0]["kind"] == "samples"
    assert agent.run(EpisodeTask("MoG-Ring-v0", 3, 0, 2, env_kwargs=kwargs)).samples is None
    with pytest.raises(ValueError, match="samples=5: DiracGAN draws no generator samples"):
        two_mode = LearnedController.load(DOCS / "two-mode-small" / "controller.pt")
        two_mode.run(EpisodeTask("DiracGAN-v0", 3, 0, 1, samples=5))


# --- balance controllers: the action sets the pace ratio and the scale ---------------------------------------
def test_a_balance_controller_trains_saves_loads_and_plays_its_gymnasium_episode(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE.to_dict()))
    train_controller.main(["--suite", str(suite), "--task", "dirac", "--action", "balance", "--name", "pace",
                           "--total-timesteps", "64", "--num-envs", "2", "--n-steps", "32", "--eval-seeds", "2",
                           "--out", str(tmp_path), "--threads", "1"])
    torch.set_num_threads(1)
    description = json.loads((tmp_path / "pace.json").read_text())
    assert description["control"]["action"] == "balance" and description["layout"]["action"] == ["pace", "scale"]
    agents = {r["agent"] for r in ResultStore(tmp_path / "pace-eval").records()}
    assert agents == {"sgda", "nsgda", "balanced:sgda?ratio=tuned", f"learned:{tmp_path / 'pace.pt'}"}
    agent = LearnedController.load(tmp_path / "pace.pt", 0.1, 0.05)
    assert agent.config.control.action == "balance"
    batched = agent.run(EpisodeTask("DiracGAN-v0", TASK.steps, 0, 2, env_kwargs=TASK.env_kwargs))
    env = StepSizeEnv("DiracGAN-v0", action="balance", base_lr={"discriminator": 0.1, "generator": 0.05},
                      horizon=TASK.steps, **TASK.env_kwargs)
    obs, _ = env.reset(seed=1)
    for _ in range(TASK.steps):
        obs, _, _, _, info = env.step(agent.policy.predict(obs, deterministic=True)[0])
    assert float(batched.metrics["distance"][1]) == pytest.approx(-info["quality"], rel=1e-5, abs=1e-7)
    # a balance description must name its entries pace and scale
    description["layout"]["action"] = ["generator", "discriminator"]
    (tmp_path / "pace.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match="layout action must list each of pace, scale once"):
        check_controller(tmp_path / "pace.pt")
    del description["layout"]
    (tmp_path / "pace.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match="a controller with action 'balance' needs its layout"):
        check_controller(tmp_path / "pace.pt")

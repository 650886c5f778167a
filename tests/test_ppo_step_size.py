"""The native PPO trainer (baselines/ppo_step_size.py): reproducible given its seed, its hand-derived gradient is the
PPO loss's, the controllers it saves act exactly as the trained policy wherever ``learned:PATH`` plays, and it
learns an easy task."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from baselines.ppo_step_size import (
    DISTANCE_FLOOR,
    QUALITY,
    Agent,
    Args,
    deterministic_actions,
    make_env,
    ppo_gradients,
    reward_of,
    train,
    train_return,
)
from minmax_envs.cli import main as minmax
from minmax_envs.controller_files import LearnedController, check_controller
from minmax_envs.evaluation import ResultStore, Suite, Task, bench
from minmax_envs.evaluation.agent_names import make_agent
from minmax_envs.families import Family, Param
from minmax_envs.step_size_control import StepSizeCore, TensorStep, configs

# the NK-regularized Dirac WGAN with step sizes far below what it tolerates: larger steps converge faster
TASK = Task("dirac", "DiracGAN-v0", 12, 4, "distance", False, 0.1,
            {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(1e-3, 1e-2))
SUITE = Suite("ppo-tiny", 1, (TASK,), budget=1, tune_seeds=2, eval_seeds=3, agents=("sgda",))
TINY = {"task": "dirac", "num_envs": 16, "num_steps": 8, "minibatch_size": 64, "total_timesteps": 512}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "suite.json"
    path.write_text(json.dumps(SUITE.to_dict()))
    return str(path)


@pytest.fixture(scope="module", params=["step_sizes", "balance"])
def trained(request, suite, tmp_path_factory):
    """A tiny run per action mode: (its arguments, what train returned)."""
    args = Args(suite=suite, action=request.param, out=str(tmp_path_factory.mktemp("ppo")), **TINY)
    return args, train(args)


def _observations(args: Args, steps: int = 6) -> torch.Tensor:
    """Observations of the trained task's control problem (eval seeds, random actions), ``(N * steps, 11)``."""
    core, _ = make_env(Args(**{**args.__dict__, "num_envs": 8}))
    core.reset(range(8))
    gen = torch.Generator().manual_seed(0)
    seen = [core.observation()]
    for _ in range(steps - 1):
        seen.append(core.step_tensors(torch.rand(8, 2, generator=gen) * 2 - 1).obs)
    return torch.cat(seen)


def test_a_run_is_reproducible_given_its_seed(trained, tmp_path):
    args, first = trained
    again = train(Args(**{**args.__dict__, "out": str(tmp_path / "again")}))
    other = train(Args(**{**args.__dict__, "out": str(tmp_path / "other"), "seed": 1}))
    assert torch.equal(first.agent.params, again.agent.params)
    assert first.normalization == again.normalization

    def curves(history):
        return [{k: v for k, v in row.items() if k != "charts/SPS"} for row in history]

    assert curves(first.history) == curves(again.history)
    assert any("charts/episodic_return" in row for row in first.history)  # episodes ended and restarted
    assert not torch.equal(first.agent.params, other.agent.params)
    assert (tmp_path / "again" / "dirac.pt").read_bytes() == first.path.read_bytes()


def test_log_std_init_sets_the_exploration_the_policy_starts_from(suite, tmp_path):
    """``--log-std-init`` is the Gaussian's initial log standard deviation (stable-baselines3's ``log_std_init``):
    the entropy of the first update's policy is that Gaussian's, and a run's actions spread accordingly."""
    runs = {s: train(Args(suite=suite, out=str(tmp_path / str(s)), log_std_init=s, **TINY)) for s in (0.0, -1.5)}
    act_dim = 2
    for s, run in runs.items():
        assert run.history[0]["losses/entropy"] == pytest.approx(act_dim * (0.5 + 0.5 * math.log(2 * math.pi) + s),
                                                                 abs=0.05)
    with pytest.raises(ValueError, match="log_std_init must be a finite number, got nan"):
        Args(log_std_init=float("nan"))


def test_the_curves_are_tensorboard_scalars_with_namespaced_names(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args, run = trained
    events = EventAccumulator(str(run.path.parent / "tensorboard" / f"dirac-seed{args.seed}"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"charts/episodic_return", "charts/SPS", "losses/value_loss", "losses/approx_kl"} <= tags
    steps = [e.step for e in events.Scalars("losses/value_loss")]
    assert steps == [row["global_step"] for row in run.history]  # one point per iteration, at the env step


def test_the_saved_controller_acts_exactly_as_the_trained_policy(trained):
    args, run = trained
    description = json.loads(run.path.with_suffix(".json").read_text())
    assert description["control"]["action"] == args.action and description["policy"]["class"] == "MlpPolicy"
    assert description["observation_normalization"]["mean"] == list(run.normalization.mean)
    controller = make_agent(f"learned:{run.path}", 0.1, 0.1)  # how every face resolves the agent name
    assert isinstance(controller, LearnedController) and controller.normalization == run.normalization
    obs = _observations(args)
    expected = deterministic_actions(run.agent, run.normalization, obs)
    assert len(set(map(tuple, expected.tolist()))) > 1  # the actions differ between observations
    assert np.array_equal(controller.actions(obs.to(torch.float32).numpy()), expected.numpy())


def test_the_saved_controller_plays_in_a_suite_and_from_the_command_line(trained, tmp_path, capsys):
    args, run = trained
    check_controller(run.path)
    agent = f"learned:{run.path}"
    bench(SUITE, ["sgda", agent], tmp_path, progress=False)
    values = [r["value"] for r in ResultStore(tmp_path).records() if r["agent"] == agent and r["phase"] == "eval"]
    assert len(values) == 3 and np.isfinite(values).all()
    assert minmax(["run", "DiracGAN-v0", "--agent", agent, "--lr", "0.1", "--steps", "4", "--seeds", "2",
                   "--arg", "loss=wgan", "--arg", "regularizer=nk"]) == 0
    assert "distance" in capsys.readouterr().out


@pytest.mark.parametrize("clip_vloss", [True, False])
def test_the_hand_derived_gradient_is_the_ppo_losss(clip_vloss):
    """ppo_gradients writes what autograd gives for the clipped PPO loss (Agent.loss), with ratios and values on
    both sides of their clipping intervals."""
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        agent = Agent(11, 2)
    with torch.no_grad():
        agent.params.add_(0.3 * torch.randn(agent.params.shape, generator=gen))
    b = 128
    x = torch.randn(b, 11, generator=gen)
    with torch.no_grad():  # actions drawn from the policy, log-probabilities and values of an older one
        mean = agent.mean(x)
        act = mean + torch.exp(agent.p["log_std"]) * torch.randn(b, 2, generator=gen)
        old_logp = agent.log_prob(mean, act) + 0.3 * torch.randn(b, generator=gen)
        old_value = agent.value(x) + 0.3 * torch.randn(b, generator=gen)
    mb = torch.cat([x, act, old_logp[:, None], old_value[:, None], torch.randn(b, 2, generator=gen)], dim=1)
    args = Args(clip_vloss=clip_vloss, ent_coef=0.01, vf_coef=0.7)
    with torch.no_grad():
        stats = ppo_gradients(agent, mb, args, track=True)
    assert 0.1 < float(stats[4]) < 0.9  # some ratios clipped, some not
    assert not bool(((agent.value(x) - old_value).abs() <= args.clip_coef).all())  # some values clipped
    reference, = torch.autograd.grad(agent.loss(mb, args), agent.params)
    torch.testing.assert_close(agent.params.grad, reference, rtol=1e-4, atol=1e-5)  # float32 rounding


def test_the_trainer_learns_to_beat_the_base_step_size_on_an_easy_task(suite, tmp_path):
    """On the NK-regularized Dirac WGAN with small base step sizes, the trained controller's episodes (held-out
    seeds, deterministic actions, through learned:PATH) gain at least half of what the best constant action
    ``+1`` gains over the base step sizes (action 0)."""
    run = train(Args(suite=suite, task="dirac", num_envs=64, num_steps=16, minibatch_size=256,
                     total_timesteps=16384, out=str(tmp_path), tensorboard=False))
    controller = LearnedController.load(run.path)
    lr = (TASK.lr_range[0] * TASK.lr_range[1]) ** 0.5  # the base step sizes of make_env

    def episode_return(policy) -> float:
        game, control = configs("DiracGAN-v0", horizon=TASK.steps, base_lr=lr, **TASK.env_kwargs)
        core = StepSizeCore(game, control, 64)
        core.reset(range(64))
        total = torch.zeros(64, dtype=torch.float64)
        for _ in range(TASK.steps):
            total += core.step_tensors(policy(core.observation())).reward
        return float(total.mean())

    base, best_constant = episode_return(lambda o: torch.zeros(64, 2)), episode_return(lambda o: torch.ones(64, 2))
    learned = episode_return(lambda o: torch.as_tensor(controller.actions(o.to(torch.float32).numpy())))
    assert best_constant > base
    assert learned >= base + 0.5 * (best_constant - base), (base, best_constant, learned)


def test_the_log_distance_reward_counts_the_decades_the_distance_closed(suite, tmp_path):
    """``--reward log-distance``: each step earns ``log10(d_before / d_after)``, so an episode's return is
    ``log10(d_0 / d_T)`` whatever the scale of the last steps; a divergence keeps the env's penalty, a silent slot
    (restarting, or ended) earns 0; the trainer trains on it and scores its runs with it."""
    args = Args(suite=suite, reward="log-distance", num_envs=8, **{k: v for k, v in TINY.items() if k != "num_envs"})
    core, horizon = make_env(args)[0], TASK.steps
    core.reset([5] * 8)  # one game seed in every slot
    first = core.observation()
    total = torch.zeros(8, dtype=torch.float64)
    change = torch.zeros(8, dtype=torch.float64)
    actions = torch.linspace(-1, 1, 8)[:, None].expand(8, 2)  # eight constant policies, base to 10x
    for _ in range(horizon):
        before = core.observation()
        step = core.step_tensors(actions)
        total += reward_of(args, before, step, torch.zeros(8, dtype=torch.bool))
        change += reward_of(Args(suite=suite), before, step, torch.zeros(8, dtype=torch.bool))
        assert torch.equal(reward_of(Args(suite=suite), before, step, torch.ones(8, dtype=torch.bool)), step.reward)
    d0, d_end = -first[:, QUALITY], -core.observation()[:, QUALITY]
    torch.testing.assert_close(total, torch.log10(d0) - torch.log10(d_end), rtol=0, atol=1e-9)
    torch.testing.assert_close(change, d0 - d_end, rtol=0, atol=1e-9)  # the env's reward: the change itself
    assert bool((total[1:] > total[:-1]).all())  # on this game larger steps close more decades

    diverged = TensorStep(step.obs * 10, torch.full((8,), -1.0, dtype=torch.float64), torch.ones(8, dtype=torch.bool))
    assert reward_of(args, before, diverged, torch.zeros(8, dtype=torch.bool)).tolist() == [-1.0] * 8
    assert reward_of(args, before, step, torch.ones(8, dtype=torch.bool)).tolist() == [0.0] * 8
    landed = TensorStep(step.obs * 0, step.reward, torch.zeros(8, dtype=torch.bool))  # on the equilibrium exactly
    torch.testing.assert_close(reward_of(args, before, landed, torch.zeros(8, dtype=torch.bool)),
                               torch.log10(-before[:, QUALITY]) - math.log10(DISTANCE_FLOOR), rtol=0, atol=1e-12)

    run = train(Args(**{**args.__dict__, "out": str(tmp_path), "tensorboard": False, "train_episodes": 4}))
    assert run.train_return == pytest.approx(train_return(run.agent, run.normalization, args, 4), abs=1e-12)
    in_distance = train_return(run.agent, run.normalization, Args(**{**args.__dict__, "reward": "change"}), 4)
    assert run.train_return != pytest.approx(in_distance, rel=0.1)  # scored in decades, not in distance


def test_the_log_distance_reward_needs_a_distance():
    with pytest.raises(ValueError, match=r"reward 'log-distance' needs a quality metric that is a distance .*"
                                         r"'two-mode-small'.*'mode_alignment'.*use 'change'"):
        make_env(Args(suite="quick", task="two-mode-small", reward="log-distance", num_envs=4))


# a family with a per-batch argument (the loss) and a per-seed one (theta0): training must regroup and restart slots
FAMILY = Family("ppo-tiny-family", "DiracGAN-v0", (Param("loss", "choice", choices=("wgan", "nsgan")),
                                                  Param("theta0", "uniform", 0.5, 2.0, per_seed=True)),
                {"init_std": 0.5}, train=8, test=8, group=4, seed=1)  # seed 1: its train groups have both losses
FAMILY_TASK = Task("dirac-family", "DiracGAN-v0", 6, 2, "distance", False, 0.1, {}, lr_range=(1e-2, 1.0),
                   family=FAMILY)


def test_the_trainer_plays_only_the_train_instances_of_a_tasks_family(tmp_path, monkeypatch):
    """Every batch the trainer steps (rollouts, restarts after a divergence or the horizon, regrouping, and the
    final train-instance episodes) holds train instances of the task's family and no test instance; the groups
    and the instances vary over training."""
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(Suite("ppo-family", 1, (FAMILY_TASK,), budget=1, tune_seeds=2, eval_seeds=2,
                                     agents=("sgda",)).to_dict()))
    played: set[tuple[str, float]] = set()

    def record(core: StepSizeCore) -> None:
        game = core.env.game
        played.update((game.loss, round(v, 9)) for v in game.seed_args["theta0"].tolist())

    step_tensors, reset = StepSizeCore.step_tensors, StepSizeCore.reset

    def spied_step(self, *a, **k):
        out = step_tensors(self, *a, **k)
        record(self)
        return out

    def spied_reset(self, *a, **k):
        out = reset(self, *a, **k)
        record(self)
        return out

    monkeypatch.setattr(StepSizeCore, "step_tensors", spied_step)
    monkeypatch.setattr(StepSizeCore, "reset", spied_reset)
    args = Args(suite=str(path), task="dirac-family", num_envs=8, num_steps=8, minibatch_size=32,
                total_timesteps=640, tensorboard=False, train_episodes=4, out=str(tmp_path / "out"),
                log10_range=2.0)  # steps up to 100 on the Dirac GAN: some slots diverge and restart
    run = train(args)

    def instances(split: str) -> set[tuple[str, float]]:
        return {(x["loss"], round(x["theta0"], 9)) for x in FAMILY.instances(split)}

    train_set, test_set = instances("train"), instances("test")
    assert played <= train_set and not played & test_set
    assert len({loss for loss, _ in played}) == 2 and len(played) > FAMILY.group  # regrouped: both losses
    assert played == train_set  # the final train-instance episodes play every train instance
    assert json.loads(run.path.with_suffix(".json").read_text())["trained_on"]["family"] == FAMILY.key("train")

"""PPO for step-size controllers with the env and the policy on one device: CleanRL's ``ppo_continuous_action``
on the batched step-size control core, no numpy round trip per step.

The controller acts on the step-size control problem of a suite task (:class:`~minmax_envs.control.StepSizeCore`,
the core of ``StepSizeEnv`` and of its native vector env): ``--num-envs`` game seeds are ``--num-envs`` parallel
environments, all stepped as one set of tensor operations on ``--device``; the policy's forward pass, the
sampling, the rollout buffer, the advantages and the updates stay on that device too (in the manner of PureJaxRL
and gymnax, in torch). The algorithm is clipped PPO (Schulman et al., "Proximal Policy Optimization Algorithms",
2017) with generalized advantage estimation (Schulman et al., "High-Dimensional Continuous Control Using
Generalized Advantage Estimation", 2016), as CleanRL writes it (Huang et al., "The 37 Implementation Details of
Proximal Policy Optimization", 2022): running observation normalization, reward scaling by the running standard
deviation of the discounted return, advantage normalization, clipped value loss, gradient clipping, a linearly
annealed learning rate.

    python baselines/ppo_step_size.py --task two-mode-small --total-timesteps 1000000
    python baselines/ppo_step_size.py --suite balance --task correlated-modes --action balance
    python baselines/ppo_step_size.py --task dirac-wgan --suite quick --device cuda --num-envs 4096
    tensorboard --logdir runs/ppo/tensorboard
    minmax bench --suite controllers --tasks two-mode-small --agents sgda,nsgda,learned:runs/ppo/two-mode-small.pt

**Episodes.** An episode is ``--horizon`` actions (default: the task's ``steps``), one update cycle of the game
each; a seed that diverges terminates (reward ``divergence_penalty``, no bootstrap); one that reaches the horizon is
truncated (its advantage bootstraps from the value of its last observation). Training seeds, and so game
instances, are drawn from the ``"train"`` split (:data:`~minmax_envs.control.SPLITS`, seeds >= 2**20) by a torch
generator seeded with ``--seed``. A seed that ended restarts at the next step, as the native vector env's
``NEXT_STEP`` autoreset does: that step ignores the slot's action and is dropped from the PPO batch (it is no
transition of the game); env steps counted include it. The reward is the env's, the change of the quality metric,
or with ``--reward log-distance`` the decades a distance closed (:func:`reward_of`).

**Saved controller.** ``OUT/NAME.pt`` and ``OUT/NAME.json`` (``NAME`` = ``--name`` or the task's name): the policy
is the actor-critic MLP of stable-baselines3's ``MlpPolicy`` (two hidden layers of 64, tanh, separate actor and
critic, state-independent log standard deviation), with the same parameter names, saved by
:func:`minmax_envs.controllers.save_policy` with the final observation normalization
(:class:`~minmax_envs.controllers.ObservationNormalization`). ``learned:OUT/NAME.pt`` then plays it wherever an agent
is named (``minmax bench``, ``minmax run``, suites, :class:`~minmax_envs.controllers.LearnedController`), acting
exactly as the trained policy's deterministic actions (the Gaussian's mean, clipped to ``[-1, 1]``).

**Curves.** TensorBoard scalars in ``OUT/tensorboard/NAME-seedS/`` (``--tensorboard false`` to skip): ``charts/``
(``episodic_return``, ``episodic_length``, ``divergence_rate`` of the episodes that ended in the iteration,
``learning_rate``, ``SPS``, ``mean_reward``: the mean reward of the rollout's transitions) and ``losses/``
(``value_loss``, ``policy_loss``, ``entropy``, ``approx_kl``, ``clipfrac``: means over the last epoch's minibatches;
``explained_variance`` of the rollout's returns), at the global env step; the same numbers in
``OUT/curves/NAME-seedS.csv`` and in what :func:`train` returns (``Trained.history``).

**Instance families.** A task with an instance family trains on its **train** instances only: every slot plays
the instance of its training seed (:func:`make_env`), a slot that restarts gets its new seed's instance, and, when
the family draws arguments per batch (shapes, a loss, a data case), the whole batch restarts on a new group of
instances every ``horizon`` actions (slots that restarted on the way after a divergence are truncated there and
bootstrap). After training, the deterministic policy plays ``--train-episodes`` episodes per group of train
instances; its mean return (``trained_on.train_return`` of the saved description) is what a run is picked by
among PPO seeds, never a test result.

**Speed.** At the sizes PPO uses, the update (tens of minibatches of a few hundred transitions per rollout) is most
of an iteration's time, and a minibatch of these small networks costs operations more than arithmetic. So the
update computes the loss's gradient by hand (:func:`ppo_gradients`; tested against autograd), both networks in one
matrix product per layer, on one flat parameter tensor (gradient clipping and Adam on one tensor); the acting
pass keeps stable-baselines3's operations. ``benchmarks/bench_rl.py`` measures the whole loop against
stable-baselines3 and profiles it (docs/controllers.md, "Training with the native PPO trainer").

**The env** is built in one place, :func:`make_env` (a task's game, arguments, base step sizes, horizon, seeds).

A run is a function of its arguments (``--seed`` included), the torch build, the device and the thread count.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

if __package__ in (None, ""):  # run as a script: make the repository root importable for `baselines._args`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn

from baselines._args import parse
from baselines.train_controller import base_step_sizes
from minmax_envs.controller_files import (
    ControllerConfig,
    Layout,
    ObservationNormalization,
    normalize_observation,
    save_policy,
)
from minmax_envs.evaluation import get_suite
from minmax_envs.step_size_control import ACTIONS, OBS_NAMES, SPLITS, StepSizeCore, TensorStep, configs

HIDDEN = (64, 64)  # the hidden widths of stable-baselines3's MlpPolicy for PPO (actor and critic alike)
OBS_EPSILON, OBS_CLIP = 1e-8, 10.0  # observation normalization (gymnasium's NormalizeObservation, CleanRL)
REWARD_EPSILON, REWARD_CLIP = 1e-8, 10.0  # reward scaling (gymnasium's NormalizeReward, CleanRL)
#: What PPO maximizes (``--reward``): the env's own reward, or the decrease of the distance in decades.
REWARDS = ("change", "log-distance")
QUALITY = OBS_NAMES.index("quality")
#: ``log-distance``: a distance below float32's normal range counts as this, the equilibrium reached (a game in
#: float32 that lands on 0 would otherwise earn hundreds of decades in one step).
DISTANCE_FLOOR = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class Args:
    """Train a step-size controller with PPO on a suite task, env and policy on one device."""

    suite: str = field(default="controllers", metadata={"help": "suite name or .json file holding the task"})
    task: str = field(default="two-mode-small", metadata={"help": "task of the suite to train on"})
    action: str = field(default="step_sizes", metadata={
        "help": "what the action sets: step_sizes (one per player) or balance (pace ratio and scale)"})
    base: str = field(default="sgda", metadata={"help": "base direction agent: sgda, nsgda or adam"})
    momentum: float = field(default=0.0, metadata={"help": "momentum of the base agent (sgda, nsgda)"})
    log10_range: float = field(default=1.0, metadata={"help": "decades of step size the action spans each way"})
    horizon: int | None = field(default=None, metadata={"help": "actions per episode (default: the task's steps)"})
    name: str | None = field(default=None, metadata={"help": "file name of the controller (default: the task's)"})
    total_timesteps: int = field(default=1_000_000, metadata={"help": "env steps (actions of all envs) to train"})
    num_envs: int = field(default=256, metadata={"help": "parallel game seeds, stepped as one batch"})
    num_steps: int = field(default=16, metadata={"help": "steps per env in a rollout (batch = num_envs * num_steps)"})
    minibatch_size: int = field(default=512, metadata={"help": "transitions per gradient step"})
    update_epochs: int = field(default=4, metadata={"help": "passes over a rollout's batch per update"})
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam's learning rate (annealed linearly to 0)"})
    anneal_lr: bool = field(default=True, metadata={"help": "anneal the learning rate linearly to 0"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    gae_lambda: float = field(default=0.95, metadata={"help": "lambda of generalized advantage estimation"})
    clip_coef: float = field(default=0.2, metadata={"help": "PPO's clipping of the probability ratio (and value)"})
    clip_vloss: bool = field(default=True, metadata={"help": "clip the value loss as the policy's ratio"})
    ent_coef: float = field(default=0.0, metadata={"help": "weight of the entropy bonus"})
    reward: str = field(default="change", metadata={
        "help": "what PPO maximizes: change (the env's reward, the change of the quality metric) or log-distance "
                "(the decrease of log10 of a distance metric per step: every decade counts alike; games whose "
                "quality metric is a distance only)"})
    log_std_init: float = field(default=0.0, metadata={
        "help": "the Gaussian policy's initial log standard deviation, in action units (stable-baselines3's "
                "log_std_init; the mean starts near 0, the base step sizes)"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the value loss"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "clip of the global gradient norm"})
    target_kl: float | None = field(default=None, metadata={
        "help": "stop an update's epochs once the approximate KL exceeds it (default: never)"})
    seed: int = field(default=0, metadata={"help": "seed of the network, the sampling and the training seed draws"})
    device: str = field(default="cpu", metadata={"help": "torch device of env and policy: cpu or cuda"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    out: str = field(default="runs/ppo", metadata={"help": "output directory"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard curves to OUT/tensorboard/"})
    train_episodes: int = field(default=64, metadata={
        "help": "after training, play the deterministic policy on this many train-instance episodes per group of "
                "the task's family (0: skip); the mean return is saved as trained_on.train_return"})

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; choose one of {', '.join(ACTIONS)}")
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; choose one of {', '.join(REWARDS)}")
        if isinstance(self.train_episodes, bool) or not isinstance(self.train_episodes, int) or self.train_episodes < 0:
            raise ValueError(f"train_episodes must be an int >= 0, got {self.train_episodes!r}")
        for name in ("total_timesteps", "num_envs", "num_steps", "minibatch_size", "update_epochs", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.horizon is not None and (isinstance(self.horizon, bool) or self.horizon < 1):
            raise ValueError(f"horizon must be an int >= 1 or None, got {self.horizon!r}")
        if self.total_timesteps < self.num_envs * self.num_steps:
            raise ValueError(f"total_timesteps={self.total_timesteps} is less than one rollout, num_envs * num_steps "
                             f"= {self.num_envs * self.num_steps}")
        for name, low, high in (("gamma", 0.0, 1.0), ("gae_lambda", 0.0, 1.0)):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {getattr(self, name)!r}")
        if not math.isfinite(self.log_std_init):
            raise ValueError(f"log_std_init must be a finite number, got {self.log_std_init!r}")
        for name in ("learning_rate", "clip_coef", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; choose cpu or cuda (or cuda:INDEX)")


# --- the environment: the one place it is built ------------------------------------------------------------------
def make_env(args: Args, num_envs: int | None = None) -> tuple[StepSizeCore, dict[str, Any]]:
    """The batched step-size control problem the controller trains on, over ``args.num_envs`` seeds on
    ``args.device``, and the record of what it is (``trained_on`` of the saved controller).

    The task's game and arguments, its instance family if it has one (every slot then plays the instance of its
    seed in the family's **train** set: :class:`~minmax_envs.families.FamilySlots`), its episode length
    (``args.horizon`` or the task's ``steps``), the base step sizes at the middle of its tuning grid
    (:func:`baselines.train_controller.base_step_sizes`), training seeds from the ``"train"`` split. ``num_envs``:
    the number of slots (default ``args.num_envs``)."""
    task = get_suite(args.suite).task(args.task)
    lr_d, lr_g = base_step_sizes(task)
    base_lr = {"discriminator": lr_d, "generator": lr_g}
    horizon = args.horizon or task.steps
    game, control = configs(task.env_id, device=args.device, base=args.base, momentum=args.momentum,
                            log10_range=args.log10_range, action=args.action, horizon=horizon, split="train",
                            base_lr=base_lr, family=task.family, **task.env_kwargs)
    core = StepSizeCore(game, control, num_envs or args.num_envs)
    if not core.env.game.batched or core.env.game.cycle != 1:
        raise ValueError(f"task {task.name!r} plays {task.env_id} with one seed per env or alternating players; the "
                         "native trainer restarts seeds one by one in a batch of simultaneous games (the small games)")
    if args.reward == "log-distance" and core.env.game.quality_sign > 0:
        raise ValueError(f"reward 'log-distance' needs a quality metric that is a distance (smaller is better); "
                         f"task {task.name!r}'s, {core.env.game.quality_metric!r}, is larger-is-better: use 'change'")
    trained_on = {"suite": args.suite, "task": task.name, "env_id": task.env_id, "env_kwargs": task.env_kwargs,
                  "base_lr": base_lr, "horizon": horizon, "split": "train", "trainer": "baselines/ppo_step_size.py",
                  "total_timesteps": args.total_timesteps, "num_envs": args.num_envs, "seed": args.seed,
                  "args": asdict(args)}
    if task.family is not None:
        trained_on["family"] = task.family.key("train")
    return core, trained_on


def regroups(core: StepSizeCore) -> bool:
    """Whether the core's instance family draws arguments per batch (shapes, discrete switches): then a batch
    plays one group of instances, and training restarts the whole batch on a new group every ``horizon`` actions
    (:func:`train`)."""
    return core.instances is not None and bool(core.instances.family.batch_params)


def train_seeds(core: StepSizeCore, count: int) -> list[list[int]]:
    """Seeds of the ``"train"`` split for one deterministic pass over the train instances, as batches (one per group
    of the core's family, each batch ``count`` seeds of that group's members in turn); without a family, one batch
    of the ``count`` first training seeds."""
    low = SPLITS["train"][0]
    if core.instances is None:
        return [list(range(low, low + count))]
    family = core.instances.family
    n, span = family.size("train"), family.span("train")
    first = -(-low // n) * n  # seed `first + i` plays train instance i
    batches = []
    for g in range(-(-n // span)):
        size = min(span, n - g * span)  # (a last group may be short)
        batches.append([first + g * span + j % size + (j // size) * n for j in range(count)])
    return batches


# --- the policy --------------------------------------------------------------------------------------------------
class Agent(nn.Module):
    r"""The actor-critic of stable-baselines3's ``MlpPolicy`` (PPO's defaults), which :meth:`sb3_state_dict` gives
    under SB3's parameter names: an actor ``mlp_extractor.policy_net`` -> ``action_net`` giving the mean $\mu(o)$
    of a diagonal Gaussian with a state-independent ``log_std``, and a separate critic ``mlp_extractor.value_net``
    -> ``value_net``; both MLPs ``obs -> 64 -> 64`` with tanh. Orthogonal initialization as SB3 and CleanRL do it
    (gain $\sqrt 2$ for the hidden layers, 0.01 for the action mean, 1 for the value; zero biases; ``log_std`` 0).

    Layout, for speed (the update is most of a PPO iteration's time): every parameter is a view of one flat tensor
    ``params`` (``p[name]``; its gradient buffer ``params.grad``, views ``g[name]``), so that gradient clipping and
    Adam each run on one tensor; the actor's and the critic's hidden layers sit side by side (``w1`` holds
    both first layers' weights, actor rows first, ``w2`` both second layers'), so that the update runs both networks
    with one matrix product per layer. The acting pass (:meth:`mean`, :meth:`value`) runs each layer as its own
    ``F.linear`` on its own rows, the operations of SB3's policy, so that a saved controller acts bit for bit as
    this network."""

    def __init__(self, obs_dim: int, act_dim: int, device: torch.device | str = "cpu"):
        super().__init__()
        h = HIDDEN[0]
        assert HIDDEN == (h, h), "the fused update assumes two hidden layers of one width"
        self.shapes = {"w1": (2 * h, obs_dim), "b1": (2 * h,), "w2": (2, h, h), "b2": (2, h),
                       "action_w": (act_dim, h), "action_b": (act_dim,), "value_w": (1, h), "value_b": (1,),
                       "log_std": (act_dim,)}
        self.params = nn.Parameter(torch.zeros(sum(math.prod(s) for s in self.shapes.values()), device=device))
        self.params.grad = torch.zeros_like(self.params)
        self.p, self.g = self.views(self.params.detach()), self.views(self.params.grad)
        with torch.no_grad():
            for name, gain in (("mlp_extractor.policy_net.0.weight", math.sqrt(2)),
                               ("mlp_extractor.value_net.0.weight", math.sqrt(2)),
                               ("mlp_extractor.policy_net.2.weight", math.sqrt(2)),
                               ("mlp_extractor.value_net.2.weight", math.sqrt(2)),
                               ("action_net.weight", 0.01), ("value_net.weight", 1.0)):
                nn.init.orthogonal_(self.sb3_tensors()[name], gain=gain)

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named parameters (``shapes``) as views of the flat tensor ``flat``."""
        out, start = {}, 0
        for name, shape in self.shapes.items():
            out[name] = flat[start:start + math.prod(shape)].view(shape)
            start += math.prod(shape)
        return out

    def sb3_tensors(self) -> dict[str, torch.Tensor]:
        """Every parameter under stable-baselines3's name, as a view of ``params``."""
        p, h = self.p, HIDDEN[0]
        out = {}
        for i, net in enumerate(("policy_net", "value_net")):
            out[f"mlp_extractor.{net}.0.weight"] = p["w1"][i * h:(i + 1) * h]
            out[f"mlp_extractor.{net}.0.bias"] = p["b1"][i * h:(i + 1) * h]
            out[f"mlp_extractor.{net}.2.weight"] = p["w2"][i]
            out[f"mlp_extractor.{net}.2.bias"] = p["b2"][i]
        return {**out, "action_net.weight": p["action_w"], "action_net.bias": p["action_b"],
                "value_net.weight": p["value_w"], "value_net.bias": p["value_b"], "log_std": p["log_std"]}

    def sb3_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters under stable-baselines3's names (copies on the CPU): what ``MlpPolicy`` loads."""
        return {name: t.detach().cpu().clone() for name, t in self.sb3_tensors().items()}

    def _mlp(self, x: torch.Tensor, i: int) -> torch.Tensor:
        p, h = self.p, HIDDEN[0]
        x = torch.tanh(F.linear(x, p["w1"][i * h:(i + 1) * h], p["b1"][i * h:(i + 1) * h]))
        return torch.tanh(F.linear(x, p["w2"][i], p["b2"][i]))

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The Gaussian's mean ``(B, act_dim)`` of normalized observations ``x`` ``(B, obs_dim)``: the deterministic
        action before clipping to ``[-1, 1]`` (SB3's operations; not differentiable)."""
        return F.linear(self._mlp(x, 0), self.p["action_w"], self.p["action_b"])

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's value ``(B,)`` of normalized observations ``x`` (SB3's operations; not differentiable)."""
        return F.linear(self._mlp(x, 1), self.p["value_w"], self.p["value_b"])[:, 0]

    def log_prob(self, mean: torch.Tensor, action: torch.Tensor, log_std: torch.Tensor | None = None) -> torch.Tensor:
        r"""$\log \pi(a \mid o) = \sum_i -\tfrac12 ((a_i - \mu_i) / \sigma_i)^2 - \log \sigma_i - \tfrac12 \log 2\pi$,
        $\sigma$ = ``exp(log_std)``."""
        log_std = self.p["log_std"] if log_std is None else log_std
        return _log_prob((action - mean) * torch.exp(-log_std), log_std)

    def entropy(self, log_std: torch.Tensor | None = None) -> torch.Tensor:
        r"""The Gaussian's entropy $\sum_i \tfrac12 + \tfrac12 \log 2\pi + \log \sigma_i$ (the same in every state)."""
        log_std = self.p["log_std"] if log_std is None else log_std
        return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum()

    def loss(self, mb: torch.Tensor, args: Args) -> torch.Tensor:
        """The clipped PPO loss of the minibatch ``mb`` (see :func:`ppo_gradients`) with autograd: the reference the
        hand-derived gradient is tested against."""
        p, (x, act, old_logp, old_value, ret, adv) = self.views(self.params), _columns(mb, self)
        b, h, eps = x.shape[0], HIDDEN[0], args.clip_coef
        z = torch.tanh(torch.addmm(p["b1"], x, p["w1"].t())).view(b, 2, h).transpose(0, 1)
        z = torch.tanh(torch.baddbmm(p["b2"][:, None], z, p["w2"].transpose(1, 2)))
        mean, value = F.linear(z[0], p["action_w"], p["action_b"]), F.linear(z[1], p["value_w"], p["value_b"])[:, 0]
        ratio = torch.exp(self.log_prob(mean, act, p["log_std"]) - old_logp)
        pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - eps, 1 + eps)).mean()
        if args.clip_vloss:
            clipped = old_value + (value - old_value).clamp(-eps, eps)
            v_loss = 0.5 * torch.max((value - ret).pow(2), (clipped - ret).pow(2)).mean()
        else:
            v_loss = 0.5 * (value - ret).pow(2).mean()
        return pg_loss - args.ent_coef * self.entropy(p["log_std"]) + args.vf_coef * v_loss


def _columns(mb: torch.Tensor, agent: Agent) -> tuple[torch.Tensor, ...]:
    """A minibatch's columns: normalized observations, actions, old log-probabilities, old values, returns,
    normalized advantages."""
    o, a = agent.shapes["w1"][1], agent.shapes["w1"][1] + agent.shapes["log_std"][0]
    return mb[:, :o], mb[:, o:a], mb[:, a], mb[:, a + 1], mb[:, a + 2], mb[:, a + 3]


def _log_prob(u: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """:meth:`Agent.log_prob` from the standardized actions ``u = (a - mu) / sigma``."""
    return -0.5 * u.pow(2).sum(-1) - log_std.sum() - 0.5 * math.log(2 * math.pi) * u.shape[-1]


def _tanh_half(y: torch.Tensor) -> torch.Tensor:
    r"""$\tanh(y / 2) = 2 \sigma(y) - 1$, in place (see :func:`ppo_gradients`)."""
    return torch.sigmoid_(y).mul_(2.0).sub_(1.0)


def ppo_gradients(agent: Agent, mb: torch.Tensor, args: Args, track: bool) -> torch.Tensor | None:
    r"""Write into ``agent.params.grad`` the gradient of the clipped PPO loss of the minibatch ``mb`` (rows:
    normalized observation, action, old log-probability, old value, return, normalized advantage), derived by hand:
    what autograd gives for :meth:`Agent.loss`, to float32 rounding (tests/test_ppo_step_size.py checks it), in a
    third of the operations, which is what a minibatch costs on a CPU at these sizes. With
    $r_j = \pi(a_j \mid o_j) / \pi_{old}(a_j \mid o_j)$, advantages $A$, returns $R$, values $V$, old values
    $V^{old}$, $\epsilon$ = ``clip_coef`` and $B$ transitions,

    $$L = \frac1B \sum_j \max\big(-A_j r_j,\; -A_j \operatorname{clip}(r_j, 1 - \epsilon, 1 + \epsilon)\big)
        + \frac{c_v}{2B} \sum_j \max\big((V_j - R_j)^2,\; (V^{clip}_j - R_j)^2\big) - c_e H,$$

    $V^{clip} = V^{old} + \operatorname{clip}(V - V^{old}, -\epsilon, \epsilon)$ (the value term is $(V_j - R_j)^2$
    without ``clip_vloss``), $c_v$ = ``vf_coef``, $c_e$ = ``ent_coef``, $H$ the Gaussian's entropy. Then
    $\partial L / \partial \log \pi_j = -A_j r_j / B$ where the unclipped term is the larger, else 0 (the clipped
    term is constant there); $\partial L / \partial V_j = c_v (V_j - R_j) / B$ where the unclipped value term is the
    larger, $c_v (V^{clip}_j - R_j) / B$ where the clipped one is and $|V_j - V^{old}_j| \le \epsilon$, else 0;
    with $u = (a - \mu) / \sigma$: $\partial \log \pi / \partial \mu = u / \sigma$ and
    $\partial \log \pi / \partial \log \sigma = u^2 - 1$; and the chain rule through both networks, each layer
    $z = \tanh(W z' + b)$ giving $\partial / \partial (W z' + b) = (1 - z^2) \odot \partial / \partial z$. Here
    $\tanh x$ is computed as $2 \sigma(2x) - 1$, the same function to float rounding (absolute error below 1e-7),
    three times cheaper than torch's float32 ``tanh`` on a CPU; the acting pass (what a saved controller does) uses
    ``torch.tanh``, as stable-baselines3's policy.

    Returns, if ``track``, the minibatch's policy loss, value loss, entropy, approximate KL divergence
    ($\mathbb E[(r - 1) - \log r]$, Schulman's estimator) and clipped fraction."""
    p, g = agent.p, agent.g
    x, act, old_logp, old_value, ret, adv = _columns(mb, agent)
    b, h, eps = x.shape[0], HIDDEN[0], args.clip_coef
    # forward: both networks at once, keeping what the backward pass needs
    # (the products give twice the pre-activations, alpha = beta = 2: tanh a = 2 sigma(2a) - 1)
    z1 = _tanh_half(torch.addmm(p["b1"], x, p["w1"].t(), beta=2.0, alpha=2.0))  # (B, 2h): actor | critic
    z1_pair = z1.view(b, 2, h).transpose(0, 1)  # (2, B, h)
    z2 = _tanh_half(torch.baddbmm(p["b2"][:, None], z1_pair, p["w2"].transpose(1, 2), beta=2.0, alpha=2.0))
    mean = torch.addmm(p["action_b"], z2[0], p["action_w"].t())
    value = torch.addmm(p["value_b"], z2[1], p["value_w"].t())[:, 0]
    inv_std = torch.exp(-p["log_std"])
    u = (act - mean) * inv_std
    log_ratio = _log_prob(u, p["log_std"]) - old_logp
    ratio = log_ratio.exp()
    surrogate, surrogate_clipped = adv * ratio, adv * ratio.clamp(1 - eps, 1 + eps)
    g_logp = surrogate.mul(surrogate <= surrogate_clipped).mul_(-1.0 / b)  # dL / dlog pi
    err = value - ret
    if args.clip_vloss:
        step = value - old_value
        err_clipped = old_value + step.clamp(-eps, eps) - ret
        g_value = torch.where(err.abs() >= err_clipped.abs(), err, err_clipped * (step.abs() <= eps))
    else:
        g_value = err
    g_value = g_value.mul_(args.vf_coef / b)  # dL / dV
    # backward: heads, then the second and the first layers of both networks
    g_mean = (g_logp[:, None] * inv_std) * u
    torch.sum(g_logp[:, None] * (u.pow(2) - 1.0), 0, out=g["log_std"]).sub_(args.ent_coef)
    torch.mm(g_mean.t(), z2[0], out=g["action_w"])
    torch.sum(g_mean, 0, out=g["action_b"])
    torch.mm(g_value[None], z2[1], out=g["value_w"])
    torch.sum(g_value, 0, keepdim=True, out=g["value_b"])
    g_a2 = torch.ops.aten.tanh_backward(torch.stack([g_mean @ p["action_w"], g_value[:, None] * p["value_w"]]), z2)
    torch.bmm(g_a2.transpose(1, 2), z1_pair, out=g["w2"])
    torch.sum(g_a2, 1, out=g["b2"])
    g_a1 = torch.ops.aten.tanh_backward(torch.bmm(g_a2, p["w2"]).transpose(0, 1).reshape(b, 2 * h), z1)
    g["w1"].copy_((x.t() @ g_a1).t())  # (this product's fast layout)
    torch.sum(g_a1, 0, out=g["b1"])
    if not track:
        return None
    v_terms = torch.max(err.pow(2), err_clipped.pow(2)) if args.clip_vloss else err.pow(2)
    return torch.stack([-torch.min(surrogate, surrogate_clipped).mean(), 0.5 * v_terms.mean(), agent.entropy(),
                        ((ratio - 1) - log_ratio).mean(), ((ratio - 1.0).abs() > eps).float().mean()])


class Adam:
    r"""Adam (Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015) on one flat tensor, the update of
    ``torch.optim.Adam``: with gradient $g$, $m \leftarrow \beta_1 m + (1 - \beta_1) g$,
    $v \leftarrow \beta_2 v + (1 - \beta_2) g^2$ and, at step $t$,
    $\theta \leftarrow \theta - \eta \, \hat m / (\sqrt{\hat v} + \epsilon)$ with $\hat m = m / (1 - \beta_1^t)$,
    $\hat v = v / (1 - \beta_2^t)$; in five in-place operations (``torch.optim``'s per-step bookkeeping costs more
    than this arithmetic at this size)."""

    def __init__(self, params: torch.Tensor, eps: float = 1e-5, betas: tuple[float, float] = (0.9, 0.999)):
        self.params, self.eps, self.betas, self.t = params, eps, betas, 0
        self.m, self.v = torch.zeros_like(params), torch.zeros_like(params)

    def step(self, grad: torch.Tensor, lr: float) -> None:
        (b1, b2), self.t = self.betas, self.t + 1
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.v.sqrt() / math.sqrt(1 - b2 ** self.t)).add_(self.eps)
        self.params.addcdiv_(self.m, denom, value=-lr / (1 - b1 ** self.t))


class RunningMeanStd:
    """The running mean and variance of a stream of batches, merged with Chan, Golub and LeVeque's parallel
    formula ("Updating Formulae and a Pairwise Algorithm for Computing Sample Variances", 1979), as float64
    tensors on the device (no host sync); ``count`` starts at 1e-4 as in gymnasium and stable-baselines3."""

    def __init__(self, shape: tuple[int, ...], device: torch.device):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = 1e-4

    def update(self, x: torch.Tensor) -> None:
        """Merge the batch ``x`` ``(B, *shape)``."""
        x = x.to(torch.float64)
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0, correction=0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.mean = self.mean + delta * (batch_count / total)
        self.var = (self.var * self.count + batch_var * batch_count
                    + delta.pow(2) * (self.count * batch_count / total)) / total
        self.count = total


class Trained(NamedTuple):
    """What :func:`train` returns."""

    path: Path  # the saved controller's .pt (the argument of learned:PATH)
    agent: Agent  # the trained network (on args.device)
    normalization: ObservationNormalization  # the observation normalization the policy was trained with
    history: list[dict[str, float]]  # per iteration: global_step and every TensorBoard scalar
    seconds: dict[str, float]  # the training loop's wall and CPU (this process's) seconds, set-up and saving excluded
    train_return: float | None = None  # the deterministic policy's mean return on the train instances (train_return)


def reward_of(args: Args, before: torch.Tensor, step: TensorStep, silent: torch.Tensor) -> torch.Tensor:
    r"""The reward PPO maximizes for one step of every slot, ``(N,)`` float64, from the raw observations before the
    step, the step, and the slots that earn nothing (restarting, or ended before the step).

    ``args.reward == "change"``: the env's reward, the change of the (signed) quality metric
    (:meth:`StepSizeCore.reward <minmax_envs.step_size_control.StepSizeCore.reward>`). ``"log-distance"``: with
    $d_t$ the distance metric (the quality observed, negated), $r_t = \log_{10} d_{t-1} - \log_{10} d_t$, the
    decades the step closed, so that an episode's return is $\log_{10}(d_0 / d_T)$ and the last steps of a
    converging episode, which change $d$ by $10^{-6}$, weigh as much as the first; $d$ is floored at
    :data:`DISTANCE_FLOOR` (float32's smallest normal number, about $1.2 \times 10^{-38}$); a step on which a seed
    diverges keeps the env's ``divergence_penalty``."""
    if args.reward == "change":
        return step.reward
    decades = (torch.log10((-before[:, QUALITY]).clamp_min(DISTANCE_FLOOR))
               - torch.log10((-step.obs[:, QUALITY]).clamp_min(DISTANCE_FLOOR)))
    reward = torch.where(step.terminated, step.reward, decades)
    return torch.where(silent, torch.zeros_like(reward), reward)


def deterministic_actions(agent: Agent, normalization: ObservationNormalization, obs: torch.Tensor) -> torch.Tensor:
    """The trained policy's deterministic actions ``(N, act_dim)`` for raw observations ``(N, 11)`` of the core:
    the Gaussian's mean of the normalized observations, clipped to ``[-1, 1]``."""
    with torch.no_grad():
        return agent.mean(normalization.apply(obs)).clamp(-1.0, 1.0)


def episode_returns(args: Args, policy: Callable[[torch.Tensor], torch.Tensor], count: int = 64) -> torch.Tensor:
    """The returns (``args.reward``) of ``policy`` over full episodes (``horizon`` actions) on the **train**
    instances: ``count`` slots per group of the task's family (each train instance in turn), or the ``count`` first
    training seeds without a family; one per episode, float64. ``policy`` maps the core's raw observations
    ``(N, 11)`` to actions ``(N, act_dim)`` in ``[-1, 1]``."""
    core, trained_on = make_env(args, count)
    returns = []
    for seeds in train_seeds(core, count):
        core.reset(seeds)
        total = torch.zeros(count, dtype=torch.float64, device=core.env.device)
        ended = torch.zeros(count, dtype=torch.bool, device=core.env.device)
        for _ in range(trained_on["horizon"]):  # a diverged slot earns 0 after its penalty (StepSizeCore.reward)
            before = core.observation()
            step = core.step_tensors(policy(before))
            total += reward_of(args, before, step, ended)
            ended = ended | step.terminated
        returns.append(total)
    return torch.cat(returns)


def train_return(agent: Agent, normalization: ObservationNormalization, args: Args, count: int = 64) -> float:
    """The mean of :func:`episode_returns` of the trained policy's deterministic actions: what a run is selected by
    among PPO seeds (never a test result)."""
    return float(episode_returns(args, lambda obs: deterministic_actions(agent, normalization, obs), count).mean())


# --- training ----------------------------------------------------------------------------------------------------
def train(args: Args) -> Trained:
    """Train PPO on the task's step-size control problem (training seeds only) and save the controller."""
    device = torch.device(args.device)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    core, trained_on = make_env(args)
    horizon = trained_on["horizon"]
    n, t_roll = args.num_envs, args.num_steps
    obs_dim, act_dim = len(OBS_NAMES), len(ACTIONS[args.action])
    with torch.random.fork_rng(devices=[]):  # the network's initialization draws from torch's generator
        torch.manual_seed(args.seed)
        agent = Agent(obs_dim, act_dim, device)
        agent.p["log_std"].fill_(args.log_std_init)
    optimizer = Adam(agent.params.data, eps=1e-5)
    obs_rms, ret_rms = RunningMeanStd((obs_dim,), device), RunningMeanStd((), device)
    seed_low, seed_high = SPLITS["train"]

    def draw_seeds() -> torch.Tensor:
        return torch.randint(seed_low, seed_high, (n,), generator=gen, device=device)

    # rollout storage, on the device
    obs_buf = torch.zeros((t_roll, n, obs_dim), dtype=torch.float32, device=device)  # normalized: the policy's input
    raw_buf = torch.zeros((t_roll, n, obs_dim), dtype=torch.float64, device=device)  # raw: for the running stats
    act_buf = torch.zeros((t_roll, n, act_dim), dtype=torch.float32, device=device)
    logp_buf, val_buf, rew_buf = (torch.zeros((t_roll, n), device=device) for _ in range(3))
    term_buf, done_buf, valid_buf = (torch.zeros((t_roll, n), dtype=torch.bool, device=device) for _ in range(3))

    core.reset(draw_seeds().tolist())  # the only host round trip of the episode starts
    obs = core.observation()
    obs_rms.update(obs.to(torch.float32))
    restart = torch.zeros(n, dtype=torch.bool, device=device)  # slots that restart at the next step
    regroup = regroups(core)  # a family with per-batch arguments: the whole batch restarts on a new group
    since_regroup, regroup_next = 0, False  # actions since the batch last restarted as a whole; whether it does next
    episode_t = torch.zeros(n, dtype=torch.int64, device=device)
    episode_return = torch.zeros(n, dtype=torch.float64, device=device)
    discounted = torch.zeros(n, dtype=torch.float64, device=device)  # for the reward scale
    writer = None
    name = args.name or args.task
    if args.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(Path(args.out) / "tensorboard" / f"{name}-seed{args.seed}"))
    history: list[dict[str, float]] = []
    iterations = args.total_timesteps // (n * t_roll)
    global_step, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for iteration in range(1, iterations + 1):
        lr = args.learning_rate * (1.0 - (iteration - 1) / iterations if args.anneal_lr else 1.0)
        mean_o, var_o = obs_rms.mean.clone(), obs_rms.var.clone()  # the normalization is fixed within a rollout
        ended = torch.zeros(4, dtype=torch.float64, device=device)  # episodes, their return, length, divergences

        # --- rollout: env and policy on the device ---
        for t in range(t_roll):
            x = normalize_observation(obs, mean_o, var_o, OBS_EPSILON, OBS_CLIP)
            with torch.no_grad():
                mean = agent.mean(x)
                noise = torch.randn(mean.shape, generator=gen, device=device)
                action = mean + torch.exp(agent.p["log_std"]) * noise
                obs_buf[t], raw_buf[t], act_buf[t], valid_buf[t] = x, obs, action, ~restart
                logp_buf[t], val_buf[t] = agent.log_prob(mean, action), agent.value(x)
            if regroup_next:  # every slot restarts, on the instances of a new group (a new batched env)
                core.reset(draw_seeds().tolist())
                step = TensorStep(core.observation(), torch.zeros(n, dtype=torch.float64, device=device),
                                  torch.zeros(n, dtype=torch.bool, device=device))
                since_regroup, regroup_next = 0, False
            else:
                # a restart step ignores its actions; on the CPU, skip the restart work when no slot restarts (on an
                # accelerator, finding out would synchronize: the masked step is always taken there)
                masked = device.type != "cpu" or bool(restart.any())
                step = core.step_tensors(action.clamp(-1.0, 1.0), restart if masked else None,
                                         draw_seeds() if masked else None)
                since_regroup += 1
            reward = reward_of(args, obs, step, restart)
            obs = step.obs
            episode_t = torch.where(restart, 0, episode_t + 1)
            truncated = (episode_t >= horizon) & ~step.terminated
            ends = step.terminated | truncated  # episodes that ended by themselves (diverged, or at the horizon)
            # with regrouping, the batch restarts as a whole once its synchronized episodes reach the horizon: the
            # slots that restarted on the way (after a divergence) are truncated there (their values bootstrap)
            regroup_next = regroup and since_regroup >= horizon
            done = ends | regroup_next
            rew_buf[t], term_buf[t], done_buf[t] = reward.to(torch.float32), step.terminated, done
            episode_return = episode_return + reward
            ended += torch.stack([ends.sum().double(), torch.where(ends, episode_return, 0.0).sum(),
                                  torch.where(ends, episode_t, 0).sum().double(), step.terminated.sum().double()])
            episode_return = torch.where(done, 0.0, episode_return)
            restart = done
            global_step += n

        # --- advantages (GAE; a restart step is no transition: it never enters the batch nor the recursion) ---
        with torch.no_grad():
            next_value = agent.value(normalize_observation(obs, mean_o, var_o, OBS_EPSILON, OBS_CLIP))
            for t in range(t_roll):  # reward scale: the running std of the discounted return
                discounted = discounted * args.gamma + rew_buf[t].double()
                ret_rms.update(discounted)
                discounted = torch.where(done_buf[t], 0.0, discounted)
            rewards = (rew_buf / torch.sqrt(ret_rms.var + REWARD_EPSILON).float()).clamp(-REWARD_CLIP, REWARD_CLIP)
            advantages = torch.zeros_like(rew_buf)
            gae = torch.zeros(n, device=device)
            for t in reversed(range(t_roll)):  # a truncated episode bootstraps from its last observation's value
                value_next = next_value if t == t_roll - 1 else val_buf[t + 1]
                delta = rewards[t] + args.gamma * value_next * ~term_buf[t] - val_buf[t]
                gae = delta + args.gamma * args.gae_lambda * ~done_buf[t] * gae
                advantages[t] = gae
            returns = advantages + val_buf
        obs_rms.update(raw_buf.reshape(-1, obs_dim).to(torch.float32))

        # --- update: the valid transitions, in minibatches ---
        keep = valid_buf.reshape(-1).nonzero().squeeze(1)  # one host sync per iteration
        adv = advantages.reshape(-1)[keep]
        columns = (obs_buf.reshape(-1, obs_dim), act_buf.reshape(-1, act_dim), logp_buf.reshape(-1, 1),
                   val_buf.reshape(-1, 1), returns.reshape(-1, 1))
        # one row per transition: observation, action, log-probability, value, return, normalized advantage
        batch = torch.cat([c[keep] for c in columns] + [((adv - adv.mean()) / (adv.std() + 1e-8))[:, None]], dim=1)
        size, a = batch.shape[0], obs_dim + act_dim
        stats = torch.zeros(5, device=device)  # the last epoch's: policy loss, value loss, entropy, KL, clip fraction
        updates = 0
        with torch.no_grad():  # the gradients are computed by hand (ppo_gradients)
            for epoch in range(args.update_epochs):
                last = epoch == args.update_epochs - 1
                if last:
                    stats, updates = torch.zeros(5, device=device), 0
                shuffled = batch[torch.randperm(size, generator=gen, device=device)]
                for lo in range(0, size, args.minibatch_size):
                    mb_stats = ppo_gradients(agent, shuffled[lo:lo + args.minibatch_size], args,
                                             track=last or args.target_kl is not None)
                    grad = agent.params.grad  # clip the global norm (torch's clip_grad_norm_), then Adam
                    grad.mul_(torch.clamp(args.max_grad_norm / (torch.linalg.vector_norm(grad) + 1e-6), max=1.0))
                    optimizer.step(grad, lr)
                    if mb_stats is not None:  # the last epoch's mean, or the last minibatch before an early stop
                        stats, updates = (stats + mb_stats, updates + 1) if last else (mb_stats, 1)
                if args.target_kl is not None and float(mb_stats[3]) > args.target_kl:
                    break

        # --- curves: one host sync per iteration ---
        explained = 1.0 - (batch[:, a + 2] - batch[:, a + 1]).var() / batch[:, a + 2].var()
        mean_reward = (rew_buf * valid_buf).sum().double() / valid_buf.sum()  # the rollout's transitions, unscaled
        numbers = torch.cat([ended, (stats / updates).double(), explained.double()[None], mean_reward[None]]).tolist()
        count, ret_sum, len_sum, diverged, pg, vl, ent, kl, cf, ev, mr = numbers
        row = {"global_step": global_step, "charts/learning_rate": lr,
               "charts/SPS": global_step / (time.perf_counter() - start), "charts/mean_reward": mr,
               "losses/policy_loss": pg, "losses/value_loss": vl, "losses/entropy": ent, "losses/approx_kl": kl,
               "losses/clipfrac": cf, "losses/explained_variance": ev}
        if count:
            row.update({"charts/episodic_return": ret_sum / count, "charts/episodic_length": len_sum / count,
                        "charts/divergence_rate": diverged / count})
        history.append(row)
        if writer is not None:
            for key, value in row.items():
                if key != "global_step":
                    writer.add_scalar(key, value, global_step)
    if writer is not None:
        writer.close()
    normalization = ObservationNormalization(tuple(obs_rms.mean.tolist()), tuple(obs_rms.var.tolist()),
                                             OBS_EPSILON, OBS_CLIP)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    write_curve(history, Path(args.out) / "curves" / f"{name}-seed{args.seed}.csv")
    trained_on = {**trained_on, "train_seconds": round(seconds, 1)}
    achieved = None
    if args.train_episodes:
        achieved = train_return(agent, normalization, args, args.train_episodes)
        trained_on["train_return"] = achieved
    config = ControllerConfig(algorithm="PPO", control=core.control, trained_on=trained_on)
    path = save(agent, core, config, normalization, Path(args.out) / name)
    print(f"trained PPO on {trained_on['env_id']} ({args.task}) for {global_step} env steps in {seconds:.0f} s "
          f"({global_step / seconds:.0f} env-steps/s), deterministic return on the train instances {achieved} -> "
          f"{path}", file=sys.stderr)
    return Trained(path, agent, normalization, history, {"wall": seconds, "cpu": cpu_seconds}, achieved)


def write_curve(history: list[dict[str, float]], path: Path) -> None:
    """The curves of :func:`train` (``Trained.history``) as a CSV file, one row per iteration (an empty cell where an
    iteration ended no episode), written atomically."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    lines = [",".join(columns)] + [",".join("" if row.get(k) is None else repr(float(row[k])) for k in columns)
                                   for row in history]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save(agent: Agent, core: StepSizeCore, config: ControllerConfig, normalization: ObservationNormalization,
         path: Path) -> Path:
    """Save ``agent`` as a controller: its weights loaded into stable-baselines3's ``MlpPolicy`` over the core's
    spaces (strictly: names and shapes must match), written with :func:`~minmax_envs.controllers.save_policy`."""
    from stable_baselines3 import PPO

    with torch.random.fork_rng(devices=[]):  # SB3 initializes the weights it builds from torch's generator
        policy = PPO.policy_aliases["MlpPolicy"](core.observation_space(), core.action_space(),
                                                 lr_schedule=lambda _: 0.0,
                                                 net_arch={"pi": list(HIDDEN), "vf": list(HIDDEN)})
    policy.load_state_dict(agent.sb3_state_dict(), strict=True)
    return save_policy(policy, config, path, layout=Layout(action=ACTIONS[config.control.action]),
                       observation_normalization=normalization)


def main(argv: list[str] | None = None) -> Trained:
    try:
        args = parse(Args, argv)
        get_suite(args.suite).task(args.task)
    except ValueError as e:  # a bad argument, suite or task: one line, as argparse's own errors
        print(f"ppo_step_size.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    torch.set_num_threads(args.threads)
    trained = train(args)
    print(f"evaluate: minmax bench --suite {args.suite} --tasks {args.task} "
          f"--agents sgda,nsgda,learned:{trained.path}")
    return trained


if __name__ == "__main__":
    main()

"""Two independent learners set the generator's and the discriminator's step sizes (CleanRL style, one file).

Setting
-------
The PettingZoo env of this package, ``minmax_envs.parallel_env(env_id, action_mode="step_size",
reward_mode="quality")``, has two agents, ``"generator"`` and ``"discriminator"``. At every step each agent
chooses, per parameter tensor of its own player, a log step size ``a`` in ``[-1, 1]``: the tensor moves
along the base optimizer's direction (SGDA by default) with ``lr = base_lr * 10 ** (a * log10_range)``.
``a = 0`` is the untrained base optimizer.

* Observation (per agent, its own only): log10 gradient norm and log10 norm of each of its tensors, its
  loss and the opponent's loss.
* Reward: cooperative, the same for both agents, the improvement ``q_t - q_{t-1}`` of the game's quality
  metric (for the Dirac GAN: minus the distance to the equilibrium); ``-1`` on divergence.

Each agent is an independent learner (Tan 1993, "Multi-agent reinforcement learning: independent vs.
cooperative agents"): its own Gaussian policy, its own optimizer and its own baseline, trained by
REINFORCE from its own observations and its own rewards only. The other agent is part of its (non
stationary) environment; nothing is shared, neither parameters nor observations nor critics.

Training plays seeds ``train_seed_start + k``; evaluation plays the held-out seeds ``0 .. eval_seeds-1``
with the deterministic policies (mean action) and with the base step size (action 0 for both agents).

Run from the repository root::

    python -m baselines.multi_agent_step_sizes --out runs/multi_agent
    python baselines/multi_agent_step_sizes.py --help
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (python baselines/x.py): make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from torch import nn

import minmax_envs
from baselines._args import parse
from minmax_envs.checkpoint import load_tensors, save_tensors
from minmax_envs.pettingzoo_env import MinMaxParallelEnv


@dataclass
class Args:
    """Independent REINFORCE learners for the generator's and the discriminator's step sizes."""

    env_id: str = field(default="DiracGAN-v0", metadata={"help": "registered game id (minmax_envs.list_envs())"})
    loss: str = field(default="wgan", metadata={"help": "game loss (Dirac GAN: gan | nsgan | wgan | wgan-gp); "
                                                         "'' for the game's own (games without a loss option)"})
    reg: str = field(default="nk", metadata={"help": "gradient-field regularizer: none | nk | consensus"})
    init_std: float = field(default=0.5, metadata={"help": "DiracGAN only: per-seed spread of the initial point "
                                                           "(at 0 every seed starts at (1, 1): all seeds alike)"})
    base: str = field(default="sgda", metadata={"help": "base direction: sgda | nsgda"})
    base_lr: float = field(default=0.1, metadata={"help": "step size of action 0 (both players)"})
    log10_range: float = field(default=1.0, metadata={"help": "action a gives lr = base_lr * 10**(a * log10_range)"})
    reward_mode: str = field(default="quality", metadata={"help": "quality (cooperative) | zero_sum"})
    horizon: int = field(default=50, metadata={"help": "env steps per episode (max_cycles)"})
    episodes: int = field(default=800, metadata={"help": "training episodes"})
    batch_episodes: int = field(default=8, metadata={"help": "episodes per policy update"})
    train_seed_start: int = field(default=1000, metadata={"help": "training episode k plays seed "
                                                                  "train_seed_start + k (must be >= eval_seeds)"})
    eval_seeds: int = field(default=20, metadata={"help": "evaluate on the held-out seeds 0 .. eval_seeds-1"})
    learning_rate: float = field(default=3e-3, metadata={"help": "Adam learning rate of each policy"})
    hidden: int = field(default=32, metadata={"help": "hidden units of each policy's MLP"})
    gamma: float = field(default=1.0, metadata={"help": "discount of the returns-to-go"})
    baseline_decay: float = field(default=0.9, metadata={"help": "decay of each agent's moving-average baseline"})
    log_every: int = field(default=50, metadata={"help": "episodes per point of the training curves"})
    seed: int = field(default=0, metadata={"help": "torch seed (policy init and action sampling)"})
    out: str = field(default="runs/multi_agent", metadata={"help": "folder for <agent>.pt"})


def make_env(args: Args) -> MinMaxParallelEnv:
    game_kwargs: dict[str, Any] = {"loss": args.loss} if args.loss else {}
    if args.env_id.startswith("DiracGAN"):
        game_kwargs["init_std"] = args.init_std
    return minmax_envs.parallel_env(
        args.env_id, action_mode="step_size", reward_mode=args.reward_mode, max_cycles=args.horizon,
        base=args.base, base_lr=args.base_lr, log10_range=args.log10_range,
        regularizer=None if args.reg == "none" else args.reg, **game_kwargs)


def symlog(x: torch.Tensor) -> torch.Tensor:
    """Squash the observation (losses range up to 1e6) while keeping sign and small values."""
    return torch.sign(x) * torch.log1p(x.abs())


class Policy(nn.Module):
    """Gaussian policy: MLP -> mean, state-independent learned log-std; action = tanh(sample)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                  nn.Linear(hidden, act_dim))
        nn.init.zeros_(self.mean[-1].weight)  # start at the base step size (mean action 0) ...
        nn.init.zeros_(self.mean[-1].bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), -1.0))  # ... with some exploration around it

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean(symlog(obs)), self.log_std.exp())

    def act(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, torch.Tensor]:
        """An action in [-1, 1] and the log-probability of the pre-tanh sample (REINFORCE needs no more)."""
        d = self.dist(torch.as_tensor(obs, dtype=torch.float32))
        u = d.mean if deterministic else d.sample()
        return torch.tanh(u).detach().numpy().astype(np.float32), d.log_prob(u).sum()


class Learner:
    """One independent agent: policy, optimizer and moving-average baseline of the returns-to-go per step."""

    def __init__(self, obs_dim: int, act_dim: int, args: Args):
        self.policy = Policy(obs_dim, act_dim, args.hidden)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=args.learning_rate)
        self.baseline = np.zeros(args.horizon)
        self.decay, self.gamma = args.baseline_decay, args.gamma

    def returns(self, rewards: list[float]) -> np.ndarray:
        g, out = 0.0, np.zeros(len(rewards))
        for t in reversed(range(len(rewards))):
            g = rewards[t] + self.gamma * g
            out[t] = g
        return out

    def update(self, episodes: list[tuple[list[torch.Tensor], list[float]]]) -> None:
        """REINFORCE on a batch of (log-probs, rewards) episodes with advantage G_t - b_t, normalized."""
        logps, advs, batch_returns = [], [], []
        for logp, rewards in episodes:
            g = self.returns(rewards)
            advs.append(g - self.baseline[:len(g)])
            logps += logp
            batch_returns.append(g)
        for g in batch_returns:  # update the baseline after computing the advantages (no self-bias)
            self.baseline[:len(g)] = self.decay * self.baseline[:len(g)] + (1 - self.decay) * g
        adv = torch.as_tensor(np.concatenate(advs), dtype=torch.float32)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(adv) > 1 else adv
        loss = -(torch.stack(logps) * adv).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def train_seeds(args: Args) -> list[int]:
    if args.train_seed_start < args.eval_seeds:
        raise ValueError(f"train_seed_start={args.train_seed_start} overlaps the evaluation seeds "
                         f"0..{args.eval_seeds - 1}")
    return [args.train_seed_start + k for k in range(args.episodes)]


def train(args: Args) -> dict[str, Any]:
    """Train both learners simultaneously; returns the policies, the seeds played and the training curves."""
    torch.manual_seed(args.seed)
    env = make_env(args)
    learners = {a: Learner(env.observation_space(a).shape[0], env.action_space(a).shape[0], args)
                for a in env.possible_agents}
    seeds = train_seeds(args)
    batch: dict[str, list] = {a: [] for a in learners}
    ep_returns: dict[str, list[float]] = {a: [] for a in learners}
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        traj: dict[str, tuple[list[torch.Tensor], list[float]]] = {a: ([], []) for a in learners}
        while env.agents:
            actions = {}
            for a in env.agents:  # each agent acts on its own observation only
                actions[a], logp = learners[a].policy.act(obs[a])
                traj[a][0].append(logp)
            obs, rewards, terminations, truncations, _ = env.step(actions)
            for a in learners:  # ... and learns from its own reward only
                traj[a][1].append(rewards[a])
        for a in learners:
            batch[a].append(traj[a])
            ep_returns[a].append(float(sum(traj[a][1])))
            if len(batch[a]) == args.batch_episodes:
                learners[a].update(batch[a])
                batch[a] = []
    curves = {a: [float(np.mean(r[i:i + args.log_every])) for i in range(0, len(r), args.log_every)]
              for a, r in ep_returns.items()}
    return {"policies": {a: l.policy for a, l in learners.items()}, "train_seeds": seeds, "curves": curves}


def final_quality(env: MinMaxParallelEnv, seed: int, act) -> tuple[float, bool]:
    """Play one episode with ``act(agent, obs)``; the quality at its end (-inf if it diverged)."""
    obs, _ = env.reset(seed=seed)
    diverged = False
    while env.agents:
        obs, _, terminations, _, _ = env.step({a: act(a, obs[a]) for a in env.agents})
        diverged = any(terminations.values())
    q = float(env.batched_env.quality()[0])
    return (-float("inf") if diverged or not np.isfinite(q) else q), diverged


@torch.no_grad()
def evaluate(policies: dict[str, Policy], args: Args) -> dict[str, Any]:
    """Deterministic policies vs the base step size (action 0) on the held-out seeds 0 .. eval_seeds-1."""
    env = make_env(args)
    seeds = list(range(args.eval_seeds))

    def learned(a: str, o: np.ndarray) -> np.ndarray:
        return policies[a].act(o, deterministic=True)[0]

    def base(a: str, o: np.ndarray) -> np.ndarray:
        return np.zeros(env.action_space(a).shape, dtype=np.float32)

    rows = []
    for s in seeds:
        q_learned, div_learned = final_quality(env, s, learned)
        q_base, div_base = final_quality(env, s, base)
        rows.append({"seed": s, "learned": q_learned, "base": q_base, "diverged_learned": div_learned,
                     "diverged_base": div_base})
    learned_q, base_q = np.array([r["learned"] for r in rows]), np.array([r["base"] for r in rows])
    return {"seeds": seeds, "rows": rows, "median_learned": float(np.median(learned_q)),
            "median_base": float(np.median(base_q)), "improved": int((learned_q > base_q).sum()),
            "n": len(seeds)}


def save(policies: dict[str, Policy], args: Args) -> dict[str, Path]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for a, p in policies.items():
        paths[a] = out / f"{a}.pt"
        save_tensors(paths[a], {"state_dict": dict(p.state_dict()), "args": asdict(args),
                                "obs_dim": p.mean[0].in_features, "act_dim": p.log_std.shape[0]}, what="the policy")
    return paths


def load(path: str | Path) -> tuple[Policy, Args]:
    ckpt = load_tensors(path, max_bytes=256 << 20)  # a regular file, no link followed, weights_only=True
    args = Args(**ckpt["args"])
    policy = Policy(ckpt["obs_dim"], ckpt["act_dim"], args.hidden)
    policy.load_state_dict(ckpt["state_dict"])
    return policy, args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(Args, argv, description=__doc__.split("\n\n")[0])
    t0 = time.perf_counter()
    result = train(args)
    paths = save(result["policies"], args)
    report = evaluate(result["policies"], args)
    print(f"trained {args.episodes} episodes x {args.horizon} steps in {time.perf_counter() - t0:.1f} s; "
          f"saved {', '.join(map(str, paths.values()))}")
    for a, c in result["curves"].items():
        print(f"mean return per {args.log_every} episodes, {a}: " + " ".join(f"{x:.3f}" for x in c))
    game = make_env(args).batched_env.game
    sign = "-" if game.quality_sign < 0 else "+"
    print(f"\nfinal quality = {sign}{game.quality_metric} on held-out seeds (larger is better; * = learned better)")
    print(f"{'seed':>4} {'base (a=0)':>12} {'learned':>12}")
    for r in report["rows"]:
        mark = " *" if r["learned"] > r["base"] else ""
        print(f"{r['seed']:>4} {r['base']:>12.4g} {r['learned']:>12.4g}{mark}")
    print(f"median: base {report['median_base']:.4g}, learned {report['median_learned']:.4g}; "
          f"learned better on {report['improved']}/{report['n']} held-out seeds")
    return {**result, "eval": report, "paths": paths}


if __name__ == "__main__":
    main()

"""Train a learned step-size controller with PPO (stable-baselines3) and evaluate it on held-out seeds.

PPO steps the ``--num-envs`` training episodes as the seeds of one batched game
(``minmax_envs.sb3_vec_env.StepSizeSB3VecEnv``, stable-baselines3's ``VecEnv`` over the native vector env; a
single-seed image game falls back to one env per episode).

The controller acts on the step-size control env of a suite task (``StepSizeEnv``: the action sets the
generator's and the discriminator's step sizes, in that order, on a log scale around a base direction agent; the
observation holds gradient, parameter and update norms per player, their ratio, the losses, the fraction
of the episode done and the game's quality; the reward is the improvement of the quality). Training
episodes draw their seeds, and so their game instances, from the ``"train"`` split (seeds >= 2**20);
the evaluation is ``minmax bench`` on the same task with the agents ``sgda``, ``nsgda`` and
``learned:<saved controller>``, every agent tuned with the same step-size budget on tuning seeds and
evaluated on held-out seeds ``0 ..`` (all below 2**20: never trained on).

    python baselines/train_controller.py --task two-mode-small --total-timesteps 60000
    python baselines/train_controller.py --task mog-ring-small --total-timesteps 30000
    minmax bench --suite controllers --agents sgda,nsgda,learned:runs/controllers/two-mode-small.pt

With ``--action balance`` the action sets the pace ratio ``||u_D|| / ||u_G||`` and the overall scale of the base
agent's updates instead of two step sizes (``ControlConfig.action``), and the evaluation adds the fixed-pace
agent ``balanced:BASE?ratio=tuned``:

    python baselines/train_controller.py --suite balance --task correlated-modes --action balance

Writes the controller (``save_controller``, a format that holds no code: see ``minmax_envs.controller_files``):
``OUT/TASK.pt``, the policy's weights (plain tensors, read back with ``torch.load(weights_only=True)``), and
``OUT/TASK.json``, its description (control settings, policy class and arguments, observation and action
spaces), from which loading rebuilds the policy with stable-baselines3's classes; and the evaluation in
``OUT/TASK-eval/`` (``leaderboard.md``, CSVs, plots). The agent ``learned:OUT/TASK.pt`` plays it in any suite.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable for `baselines._args`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium
import torch

import minmax_envs
from baselines._args import parse
from minmax_envs.controller_files import ControllerConfig, save_controller
from minmax_envs.evaluation import bench, get_suite
from minmax_envs.evaluation.report import report
from minmax_envs.step_size_control import ControlConfig


@dataclass
class Args:
    """Train a PPO step-size controller on a suite task and evaluate it against tuned SGDA and nSGDA."""

    suite: str = field(default="controllers", metadata={"help": "suite name or .json file holding the task"})
    task: str = field(default="two-mode-small", metadata={"help": "task of the suite to train and evaluate on"})
    base: str = field(default="sgda", metadata={"help": "base direction agent: sgda, nsgda or adam"})
    momentum: float = field(default=0.0, metadata={"help": "momentum of the base agent (sgda, nsgda)"})
    log10_range: float = field(default=1.0, metadata={"help": "decades of step size the action spans each way"})
    action: str = field(default="step_sizes", metadata={
        "help": "what the action sets: step_sizes (one per player) or balance (pace ratio and scale)"})
    name: str | None = field(default=None, metadata={"help": "file name of the controller (default: the task's)"})
    total_timesteps: int = field(default=60_000, metadata={"help": "PPO environment steps (actions)"})
    num_envs: int = field(default=8, metadata={
        "help": "parallel training episodes (the seeds of one batched game: StepSizeSB3VecEnv)"})
    n_steps: int = field(default=256, metadata={"help": "PPO rollout length per env"})
    learning_rate: float = field(default=3e-4, metadata={"help": "PPO learning rate"})
    seed: int = field(default=0, metadata={"help": "seed of PPO and of the training seed draws"})
    eval_seeds: int | None = field(default=None, metadata={"help": "held-out evaluation seeds (suite default)"})
    out: str = field(default="runs/controllers", metadata={"help": "output directory"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    evaluate: bool = field(default=True, metadata={
        "help": "evaluate on the task after training (false: train and save only, e.g. for a suite to evaluate)"})


def base_step_sizes(task) -> tuple[float, float]:
    """The base step sizes training uses: the middle of the task's tuning grid (its geometric middle and
    first ratio), so that the controller learns around a configuration the evaluation also tries."""
    lo, hi = task.lr_range
    lr_d = math.sqrt(lo * hi)
    return lr_d, lr_d * task.ratios[0]


def train(args: Args) -> Path:
    """Train PPO on the task's step-size env (training seeds only) and save the controller (``OUT/TASK.pt`` with
    ``OUT/TASK.json``); returns the ``.pt`` path, the argument of ``learned:PATH``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from minmax_envs.sb3_vec_env import StepSizeSB3VecEnv

    task = get_suite(args.suite).task(args.task)
    lr_d, lr_g = base_step_sizes(task)
    control = ControlConfig(base=args.base, momentum=args.momentum, log10_range=args.log10_range, action=args.action,
                            base_lr={"discriminator": lr_d, "generator": lr_g}, horizon=task.steps, split="train")
    env_kwargs = {"max_episode_steps": task.steps, **asdict(control), **task.env_kwargs}
    if minmax_envs.spec(task.env_id).game_class().batched:  # all episodes in one batched game (SB3's VecEnv)
        venv = StepSizeSB3VecEnv(args.num_envs, task.env_id, **env_kwargs)
    else:  # a single-seed (image) game: one env per episode
        venv = DummyVecEnv([lambda: gymnasium.make(f"minmax_envs/{task.env_id}", **env_kwargs)] * args.num_envs)
    venv.seed(args.seed)
    model = PPO("MlpPolicy", venv, n_steps=args.n_steps, batch_size=min(256, args.n_steps * args.num_envs),
                learning_rate=args.learning_rate, seed=args.seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.total_timesteps)
    seconds = time.perf_counter() - t0
    config = ControllerConfig(algorithm="PPO", control=control, trained_on={
        "suite": args.suite, "task": task.name, "env_id": task.env_id, "env_kwargs": task.env_kwargs,
        "total_timesteps": args.total_timesteps, "num_envs": args.num_envs, "seed": args.seed,
        "train_seconds": round(seconds, 1), "args": asdict(args)})
    path = save_controller(model, config, Path(args.out) / (args.name or task.name))
    print(f"trained PPO on {task.env_id} ({task.name}) for {args.total_timesteps} steps in {seconds:.1f} s "
          f"({model.num_timesteps / seconds:.0f} env-steps/s) -> {path}", file=sys.stderr)
    return path


def evaluate(args: Args, path: Path) -> str:
    """``minmax bench`` on the task: sgda, nsgda (and, for a balance controller, SGDA held at the tuned pace) and
    the controller, same tuning budget, held-out seeds."""
    out = Path(args.out) / f"{args.name or args.task}-eval"
    fixed_pace = ["balanced:sgda?ratio=tuned"] if args.action == "balance" else []
    bench(args.suite, ["sgda", "nsgda", *fixed_pace, f"learned:{path}"], out, seeds=args.eval_seeds,
          tasks=[args.task])
    return report(out)


def main(argv: list[str] | None = None) -> None:
    args = parse(Args, argv)
    torch.set_num_threads(args.threads)
    path = train(args)
    if args.evaluate:
        print(evaluate(args, path))


if __name__ == "__main__":
    main()

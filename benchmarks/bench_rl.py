"""Env steps per second of whole PPO training loops (rollout and update) on the step-size control envs: the native
trainer ``baselines/ppo_step_size.py`` against stable-baselines3's PPO, in one process, at each thread count.

    OMP_NUM_THREADS=1 python benchmarks/bench_rl.py --threads 1
    OMP_NUM_THREADS=2 python benchmarks/bench_rl.py --threads 2
    python benchmarks/bench_rl.py --device cuda --num-envs 4096 --native-only    # the GPU check (native-default)
    python benchmarks/bench_rl.py --profile                                       # where the native loop's time goes

What is timed
-------------
Two tasks of the suite ``quick``, the envs built with the arguments the native trainer builds them with
(:func:`baselines.ppo_step_size.make_env`: the task's game arguments, base step sizes, horizon = max episode steps,
training seeds): ``dirac-wgan`` (``minmax_envs/DiracGAN-v0``, WGAN loss, 300 actions per episode) and
``two-mode-small`` (``minmax_envs/TwoMode-v0``, ``d = 100``, 500 actions per episode). Each candidate trains for a
whole number of PPO iterations (rollout and update); its rate is env steps (actions of all envs) over the time of
its training loop, from its first rollout to the end of its last update (set-up, the first reset of the envs and the
saving of a controller excluded, alike for all):

* ``native``: the native trainer, ``--num-envs`` envs (default 256), rollouts of 2,048 env steps (8 per env),
  minibatches of 256, 10 epochs: stable-baselines3's sizes (its default ``n_epochs``, and the rollout and
  minibatch of the vector measurement below), timed by ``train`` itself (``Trained.seconds``). ``native-default``
  is the trainer with its own defaults (rollouts of 16 per env, minibatches of 512, 4 epochs): the trainer as a
  user runs it.
* ``sb3-single``: ``PPO("MlpPolicy", env)`` on the single Gymnasium env (``gymnasium.make`` of the same id and
  arguments) with stable-baselines3's defaults (``n_steps`` 2,048, ``batch_size`` 64, 10 epochs): one iteration,
  timed by a callback from its first rollout to the end of ``learn``. Target: native-default >= 100x (each trainer with
  its own settings; ``native`` at stable-baselines3's sizes is printed too).
* ``sb3-vector``: ``PPO("MlpPolicy", NativeVecEnv(...))``, stable-baselines3 driven through a minimal ``VecEnv``
  adapter over the native vector env ``StepSizeVectorEnv`` with the same ``--num-envs``, ``n_steps`` so that a
  rollout is 2,048 env steps, ``batch_size`` 256, 10 epochs: the same sizes as ``native``. Target: native >= 3x.
  The adapter passes the vector env's next-step autoreset through (the step after an episode ends is the reset,
  as in the native trainer, which then drops it from its batch; stable-baselines3 keeps it as a transition): it is
  a measuring device, not a training interface.

Two rates per candidate: env steps per wall-clock second (the throughput) and per CPU second of this process (on
a machine shared with other jobs, what one idle core would give at one thread; at two threads it adds both
threads' time). Each figure is the median over ``--repeats``; within a repeat the candidates run in turn, the
order reversed every other repeat, so that other load on a shared machine hits them alike. Ratios are ratios of
medians, followed by the smallest and largest ratio within one repeat. A training loop's rate depends on what its
policy does (an exploring policy that makes seeds diverge pays for their restarts), so ``--iterations`` moves it.

``--profile`` runs the native trainer (stable-baselines3's sizes) under ``torch.profiler`` and prints where its time
goes: the game's steps (``StepSizeCore.step_tensors``), the policy's acting passes, the update's hand-derived
gradients (``ppo_gradients``) and Adam steps, the rest (normalization, sampling, advantages, batching,
bookkeeping), then the top operators.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: baselines/ is importable

import gymnasium  # noqa: E402
from _machine import add_machine_args, setup_machine  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.vec_env import VecEnv  # noqa: E402

import minmax_envs  # noqa: E402, F401 - registers the minmax_envs/<id> Gymnasium ids
from baselines.ppo_step_size import Args, make_env, train  # noqa: E402
from minmax_envs.vector_env import StepSizeVectorEnv  # noqa: E402

TASKS = {"dirac": "dirac-wgan", "twomode": "two-mode-small"}
ROLLOUT, MINIBATCH, EPOCHS = 2048, 256, 10  # stable-baselines3's sizes, for every candidate of a comparison


class NativeVecEnv(VecEnv):
    """A minimal stable-baselines3 ``VecEnv`` over :class:`StepSizeVectorEnv` (for this measurement only)."""

    def __init__(self, venv: StepSizeVectorEnv, seed: int = 0):
        self.venv, self._seed, self._actions = venv, seed, None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, _ = self.venv.step(self._actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": obs[i], "TimeLimit.truncated": bool(truncated[i])}
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name, None)] * self.num_envs

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
        raise NotImplementedError("NativeVecEnv is a measuring adapter: it has no per-env methods")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * self.num_envs


def native_args(task: str, device: str, num_envs: int, iterations: int, out: str, default: bool = False) -> Args:
    """The native trainer's arguments for ``iterations`` PPO iterations (SB3's sizes unless ``default``)."""
    sizes = {} if default else {"num_steps": max(1, ROLLOUT // num_envs), "minibatch_size": MINIBATCH,
                                "update_epochs": EPOCHS}
    probe = Args(suite="quick", task=task, num_envs=num_envs, device=device, **sizes)
    return Args(suite="quick", task=task, num_envs=num_envs, device=device, **sizes, out=out, tensorboard=False,
                total_timesteps=iterations * num_envs * probe.num_steps, train_episodes=0)  # the loop alone


class LoopClock(BaseCallback):
    """The wall and CPU seconds of a stable-baselines3 training loop, from its first rollout to the end of ``learn``
    (as the native trainer times its own loop: set-up and first reset excluded)."""

    def __init__(self):
        super().__init__()
        self.start: tuple[float, float] | None = None

    def _on_rollout_start(self) -> None:
        if self.start is None:
            self.start = (time.perf_counter(), time.process_time())

    def _on_step(self) -> bool:
        return True

    def rates(self, steps: int) -> tuple[float, float]:
        """Env steps per wall second and per CPU second, read at the end of ``learn``."""
        wall, cpu = time.perf_counter() - self.start[0], time.process_time() - self.start[1]
        return steps / wall, steps / cpu


def run_native(task: str, device: str, num_envs: int, iterations: int, out: str,
               default: bool = False) -> tuple[float, float]:
    """Env steps per wall second and per CPU second of the native trainer's loop (``Trained.seconds``)."""
    trained = train(native_args(task, device, num_envs, iterations, out, default))
    steps = trained.history[-1]["global_step"]
    return steps / trained.seconds["wall"], steps / trained.seconds["cpu"]


def env_kwargs(task: str) -> tuple[str, dict[str, Any]]:
    """The Gymnasium id and arguments of the env the native trainer trains on for ``task``."""
    core, on = make_env(Args(suite="quick", task=task, num_envs=1))
    del core
    return f"minmax_envs/{on['env_id']}", {**on["env_kwargs"], "base_lr": on["base_lr"], "horizon": on["horizon"],
                                           "max_episode_steps": on["horizon"], "split": "train"}


def run_sb3_single(task: str) -> tuple[float, float]:
    from stable_baselines3 import PPO

    env_id, kwargs = env_kwargs(task)
    model = PPO("MlpPolicy", gymnasium.make(env_id, **kwargs), seed=0, device="cpu")
    clock = LoopClock()
    model.learn(total_timesteps=model.n_steps, callback=clock)
    return clock.rates(model.n_steps)


def run_sb3_vector(task: str, num_envs: int, iterations: int) -> tuple[float, float]:
    from stable_baselines3 import PPO

    env_id, kwargs = env_kwargs(task)
    kwargs.pop("max_episode_steps")
    venv = NativeVecEnv(StepSizeVectorEnv(num_envs, env_id.split("/", 1)[1], max_episode_steps=kwargs["horizon"],
                                          **kwargs))
    n_steps = max(1, ROLLOUT // num_envs)
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=MINIBATCH, n_epochs=EPOCHS, seed=0, device="cpu")
    clock = LoopClock()
    model.learn(total_timesteps=iterations * n_steps * num_envs, callback=clock)
    return clock.rates(iterations * n_steps * num_envs)


def profile_native(task: str, device: str, num_envs: int, iterations: int, out: str) -> None:
    """The native trainer under torch.profiler: the time of its parts (record_function ranges around the functions
    it calls) and the top operators."""
    from torch.profiler import ProfilerActivity, profile, record_function

    import baselines.ppo_step_size as ppo

    args = native_args(task, device, num_envs, iterations, out)
    train(native_args(task, device, num_envs, 1, out))  # warm up
    parts = {"game step": (ppo.StepSizeCore, "step_tensors"), "policy (acting)": (ppo.Agent, "mean"),
             "value (acting)": (ppo.Agent, "value"), "update: gradients": (ppo, "ppo_gradients"),
             "update: Adam": (ppo.Adam, "step")}
    originals = {name: getattr(owner, attr) for name, (owner, attr) in parts.items()}

    def ranged(name: str, fn):
        def call(*a, **k):
            with record_function(name):
                return fn(*a, **k)
        return call

    for name, (owner, attr) in parts.items():
        setattr(owner, attr, ranged(name, originals[name]))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    try:
        with profile(activities=activities) as prof, record_function("train"):
            train(args)
    finally:
        for name, (owner, attr) in parts.items():
            setattr(owner, attr, originals[name])
    events = {e.key: e for e in prof.key_averages()}
    total = events["train"].cpu_time_total
    print(f"profile of the native trainer on {task} ({args.num_envs} envs, {iterations} iterations of "
          f"{args.num_envs * args.num_steps} env steps, {args.update_epochs} epochs of minibatches of "
          f"{args.minibatch_size}; CPU time under the profiler):")
    rest = total
    for name in parts:
        if name in events:
            e = events[name]
            rest -= e.cpu_time_total
            print(f"  {name:20s} {e.cpu_time_total / 1e6:7.3f} s  {100 * e.cpu_time_total / total:5.1f}%  "
                  f"({e.count} calls, {e.cpu_time_total / e.count:8.1f} us each)")
    print(f"  {'the rest':20s} {rest / 1e6:7.3f} s  {100 * rest / total:5.1f}%")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_machine_args(ap)
    ap.add_argument("--tasks", default="dirac,twomode", help=f"comma-separated among {', '.join(TASKS)}")
    ap.add_argument("--num-envs", type=int, default=256, help="parallel envs of the native and vector candidates")
    ap.add_argument("--iterations", type=int, default=6, help="PPO iterations per native / vector measurement")
    ap.add_argument("--repeats", type=int, default=1, help="measurements per candidate (median)")
    ap.add_argument("--native-only", action="store_true", help="time the native trainer only (e.g. on a GPU)")
    ap.add_argument("--profile", action="store_true", help="profile the native trainer instead of comparing")
    args = ap.parse_args(argv)
    device = str(setup_machine(args))
    threads = torch.get_num_threads()
    unknown = sorted(set(args.tasks.split(",")) - set(TASKS))
    if unknown:
        ap.error(f"unknown task(s) {', '.join(unknown)}; choose among {', '.join(TASKS)}")
    tasks = [TASKS[t] for t in args.tasks.split(",")]
    print(f"torch {torch.__version__}, {threads} thread(s), device {device}, {args.num_envs} envs; rollout "
          f"{ROLLOUT}, minibatch {MINIBATCH}, {EPOCHS} epochs for native and sb3-vector")
    with tempfile.TemporaryDirectory() as out:
        if args.profile:
            for task in tasks:
                profile_native(task, device, args.num_envs, args.iterations, out)
            return
        for task in tasks:
            candidates = {"native": partial(run_native, task, device, args.num_envs, args.iterations, out),
                          "native-default": partial(run_native, task, device, args.num_envs, args.iterations, out,
                                                    default=True)}
            if args.num_envs > ROLLOUT:  # no rollout of stable-baselines3's size: the trainer's own settings only
                del candidates["native"]
            if not args.native_only:
                candidates["sb3-vector"] = partial(run_sb3_vector, task, args.num_envs, args.iterations)
                candidates["sb3-single"] = partial(run_sb3_single, task)
            run_native(task, device, args.num_envs, 1, out, default=args.num_envs > ROLLOUT)  # warm-up
            rates: dict[str, list[tuple[float, float]]] = {k: [] for k in candidates}
            for r in range(args.repeats):
                for name in (list(candidates) if r % 2 == 0 else list(reversed(candidates))):
                    torch.set_num_threads(threads)
                    rates[name].append(candidates[name]())
                    assert torch.get_num_threads() == threads, "a candidate changed torch's thread count"
            for i, unit in enumerate(("env-steps per wall second", "env-steps per CPU second")):
                med = {k: statistics.median(v[i] for v in vs) for k, vs in rates.items()}
                print(f"{task}, {unit}: " + ", ".join(f"{k} {v:,.0f}" for k, v in med.items()))
                for ref in ("sb3-single", "sb3-vector"):
                    if ref in med and "native" in med:
                        print(f"  native / {ref}: {_ratio(rates, 'native', ref, i)}, "
                              f"native-default / {ref}: {_ratio(rates, 'native-default', ref, i)}")


def _ratio(rates: dict[str, list[tuple[float, float]]], name: str, ref: str, i: int) -> str:
    """The ratio of the medians, and the smallest and largest ratio within one repeat (the candidates of a repeat run
    in turn, so a repeat's ratio sees one state of the machine): ``"2.6x (2.4-2.9x)"``."""
    med = statistics.median(r[i] for r in rates[name]) / statistics.median(r[i] for r in rates[ref])
    within = [a[i] / b[i] for a, b in zip(rates[name], rates[ref])]
    return f"{med:.1f}x ({min(within):.1f}-{max(within):.1f}x over {len(within)} repeats)"


if __name__ == "__main__":
    main()

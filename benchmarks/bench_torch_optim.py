"""``agents.from_torch`` over N seeds: seed-steps per second, and ratios.

    python benchmarks/bench_torch_optim.py --threads 2 --repeats 5 --steps 20 --seeds 32 --device cpu

One env of ``--env`` (default ``MoG-Ring-v0``, default sizes) with ``--seeds`` seeds, float32, played by
``minmax_envs.run_episode`` for ``--steps`` iterations (both players move; everything an evaluation does: the
game's gradients, the agent, the env's bookkeeping). A figure is seed-steps per second: seeds times iterations
over the wall time of the iterations (an episode's fixed costs, reset and final metrics, are subtracted: each
timing is an episode of ``--steps`` iterations minus one of 0).

(a) A non-element-wise optimizer (``--optimizer``, default ``pytorch_optimizer.Lamb``; ``pytorch_optimizer.Prodigy``
    is another), necessarily one optimizer per seed (from_torch's default for it):

    * batched: one N-seed env, the agent holding N optimizers (one ``step()`` per seed and player);
    * separate: N one-seed envs played one after the other (what a sweep without batching does).

(b) ``torch.optim.Adam`` (element-wise, allow-listed) on the N-seed env:

    * whole tensors: from_torch's automatic path, one optimizer over the ``(N, ...)`` tensors;
    * per seed: ``per_seed=True``, N optimizers on the seeds' views (what any other optimizer costs);
    * and, for reference, our pure ``agents.adam``.

All candidates run in one process after a warm-up, interleaved repeat by repeat so that other load on a shared
machine hits them alike; each figure is the median over ``--repeats`` (the best repeat is shown too).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _machine import add_machine_args, setup_machine

import agents
import minmax_envs

LR = 1e-3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(env, tx, steps: int, seed: int, device: torch.device) -> float:
    """Wall seconds of the ``steps`` iterations of an episode: an episode of ``steps`` minus one of 0 iterations
    (its fixed costs: reset, agent init, final metrics)."""
    out = []
    for s in (steps, 0):
        _sync(device)
        t0 = time.perf_counter()
        minmax_envs.run_episode(env, tx, steps=s, seed=seed)
        _sync(device)
        out.append(time.perf_counter() - t0)
    return max(out[0] - out[1], 1e-9)


def episode(env_id: str, seeds: int, tx, steps: int, device: torch.device) -> Callable[[], float]:
    """A closure timing ``steps`` iterations of one ``seeds``-seed env."""
    env = minmax_envs.make(env_id, num_seeds=seeds, device=device, dtype=torch.float32)
    return lambda: _timed(env, tx, steps, 0, device)


def separate(env_id: str, seeds: int, tx, steps: int, device: torch.device) -> Callable[[], float]:
    """``seeds`` one-seed envs played one after the other (seed ``i`` for env ``i``)."""
    envs = [minmax_envs.make(env_id, num_seeds=1, device=device, dtype=torch.float32) for _ in range(seeds)]
    return lambda: sum(_timed(env, tx, steps, i, device) for i, env in enumerate(envs))


def measure(runs: dict[str, Callable[[], float]], repeats: int, warmup: int) -> dict[str, list[float]]:
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return times


def report(title: str, times: dict[str, list[float]], seed_steps: int, base: str) -> None:
    rate = {name: seed_steps / statistics.median(t) for name, t in times.items()}
    print(f"\n{title} (ratio: vs {base})")
    print(f"{'':34s}{'seed-steps/s':>13s}{'(best)':>10s}{'ratio':>9s}")
    for name, r in rate.items():
        print(f"{name:34s}{r:13.0f}{seed_steps / min(times[name]):10.0f}{r / rate[base]:8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_machine_args(ap)
    ap.add_argument("--env", default="MoG-Ring-v0", help="env id (a batched game)")
    ap.add_argument("--seeds", type=int, default=32, help="seeds N")
    ap.add_argument("--steps", type=int, default=20, help="iterations per episode")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per candidate (the median is reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed episodes of every candidate first")
    ap.add_argument("--optimizer", default="pytorch_optimizer.Lamb", help="a non-element-wise optimizer for (a)")
    args = ap.parse_args()
    device = setup_machine(args)
    n, steps = args.seeds, args.steps
    print(f"{args.env}, N={n} seeds, {steps} iterations per episode, float32 on {device}, torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, median of {args.repeats} repeats")

    tx = agents.from_torch(args.optimizer, lr=LR)
    times = measure({"batched (N optimizers, one env)": episode(args.env, n, tx, steps, device),
                     "separate (N one-seed envs)": separate(args.env, n, tx, steps, device)},
                    args.repeats, args.warmup)
    report(f"(a) {args.optimizer}: one optimizer per seed", times, n * steps, "separate (N one-seed envs)")

    whole = agents.from_torch("torch.optim.Adam", lr=LR, betas=(0.5, 0.9))
    per_seed = agents.from_torch("torch.optim.Adam", lr=LR, betas=(0.5, 0.9), per_seed=True)
    times = measure({"whole tensors (1 optimizer)": episode(args.env, n, whole, steps, device),
                     "per seed (N optimizers)": episode(args.env, n, per_seed, steps, device),
                     "agents.adam (pure, reference)": episode(args.env, n, agents.adam(LR), steps, device)},
                    args.repeats, args.warmup)
    report("(b) torch.optim.Adam on the N-seed env", times, n * steps, "per seed (N optimizers)")


if __name__ == "__main__":
    main()

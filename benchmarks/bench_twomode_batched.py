"""Batched vs sequential seeds on TwoMode-v0: seed-steps per second of one env with N seeds against N
single-seed envs stepped one after another (same agent, same number of steps, one process).

    python benchmarks/bench_twomode_batched.py --seeds 256 --steps 50 --device cpu

Prints, for each path, the time of the resets (``init``: drawing modes and parameters), of the steps, and
the throughput in seed-steps per second with and without the resets, then the batched/sequential ratios
(target on a 2-core CPU: >= 10x). Other processes on the machine change the absolute figures; both
paths are measured back to back in the same process after a warm-up.
"""

from __future__ import annotations

import argparse
import time

import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _episode(env: minmax_envs.BatchedEnv, tx: agents.GradientTransformation, steps: int, seed: int
             ) -> tuple[float, float]:
    """Reset, then ``steps`` agent steps (the loop of ``run_episode`` without metrics): (reset s, steps s)."""
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    states = {pl: tx.init(obs[pl].params) for pl in PLAYERS}
    _sync(env.device)
    t1 = time.perf_counter()
    for _ in range(steps):
        updates = {}
        for pl in PLAYERS:
            updates[pl], states[pl] = tx.update(obs[pl].grads, states[pl], obs[pl].params)
        obs, *_ = env.step(updates, validate=False)
    _sync(env.device)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=256, help="N: seeds in the batched env / single-seed envs")
    ap.add_argument("--steps", type=int, default=50, help="steps per seed")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ap.add_argument("--lr", type=float, default=0.01, help="learning rate of global nSGDA for both players")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps of each path before timing")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tx = agents.nsgda(args.lr)
    n, steps = args.seeds, args.steps

    batched = minmax_envs.make("TwoMode-v0", num_seeds=n, device=device)
    singles = [minmax_envs.make("TwoMode-v0", num_seeds=1, device=device) for _ in range(n)]
    _episode(batched, tx, args.warmup, seed=0)
    _episode(singles[0], tx, args.warmup, seed=0)

    b_reset, b_steps = _episode(batched, tx, steps, seed=0)
    s_reset = s_steps = 0.0
    for i, env in enumerate(singles):
        r, s = _episode(env, tx, steps, seed=i)
        s_reset, s_steps = s_reset + r, s_steps + s

    work = n * steps
    print(f"TwoMode-v0 (d=1000, m_d=m_g=5), global nSGDA lr={args.lr} for both players, {n} seeds x {steps} "
          f"steps on {device}, torch threads={torch.get_num_threads()}")
    print(f"{'':28s}{'resets s':>10s}{'steps s':>10s}{'seed-steps/s':>15s}{'incl. resets':>15s}")
    for name, r, s in [(f"batched (1 env, N={n})", b_reset, b_steps),
                       (f"sequential ({n} envs, N=1)", s_reset, s_steps)]:
        print(f"{name:28s}{r:10.3f}{s:10.3f}{work / s:15.0f}{work / (r + s):15.0f}")
    print(f"ratio batched / sequential: {s_steps / b_steps:.1f}x stepping, "
          f"{(s_reset + s_steps) / (b_reset + b_steps):.1f}x including resets")


if __name__ == "__main__":
    main()

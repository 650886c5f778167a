"""One optimizer step of our agents against ``torch.optim.Adam`` (``foreach=True`` and ``fused=True``) on the
same tensors: milliseconds per step and ratios.

    python benchmarks/bench_agents.py --threads 2 --repeats 15 --steps 20 --device cpu

Two parameter sets, float32, both players: (a) ``MoG-Ring-v0`` with 64 seeds (default sizes: 2 hidden
layers of 128, about 1.1M numbers per player) and (b) ``TwoMode-v0`` with 256 seeds (``d = 1000``, 1.3M
numbers per player). Gradients are fixed random tensors. One step is one update per player, as in an env
step (GAN training keeps one optimizer per player):

* ours: ``updates, state = tx.update(grads, state, params)`` then ``params = params + updates`` (the env
  adds the updates to the parameters; here with one ``torch._foreach_add`` per player);
* torch: ``opt.step()`` of one ``torch.optim.Adam`` per player (in place, its own update rule).

All candidates run in one process after a warm-up, interleaved repeat by repeat so that other load on a
shared machine hits them alike; each figure is the median over ``--repeats`` of the mean over ``--steps``
steps (the fastest repeat is shown too: on a busy machine it is the steadier figure; ratios use the
medians). Targets: adam, adalr and nsgda within 1.2x of fused Adam and faster than foreach Adam.

Two ``(floor)`` rows bound what any pure agent can reach: ``params + u`` alone (the env's addition, which
``torch.optim`` folds into its in-place step), and ``pure Adam``: the three new tensors a pure Adam step
must write (both moments and the update, here plain copies) plus that addition.
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
from minmax_envs import PLAYERS

LR = 1e-3
BETAS = (0.5, 0.9)
FUSED_TARGET = 1.2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parameter_sets(device: torch.device) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """``{set name: {player: {tensor: float32 tensor}}}`` from the games' own initial parameters."""
    out = {}
    sets = [("MoG-Ring-v0, N=64", "MoG-Ring-v0", 64), ("TwoMode-v0, N=256, d=1000", "TwoMode-v0", 256)]
    for label, env_id, n in sets:
        env = minmax_envs.make(env_id, num_seeds=n, device=device, dtype=torch.float32)
        env.reset(seed=0)
        out[label] = {pl: {k: v.detach().clone() for k, v in env.params[pl].items()} for pl in PLAYERS}
    return out


def fixed_grads(params: dict[str, dict[str, torch.Tensor]], seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {pl: {k: torch.randn(v.shape, generator=g, dtype=v.dtype).to(v.device) for k, v in ps.items()}
            for pl, ps in params.items()}


def ours(tx: agents.GradientTransformation, params, grads) -> Callable[[], None]:
    """A closure doing one step of ``tx`` for both players: update, then ``params + updates``."""
    p = {pl: dict(ps) for pl, ps in params.items()}
    states = {pl: tx.init(p[pl]) for pl in PLAYERS}

    def step() -> None:
        for pl in PLAYERS:
            u, states[pl] = tx.update(grads[pl], states[pl], p[pl])
            keys = list(p[pl])
            p[pl] = dict(zip(keys, torch._foreach_add([p[pl][k] for k in keys], [u[k] for k in keys])))

    return step


def torch_adam(params, grads, **kind) -> Callable[[], None]:
    """A closure doing one ``torch.optim.Adam.step()`` per player on copies of ``params``."""
    opts = []
    for pl in PLAYERS:
        leaves = []
        for k, v in params[pl].items():
            leaf = v.clone().requires_grad_(True)
            leaf.grad = grads[pl][k].clone()
            leaves.append(leaf)
        opts.append(torch.optim.Adam(leaves, lr=LR, betas=BETAS, **kind))

    def step() -> None:
        for opt in opts:
            opt.step()

    return step


def floor(params, grads, new_tensors: int) -> Callable[[], None]:
    """A lower bound for a pure agent: per player, ``new_tensors`` new tensors written from the gradients and
    the moment buffers (plain copies, no arithmetic), then ``params + updates``. A pure Adam step writes at
    least three (both moments and the update), so ``new_tensors=3`` bounds ``adam`` from below; with 0 it
    is the env's ``params + updates`` alone."""
    p = {pl: dict(ps) for pl, ps in params.items()}
    moments = {pl: [torch.zeros_like(v) for v in ps.values()] for pl, ps in params.items()}

    def step() -> None:
        for pl in PLAYERS:
            keys = list(p[pl])
            g = [grads[pl][k] for k in keys]
            sources = [g, moments[pl], moments[pl]][:new_tensors]
            written = [torch._foreach_mul(src, 1.0) for src in sources]
            u = written[0] if written else g
            p[pl] = dict(zip(keys, torch._foreach_add([p[pl][k] for k in keys], u)))

    return step


def candidates(params, grads) -> dict[str, Callable[[], None]]:
    return {
        "torch Adam foreach": torch_adam(params, grads, foreach=True),
        "torch Adam fused": torch_adam(params, grads, fused=True),
        "(floor) params + u": floor(params, grads, 0),
        "(floor) pure Adam": floor(params, grads, 3),
        "adam": ours(agents.adam(LR, BETAS), params, grads),
        "adalr (layer)": ours(agents.adalr(LR, BETAS, scope="layer"), params, grads),
        "nsgda (global)": ours(agents.nsgda(LR, scope="global"), params, grads),
        "nsgda (layer)": ours(agents.nsgda(LR, scope="layer"), params, grads),
    }


def time_steps(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Milliseconds per step, the mean over ``steps`` consecutive steps."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps * 1e3


def step_arguments(repeats: int, steps: int) -> tuple[argparse.Namespace, torch.device]:
    """The command line of an agent-step benchmark (machine options, repeats, steps, warm-up), parsed and set up."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_machine_args(ap)
    ap.add_argument("--repeats", type=int, default=repeats, help="timed repeats per candidate (the median is reported)")
    ap.add_argument("--steps", type=int, default=steps, help="steps per repeat")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps of every candidate first")
    args = ap.parse_args()
    device = setup_machine(args)
    print(f"one step = one update per player; float32 on {device}, torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, median of {args.repeats} repeats x {args.steps} steps")
    return args, device


def time_candidates(runs: dict[str, Callable[[], None]], args: argparse.Namespace,
                    device: torch.device) -> dict[str, list[float]]:
    """Milliseconds per step of every candidate, ``args.repeats`` times each after a warm-up, interleaved repeat
    by repeat (other load on a shared machine hits them alike)."""
    for step in runs.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, step in runs.items():
            times[name].append(time_steps(step, args.steps, device))
    return times


def main() -> None:
    args, device = step_arguments(repeats=15, steps=20)
    missed = []
    for label, params in parameter_sets(device).items():
        grads = fixed_grads(params)
        numel = sum(v.numel() for ps in params.values() for v in ps.values())
        times = time_candidates(candidates(params, grads), args, device)
        med = {name: statistics.median(t) for name, t in times.items()}
        fused, foreach = med["torch Adam fused"], med["torch Adam foreach"]
        print(f"\n{label}: {numel / 1e6:.2f}M numbers in {sum(len(ps) for ps in params.values())} tensors")
        print(f"{'':22s}{'ms/step':>9s}{'(min)':>8s}{'vs fused':>10s}{'vs foreach':>12s}{'target':>8s}")
        for name, ms in med.items():
            target = ""
            if not name.startswith(("torch", "(floor)")):
                ok = ms <= FUSED_TARGET * fused and ms < foreach
                target = "met" if ok else "MISSED"
                if not ok:
                    missed.append(f"{label}: {name}")
            print(f"{name:22s}{ms:9.3f}{min(times[name]):8.3f}{ms / fused:9.2f}x{ms / foreach:11.2f}x{target:>8s}")
    print(f"\ntargets: <= {FUSED_TARGET}x fused Adam and < 1x foreach Adam (rows marked met/MISSED); "
          + ("all met" if not missed else "missed: " + "; ".join(missed)))


if __name__ == "__main__":
    main()

"""One step of the in-place agents (``agents.inplace``) against ``torch.optim.Adam(fused=True)`` on the same
tensors: milliseconds per step and ratios.

    python benchmarks/bench_inplace.py --threads 1 --repeats 5 --steps 10 --device cpu

The parameter sets, gradients and timing of ``benchmarks/bench_agents.py`` (float32, both players; MoG-Ring-v0
with 64 seeds, 2.19M numbers, and TwoMode-v0 with 256 seeds, ``d = 1000``, 2.56M numbers; fixed random
gradients; every candidate in one process after a warm-up, interleaved repeat by repeat; medians of
``--repeats`` means over ``--steps`` steps, the fastest repeat beside). One step is one update per player:

* in place: ``state = tx.step(grads, state, params)``, which writes the new parameters into ``params``
  (``agents.inplace.adam``, ``nsgda``, ``adalr``, ``adadir``, ``sgda``; and, for comparison, ``agents.in_place``
  of the pure agents: the pure update, then ``params += u``);
* torch: ``opt.step()`` of one ``torch.optim.Adam`` per player, its ``.grad`` set by hand once (``fused=True``,
  the reference of the ratios, and ``foreach=True``).

Targets (issue 14): in-place adam <= 1.2x fused Adam; in-place nsgda and adalr <= 1.5x;
``agents.from_torch(torch.optim.Adam, fused=True)`` (its whole-tensor path) <= 1.1x.

``(floor)`` rows run only the torch kernels that a fast path must run, with fixed per-seed factors and none of
its Python: ``params += u`` (what any in-place step touches at least: read both, write the parameters), and
AdaLR's kernels (a zero buffer, the fused Adam kernel into it, the momentum pass ``M <- g + beta1 M``, the
per-seed norms of both, ``p += f M``): the gap between a fast path and its floor is its own overhead.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from bench_agents import BETAS, LR, fixed_grads, parameter_sets, step_arguments, time_candidates, torch_adam

import agents
from agents import inplace
from minmax_envs import PLAYERS

TARGETS = {"adam": 1.2, "from_torch(Adam, fused)": 1.1, "nsgda (global)": 1.5, "nsgda (layer)": 1.5,
           "adalr (layer)": 1.5, "adalr (global)": 1.5}


def stepping(tx: agents.InPlaceTransformation, params, grads) -> Callable[[], None]:
    """A closure doing one in-place step of ``tx`` for both players, on copies of ``params``."""
    p = {pl: {k: v.clone() for k, v in ps.items()} for pl, ps in params.items()}
    states = {pl: tx.init(p[pl]) for pl in PLAYERS}

    def step() -> None:
        for pl in PLAYERS:
            states[pl] = tx.step(grads[pl], states[pl], p[pl])

    return step


def floor_add(params, grads) -> Callable[[], None]:
    """``params += u`` with a fixed ``u`` (one foreach kernel per player)."""
    p = {pl: [v.clone() for v in ps.values()] for pl, ps in params.items()}
    u = {pl: [g * -LR for g in gs.values()] for pl, gs in grads.items()}

    def step() -> None:
        for pl in PLAYERS:
            torch._foreach_add_(p[pl], u[pl])

    return step


def floor_adalr(params, grads) -> Callable[[], None]:
    """The kernels of ``agents.inplace.adalr`` (layer scope), in its order, with fixed factors: the zero buffer,
    torch's fused Adam kernel into it (moments in place), ``M <- g + beta1 M`` (one pass), the per-seed norms of
    Adam's step and of ``M`` (one reduction per tensor each), ``p += f M`` (one pass)."""
    p = {pl: [v.clone() for v in ps.values()] for pl, ps in params.items()}
    g = {pl: list(gs.values()) for pl, gs in grads.items()}
    mu, nu, m = ({pl: [torch.zeros_like(v) for v in ps.values()] for pl, ps in params.items()} for _ in range(3))
    f = {pl: [torch.full((v.shape[0],) + (1,) * (v.ndim - 1), -LR) for v in ps.values()] for pl, ps in params.items()}
    count = [0]

    def step() -> None:
        count[0] += 1
        t = torch.full((), float(count[0]))
        for pl in PLAYERS:
            a = [torch.zeros_like(x) for x in g[pl]]
            torch._fused_adam_(a, g[pl], mu[pl], nu[pl], [], [t] * len(a), lr=LR, beta1=BETAS[0], beta2=BETAS[1],
                               weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
            for mi, gi in zip(m[pl], g[pl]):
                torch.add(gi, mi, alpha=BETAS[0], out=mi)
            for x in a + m[pl]:
                torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)
            torch._foreach_addcmul_(p[pl], m[pl], f[pl])

    return step


def candidates(params, grads) -> dict[str, Callable[[], None]]:
    fast = {
        "adam": inplace.adam(LR, BETAS),
        "nsgda (global)": inplace.nsgda(LR, scope="global"),
        "nsgda (layer)": inplace.nsgda(LR, scope="layer"),
        "adalr (layer)": inplace.adalr(LR, BETAS, scope="layer"),
        "adalr (global)": inplace.adalr(LR, BETAS, scope="global"),
        "adadir (layer)": inplace.adadir(LR, BETAS, scope="layer"),
        "sgda": inplace.sgda(LR),
        "sgda (momentum 0.9)": inplace.sgda(LR, momentum=0.9),
        "from_torch(Adam, fused)": agents.from_torch(torch.optim.Adam, lr=LR, betas=BETAS, fused=True),
    }
    reference = {
        "in_place(adam)": agents.in_place(agents.adam(LR, BETAS)),
        "in_place(nsgda global)": agents.in_place(agents.nsgda(LR, scope="global")),
        "in_place(adalr layer)": agents.in_place(agents.adalr(LR, BETAS, scope="layer")),
    }
    return {"torch Adam fused": torch_adam(params, grads, fused=True),
            "torch Adam foreach": torch_adam(params, grads, foreach=True),
            "(floor) params += u": floor_add(params, grads),
            "(floor) adalr kernels": floor_adalr(params, grads),
            **{name: stepping(tx, params, grads) for name, tx in {**fast, **reference}.items()}}


def main() -> None:
    args, device = step_arguments(repeats=5, steps=10)
    missed = []
    for label, params in parameter_sets(device).items():
        grads = fixed_grads(params)
        numel = sum(v.numel() for ps in params.values() for v in ps.values())
        times = time_candidates(candidates(params, grads), args, device)
        med = {name: statistics.median(t) for name, t in times.items()}
        fused = med["torch Adam fused"]
        print(f"\n{label}: {numel / 1e6:.2f}M numbers in {sum(len(ps) for ps in params.values())} tensors")
        print(f"{'':24s}{'ms/step':>9s}{'(min)':>8s}{'vs fused':>10s}{'target':>9s}")
        for name, ms in med.items():
            target = ""
            if name in TARGETS:
                ok = ms <= TARGETS[name] * fused
                target = f"{TARGETS[name]}x " + ("met" if ok else "MISSED")
                if not ok:
                    missed.append(f"{label}: {name}")
            print(f"{name:24s}{ms:9.3f}{min(times[name]):8.3f}{ms / fused:9.2f}x{target:>14s}")
    print("\ntargets: in-place adam <= 1.2x fused Adam, nsgda and adalr <= 1.5x, from_torch(Adam, fused) <= 1.1x; "
          + ("all met" if not missed else "missed: " + "; ".join(missed)))


if __name__ == "__main__":
    main()

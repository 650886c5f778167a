"""Batched seeds against hand-written single-seed training loops on the small games: seed-steps per second
and their ratios, every candidate timed in one process, interleaved repeat by repeat.

    python benchmarks/bench_small_games.py --threads 1 --repeats 5 --games twomode,dirac,bilinear,mog --device cpu

What is timed
-------------
*Batched*: ``minmax_envs.run_episode(env, agents, steps=K, seed=0)`` on one env of ``N`` seeds, exactly
as a user calls it (reset, ``K`` iterations, final metrics). The same call with ``steps=0`` (reset and
metrics only) is timed too, and the headline rate is the *stepping* rate ``N K / (t(K) - t(0))``, which
does not depend on the arbitrary ``K``; the rate including the reset at this ``K`` is printed beside it.

*References* (each timed over its training loop only, after its set-up):

* ``twomode``: ``TwoMode-v0``, ``d = 1000``, ``m_d = m_g = 5``, ``N = 256``, global nSGDA (``eta_D = 0.02``,
  ``eta_G = 0.01``). Reference: the loop a paper's code would run for one seed, with plain tensors
  ``W (m_d, d)``, scalars ``a``, ``b`` and ``V (m_g, d)`` with ``requires_grad``; per step one real sample
  (``u1`` or ``u2`` with probability 1/2, the correlated-modes case) and one one-hot latent (a second active
  coordinate with probability ``1/log(d)^2``), both from one ``torch.rand(4)`` read on the host; the logit
  ``a * sum_i sigma(<w_i, x>) + b`` with the truncated cubic ``sigma`` (``Lambda = d^0.2``) on ``x`` and on
  ``G(z) = V^T z``; the standard GAN payoff ``f = log D(x) + log(1 - D(G(z)))`` (as ``logsigmoid``); one
  ``torch.autograd.grad`` of ``f`` for all four tensors; then, under ``no_grad``, the global nSGDA update by
  hand: ascent ``(W, a, b) += eta_D g_D / ||g_D||`` (norm over the three) and descent
  ``V -= eta_G g_V / ||g_V||``. Initial scales as the game's defaults (Parametrization 4.1).
  Targets: ratio >= 100x; and the achieved bytes/s of the batched step at least 30% of the machine's memory
  bandwidth (see "Bytes" below).
* ``dirac``: ``DiracGAN-v0``, ``loss="wgan"``, ``N = 65,536``, SGDA ``lr = 0.01`` for both players. Reference: 0-dim
  tensors ``theta``, ``psi`` (start (1, 1)) with ``requires_grad``; per step ``L = psi * theta``, one
  ``autograd.grad`` for both, then ``theta -= lr g_theta``, ``psi += lr g_psi`` under ``no_grad``.
  Target >= 1,000x.
* ``bilinear``: ``Bilinear-v0`` (``n = 10``), ``N = 65,536``, SGDA ``lr = 0.01``. Reference: one seed's
  ``A = U diag(s) V^T`` (QR of Gaussians, ``s`` uniform in [0.5, 1]), ``b``, ``c``, and vectors ``x``, ``y``
  with ``requires_grad``; per step ``f = x^T A y + b^T x + c^T y``, one ``autograd.grad``, then
  ``x -= lr g_x``, ``y += lr g_y``. Target >= 1,000x.
* ``mog``: ``MoG-Ring-v0`` (default sizes: 2 hidden layers of 128, ReLU, ``z_dim = 2``, batch 256, gan loss),
  ``N = 64``, Adam ``lr = 1e-3``, betas (0.5, 0.9), for both players. Two references, each a loop over
  64 single-seed runs of ``K`` steps: (a) our own env with ``num_seeds=1``, ``run_episode`` 64 times
  (stepping rate from ``t(K) - t(0)`` as above); (b) a hand-written loop: ``nn.Sequential`` MLPs of the
  same sizes, per step 256 real samples (a random ring mode plus ``0.02 N(0, I)``) and 256 Gaussian latents,
  ``f = mean log D(x) + mean log(1 - D(G(z)))``, one ``autograd.grad`` for both players' parameters (the
  game is zero-sum), ``.grad`` set to ``g`` (generator) and ``-g`` (discriminator), then one
  ``torch.optim.Adam.step()`` per player (torch's default implementation). Target >= 5x for both.

Timing: after one untimed warm-up of every candidate, each repeat runs every candidate of a game once,
the order reversed every other repeat, so that other load on a shared machine hits them alike; figures are
medians over ``--repeats``; ratios are ratios of medians. ``torch.set_num_threads(--threads)`` applies to all.

Bytes (twomode): the tensors one batched step must touch at least, given the API's boundaries (the game
returns gradients, the agent returns updates, the env adds them), each tensor written once and read once
per consumer, in float32, with ``P = N (m_d + m_g) d + 2 N`` the parameter count:
game (forward and backward): read ``P`` params, write ``P`` gradients; data: read the two modes ``2 N d``,
write and read the inputs ``y = [x, G(z)]`` (``2 N d`` each); agent (global nSGDA): read ``P`` gradients
for the per-seed norm, read them again and write ``P`` updates; env: read ``P`` params and ``P`` updates,
write ``P`` new params. That is ``8 P + 6 N d`` numbers (``N = 256``: 88 MB). The machine's bandwidth is
measured in the same process, interleaved with the runs: ``dst.copy_(src)`` on 256 MiB float32 tensors
(STREAM "copy": bytes read + bytes written per second) and ``dst.add_(src)`` (2 reads + 1 write); the larger
is the bandwidth. The same copy on tensors the size of the step's parameters (10 MB, resident in the 32 MB
L3 here) is printed for context.

In place (``--in-place``): the batched envs play the in-place fast paths of the same optimizers
(``agents.inplace.nsgda``, ``sgda``, ``adam``: they write the new parameters into the env's tensors; the
references are unchanged). Their minimum bytes (twomode): the game as above (``2 P``), the agent reads the
gradients for the per-seed norm, then reads them again with the parameters and writes the parameters
(``4 P``), and the env adds nothing: ``6 P + 6 N d`` numbers (``N = 256``: 67.6 MB). Twomode's ratio target
for this path (issue 14, one thread): >= 25x.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _machine import add_machine_args, setup_machine

import agents
import minmax_envs
from agents import inplace

GAMES = ("twomode", "dirac", "bilinear", "mog")
F32 = 4  # bytes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``fn()``, synchronizing the device before and after."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def interleaved(cands: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds of every candidate (each returns its own seconds), after one warm-up each; each repeat
    runs them all, in reversed order every other repeat."""
    for fn in cands.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in cands}
    names = list(cands)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            times[k].append(cands[k]())
    return {k: statistics.median(v) for k, v in times.items()}


def episode(env_id: str, num_seeds: int, tx, steps: int, device: torch.device, runs: int = 1,
            **kw) -> Callable[[], float]:
    """A candidate: ``runs`` calls of ``run_episode(env, tx, steps, seed=i)`` on one env of ``num_seeds``
    (``compile=True`` among ``kw`` makes the env compile its gradient field)."""
    env = minmax_envs.make(env_id, num_seeds=num_seeds, device=device, **kw)
    return lambda: timed(lambda: [minmax_envs.run_episode(env, tx, steps=steps, seed=i) for i in range(runs)],
                         device)


def batched_candidates(args, env_id: str, n: int, tx, k: int, device: torch.device, **kw) -> dict:
    """The two batched candidates (``K`` steps and ``0`` steps), compiled with ``--compile``; with it, also
    prints the compile time: the first reset of a fresh compiled env minus its second reset."""
    if args.compile:
        kw = {**kw, "compile": True}
        env = minmax_envs.make(env_id, num_seeds=n, device=device, **kw)
        first = timed(lambda: env.reset(seed=0), device)
        again = timed(lambda: env.reset(seed=0), device)
        print(f"  {env_id}: compile time {first - again:.1f} s (first reset of a compiled env minus the second; "
              "torch's on-disk cache, if warm, shortens it)")
    return {"batched": episode(env_id, n, tx, k, device, **kw),
            "batched reset": episode(env_id, n, tx, 0, device, **kw)}


# --- hand-written single-seed references ------------------------------------------------------------
def twomode_reference(steps: int, seed: int, device: torch.device, d: int = 1000, m_d: int = 5, m_g: int = 5,
                      lr_d: float = 0.02, lr_g: float = 0.01) -> float:
    """One seed of the two-mode GAN as a paper's loop (see the module docstring); seconds of the loop."""
    gen = torch.Generator().manual_seed(seed)
    log_d = math.log(d)
    gamma, trunc, pair = 1.0 / log_d, d ** 0.2, 1.0 / log_d**2
    g1, g2 = torch.randn(2, d, generator=gen)
    u1 = g1 / g1.norm()
    e2 = g2 - (g2 @ u1) * u1
    e2 = e2 / e2.norm()
    u1, u2 = u1.to(device), (gamma * u1 + math.sqrt(1 - gamma**2) * e2).to(device)
    W = (torch.randn(m_d, d, generator=gen) / math.sqrt(d)).to(device).requires_grad_()
    V = (torch.randn(m_g, d, generator=gen) / d).to(device).requires_grad_()
    a = (torch.randn((), generator=gen) / math.sqrt(m_d * log_d)).to(device).requires_grad_()
    b = torch.zeros((), device=device, requires_grad=True)

    def logit(x: torch.Tensor) -> torch.Tensor:
        pre = W @ x
        c = pre.clamp(-trunc, trunc)
        return a * (c * c * c + 3 * trunc * trunc * (pre - c)).sum() + b

    def loop() -> None:
        for _ in range(steps):
            r, i, j, p = torch.rand(4, generator=gen).tolist()
            x = u1 if r < 0.5 else u2
            z = torch.zeros(m_g, device=device)
            k = int(i * m_g)
            z[k] = 1.0
            if p < pair:
                z[(k + 1 + int(j * (m_g - 1))) % m_g] = 1.0
            f = F.logsigmoid(logit(x)) + F.logsigmoid(-logit(V.t() @ z))
            g_w, g_a, g_b, g_v = torch.autograd.grad(f, [W, a, b, V])
            with torch.no_grad():
                scale_d = lr_d / torch.sqrt(g_w.square().sum() + g_a * g_a + g_b * g_b)
                W.add_(scale_d * g_w)  # the discriminator ascends f
                a.add_(scale_d * g_a)
                b.add_(scale_d * g_b)
                V.sub_(lr_g / g_v.norm() * g_v)  # the generator descends f

    return timed(loop, device)


def dirac_reference(steps: int, device: torch.device, lr: float = 0.01) -> float:
    """One seed of the WGAN Dirac GAN, autograd on two scalars and SGD by hand; seconds of the loop."""
    theta = torch.tensor(1.0, device=device, requires_grad=True)
    psi = torch.tensor(1.0, device=device, requires_grad=True)

    def loop() -> None:
        for _ in range(steps):
            g_theta, g_psi = torch.autograd.grad(psi * theta, [theta, psi])
            with torch.no_grad():
                theta.sub_(lr * g_theta)
                psi.add_(lr * g_psi)

    return timed(loop, device)


def bilinear_reference(steps: int, seed: int, device: torch.device, n: int = 10, lr: float = 0.01) -> float:
    """One seed of the bilinear game, autograd and SGD by hand; seconds of the loop."""
    gen = torch.Generator().manual_seed(seed)
    q1, r1 = torch.linalg.qr(torch.randn(n, n, generator=gen))
    q2, r2 = torch.linalg.qr(torch.randn(n, n, generator=gen))
    u, v = q1 * torch.sign(torch.diagonal(r1)), q2 * torch.sign(torch.diagonal(r2))
    s = 0.5 + 0.5 * torch.rand(n, generator=gen)
    A = (u @ torch.diag(s) @ v.T).to(device)
    b, c = torch.randn(2, n, generator=gen).to(device)
    x = torch.randn(n, generator=gen).to(device).requires_grad_()
    y = torch.randn(n, generator=gen).to(device).requires_grad_()

    def loop() -> None:
        for _ in range(steps):
            f = x @ A @ y + b @ x + c @ y
            g_x, g_y = torch.autograd.grad(f, [x, y])
            with torch.no_grad():
                x.sub_(lr * g_x)
                y.add_(lr * g_y)

    return timed(loop, device)


def mog_reference(steps: int, seeds: int, device: torch.device, hidden: int = 128, z_dim: int = 2,
                  batch: int = 256, std: float = 0.02, radius: float = 2.0, lr: float = 1e-3) -> float:
    """``seeds`` single-seed MLP GANs on the 8-Gaussian ring, one after another, each ``steps`` steps of
    simultaneous Adam (torch.optim.Adam); seconds of the loops (set-up excluded)."""
    angle = 2 * math.pi * torch.arange(8) / 8
    modes = (radius * torch.stack([angle.cos(), angle.sin()], dim=1)).to(device)

    def mlp(fan_in: int, fan_out: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(fan_in, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, fan_out)).to(device)

    total = 0.0
    for seed in range(seeds):
        torch.manual_seed(seed)
        G, D = mlp(z_dim, 2), mlp(2, 1)
        opts = [torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.9)) for net in (G, D)]
        total += timed(functools.partial(_mog_loop, G, D, opts, modes, steps, batch, std, z_dim, device), device)
    return total


def _mog_loop(G: torch.nn.Module, D: torch.nn.Module, opts: list[torch.optim.Optimizer], modes: torch.Tensor,
              steps: int, batch: int, std: float, z_dim: int, device: torch.device) -> None:
    """``steps`` simultaneous steps of one seed's MLP GAN (see :func:`mog_reference`)."""
    g_params, d_params = list(G.parameters()), list(D.parameters())
    for _ in range(steps):
        idx = torch.randint(len(modes), (batch,), device=device)
        x = modes[idx] + std * torch.randn(batch, 2, device=device)
        z = torch.randn(batch, z_dim, device=device)
        f = F.logsigmoid(D(x)).mean() + F.logsigmoid(-D(G(z))).mean()
        grads = torch.autograd.grad(f, g_params + d_params)
        for p, g in zip(g_params, grads[:len(g_params)]):
            p.grad = g  # the generator descends f
        for p, g in zip(d_params, grads[len(g_params):]):
            p.grad = -g  # the discriminator ascends f
        for opt in opts:
            opt.step()


# --- memory bandwidth -------------------------------------------------------------------------------
def bandwidth_candidates(device: torch.device, big_bytes: int, small_bytes: int) -> dict[str, tuple[Callable, int]]:
    """``{name: (candidate, bytes moved per call)}`` for copy_ and add_ on DRAM-sized and L3-sized tensors."""
    out = {}
    for label, nbytes, reps in (("DRAM", big_bytes, 3), ("cache", small_bytes, 50)):
        src = torch.rand(nbytes // F32, device=device)
        dst = torch.empty_like(src)
        src_n = src.numel() * F32

        def copy(src=src, dst=dst, reps=reps) -> float:
            return timed(lambda: [dst.copy_(src) for _ in range(reps)], device) / reps

        def add(src=src, dst=dst, reps=reps) -> float:
            return timed(lambda: [dst.add_(src) for _ in range(reps)], device) / reps

        out[f"copy_ {label}"] = (copy, 2 * src_n)
        out[f"add_ {label}"] = (add, 3 * src_n)
    return out


# --- the games ----------------------------------------------------------------------------------------
@dataclass
class Report:
    name: str
    target: float
    seeds: int
    steps: int
    batched_rate: float  # seed-steps/s, stepping only
    batched_rate_incl: float  # seed-steps/s including the reset and final metrics at this K
    refs: dict[str, float]  # reference name -> seed-steps/s
    extra: list[str]


def _batched(med: dict[str, float], n: int, k: int) -> tuple[float, float]:
    step_s = max(med["batched"] - med["batched reset"], 1e-12)
    return n * k / step_s, n * k / med["batched"]


def _optimizers(args):
    """The optimizers' module: ``agents`` (pure) or ``agents.inplace`` (``--in-place``)."""
    return inplace if args.in_place else agents


def run_twomode(args, device) -> Report:
    n, k, ref_k = 256, args.steps or 100, args.ref_steps or 1000
    opt = _optimizers(args)
    tx = {"discriminator": opt.nsgda(0.02), "generator": opt.nsgda(0.01)}
    cands = {**batched_candidates(args, "TwoMode-v0", n, tx, k, device, d=1000),
             "reference": lambda: twomode_reference(ref_k, 0, device)}
    bw = bandwidth_candidates(device, 256 * 2**20, 10 * 2**20)
    cands.update({name: fn for name, (fn, _) in bw.items()})
    med = interleaved(cands, args.repeats)
    rate, rate_incl = _batched(med, n, k)
    d, m_d, m_g = 1000, 5, 5
    p = n * (m_d + m_g) * d + 2 * n
    step_bytes = ((6 if args.in_place else 8) * p + 6 * n * d) * F32
    gbs = {name: nbytes / med[name] / 1e9 for name, (_, nbytes) in bw.items()}
    dram = max(gbs["copy_ DRAM"], gbs["add_ DRAM"])
    achieved = step_bytes * rate / n / 1e9
    frac = achieved / dram
    model = "in place: 6P + 6Nd" if args.in_place else "8P + 6Nd"
    extra = [f"bytes/step (API minimum {model}, float32): {step_bytes / 1e6:.1f} MB "
             f"(P = {p / 1e6:.3f}M numbers) -> {achieved:.2f} GB/s at the stepping rate",
             "bandwidth: " + ", ".join(f"{name} {v:.1f} GB/s" for name, v in gbs.items()),
             f"fraction of DRAM bandwidth ({dram:.1f} GB/s): {100 * frac:.0f}%   target >= 30%   "
             + ("PASS" if frac >= 0.30 else "MISS")
             + f"   (of the 10 MB in-cache copy_: {100 * achieved / gbs['copy_ cache']:.0f}%)"]
    target = 25.0 if args.in_place else 100.0  # issue 14's target for the in-place path at one thread
    return Report(f"TwoMode-v0 d=1000, global nSGDA (D 0.02, G 0.01){_kind(args)}", target, n, k, rate, rate_incl,
                  {"hand-written single seed": ref_k / med["reference"]}, extra)


def run_scalar_game(args, device, which: str) -> Report:
    n, k = 65536, args.steps or 200
    tx = _optimizers(args).sgda(0.01)
    if which == "dirac":
        env_id, kw, ref_k = "DiracGAN-v0", {"loss": "wgan"}, args.ref_steps or 10000
        ref = lambda: dirac_reference(ref_k, device)  # noqa: E731
        title = "DiracGAN-v0 loss=wgan, SGDA lr=0.01"
    else:
        env_id, kw, ref_k = "Bilinear-v0", {}, args.ref_steps or 5000
        ref = lambda: bilinear_reference(ref_k, 0, device)  # noqa: E731
        title = "Bilinear-v0 n=10, SGDA lr=0.01"
    med = interleaved({**batched_candidates(args, env_id, n, tx, k, device, **kw), "reference": ref}, args.repeats)
    rate, rate_incl = _batched(med, n, k)
    extra = [f"batched: {1e3 * (med['batched'] - med['batched reset']) / k:.2f} ms/step, "
             f"reset + metrics {1e3 * med['batched reset']:.1f} ms"]
    return Report(title + _kind(args), 1000.0, n, k, rate, rate_incl,
                  {"hand-written single seed": ref_k / med["reference"]}, extra)


def run_mog(args, device) -> Report:
    n, k = 64, args.steps or 20
    tx = _optimizers(args).adam(1e-3, betas=(0.5, 0.9))
    med = interleaved({**batched_candidates(args, "MoG-Ring-v0", n, tx, k, device),
                       "env N=1 x64": episode("MoG-Ring-v0", 1, tx, k, device, runs=n),
                       "env N=1 x64 reset": episode("MoG-Ring-v0", 1, tx, 0, device, runs=n),
                       "hand-written x64": lambda: mog_reference(k, n, device)}, args.repeats)
    rate, rate_incl = _batched(med, n, k)
    singles = n * k / max(med["env N=1 x64"] - med["env N=1 x64 reset"], 1e-12)
    extra = [f"batched: {1e3 * (med['batched'] - med['batched reset']) / k:.1f} ms/step for {n} seeds; "
             f"env N=1: {1e3 / singles:.2f} ms/seed-step; hand-written: {1e3 * med['hand-written x64'] / (n * k):.2f} "
             "ms/seed-step"]
    return Report(f"MoG-Ring-v0 (2x128 MLPs, batch 256), Adam lr=1e-3 betas (0.5, 0.9){_kind(args)}", 5.0, n, k,
                  rate, rate_incl,
                  {"env num_seeds=1, 64 runs": singles, "hand-written, 64 runs": n * k / med["hand-written x64"]},
                  extra)


def _kind(args) -> str:
    return ", in place (agents.inplace)" if args.in_place else ""


def print_report(r: Report) -> bool:
    print(f"\n{r.name}: N = {r.seeds:,}, K = {r.steps} steps")
    print(f"  batched run_episode          {r.batched_rate:14,.0f} seed-steps/s stepping "
          f"({r.batched_rate_incl:,.0f} incl. reset and metrics at this K)")
    ok = True
    for name, rate in r.refs.items():
        ratio = r.batched_rate / rate
        verdict = "PASS" if ratio >= r.target else "MISS"
        ok &= ratio >= r.target
        print(f"  reference: {name:26s}{rate:12,.0f} seed-steps/s   ratio {ratio:9,.1f}x "
              f"(incl. reset {r.batched_rate_incl / rate:,.1f}x)   target >= {r.target:,.0f}x   {verdict}")
    for line in r.extra:
        print("  " + line)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_machine_args(ap)
    ap.add_argument("--steps", type=int, default=None,
                    help="K, iterations of every batched episode (default per game: twomode 100, dirac and "
                         "bilinear 200, mog 20; mog's references run 64 seeds x K steps)")
    ap.add_argument("--ref-steps", type=int, default=None,
                    help="steps of the single-seed hand-written references of twomode, dirac and bilinear "
                         "(default 1000, 10000, 5000)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of every candidate (medians reported)")
    ap.add_argument("--games", default=",".join(GAMES), help="comma-separated subset of " + ",".join(GAMES))
    ap.add_argument("--compile", action="store_true",
                    help="batched envs made with compile=True (torch.compile of the gradient field); the "
                         "references stay eager")
    ap.add_argument("--in-place", action="store_true",
                    help="batched envs played by the in-place fast paths (agents.inplace.nsgda, sgda, adam) instead of "
                         "the pure agents; the references are unchanged")
    args = ap.parse_args()
    games = [g.strip() for g in args.games.split(",") if g.strip()]
    unknown = sorted(set(games) - set(GAMES))
    if unknown:
        ap.error(f"unknown games {unknown}; choose from {', '.join(GAMES)}")
    device = setup_machine(args)
    print(f"torch {torch.__version__} on {device}, threads={torch.get_num_threads()}, "
          f"median of {args.repeats} interleaved repeats, batched envs {'compiled' if args.compile else 'eager'}, "
          f"agents {'in place (agents.inplace)' if args.in_place else 'pure'}")
    runners = {"twomode": run_twomode, "dirac": lambda a, d: run_scalar_game(a, d, "dirac"),
               "bilinear": lambda a, d: run_scalar_game(a, d, "bilinear"), "mog": run_mog}
    results = {g: print_report(runners[g](args, device)) for g in games}
    print("\nsummary: " + ", ".join(f"{g} {'PASS' if ok else 'MISS'}" for g, ok in results.items())
          + " (ratio targets; twomode's bandwidth verdict is on its own line)")


if __name__ == "__main__":
    main()

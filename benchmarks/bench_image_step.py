"""One iteration of an image GAN (n_critic discriminator steps + one generator step, Adam for both players)
through the env with ``run_episode`` against a hand-written PyTorch training loop with ``torch.optim.Adam``
on the same networks, data, batch size and per-step work (one process, interleaved repeats).

    python benchmarks/bench_image_step.py --arch resnet,dcgan --width 32 --resolution 16 --batch 64 --threads 2

GPU-sized variant (full-size CIFAR-shaped ResNet WGAN-GP, 3x32x32, width 128, z 128, batch 64, n_critic 5):

    python benchmarks/bench_image_step.py --arch resnet --width 128 --resolution 32 --channels 3 --batch 64 \\
        --n-critic 5 --iters 50 --repeats 5 --device cuda

Both paths:

* data: the env's own data tensor (scikit-learn digits resized to ``--resolution``, ``--channels`` channels),
  batches of ``--batch`` images drawn uniformly with replacement, ``z ~ N(0, I)``, and for WGAN-GP one
  ``eps ~ U(0, 1)`` per sample for the penalty's interpolates (the env from its seeded streams, the loop
  from torch's global generator);
* discriminator step: ``fake = G(z)`` without a graph (the env's fast path; the loop runs it under
  ``torch.no_grad()``, the cheap form of ``G(z).detach()``), ``D(real)``, ``D(fake)``, the loss of the game
  (WGAN-GP: ``mean D(fake) - mean D(real) + 10 * nets.gradient_penalty``; DCGAN's default: the
  non-saturating GAN loss), gradients into ``D``'s parameters, an Adam step;
* generator step: ``D(G(z))``, gradients into ``G``'s parameters only (the loop:
  ``loss.backward(inputs=G's parameters)``, as the env's ``autograd.grad`` over them), an Adam step;
* the generator's EMA (``ema_decay`` 0.999, the env's default) after each generator step: the loop runs
  the same ``torch._foreach_lerp_``; ``--no-ema`` makes the env with ``ema_decay=None`` and skips it in
  the loop;
* Adam with ``betas=(0.5, 0.9)``, ``eps=1e-8``, ``--lr``: ``agents.adam`` in the env,
  ``torch.optim.Adam`` with its default implementation choice (``foreach`` left unset: foreach on CUDA, a
  per-tensor loop on CPU) in the loop, or ``--torch-adam foreach|fused``.

The env path is one ``run_episode(env, agents.adam(...), iters + 1)`` per repeat whose agent is wrapped to read
the clock each time it is handed the generator's gradients (the start of the generator step, once per iteration):
consecutive readings bracket exactly one iteration (the generator's Adam step, its update and EMA, then
``n_critic`` times the discriminator's gradients, Adam step and update, then the generator's gradients), so the reset
and the end-of-episode evaluation fall outside (the latter is replaced by a stub: the classifier Frechet
distance is no part of an iteration). The loop times each iteration the same way. On CUDA each reading
synchronizes the device, in both paths. Each repeat times both paths back to back, alternating which goes first,
after a warm-up. The table gives the median over all timed iterations of each path with its interquartile
range, and the ratio env / loop of the per-repeat medians: median over repeats and min-max. On CUDA the
generator iterations per second and the GPU's name are printed too. ``--check`` first verifies that both paths
compute the same discriminator gradients from the same weights and batch. ``--profile`` prints the top
operators of each path (torch.profiler) after the timings.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _machine import add_machine_args, setup_machine

import agents
import minmax_envs
from minmax_envs.images import nets

BETAS, EPS, GP_WEIGHT = (0.5, 0.9), 1e-8, 10.0
_BUILD = {"dcgan": (nets.dcgan_generator, nets.dcgan_discriminator),
          "resnet": (nets.resnet_generator, nets.resnet_discriminator)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_env(args, arch: str) -> minmax_envs.BatchedEnv:
    kw = {"architecture": arch, "width": args.width, "batch_size": args.batch, "resolution": args.resolution,
          "channels": args.channels, "n_critic": args.n_critic, "ema_decay": None if args.no_ema else 0.999}
    if args.z_dim is not None:
        kw["z_dim"] = args.z_dim
    env = minmax_envs.make("Digits-DCGAN-v0", device=args.device, **kw)
    env.metrics = lambda: {}  # the end-of-episode evaluation is no part of an iteration
    return env


class HandLoop:
    """The hand-written training loop: same networks (minmax_envs.images.nets), data tensor and step work."""

    def __init__(self, env: minmax_envs.BatchedEnv, lr: float, impl: str = "default"):
        game = self.game = env.game
        build_g, build_d = _BUILD[game.architecture]
        dev, dt = game.device, game.dtype
        self.G = build_g(game.z_dim, game.width, game.channels, game.resolution).to(dev, dt)
        self.D = build_d(game.width, game.channels, game.resolution).to(dev, dt)
        gen = torch.Generator(device="cpu").manual_seed(0)
        nets.init_weights_(self.G, generator=gen)
        nets.init_weights_(self.D, generator=gen)
        self.g_params = list(self.G.parameters())
        self.ema = None
        if game.ema_decay is not None:
            self.ema = [p.detach().clone() for p in self.g_params]
        kw = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
        self.opt_g = torch.optim.Adam(self.g_params, lr=lr, betas=BETAS, eps=EPS, **kw)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=BETAS, eps=EPS, **kw)
        self.data = game.data  # the env's own data tensor

    def d_loss(self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            fake = self.G(z)
        d_real, d_fake = self.D(real), self.D(fake)
        if self.game.loss == "wgan-gp":
            return d_fake.mean() - d_real.mean() + GP_WEIGHT * nets.gradient_penalty(self.D, real, fake, eps)
        return -(F.logsigmoid(d_real).mean() + F.logsigmoid(-d_fake).mean())

    def g_loss(self, z: torch.Tensor) -> torch.Tensor:
        d_gen = self.D(self.G(z))
        return {"gan": lambda: F.logsigmoid(-d_gen).mean(), "nsgan": lambda: -F.logsigmoid(d_gen).mean(),
                "wgan-gp": lambda: -d_gen.mean()}[self.game.loss]()

    def iteration(self) -> None:
        game, dev = self.game, self.data.device
        b, m = game.batch_size, self.data.shape[0]
        for _ in range(game.schedule.n_critic):
            real = self.data[torch.randint(m, (b,), device=dev)]
            z = torch.randn(b, game.z_dim, device=dev, dtype=game.dtype)
            eps = torch.rand(b, 1, 1, 1, device=dev, dtype=game.dtype) if game.loss == "wgan-gp" else None
            self.opt_d.zero_grad(set_to_none=True)
            self.d_loss(real, z, eps).backward()
            self.opt_d.step()
        z = torch.randn(b, game.z_dim, device=dev, dtype=game.dtype)
        self.opt_g.zero_grad(set_to_none=True)
        self.g_loss(z).backward(inputs=self.g_params)
        self.opt_g.step()
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, self.g_params, 1.0 - game.ema_decay)

    def run(self, iters: int) -> list[float]:
        """Seconds of each of ``iters`` iterations."""
        dev = self.data.device
        _sync(dev)
        times, t0 = [], time.perf_counter()
        for _ in range(iters):
            self.iteration()
            _sync(dev)
            t1 = time.perf_counter()
            times.append(t1 - t0)
            t0 = t1
        return times


def _clocked(tx: agents.GradientTransformation, device: torch.device, stamps: list[float]) -> agents.PairTransformation:
    """``tx`` for both players, reading the clock (after a device sync on CUDA) whenever the generator's
    gradients come in: once per iteration of an alternating schedule."""
    inner = agents.as_pair(tx)

    def update(grads, state, params=None):
        if "generator" in grads:
            _sync(device)
            stamps.append(time.perf_counter())
        return inner.update(grads, state, params)

    return agents.PairTransformation(inner.init, update, inner.evaluations)


def _run_env(env: minmax_envs.BatchedEnv, tx: agents.GradientTransformation, iters: int) -> list[float]:
    """Seconds of each of ``iters`` iterations of one ``run_episode``."""
    stamps: list[float] = []
    minmax_envs.run_episode(env, _clocked(tx, env.device, stamps), iters + 1, seed=0)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def _check(env: minmax_envs.BatchedEnv, loop: HandLoop) -> float:
    """Largest relative difference between the env's first discriminator gradients and the loop's on the
    same weights and batch (the env's first observation)."""
    from minmax_envs._rng import SeedStreams

    obs, _ = env.reset(seed=0)
    rng = SeedStreams(torch.tensor([0], device=env.device))
    env.game.init(rng)  # the same weights again (init is seeded), and the stream at the first batch
    batch = env.game.sample(rng, None)
    loop.G.load_state_dict(env.game.G.state_dict())
    loop.D.load_state_dict(env.game.D.state_dict())
    eps = batch["eps"].reshape(-1, 1, 1, 1)
    loop.opt_d.zero_grad(set_to_none=True)
    loop.d_loss(batch["real"], batch["z"], eps).backward()
    worst = 0.0
    for k, p in loop.D.named_parameters():
        ref = obs["discriminator"].grads[k][0]
        worst = max(worst, ((p.grad - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item())
    loop.opt_d.zero_grad(set_to_none=True)
    return worst


def _profile(fn, device: torch.device, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        _sync(device)
    if device.type == "cpu":
        key = "self_cpu_time_total"
    else:  # the name of the device column changed in torch 2.4
        new = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4)
        key = "self_device_time_total" if new else "self_cuda_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows))


def _iqr(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=4)
    return f"{q[0]:.2f}-{q[2]:.2f}"


def _range(xs: list[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f}"


def bench(args, arch: str) -> dict:
    device = torch.device(args.device)
    env = _make_env(args, arch)
    tx = agents.adam(args.lr, betas=BETAS, eps=EPS)
    loop = HandLoop(env, args.lr, args.torch_adam)
    if args.check:
        rel = _check(env, loop)
        print(f"[{arch}] check: max relative difference of the first discriminator gradients env vs loop "
              f"= {rel:.2e}")
    _run_env(env, tx, args.warmup)
    loop.run(args.warmup)
    env_s, loop_s, ratios = [], [], []
    for r in range(args.repeats):
        if r % 2 == 0:
            e, h = _run_env(env, tx, args.iters), loop.run(args.iters)
        else:
            h, e = loop.run(args.iters), _run_env(env, tx, args.iters)
        env_s += e
        loop_s += h
        ratios.append(statistics.median(e) / statistics.median(h))
    if args.profile:
        print(f"[{arch}] env path (run_episode, {args.iters} iterations incl. reset):")
        _profile(lambda: minmax_envs.run_episode(env, tx, args.iters, seed=0), device, args.profile_rows)
        print(f"[{arch}] hand-written loop ({args.iters} iterations):")
        _profile(lambda: loop.run(args.iters), device, args.profile_rows)
    g = env.game
    return {"arch": arch, "loss": g.loss, "n_critic": g.schedule.n_critic, "width": g.width, "z_dim": g.z_dim,
            "env": [1e3 * x for x in env_s], "loop": [1e3 * x for x in loop_s], "ratio": ratios,
            "params": (sum(p.numel() for p in g.G.parameters()), sum(p.numel() for p in g.D.parameters()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_machine_args(ap)
    ap.add_argument("--arch", default="resnet,dcgan", help="comma-separated: resnet (WGAN-GP), dcgan (nsgan)")
    ap.add_argument("--width", type=int, default=32, help="network width F")
    ap.add_argument("--resolution", type=int, default=16, help="image side (8, 16, 32, ...)")
    ap.add_argument("--channels", type=int, default=3, help="image channels (1 or 3)")
    ap.add_argument("--batch", type=int, default=64, help="batch size")
    ap.add_argument("--z-dim", type=int, default=None, help="latent size (default: the architecture's)")
    ap.add_argument("--n-critic", type=int, default=1, help="discriminator steps per generator step")
    ap.add_argument("--no-ema", action="store_true", help="env with ema_decay=None, no EMA in the loop")
    ap.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate of both players")
    ap.add_argument("--torch-adam", choices=("default", "foreach", "fused"), default="default",
                    help="torch.optim.Adam implementation of the loop (default: torch's choice, foreach on CUDA, "
                         "a for-loop on CPU)")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations per repeat")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats of both paths")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up iterations of each path")
    ap.add_argument("--check", action="store_true", help="first check that both paths compute the same grads")
    ap.add_argument("--profile", action="store_true", help="print the top operators of both paths")
    ap.add_argument("--profile-rows", type=int, default=25, help="rows of the profile tables")
    args = ap.parse_args()
    device = setup_machine(args)
    where = str(device)
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)})"
    adam_impl = {"foreach": "foreach", "fused": "fused"}.get(
        args.torch_adam, "default: foreach" if device.type == "cuda" else "default: for-loop on CPU")
    print(f"image GAN iteration, env (run_episode + agents.adam) vs hand-written loop (torch.optim.Adam, "
          f"{adam_impl}); {where}, torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"resolution {args.resolution}, channels {args.channels}, batch {args.batch}, EMA "
          f"{'off' if args.no_ema else 'on (0.999)'}, {args.iters} iterations x {args.repeats} repeats")
    rows = [bench(args, a.strip()) for a in args.arch.split(",") if a.strip()]
    med = statistics.median
    head = (f"{'arch':8s}{'loss':9s}{'n_crit':>7s}{'width':>6s}{'params G/D':>16s}{'env ms/it':>11s}"
            f"{'IQR':>14s}{'loop ms/it':>11s}{'IQR':>14s}{'env/loop':>9s}{'min-max':>14s}")
    if device.type == "cuda":
        head += f"{'env G it/s':>11s}{'loop G it/s':>12s}"
    print(head)
    for r in rows:
        sizes = "{:,}/{:,}".format(*r["params"])
        line = (f"{r['arch']:8s}{r['loss']:9s}{r['n_critic']:7d}{r['width']:6d}"
                f"{sizes:>16s}{med(r['env']):11.2f}{_iqr(r['env']):>14s}"
                f"{med(r['loop']):11.2f}{_iqr(r['loop']):>14s}{med(r['ratio']):8.3f}x"
                f"{_range(r['ratio']):>14s}")
        if device.type == "cuda":
            line += f"{1e3 / med(r['env']):11.1f}{1e3 / med(r['loop']):12.1f}"
        print(line)
    worst = max(med(r["ratio"]) for r in rows)
    print(f"target env/loop <= 1.05x: {'met' if worst <= 1.05 else 'NOT met'} (worst median ratio {worst:.3f}x)")


if __name__ == "__main__":
    main()

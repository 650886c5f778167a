"""Mixtures of 2-D Gaussians on a ring or a grid: the mode-collapse benchmark of Unrolled GAN, VEEGAN and
PacGAN, with MLP players batched over seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from minmax_envs._checks import check_choice, check_int, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import PLAYERS, Game, GameSettings, Params, PlotSpec, Schedule
from minmax_envs.games._per_seed import column

LAYOUTS = ("ring", "grid")
LOSSES = ("gan", "nsgan", "wgan-gp")
INITS = ("torch", "orthogonal")
RING_MODES = 8
GRID_SIDE = 5
GRID_SPACING = 2.0
DEFAULT_RADIUS = 2.0
DEFAULT_STD = {"ring": 0.02, "grid": 0.05}
DEFAULT_GP_WEIGHT = 0.1
HIGH_QUALITY_STDS = 3.0


def mode_layout(layout: str, radius: float = DEFAULT_RADIUS, count: int = RING_MODES) -> torch.Tensor:
    r"""The modes of a layout in float64, shape ``(K, 2)``.

    ``"ring"``: $r\, (\cos(2\pi k / K), \sin(2\pi k / K))$ for $k = 0, \dots, K - 1$, with $r$ = ``radius`` and
    $K$ = ``count`` (8 by default).
    ``"grid"``: the 25 points of $\{-4, -2, 0, 2, 4\}^2$, row-major in $(x, y)$.
    """
    check_choice("layout", layout, LAYOUTS)
    if layout == "ring":
        angle = 2.0 * math.pi * torch.arange(count, dtype=torch.float64) / count
        return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    axis = GRID_SPACING * (torch.arange(GRID_SIDE, dtype=torch.float64) - (GRID_SIDE - 1) / 2)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def coverage_metrics(samples: torch.Tensor, modes: torch.Tensor, std: float) -> dict[str, torch.Tensor]:
    r"""Mode-coverage metrics of samples ``(N, M, 2)`` against modes ``(N, K, 2)``.

    A sample is *high quality* when its distance to its nearest mode is below $3 s$ ($s$ = ``std``). Returns
    ``modes_covered`` (modes that are the nearest mode of at least one high-quality sample),
    ``high_quality_fraction`` and ``coverage_kl``,
    $\mathrm{KL}(p \,\Vert\, \mathrm{uniform}_K) = \sum_k p_k \log(K p_k)$ with $p$ the histogram of the
    high-quality samples over their nearest modes ($\log K$ when there is no high-quality sample, the value of a
    total collapse), each of shape ``(N,)`` in the samples' dtype. Non-finite samples are never high quality.
    ``std`` is a number, or a tensor ``(N,)`` of one per seed.
    """
    k = modes.shape[1]
    dist = torch.linalg.vector_norm(samples[:, :, None, :] - modes[:, None, :, :], dim=-1)  # (N, M, K)
    nearest_dist, nearest = dist.min(dim=2)
    hq = nearest_dist < HIGH_QUALITY_STDS * column(std, 2)  # NaN compares false
    counts = (F.one_hot(nearest, k) * hq[..., None]).sum(dim=1).to(samples.dtype)  # (N, K)
    total = counts.sum(dim=1)
    p = counts / total.clamp_min(1.0)[:, None]
    kl = torch.xlogy(p, p * k).sum(dim=1)
    kl = torch.where(total > 0, kl, torch.full_like(kl, math.log(k)))
    return {
        "modes_covered": (counts > 0).sum(dim=1).to(samples.dtype),
        "high_quality_fraction": hq.to(samples.dtype).mean(dim=1),
        "coverage_kl": kl,
    }


def orthogonal_weights(rng: SeedStreams, fan_in: int, fan_out: int, gain: float = 1.0) -> torch.Tensor:
    r"""One orthogonal ``(fan_in, fan_out)`` matrix $W$ per seed, shape ``(N, fan_in, fan_out)`` in float64, scaled by
    $g$ = ``gain``: $W^\top W = g^2 I$ when ``fan_in >= fan_out`` (orthonormal columns), else $W W^\top = g^2 I$
    (orthonormal rows). The QR factorization $A = Q R$ of a standard normal matrix $A$ from ``rng`` (transposed
    first when ``fan_in < fan_out``), with $Q$'s columns multiplied by the signs of $R$'s diagonal so that the
    draw is uniform over the orthogonal matrices (Saxe et al. 2014; ``torch.nn.init.orthogonal_`` and
    TensorFlow's ``orthogonal_initializer`` on a ``(fan_in, fan_out)`` kernel), batched over the seeds."""
    rows, cols = max(fan_in, fan_out), min(fan_in, fan_out)
    a = rng.normal((rows, cols), torch.float64)  # (N, rows, cols)
    q, r = torch.linalg.qr(a)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    q = q * torch.where(d < 0, -1.0, 1.0).to(q.dtype)[:, None, :]
    w = gain * q
    return w if fan_in >= fan_out else w.transpose(1, 2)


@dataclass(frozen=True)
class MixtureOfGaussiansConfig(GameSettings):
    r"""The arguments of :class:`MixtureOfGaussians` (its card's Arguments section). ``None`` stands for the default
    given (:meth:`resolved` fills it in where it applies).

    Attributes:
        layout: ``"ring"`` (8 modes) or ``"grid"`` (25 modes); set by the registered id.
        radius: ring radius, default 2.0 (Unrolled GAN; PacGAN uses 1). Ring only: passing it with
            ``layout="grid"`` raises ``ValueError`` (the grid's spacing is fixed at 2). A number, or one per seed
            (a sequence or tensor of ``num_seeds`` values; :mod:`minmax_envs.families`); the figure of the samples
            then marks no modes.
        std: standard deviation of each mode, default 0.02 on the ring (Unrolled GAN) and 0.05 on the grid
            (VEEGAN, PacGAN); it also sets the high-quality radius $3 s$ ($s$ = ``std``). A number, or one per
            seed.
        loss: ``"gan"`` | ``"nsgan"`` | ``"wgan-gp"``.
        gp_weight: $\lambda$ of the wgan-gp penalty, default 0.1 (Gulrajani et al.'s toy-data setting); wgan-gp
            only, passing it with another loss raises ``ValueError``.
        z_dim: latent dimension, default 2 (the toy code of Gulrajani et al. 2017); Unrolled GAN used 256. Latents
            come from the counter-based seed streams, whose CPU cost grows with ``batch_size`` $\times$ ``z_dim``:
            at 256 drawing them dominates a CPU step.
        hidden: width of every hidden layer, default 128 (Unrolled GAN).
        layers: number of hidden layers of the generator (and of the discriminator unless ``d_layers`` is given),
            default 2.
        batch_size: real samples and latents per step, default 256 (Gulrajani et al.'s toy code).
        eval_samples: generator samples per evaluation, default 2500 (VEEGAN, PacGAN).
        d_layers: number of hidden layers of the discriminator, default ``None`` (the same as ``layers``).
        input_scale: $a > 0$, the factor the discriminator applies to its input, $d(x) = m(a x)$: to real and
            generated samples alike and to the wgan-gp interpolates (whose penalty is on $\nabla_x d$, so it
            includes $a$); default 1.0 (no scaling).
        init: ``"torch"`` (default) | ``"orthogonal"``, the initial parameters (see Starting state).
        init_gain: $g > 0$, the gain of the orthogonal initialisation, default 1.0; ``init="orthogonal"`` only,
            passing it with ``init="torch"`` raises ``ValueError``.
        num_modes: $K$, the number of modes of the ring, default ``None`` (8). Ring only: passing it with
            ``layout="grid"`` raises ``ValueError``.
    """

    layout: str = "ring"
    radius: float | tuple[float, ...] | None = None
    std: float | tuple[float, ...] | None = None
    loss: str = "gan"
    gp_weight: float | None = None
    z_dim: int = 2
    hidden: int = 128
    layers: int = 2
    batch_size: int = 256
    eval_samples: int = 2500
    d_layers: int | None = None
    input_scale: float = 1.0
    init: str = "torch"
    init_gain: float | None = None
    num_modes: int | None = None

    per_seed_args: ClassVar[dict[str, dict[str, Any]]] = {"radius": {"low": 0, "low_inclusive": False},
                                                           "std": {"low": 0, "low_inclusive": False}}

    def __post_init__(self) -> None:
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("init", self.init, INITS)
        if self.radius is not None and self.layout != "ring":
            raise ValueError(f"radius applies to layout='ring' only (the grid's spacing is fixed), "
                             f"got radius={self.radius!r}")
        if self.num_modes is not None and self.layout != "ring":
            raise ValueError(f"num_modes applies to layout='ring' only (the grid has {GRID_SIDE**2} modes), "
                             f"got num_modes={self.num_modes!r}")
        if self.gp_weight is not None and self.loss != "wgan-gp":
            raise ValueError(f"gp_weight applies to loss='wgan-gp' only, got gp_weight={self.gp_weight!r} "
                             f"with loss={self.loss!r}")
        if self.init_gain is not None and self.init != "orthogonal":
            raise ValueError(f"init_gain applies to init='orthogonal' only, got init_gain={self.init_gain!r} "
                             f"with init={self.init!r}")
        positive = {"low": 0, "low_inclusive": False}
        optional = {"gp_weight": {"low": 0}, "init_gain": positive}
        self._store(**{name: check_real(name, getattr(self, name), **interval) for name, interval in optional.items()
                       if getattr(self, name) is not None})
        self._store_per_seed()
        if self.num_modes is not None:
            self._store(num_modes=check_int("num_modes", self.num_modes, low=2))
        self._store(z_dim=check_int("z_dim", self.z_dim), hidden=check_int("hidden", self.hidden),
                    layers=check_int("layers", self.layers),
                    d_layers=None if self.d_layers is None else check_int("d_layers", self.d_layers),
                    input_scale=check_real("input_scale", self.input_scale, **positive),
                    batch_size=check_int("batch_size", self.batch_size),
                    eval_samples=check_int("eval_samples", self.eval_samples))

    def resolved(self) -> MixtureOfGaussiansConfig:
        """This config with the defaults that apply filled in: ``radius`` (ring), ``std`` (the layout's),
        ``gp_weight`` (wgan-gp), ``d_layers`` (``layers``) and ``init_gain`` (orthogonal)."""
        fills = {"radius": DEFAULT_RADIUS if self.layout == "ring" else None, "std": DEFAULT_STD[self.layout],
                 "gp_weight": DEFAULT_GP_WEIGHT if self.loss == "wgan-gp" else None, "d_layers": self.layers,
                 "init_gain": 1.0 if self.init == "orthogonal" else None}
        return replace(self, **{k: v for k, v in fills.items() if getattr(self, k) is None})


class MixtureOfGaussians(Game):
    r"""Mixture of 2-D Gaussians: an MLP generator against an MLP discriminator, scored by mode coverage.

    ## Game
    Data: $x = \mu_c + s\,e$ with $s$ = ``std``, $c$ uniform over the $K$ modes, $e \sim \mathcal{N}(0, I_2)$;
    ring ($K = 8$ by default, $\mu_k = r\,(\cos 2\pi k/K, \sin 2\pi k/K)$ with $r$ = ``radius``; Metz et al. 2017,
    "Unrolled generative adversarial networks"; Srivastava et al. 2017, "VEEGAN") or grid ($K = 25$,
    $\mu \in \{-4, -2, 0, 2, 4\}^2$; VEEGAN; Lin et al. 2018, "PacGAN"). Generator $G(z)$,
    $z \sim \mathcal{N}(0, I_{z_{dim}})$, and discriminator logit $d(x) = m(a x)$ ($D = \sigma(d)$; $m$ the
    discriminator's MLP, $a$ = ``input_scale``, 1 by default) are ReLU MLPs.
    With the batch means $\mathbb{E}$ over ``batch_size`` real samples and ``batch_size`` latents, $\sigma$ the
    logistic sigmoid:

    | loss | $L_G$ | $L_D$ |
    |---|---|---|
    | gan (Goodfellow et al. 2014) | $f = \mathbb E \log\sigma(d(x)) + \mathbb E \log(1 - \sigma(d(G(z))))$ | $-f$ |
    | nsgan (non-saturating) | $-\mathbb E \log\sigma(d(G(z)))$ | $-f$ |
    | wgan-gp (Gulrajani et al. 2017) | $-\mathbb E d(G(z))$ | $\mathbb E d(G(z)) - \mathbb E d(x) + \lambda P$ |

    the gan game being $\min_G \max_D f$, with the penalty $P = \mathbb{E} (\lVert \nabla_x d(\hat{x}) \rVert - 1)^2$
    at $\hat{x} = \epsilon x + (1 - \epsilon) G(z)$, $\epsilon \sim \mathcal{U}(0, 1)$ per sample, and the penalty's
    gradient taken by double back-propagation. The penalty is kept a function of both players' parameters (``x_hat``
    is not detached), so regularizers that differentiate $L_D$ in the generator see it. Only ``gan`` is zero-sum. The
    optimum of the gan game is $p_G = p_{\text{data}}$: every mode covered with the right weight.

    ## Update schedule
    ``make``'s ``update`` and ``n_critic`` (:class:`~minmax_envs.games._base.Schedule`).
    ``update="simultaneous"`` (default): both players move at every env step. ``update="alternating"``: the
    discriminator moves at even env steps, the generator at odd ones (with ``n_critic = k``: $k$ discriminator
    steps, then one generator step), each on a fresh batch and each observing its gradient at the parameters the
    other's last move left; one iteration of ``run_episode`` is one such cycle. With ``regularizer="nk"`` the
    generator's step sees the regularized gradient, computed at that step, and the discriminator's step its plain
    gradient.

    ## Parameters (per seed)
    $L$ = ``layers`` hidden layers in the generator and $L_D$ = ``d_layers`` (default $L$) in the discriminator,
    all of width $H$ = ``hidden``; layer $i$ maps $h \mapsto h W_i + b_i$, with $W_i$, $b_i$ its ``weight`` and
    ``bias`` (ReLU after every layer but the last).

    | player | tensor | shape |
    |---|---|---|
    | generator | `g0.weight`, `g0.bias` | `(N, z_dim, H)`, `(N, H)` |
    | generator | `g1.weight` ... `g{L-1}.weight`, biases | `(N, H, H)`, `(N, H)` |
    | generator | `g{L}.weight`, `g{L}.bias` | `(N, H, 2)`, `(N, 2)` |
    | discriminator | `d0.weight`, `d0.bias` | `(N, 2, H)`, `(N, H)` |
    | discriminator | `d1.weight` ... `d{L_D-1}.weight`, biases | `(N, H, H)`, `(N, H)` |
    | discriminator | `d{L_D}.weight`, `d{L_D}.bias` | `(N, H, 1)`, `(N, 1)` |

    ## Rewards
    ``-loss`` per player in the batched env ($-L_G$ for the generator, $-L_D$ for the discriminator).

    ## Starting state
    ``init="torch"`` (default): every weight and bias uniform in $[-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}}]$
    per seed, the default of ``torch.nn.Linear``. ``init="orthogonal"``: every weight $W_i$ an orthogonal matrix
    times $g$ = ``init_gain``, its own draw per seed ($W_i^\top W_i = g^2 I$ when its fan-in is at least its
    fan-out, else $W_i W_i^\top = g^2 I$; :func:`orthogonal_weights`), every bias zero. Each step draws a fresh
    batch: mode indices, data noise, latents and the interpolation weights $\epsilon$ (drawn for every loss, so all
    losses see the same data stream).

    ## Metrics
    On ``eval_samples`` generator samples drawn from the evaluation stream (never the training stream),
    following VEEGAN and PacGAN: a sample is *high quality* if its
    distance to the nearest mode is below $3 s$ ($s$ = ``std``).

    * ``modes_covered`` ``(N,)``: modes that are the nearest mode of at least one high-quality sample —
      the quality metric (larger is better; at most 8 on the ring, 25 on the grid).
    * ``high_quality_fraction`` ``(N,)``: fraction of high-quality samples.
    * ``coverage_kl`` ``(N,)``: $\mathrm{KL}(p \,\Vert\, \mathrm{uniform}_K) = \sum_k p_k \log(K p_k)$ of the
      histogram $p$ of the high-quality samples over their nearest modes (0 for a perfectly balanced
      coverage, $\log K$ for a single mode); defined as $\log K$ when there is no high-quality sample.

    ## Arguments
    The fields of :class:`MixtureOfGaussiansConfig` (``MixtureOfGaussians.Config``), passed whole;
    :func:`~minmax_envs.make` takes them as keywords, beside its own (``update``, ``n_critic``: the update
    schedule, simultaneous by default).

    Nagarajan & Kolter's setting ("Gradient descent GAN optimization is locally stable", NeurIPS 2017; their
    public code): ``make("MoG-Ring-v0", regularizer="nk", reg_weight=0.5, z_dim=256, hidden=128, layers=2,
    d_layers=1, input_scale=0.25, init="orthogonal", init_gain=0.8, update="alternating", batch_size=512)``
    (ring of radius 2, std 0.02: the defaults), both players trained by
    ``agents.adam(1e-4, betas=(0.5, 0.999), eps=1e-8)`` ($\beta_2 = 0.999$ assumed: TensorFlow's default); without
    the regularizer for their baseline. Biases start at zero: our choice, their code not checked on this point.

    ## Version history
    * v0: initial version.
    """

    citation: ClassVar[str] = (
        'L. Metz, B. Poole, D. Pfau, J. Sohl-Dickstein. "Unrolled generative adversarial networks." ICLR '
        '2017; A. Srivastava et al. "VEEGAN." NeurIPS 2017; Z. Lin et al. "PacGAN." NeurIPS 2018 (metrics).'
    )

    quality_metric = "modes_covered"
    scalar_metrics = ("modes_covered", "high_quality_fraction", "coverage_kl")
    quality_sign = 1.0
    has_samples = True
    nk_alternates = True

    Config = MixtureOfGaussiansConfig

    def __init__(self, config: MixtureOfGaussiansConfig | None = None, num_seeds: int = 1,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 schedule: Schedule | None = None):
        super().__init__(config, num_seeds, device, dtype, schedule)
        self.ring_modes = RING_MODES if self.config.num_modes is None else self.config.num_modes
        # (K, 2); with a radius per seed, the modes at radius 1, which init scales per seed
        unit = 1.0 if "radius" in self.seed_args else self.radius
        self.modes = mode_layout(self.layout, unit, self.ring_modes).to(device=self.device, dtype=dtype)

    @property
    def zero_sum(self) -> bool:
        """Whether the discriminator's loss is minus the generator's: the gan loss."""
        return self.loss == "gan"

    @property
    def num_modes(self) -> int:
        return self.modes.shape[0]

    def _depth(self, prefix: str) -> int:
        return self.layers if prefix == "g" else self.d_layers

    def _widths(self, prefix: str) -> list[int]:
        first, last = (self.z_dim, 2) if prefix == "g" else (2, 1)
        return [first] + [self.hidden] * self._depth(prefix) + [last]

    # --- episode ------------------------------------------------------------------------------
    def init(self, rng: SeedStreams):
        params: dict[str, Params] = {}
        for player, prefix in (("generator", "g"), ("discriminator", "d")):
            widths = self._widths(prefix)
            ps: Params = {}
            for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
                if self.config.init == "orthogonal":
                    w = orthogonal_weights(rng, fan_in, fan_out, self.init_gain).to(self.device)
                    ps[f"{prefix}{i}.weight"] = w.to(self.dtype)
                    ps[f"{prefix}{i}.bias"] = torch.zeros((w.shape[0], fan_out), device=self.device,
                                                          dtype=self.dtype)
                    continue
                bound = 1.0 / math.sqrt(fan_in)
                for name, shape in (("weight", (fan_in, fan_out)), ("bias", (fan_out,))):
                    u = rng.uniform(shape, torch.float64).to(self.device)
                    ps[f"{prefix}{i}.{name}"] = (bound * (2.0 * u - 1.0)).to(self.dtype)
            params[player] = ps
        if "radius" in self.seed_args:
            unit = mode_layout(self.layout, 1.0, self.ring_modes).to(self.device)
            modes = (self.seed_args["radius"][:, None, None] * unit).to(self.dtype)
        else:
            modes = self.modes.expand(self.num_seeds, -1, -1).clone()
        return params, {"modes": modes, **self._seed_instance()}

    def sample(self, rng: SeedStreams, instance):
        """Real samples ``x`` ``(N, B, 2)``, latents ``z`` ``(N, B, z_dim)`` and interpolation weights
        ``eps`` ``(N, B, 1)``; the same draws whatever the loss."""
        bs, dt, dev = self.batch_size, self.dtype, self.device
        idx = rng.randint((bs,), self.num_modes).to(dev)
        noise = rng.normal((bs, 2), dt).to(dev)
        z = rng.normal((bs, self.z_dim), dt).to(dev)
        eps = rng.uniform((bs, 1), dt).to(dev)
        modes = instance["modes"]
        centers = torch.gather(modes, 1, idx[..., None].expand(-1, -1, 2))
        return {"x": centers + self._std(instance, 3) * noise, "z": z, "eps": eps}

    def _std(self, instance: dict[str, torch.Tensor], ndim: int) -> float | torch.Tensor:
        """The modes' standard deviation: the number, or the instance's per-seed values shaped to broadcast
        against ``ndim``-dimensional per-seed tensors, in the game's dtype."""
        if "std" in instance:
            return column(instance["std"].to(self.dtype), ndim)
        return self.std

    # --- networks and losses --------------------------------------------------------------------
    def _mlp(self, params: Params, prefix: str, h: torch.Tensor) -> torch.Tensor:
        """Batched MLP: ``h`` ``(N, B, in)`` -> ``(N, B, out)``, one ``baddbmm`` per layer."""
        depth = self._depth(prefix)
        for i in range(depth + 1):
            h = torch.baddbmm(params[f"{prefix}{i}.bias"].unsqueeze(1), h, params[f"{prefix}{i}.weight"])
            if i < depth:
                h = torch.relu(h)
        return h

    def generate(self, params: Params, z: torch.Tensor) -> torch.Tensor:
        """Generator samples $G(z)$ ``(N, B, 2)`` from latents $z$ ``(N, B, z_dim)``."""
        return self._mlp(params, "g", z)

    def generator_samples(self, params: Params, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""``n`` generator samples ``(N, n, 2)`` per seed, $G(z)$ with $z \sim \mathcal{N}(0, I)$ ``(N, n, z_dim)``
        drawn in float64 from ``generator`` (then cast to the game's dtype and device)."""
        z = torch.randn((params["g0.weight"].shape[0], n, self.z_dim), generator=generator, dtype=torch.float64)
        with torch.no_grad():
            return self.generate(params, z.to(self.dtype).to(self.device))

    def plots(self) -> tuple[PlotSpec, ...]:
        """The generator's samples over the modes of the mixture."""
        if "radius" in self.seed_args:  # the modes differ from seed to seed: none is marked
            return (PlotSpec("samples", "samples", "generator samples"),)
        modes = tuple((float(x), float(y)) for x, y in mode_layout(self.layout, self.radius, self.ring_modes).tolist())
        return (PlotSpec("samples", "samples", "generator samples over the modes", marks=modes, mark_label="modes"),)

    def logits(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Discriminator logits $d(x) = m(a x)$ ``(N, B)`` of points $x$ ``(N, B, 2)`` ($a$ = ``input_scale``)."""
        if self.input_scale != 1.0:
            x = x * self.input_scale
        return self._mlp(params, "d", x)[..., 0]

    def gradient_penalty(self, d_params: Params, x_hat: torch.Tensor) -> torch.Tensor:
        r"""$\mathbb{E}_b (\lVert \nabla_x d(\hat{x}_b) \rVert - 1)^2$ per seed ``(N,)`` at the points $\hat{x}_b$
        (``x_hat``), differentiable (double back-propagation) when gradients are enabled."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not x_hat.requires_grad:
                x_hat = x_hat.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.logits(d_params, x_hat).sum(), x_hat, create_graph=create_graph)
        return (torch.linalg.vector_norm(g, dim=-1) - 1.0).pow(2).mean(dim=1)

    def losses(self, params, instance, batch, players=PLAYERS):
        g_p, d_p = params["generator"], params["discriminator"]
        x = batch["x"]
        fake = self.generate(g_p, batch["z"])
        bs = x.shape[1]
        logits = self.logits(d_p, torch.cat([x, fake], dim=1))
        real_logit, fake_logit = logits[:, :bs], logits[:, bs:]
        if self.loss == "wgan-gp":
            eps = batch["eps"]
            x_hat = eps * x + (1.0 - eps) * fake
            critic = fake_logit.mean(dim=1) - real_logit.mean(dim=1)
            disc = critic + self.gp_weight * self.gradient_penalty(d_p, x_hat)
            return {"generator": -fake_logit.mean(dim=1), "discriminator": disc}
        f = F.logsigmoid(real_logit).mean(dim=1) + F.logsigmoid(-fake_logit).mean(dim=1)
        gen = f if self.loss == "gan" else -F.logsigmoid(fake_logit).mean(dim=1)
        return {"generator": gen, "discriminator": -f}

    # --- metrics --------------------------------------------------------------------------------
    def metrics(self, params, instance, last_updates, eval_rng):
        z = eval_rng.normal((self.eval_samples, self.z_dim), self.dtype).to(self.device)
        with torch.no_grad():
            samples = self.generate(params["generator"], z)
        return coverage_metrics(samples, instance["modes"], self._std(instance, 1))

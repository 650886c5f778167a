"""The bilinear game: the simplest min-max problem on which simultaneous gradient play fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from minmax_envs._checks import check_int, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import PLAYERS, Game, GameSettings, per_seed_sum
from minmax_envs.games._per_seed import column, is_per_seed, number_or_per_seed


def _haar_orthogonal(g: torch.Tensor) -> torch.Tensor:
    """Orthogonal matrices from Gaussian ones, QR with the sign fix that makes them Haar-distributed."""
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


@dataclass(frozen=True)
class BilinearConfig(GameSettings):
    r"""The arguments of :class:`Bilinear` (its card's Arguments section).

    Attributes:
        n: dimension of each player (default 10).
        sigma_min: smallest singular value of $A$ (default 0.5; > 0, so $A$ is invertible). A number, or one per
            seed (a sequence or tensor of ``num_seeds`` values; :mod:`minmax_envs.families`).
        sigma_max: largest singular value of $A$ (default 1.0; at least ``sigma_min``): the condition number of $A$
            is at most $\sigma_{\max} / \sigma_{\min}$. A number, or one per seed, as ``sigma_min``.
        offset_std: scale of $b$ and $c$ (0 puts the equilibrium at the origin).
        init_std: scale of the initial point.
        noise_std: standard deviation of the gradient noise (default 0: exact gradients).
    """

    n: int = 10
    sigma_min: float | tuple[float, ...] = 0.5
    sigma_max: float | tuple[float, ...] = 1.0
    offset_std: float = 1.0
    init_std: float = 1.0
    noise_std: float = 0.0

    per_seed_args: ClassVar[dict[str, dict[str, Any]]] = {"sigma_min": {"low": 0, "low_inclusive": False},
                                                           "sigma_max": {"low": 0, "low_inclusive": False}}

    def __post_init__(self) -> None:
        n = check_int("n", self.n)
        self._store_per_seed("sigma_min")
        if is_per_seed(self.sigma_min):  # sigma_max >= sigma_min seed by seed: Bilinear._check_seed_args
            self._store_per_seed("sigma_max")
        else:
            self._store(sigma_max=number_or_per_seed("sigma_max", self.sigma_max, low=self.sigma_min))
        self._store(n=n, offset_std=check_real("offset_std", self.offset_std, low=0),
                    init_std=check_real("init_std", self.init_std, low=0),
                    noise_std=check_real("noise_std", self.noise_std, low=0))


class Bilinear(Game):
    r"""Bilinear game with a unique equilibrium.

    ## Game
    $$
    \min_x \max_y \; f(x, y) = x^\top A y + b^\top x + c^\top y, \qquad x, y \in \mathbb{R}^n
    $$

    $A = U \operatorname{diag}(s) V^\top$ with Haar-random orthogonal $U, V$ and singular values $s$ uniform in
    $[\sigma_{\min}, \sigma_{\max}]$ (``sigma_min``, ``sigma_max``), so $A$ is invertible and the unique
    equilibrium is $x^\star = -A^{-\top} c$, $y^\star = -A^{-1} b$. The generator's loss is $f$, the
    discriminator's $-f$: gradients $g_x = A y + b$, $g_y = -(A^\top x + c)$. Simultaneous gradient
    descent-ascent spirals away from the equilibrium for every step size; extragradient and optimistic methods
    converge (Gidel et al. 2019, "A variational inequality perspective on GANs"; Daskalakis et al. 2018,
    "Training GANs with optimism"). With ``noise_std`` $= \sigma > 0$ each player observes its gradient plus
    $\mathcal{N}(0, \sigma^2 I)$ noise, a stochastic bilinear game.

    ## Parameters (per seed)
    | player | tensor | shape |
    |---|---|---|
    | generator | `x` | `(N, n)` |
    | discriminator | `y` | `(N, n)` |

    ## Rewards
    ``-loss`` per player in the batched env: $-f$ for the generator, $f$ for the discriminator.

    ## Starting state
    $A, b, c$ drawn per seed ($b, c \sim \mathcal{N}(0, s_o^2 I)$ with $s_o$ = ``offset_std``);
    $x, y \sim \mathcal{N}(0, s_i^2 I)$ with $s_i$ = ``init_std``.

    ## Metrics
    ``distance`` to the equilibrium, $\sqrt{\lVert x - x^\star \rVert^2 + \lVert y - y^\star \rVert^2}$ (the
    quality metric, smaller is better), ``diverged``.

    ## Arguments
    The fields of :class:`BilinearConfig` (``Bilinear.Config``), passed whole; :func:`~minmax_envs.make` takes
    them as keywords, beside its own (``update``, ``n_critic``: the update schedule, simultaneous by default).

    ## Version history
    * v0: initial version.
    """

    citation: ClassVar[str] = (
        'G. Gidel, H. Berard, G. Vignoud, P. Vincent, S. Lacoste-Julien. "A variational inequality '
        'perspective on generative adversarial networks." ICLR 2019 (bilinear games); V. Nagarajan, J. Z. '
        'Kolter. "Gradient descent GAN optimization is locally stable." NeurIPS 2017.'
    )

    quality_metric = "distance"
    scalar_metrics = ("distance",)
    quality_sign = -1.0

    Config = BilinearConfig

    @property
    def zero_sum(self) -> bool:
        """Whether the discriminator's loss is minus the generator's: without gradient noise."""
        return self.noise_std == 0.0

    def _check_seed_args(self) -> None:
        lo, hi = (self.seed_args.get(k, v) for k, v in (("sigma_min", self.sigma_min), ("sigma_max", self.sigma_max)))
        if isinstance(lo, float) and isinstance(hi, float):
            return
        below = torch.nonzero(torch.as_tensor(hi) < torch.as_tensor(lo)).flatten().tolist()
        if below:
            raise ValueError(f"sigma_max must be >= sigma_min for every seed; it is below for seed slots {below[:10]}")

    def init(self, rng: SeedStreams):
        n, dt, dev = self.n, torch.float64, self.device
        u = _haar_orthogonal(rng.normal((n, n), dt).to(dev))
        v = _haar_orthogonal(rng.normal((n, n), dt).to(dev))
        lo, hi = (column(self.seed_args.get(k, v), 2) for k, v in (("sigma_min", self.sigma_min),
                                                                    ("sigma_max", self.sigma_max)))
        s = lo + (hi - lo) * rng.uniform((n,), dt).to(dev)
        a = u @ (s[:, :, None] * v.transpose(1, 2))
        bc = self.offset_std * rng.normal((2, n), dt).to(dev)
        b, c = bc[:, 0], bc[:, 1]
        # A^{-1} = V diag(1/s) U^T
        y_star = -(v @ ((u.transpose(1, 2) @ b[:, :, None]) / s[:, :, None])).squeeze(-1)
        x_star = -(u @ ((v.transpose(1, 2) @ c[:, :, None]) / s[:, :, None])).squeeze(-1)
        xy = self.init_std * rng.normal((2, n), dt).to(dev)
        # A^T is kept contiguous too: both mat-vecs of a step then read their matrix row by row
        cast = {k: t.to(self.dtype).contiguous() for k, t in
                {"A": a, "A_T": a.transpose(1, 2), "b": b, "c": c, "x_star": x_star, "y_star": y_star}.items()}
        params = {"generator": {"x": xy[:, 0].to(self.dtype)}, "discriminator": {"y": xy[:, 1].to(self.dtype)}}
        return params, {**cast, **self._seed_instance()}

    def sample(self, rng: SeedStreams, instance):
        """The gradient noise ``(N, 2, n)``; none is drawn when ``noise_std`` is 0 (nothing else is random)."""
        if self.noise_std == 0.0:
            return {"noise": None}
        return {"noise": self.noise_std * rng.normal((2, self.n), self.dtype).to(self.device)}

    def _losses(self, x, y, ay, instance, noise):
        f = per_seed_sum(x * ay) + per_seed_sum(instance["b"] * x) + per_seed_sum(instance["c"] * y)
        if noise is None:
            return {"generator": f, "discriminator": -f}
        return {"generator": f + per_seed_sum(noise[:, 0] * x), "discriminator": -f + per_seed_sum(noise[:, 1] * y)}

    def losses(self, params, instance, batch, players=PLAYERS):
        x, y = params["generator"]["x"], params["discriminator"]["y"]
        return self._losses(x, y, (instance["A"] @ y[:, :, None]).squeeze(-1), instance, batch["noise"])

    def grads(self, params, instance, batch, players=PLAYERS):
        r"""Closed forms $g_x = A y + b + \xi_x$, $g_y = -(A^\top x + c) + \xi_y$ with $\xi$ the gradient noise
        (``batch["noise"]``, zero without noise; $A y$ computed once)."""
        x, y = params["generator"]["x"], params["discriminator"]["y"]
        a, noise = instance["A"], batch["noise"]
        ay = (a @ y[:, :, None]).squeeze(-1)
        g_x = ay + instance["b"]
        g_y = -((instance["A_T"] @ x[:, :, None]).squeeze(-1) + instance["c"])
        if noise is not None:
            g_x, g_y = g_x + noise[:, 0], g_y + noise[:, 1]
        return self._losses(x, y, ay, instance, noise), {"generator": {"x": g_x}, "discriminator": {"y": g_y}}

    def metrics(self, params, instance, last_updates, eval_rng):
        dx = params["generator"]["x"] - instance["x_star"]
        dy = params["discriminator"]["y"] - instance["y_star"]
        return {"distance": torch.sqrt(per_seed_sum(dx * dx) + per_seed_sum(dy * dy))}

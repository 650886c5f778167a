"""The Dirac GAN of Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually
converge?", Section 2."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from minmax_envs._checks import check_choice, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import PLAYERS, Game, PlotSpec

LOSSES = ("gan", "nsgan", "wgan", "wgan-gp")
PENALTIES = (None, "r1", "r2")


def _f(t: torch.Tensor) -> torch.Tensor:
    """``f(t) = -log(1 + exp(-t))``."""
    return F.logsigmoid(t)


def _df(t: torch.Tensor) -> torch.Tensor:
    """``f'(t) = sigmoid(-t)``."""
    return torch.sigmoid(-t)


class DiracGAN(Game):
    r"""Dirac GAN: the smallest GAN whose simultaneous gradient play shows the instabilities of GANs.

    ## Game
    Data is the Dirac mass at 0, the generator is the Dirac mass at $\theta$ and the discriminator is
    linear, $D(x) = \psi x$ (Mescheder et al. 2018, Sec. 2). With $f(t) = -\log(1 + e^{-t})$, for
    ``loss="gan"``:

    $$
    \min_\theta \max_\psi \; L(\theta, \psi) = f(\psi \theta) + f(0)
    $$

    The generator's loss is $L$ ($-f(-\psi \theta)$ for ``loss="nsgan"``), the discriminator's is
    $-L$ plus its penalty. Simultaneous gradient play follows the vector fields $(v_\theta, v_\psi)$
    (Mescheder et al., Sec. 2 and 3):

    | loss | $v_\theta$ | $v_\psi$ |
    |---|---|---|
    | gan | $-\psi f'(\psi \theta)$ | $\theta f'(\psi \theta)$ |
    | nsgan | $-\psi f'(-\psi \theta)$ | $\theta f'(\psi \theta)$ |
    | wgan ($f(t) = t$; $\psi$ clipped to $\pm$ ``clip``) | $-\psi$ | $\theta$ |
    | wgan-gp | $-\psi$ | $\theta - \gamma (\lvert \psi \rvert - g_0) \operatorname{sign}(\psi)$ |
    | gan or nsgan with ``penalty="r1"`` / ``"r2"`` | as without | $\theta f'(\psi \theta) - \gamma \psi$ |

    The unique equilibrium is $(\theta, \psi) = (0, 0)$ (for wgan-gp $\lvert \psi \rvert = g_0$ at $\theta = 0$).
    Gradient descent on wgan spirals outward; the Nagarajan-Kolter regularizer (``regularizer="nk"`` at
    make time) makes the equilibrium locally stable.

    ## Parameters (per seed)
    | player | tensor | shape |
    |---|---|---|
    | generator | `theta` | `(N,)` |
    | discriminator | `psi` | `(N,)` |

    ## Rewards
    ``-loss`` per player in the batched env (generator $-L$, discriminator $L$ less the penalty).

    ## Starting state
    $\theta = \theta_0 + s\, e_1$, $\psi = \psi_0 + s\, e_2$ with $s$ = ``init_std`` and
    $e_1, e_2 \sim \mathcal{N}(0, 1)$ per seed; the reference setting is ``theta0 = psi0 = 1``, ``init_std = 0``
    (every seed starts at $(1, 1)$).

    ## Metrics
    ``distance`` to the equilibrium, $\sqrt{\theta^2 + \psi^2}$ (the quality metric, smaller is better),
    ``theta``, ``psi``, ``diverged``. Where $\theta^2 + \psi^2$ falls below the normal range of the dtype (in
    float32 below $1.2 \cdot 10^{-38}$, a distance below $1.1 \cdot 10^{-19}$), the squares lose their digits
    or underflow to 0, and the distance is ``hypot``$(\theta, \psi)$ instead, which keeps them (a distance of
    $8.6 \cdot 10^{-28}$ reads $8.6 \cdot 10^{-28}$, not 0); above, it is the square root of the sum.

    ## Arguments
    * ``loss``: ``"gan"`` | ``"nsgan"`` | ``"wgan"`` | ``"wgan-gp"``.
    * ``clip``: clip $\psi$ to ``[-clip, clip]`` after every update (WGAN weight clipping), or ``None``.
    * ``penalty``: ``None`` | ``"r1"`` | ``"r2"``, gradient penalty $\frac{\gamma}{2} \psi^2$ on the
      discriminator (gan and nsgan losses only).
    * ``penalty_weight``: $\gamma$ of the r1/r2 penalty and of the wgan-gp penalty (critical value
      $2 f'(0) = 1$).
    * ``gp_target``: $g_0$ of the wgan-gp penalty $\frac{\gamma}{2} (\lvert \psi \rvert - g_0)^2$.
    * ``theta0``, ``psi0``, ``init_std``: initial point and per-seed Gaussian spread around it.

    ## Version history
    * v0: initial version.
    """

    citation: ClassVar[str] = (
        'L. Mescheder, A. Geiger, S. Nowozin. "Which training methods for GANs do actually converge?" ICML '
        '2018.'
    )

    quality_metric = "distance"
    quality_sign = -1.0

    def plots(self) -> tuple[PlotSpec, ...]:
        """Trajectories in the ``(theta, psi)`` plane around the equilibrium ``(0, 0)``."""
        return (PlotSpec("trajectory", "trajectories", "trajectories in the (theta, psi) plane", x="theta", y="psi",
                         marks=((0.0, 0.0),), mark_label="equilibrium"),)

    def __init__(self, num_seeds: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, *,
                 loss: str = "gan", clip: float | None = None, penalty: str | None = None,
                 penalty_weight: float = 1.0, gp_target: float = 1.0, theta0: float = 1.0, psi0: float = 1.0,
                 init_std: float = 0.0):
        super().__init__(num_seeds, device, dtype)
        check_choice("loss", loss, LOSSES)
        check_choice("penalty", penalty, PENALTIES)
        if penalty is not None and loss not in ("gan", "nsgan"):
            raise ValueError(f"penalty={penalty!r} applies to loss 'gan' or 'nsgan'; wgan-gp has its own penalty")
        self.loss, self.penalty = loss, penalty
        self.clip = None if clip is None else check_real("clip", clip, low=0, low_inclusive=False)
        self.gamma = check_real("penalty_weight", penalty_weight, low=0)
        self.g0 = check_real("gp_target", gp_target, low=0)
        self.theta0, self.psi0 = check_real("theta0", theta0), check_real("psi0", psi0)
        self.init_std = check_real("init_std", init_std, low=0)
        self.zero_sum = loss in ("gan", "wgan") and penalty is None

    def init(self, rng: SeedStreams):
        e = rng.normal((2,), self.dtype).to(self.device)
        theta = self.theta0 + self.init_std * e[:, 0]
        psi = self.psi0 + self.init_std * e[:, 1]
        return {"generator": {"theta": theta}, "discriminator": {"psi": psi}}, {}

    def _penalty(self, psi: torch.Tensor) -> torch.Tensor:
        if self.loss == "wgan-gp":
            return 0.5 * self.gamma * (psi.abs() - self.g0) ** 2
        if self.penalty is not None:
            return 0.5 * self.gamma * psi**2
        return torch.zeros_like(psi)

    def losses(self, params, instance, batch, players=PLAYERS):
        theta, psi = params["generator"]["theta"], params["discriminator"]["psi"]
        t = psi * theta
        if self.loss in ("wgan", "wgan-gp"):
            payoff = t
            gen = t
        else:
            payoff = _f(t) + _f(torch.zeros_like(t))
            gen = payoff if self.loss == "gan" else -_f(-t)
        return {"generator": gen, "discriminator": -payoff + self._penalty(psi)}

    def grads(self, params, instance, batch, players=PLAYERS):
        """Closed-form gradients of each player's loss (the vector fields above, negated)."""
        theta, psi = params["generator"]["theta"], params["discriminator"]["psi"]
        t = psi * theta
        if self.loss in ("wgan", "wgan-gp"):
            g_theta, g_psi = psi, -theta
            if self.loss == "wgan-gp":
                g_psi = g_psi + self.gamma * (psi.abs() - self.g0) * torch.sign(psi)
        else:
            g_theta = psi * _df(t if self.loss == "gan" else -t)
            g_psi = -theta * _df(t)
            if self.penalty is not None:
                g_psi = g_psi + self.gamma * psi
        return self.losses(params, instance, batch), {"generator": {"theta": g_theta},
                                                      "discriminator": {"psi": g_psi}}

    def project(self, params):
        if self.clip is None:
            return params
        psi = params["discriminator"]["psi"].clamp(-self.clip, self.clip)
        return {"generator": params["generator"], "discriminator": {"psi": psi}}

    def metrics(self, params, instance, last_updates, eval_rng):
        theta, psi = params["generator"]["theta"], params["discriminator"]["psi"]
        return {"distance": distance(theta, psi), "theta": theta.clone(), "psi": psi.clone()}


def distance(theta: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    r"""$\sqrt{\theta^2 + \psi^2}$, elementwise, without underflow: where the sum of squares is below the dtype's
    smallest normal number (the squares lost their digits or became 0), ``hypot(theta, psi)``, accurate at any
    scale; elsewhere the square root of the sum of squares."""
    squares = theta**2 + psi**2
    return torch.where(squares >= torch.finfo(squares.dtype).tiny, torch.sqrt(squares), torch.hypot(theta, psi))

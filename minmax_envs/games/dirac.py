"""The Dirac GAN of Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually
converge?", Section 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from minmax_envs._checks import check_choice, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import PLAYERS, Game, GameSettings, PlotSpec
from minmax_envs.games._per_seed import column

LOSSES = ("gan", "nsgan", "wgan", "wgan-gp")
PENALTIES = (None, "r1", "r2")


def _f(t: torch.Tensor) -> torch.Tensor:
    """``f(t) = -log(1 + exp(-t))``."""
    return F.logsigmoid(t)


def _df(t: torch.Tensor) -> torch.Tensor:
    """``f'(t) = sigmoid(-t)``."""
    return torch.sigmoid(-t)


@dataclass(frozen=True)
class DiracGANConfig(GameSettings):
    r"""The arguments of :class:`DiracGAN` (its card's Arguments section).

    Attributes:
        loss: ``"gan"`` | ``"nsgan"`` | ``"wgan"`` | ``"wgan-gp"``.
        clip: clip $\psi$ to ``[-clip, clip]`` after every update (WGAN weight clipping), or ``None``.
        penalty: ``None`` | ``"r1"`` | ``"r2"``, gradient penalty $\frac{\gamma}{2} \psi^2$ on the discriminator
            (gan and nsgan losses only).
        penalty_weight: $\gamma$ of the r1/r2 penalty and of the wgan-gp penalty (critical value $2 f'(0) = 1$). A
            number, or one per seed (a sequence or tensor of ``num_seeds`` values; :mod:`minmax_envs.families`).
        gp_target: $g_0$ of the wgan-gp penalty $\frac{\gamma}{2} (\lvert \psi \rvert - g_0)^2$.
        theta0: $\theta_0$, the initial generator parameter (before the per-seed spread). A number, or one per
            seed.
        psi0: $\psi_0$, the initial discriminator parameter (before the per-seed spread). A number, or one per
            seed.
        init_std: $s$, the standard deviation of the per-seed Gaussian spread around $(\theta_0, \psi_0)$.
    """

    loss: str = "gan"
    clip: float | None = None
    penalty: str | None = None
    penalty_weight: float | tuple[float, ...] = 1.0
    gp_target: float = 1.0
    theta0: float | tuple[float, ...] = 1.0
    psi0: float | tuple[float, ...] = 1.0
    init_std: float = 0.0

    per_seed_args: ClassVar[dict[str, dict[str, Any]]] = {"penalty_weight": {"low": 0}, "theta0": {}, "psi0": {}}

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("penalty", self.penalty, PENALTIES)
        if self.penalty is not None and self.loss not in ("gan", "nsgan"):
            raise ValueError(f"penalty={self.penalty!r} applies to loss 'gan' or 'nsgan'; wgan-gp has its own "
                             "penalty")
        self._store(clip=None if self.clip is None else check_real("clip", self.clip, low=0, low_inclusive=False),
                    gp_target=check_real("gp_target", self.gp_target, low=0),
                    init_std=check_real("init_std", self.init_std, low=0))
        self._store_per_seed()


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

    ## Update schedule
    Simultaneous by default: both players move at every step. ``make(..., update="alternating", n_critic=k)``:
    $k$ discriminator steps, then one generator step, each at the parameters the other's last move left
    (:class:`~minmax_envs.games._base.Schedule`); Mescheder et al. (2018) analyse both schedules on this game.

    ## Arguments
    The fields of :class:`DiracGANConfig` (``DiracGAN.Config``), passed whole; :func:`~minmax_envs.make` takes
    them as keywords, beside its own (``update``, ``n_critic``: the update schedule).

    ## Version history
    * v0: initial version.
    """

    citation: ClassVar[str] = (
        'L. Mescheder, A. Geiger, S. Nowozin. "Which training methods for GANs do actually converge?" ICML '
        '2018.'
    )

    quality_metric = "distance"
    scalar_metrics = ("distance", "theta", "psi")
    quality_sign = -1.0

    def plots(self) -> tuple[PlotSpec, ...]:
        """Trajectories in the ``(theta, psi)`` plane around the equilibrium ``(0, 0)``."""
        return (PlotSpec("trajectory", "trajectories", "trajectories in the (theta, psi) plane", x="theta", y="psi",
                         marks=((0.0, 0.0),), mark_label="equilibrium"),)

    Config = DiracGANConfig

    @property
    def zero_sum(self) -> bool:
        """Whether the discriminator's loss is minus the generator's: gan and wgan without a penalty."""
        return self.loss in ("gan", "wgan") and self.penalty is None

    def init(self, rng: SeedStreams):
        e = rng.normal((2,), self.dtype).to(self.device)
        theta0, psi0 = (self._start(n, v) for n, v in (("theta0", self.theta0), ("psi0", self.psi0)))
        theta = theta0 + self.init_std * e[:, 0]
        psi = psi0 + self.init_std * e[:, 1]
        return {"generator": {"theta": theta}, "discriminator": {"psi": psi}}, self._seed_instance()

    def _start(self, name: str, value: float | torch.Tensor) -> float | torch.Tensor:
        """An initial coordinate: the number, or the per-seed values of the next init in the game's dtype."""
        return self.seed_args[name].to(self.dtype) if name in self.seed_args else value

    def _weight(self, instance: dict[str, torch.Tensor]) -> float | torch.Tensor:
        """$\\gamma$: the number, or the instance's per-seed values ``(N,)`` in the game's dtype."""
        if "penalty_weight" in instance:
            return column(instance["penalty_weight"].to(self.dtype), 1)
        return self.penalty_weight

    def _penalty(self, psi: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
        if self.loss == "wgan-gp":
            return 0.5 * gamma * (psi.abs() - self.gp_target) ** 2
        if self.penalty is not None:
            return 0.5 * gamma * psi**2
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
        return {"generator": gen, "discriminator": -payoff + self._penalty(psi, self._weight(instance))}

    def grads(self, params, instance, batch, players=PLAYERS):
        """Closed-form gradients of each player's loss (the vector fields above, negated)."""
        theta, psi = params["generator"]["theta"], params["discriminator"]["psi"]
        t = psi * theta
        if self.loss in ("wgan", "wgan-gp"):
            g_theta, g_psi = psi, -theta
            if self.loss == "wgan-gp":
                g_psi = g_psi + self._weight(instance) * (psi.abs() - self.gp_target) * torch.sign(psi)
        else:
            g_theta = psi * _df(t if self.loss == "gan" else -t)
            g_psi = -theta * _df(t)
            if self.penalty is not None:
                g_psi = g_psi + self._weight(instance) * psi
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

"""The synthetic two-mode problem of "Adam is no better than normalized SGD" (ICLR 2022 submission, Section 4): a
linear generator against a truncated-cubic discriminator, on data made of two slightly correlated modes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from minmax_envs._checks import check_int, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import PLAYERS, Game, GameSettings, PlotSpec, per_seed_sum
from minmax_envs.games._per_seed import column, sqrt

CASES = ("correlated_modes", "correlated_coefficients")
RECOVERY_COSINE = 0.9


def truncated_cubic(x: torch.Tensor, trunc: float) -> torch.Tensor:
    r"""$\sigma$ of eq. (9), with $\Lambda$ = ``trunc``: $x^3$ for $\lvert x \rvert \le \Lambda$,
    $3 \Lambda^2 x - 2 \Lambda^3$ above, $3 \Lambda^2 x + 2 \Lambda^3$ below.

    Written as $c^3 + 3 \Lambda^2 (x - c)$ with $c = \operatorname{clamp}(x, -\Lambda, \Lambda)$: the same
    function, continuous with a continuous derivative, and autograd gives the right derivative on both sides.
    """
    c = x.clamp(-trunc, trunc)
    return c * c * c + (3.0 * trunc * trunc) * (x - c)


def truncated_cubic_grad(x: torch.Tensor, trunc: float) -> torch.Tensor:
    r"""$\sigma'(x) = 3 \operatorname{clamp}(x, -\Lambda, \Lambda)^2$ ($\Lambda$ = ``trunc``): $3 x^2$ inside
    $[-\Lambda, \Lambda]$, $3 \Lambda^2$ outside."""
    c = x.clamp(-trunc, trunc)
    return 3.0 * c * c


#: The arguments whose ``None`` stands for a default computed from ``d`` and ``m_d``, each with the formula as
#: messages spell it, the default as a function of the config, and the interval of its values (beyond ``>= 0``)
_COMPUTED: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "gamma": ("1/log(d)", lambda c: 1.0 / math.log(c.d), {"high": 1.0, "high_inclusive": False}),
    "trunc": ("d**0.2", lambda c: c.d ** 0.2, {"low_inclusive": False}),
    "w_init_std": ("1/sqrt(d)", lambda c: 1.0 / math.sqrt(c.d), {}),
    "v_init_std": ("1/d", lambda c: 1.0 / c.d, {}),
    "a_init_std": ("1/sqrt(m_d*log(d))", lambda c: 1.0 / math.sqrt(c.m_d * math.log(c.d)), {}),
    "z_pair_prob": ("1/log(d)**2", lambda c: 1.0 / math.log(c.d) ** 2, {"high": 1.0}),
}


@dataclass(frozen=True)
class TwoModeConfig(GameSettings):
    r"""The arguments of :class:`TwoMode` (its card's Arguments section). ``None`` stands for the default formula
    given (:meth:`resolved` computes it).

    Attributes:
        case: ``"correlated_modes"`` (default) or ``"correlated_coefficients"`` (Assumption 1).
        d: data dimension (default 1000, as in Figure 5).
        m_d: discriminator width (default 5, Figure 5; Theorem 4.2 uses $m_d = \log d$).
        m_g: generator width (default 5, Figure 5; Theorem 4.2 uses $m_g = \log d \cdot \log\log d$).
        gamma: $\gamma$, the mode correlation (case 1) or the probability of $s = (1, 1)$ (case 2), in
            $[0, 1)$; default $1/\log d$ (the paper's $1/\operatorname{polylog} d$). A number, or one per seed (a
            sequence or tensor of ``num_seeds`` values; :mod:`minmax_envs.families`).
        batch_size: samples per step (default 1, the paper's setting).
        trunc: $\Lambda$ of eq. (9), default $d^{0.2}$.
        bias_scale: $\lambda$ of eq. (9), default 1.0. The paper sets $\lambda$ in Parametrization 4.1 "to ensure
            that the weights and the bias in the discriminator learn at the same speed", but its value is
            illegible in our copy of the text: 1.0 is our choice, not the paper's.
        w_init_std: initial scale of the discriminator's neurons, default $1/\sqrt{d}$.
        v_init_std: initial scale of the generator's neurons, default $1/d$.
        a_init_std: initial scale of the discriminator's output weight, default $1/\sqrt{m_d \log d}$ (the
            paper's "small Gaussian" $\mathcal{N}(0, 1/(m_d \operatorname{polylog} d))$).
        z_pair_prob: probability that $z$ has a second active coordinate, default $1/\log(d)^2$ (ignored when
            $m_g = 1$).
    """

    case: str = "correlated_modes"
    d: int = 1000
    m_d: int = 5
    m_g: int = 5
    gamma: float | tuple[float, ...] | None = None
    batch_size: int = 1
    trunc: float | None = None
    bias_scale: float = 1.0
    w_init_std: float | None = None
    v_init_std: float | None = None
    a_init_std: float | None = None
    z_pair_prob: float | None = None

    per_seed_args: ClassVar[dict[str, dict[str, Any]]] = {"gamma": {"low": 0.0, **_COMPUTED["gamma"][2]}}

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ValueError(f"unknown case {self.case!r}; choose 'correlated_modes' or 'correlated_coefficients'")
        self._store(d=check_int("d", self.d, low=2), m_d=check_int("m_d", self.m_d),
                    m_g=check_int("m_g", self.m_g), batch_size=check_int("batch_size", self.batch_size),
                    bias_scale=check_real("bias_scale", self.bias_scale, low=0.0, low_inclusive=False))
        for name, (formula, default, interval) in _COMPUTED.items():
            value = getattr(self, name)
            if name in self.per_seed_args and value is not None:  # a number, or one per seed
                self._store_per_seed(name)
                continue
            try:
                checked = check_real(name, default(self) if value is None else value, **{"low": 0.0, **interval})
            except ValueError as e:
                if value is not None:
                    raise
                raise ValueError(f"{e} (the default {formula} for d={self.d}); pass {name} explicitly") from None
            if value is not None:
                self._store(**{name: checked})

    def resolved(self) -> TwoModeConfig:
        """This config with the default formulas computed (``gamma = 1/log(d)``...)."""
        return replace(self, **{name: default(self) for name, (_, default, _) in _COMPUTED.items()
                                if getattr(self, name) is None})


class TwoMode(Game):
    r"""The synthetic two-mode problem on which SGDA collapses the modes and nSGDA separates them.

    ## Game
    "Adam is no better than normalized SGD", Section 4, eq. (6) (batch of $B$ samples per step; the paper
    uses $B = 1$):

    $$
    \min_V \max_{W, a, b} \; f = \frac{1}{B} \sum_{b=1}^{B} \big[\log D(X_b) + \log(1 - D(G(z_b)))\big]
    $$

    * Data (Assumption 1): $X = s_1 u_1 + s_2 u_2$ with unit modes $u_1, u_2 \in \mathbb{R}^d$.
      ``case="correlated_modes"``: $\langle u_1, u_2 \rangle = \gamma$ and $X = u_1$ or $X = u_2$ with
      probability 1/2. ``case="correlated_coefficients"``: $\langle u_1, u_2 \rangle = 0$ and $s = (1, 1)$ with
      probability $\gamma$, $(1, 0)$ and $(0, 1)$ with probability $(1 - \gamma) / 2$ each.
    * Generator, eq. (7): $G(z) = V^\top z = \sum_j z_j v_j$, $V \in \mathbb{R}^{m_g \times d}$.
    * Latent, eq. (8): $z \in \{0, 1\}^{m_g}$, almost always one-hot: one coordinate uniform in
      $[m_g]$ is active and, with probability $p$ = ``z_pair_prob``, a second one uniform among the other
      $m_g - 1$; so $P[z_i = 1] = (1 + p) / m_g = \Theta(1/m_g)$ and, for $i \ne j$,
      $P[z_i = z_j = 1] = 2 p / (m_g (m_g - 1))$ ($p = 1/\log(d)^2$: $1/(m_g^2 \operatorname{polylog} d)$).
    * Discriminator, eq. (9): $D(X) = \operatorname{sigmoid}(a \sum_i \sigma(\langle w_i, X \rangle) + \lambda b)$,
      $\sigma$ the truncated cubic: $x^3$ for $\lvert x \rvert \le \Lambda$, $3 \Lambda^2 x - 2 \Lambda^3$ above,
      $3 \Lambda^2 x + 2 \Lambda^3$ below.

    $f$ is computed stably as $\operatorname{logsigmoid}(h(X)) + \operatorname{logsigmoid}(-h(G(z)))$ with $h$
    the logit. The generator's loss is $f$, the discriminator's $-f$ (zero-sum). Gradients are closed forms
    (tested against autograd). Theorem 4.1: SGDA, for any bounded step sizes, learns nothing or a
    weighted average of $u_1$ and $u_2$ in every generator neuron; Theorem 4.2: global nSGDA with
    step size $\eta_D$ slightly above $\eta_G$ learns each mode in a separate neuron with probability bounded
    away from zero. Both are statements about rates over seeds.

    ## Parameters (per seed)
    | player | tensor | shape | meaning |
    |---|---|---|---|
    | generator | `V` | `(N, m_g, d)` | neurons $v_j$ (rows) |
    | discriminator | `W` | `(N, m_d, d)` | neurons $w_i$ (rows) |
    | discriminator | `a` | `(N,)` | output weight |
    | discriminator | `b` | `(N,)` | bias (scaled by $\lambda$ = `bias_scale`) |

    ## Rewards
    ``-loss`` per player in the batched env: $-f$ for the generator, $f$ for the discriminator.

    ## Starting state
    Per seed (Parametrization 4.1): modes $u_1, u_2$ from a Gram-Schmidt of two Gaussian vectors;
    $b = 0$, $a \sim \mathcal{N}(0, \sigma_a^2)$, $w_i \sim \mathcal{N}(0, \sigma_w^2 I)$,
    $v_j \sim \mathcal{N}(0, \sigma_v^2 I)$ with $\sigma_a$, $\sigma_w$, $\sigma_v$ = ``a_init_std``,
    ``w_init_std``, ``v_init_std`` (default variances $1/(m_d \log d)$, $1/d$ and $1/d^2$).

    ## Metrics
    * ``cos_u1``, ``cos_u2`` ``(N, m_g)``: $\langle v_j, u_l \rangle / \lVert v_j \rVert$ for every generator
      neuron (Figure 5c).
    * ``d_cos_u1``, ``d_cos_u2`` ``(N, m_d)``: $\langle w_i, u_l \rangle / \lVert w_i \rVert$ for every
      discriminator neuron (5b).
    * ``modes_recovered`` ``(N,)``: how many of the two modes have a generator neuron with cosine
      $\ge 0.9$ to them (0, 1 or 2).
    * ``mode_alignment`` ``(N,)``: $\frac{1}{2}\big(\max_j \cos(v_j, u_1) + \max_j \cos(v_j, u_2)\big)$, the
      quality metric (larger is better; 1 when each mode is learnt exactly by some neuron; a neuron on the
      average $(u_1 + u_2)/\lVert u_1 + u_2 \rVert$ scores $\sqrt{(1 + \gamma)/2}$ only, about 0.76 at
      $d = 1000$).
    * ``update_speed_ratio`` ``(N,)``: relative update speed of D over G at the last step (Figure 5a),
      $\dfrac{\lVert \Delta W \rVert / \lVert W_{prev} \rVert}{\lVert \Delta V \rVert / \lVert V_{prev} \rVert}$
      with Frobenius norms, $\Delta W, \Delta V$ the last updates and $W_{prev} = W - \Delta W$ the iterate
      they were applied to; NaN before the first step.

    Metrics use no randomness.

    ## Arguments
    The fields of :class:`TwoModeConfig` (``TwoMode.Config``), passed whole; :func:`~minmax_envs.make` takes
    them as keywords, beside its own (``update``, ``n_critic``: the update schedule, simultaneous by default).

    ## Version history
    * v0: initial version.
    """

    citation: ClassVar[str] = (
        'Anonymous authors. "Adam is no better than normalized SGD: dissecting how adaptive methods improve '
        'GANs performance." ICLR 2022 submission (published as "Dissecting adaptive methods in GANs", ICLR '
        '2023 submission), Section 4.'
    )

    quality_metric = "mode_alignment"
    scalar_metrics = ("modes_recovered", "mode_alignment", "update_speed_ratio")
    quality_sign = 1.0
    zero_sum = True

    def plots(self) -> tuple[PlotSpec, ...]:
        """Every generator neuron's final cosines to the two modes, against the recovery threshold."""
        return (PlotSpec("points", "neuron_cosines", "generator neurons' cosines to the modes", x="cos_u1",
                         y="cos_u2", lines=(RECOVERY_COSINE,), limit=1.05),)

    Config = TwoModeConfig

    # --- episode ------------------------------------------------------------------------------
    def init(self, rng: SeedStreams):
        d, dev, dt = self.d, self.device, self.dtype
        g = rng.normal((2, d), torch.float64).to(dev)
        e1 = g[:, 0] / torch.linalg.vector_norm(g[:, 0], dim=1, keepdim=True)
        r = g[:, 1] - (g[:, 1] * e1).sum(dim=1, keepdim=True) * e1
        e2 = r / torch.linalg.vector_norm(r, dim=1, keepdim=True)
        if self.case == "correlated_modes":
            gamma = column(self.seed_args.get("gamma", self.gamma), 2)  # a number, or (N, 1) per seed
            u2 = gamma * e1 + sqrt(1.0 - gamma**2) * e2
        else:
            u2 = e2
        modes = torch.stack([e1, u2], dim=1).to(dt)  # (N, 2, d)
        w = self.w_init_std * rng.normal((self.m_d, d), dt).to(dev)
        v = self.v_init_std * rng.normal((self.m_g, d), dt).to(dev)
        a = self.a_init_std * rng.normal((1,), dt).to(dev)[:, 0]
        params = {"generator": {"V": v},
                  "discriminator": {"W": w, "a": a, "b": torch.zeros_like(a)}}
        return params, {"modes": modes, **self._seed_instance()}

    def sample(self, rng: SeedStreams, instance):
        r"""Real samples ``X`` ``(N, B, d)`` and latents ``z`` ``(N, B, m_g)``.

        One draw of $4 B$ uniforms per step, the same in both cases: $r$ picks the data coefficients,
        $\lfloor u\, m_g \rfloor$ the active latent coordinate, $\lfloor u' (m_g - 1) \rfloor$ the offset of the
        second one and $u'' < p$ ($p$ = ``z_pair_prob``) whether there is a second one."""
        bs, dt, m_g = self.batch_size, self.dtype, self.m_g
        u = rng.uniform((4, bs), torch.float64).to(self.device)  # in (0, 1): floor(u * k) is in [0, k)
        r = u[:, 0]
        if self.case == "correlated_modes":
            s1 = r < 0.5
            s2 = ~s1
        else:
            g = column(instance.get("gamma", self.gamma), 2)  # a number, or (N, 1) per seed
            both = r < g
            s1 = r < g + 0.5 * (1.0 - g)  # (1, 1) below g, then (1, 0), then (0, 1)
            s2 = both | ~s1
        s = torch.stack([s1, s2], dim=-1).to(dt)  # (N, B, 2)
        x = torch.bmm(s, instance["modes"])
        # one-hot by comparison (F.one_hot checks its input on the host: a device sync every step)
        coords = torch.arange(m_g, device=self.device)
        first = (u[:, 1] * m_g).to(torch.int64)
        z = first[..., None] == coords
        if m_g > 1:
            second = torch.remainder(first + 1 + (u[:, 2] * (m_g - 1)).to(torch.int64), m_g)
            z = z | ((second[..., None] == coords) & (u[:, 3] < self.z_pair_prob)[..., None])
        return {"X": x, "z": z.to(dt)}

    # --- payoff and gradients -------------------------------------------------------------------
    def _forward(self, params, batch):
        r"""Pre-activations $P = [X; G(z)]\, W^\top$ ``(N, 2B, m_d)``, inputs $Y$ and logits $h$ ``(N, 2B)``."""
        d_p = params["discriminator"]
        fake = torch.bmm(batch["z"], params["generator"]["V"])  # (N, B, d)
        y = torch.cat([batch["X"], fake], dim=1)  # (N, 2B, d)
        pre = torch.bmm(y, d_p["W"].transpose(1, 2))  # (N, 2B, m_d)
        act = truncated_cubic(pre, self.trunc).sum(dim=2)  # (N, 2B)
        h = d_p["a"][:, None] * act + self.bias_scale * d_p["b"][:, None]
        return y, pre, act, h

    def _payoff(self, h: torch.Tensor) -> torch.Tensor:
        bs = self.batch_size
        return (F.logsigmoid(h[:, :bs]).sum(dim=1) + F.logsigmoid(-h[:, bs:]).sum(dim=1)) / bs

    def losses(self, params, instance, batch, players=PLAYERS):
        f = self._payoff(self._forward(params, batch)[3])
        return {"generator": f, "discriminator": -f}

    def grads(self, params, instance, batch, players=PLAYERS):
        r"""Closed forms. With $c_b = \operatorname{sigmoid}(-h(X_b)) / B$ for real and
        $-\operatorname{sigmoid}(h(G_b)) / B$ for fake samples, $\partial f / \partial h = c$, so
        $\partial f / \partial a = \sum_b c_b S_b$ (with $S_b = \sum_i \sigma(\langle w_i, Y_b \rangle)$),
        $\partial f / \partial b = \lambda \sum_b c_b$,
        $\partial f / \partial w_i = a \sum_b c_b\, \sigma'(\langle w_i, Y_b \rangle)\, Y_b$ and
        $\partial f / \partial V = z^\top (a\, c_b\, \sigma'(\langle W, G_b \rangle) W)$."""
        bs = self.batch_size
        w, a = params["discriminator"]["W"], params["discriminator"]["a"]
        y, pre, act, h = self._forward(params, batch)
        f = self._payoff(h)
        c = torch.cat([torch.sigmoid(-h[:, :bs]), -torch.sigmoid(h[:, bs:])], dim=1).div_(bs)  # df/dh, (N, 2B)
        # df/d<w_i, Y_b> = a c_b sigma'(<w_i, Y_b>): scale the small (N, 2B, m_d) tensor, not the (N, m_d, d) ones
        coef = truncated_cubic_grad(pre, self.trunc).mul_((a[:, None] * c)[:, :, None])
        g_w = torch.bmm(coef.transpose(1, 2).neg(), y)  # -df/dW, (N, m_d, d)
        g_fake = torch.bmm(coef[:, bs:], w)  # df/dG, (N, B, d)
        z_t = batch["z"].transpose(1, 2)  # (N, m_g, B)
        g_v = z_t * g_fake if bs == 1 else torch.bmm(z_t, g_fake)  # df/dV, (N, m_g, d)
        g_a = (c * act).sum(dim=1)
        g_b = self.bias_scale * c.sum(dim=1)
        grads = {"generator": {"V": g_v}, "discriminator": {"W": g_w, "a": g_a.neg_(), "b": g_b.neg_()}}
        return {"generator": f, "discriminator": -f}, grads

    # --- metrics --------------------------------------------------------------------------------
    @staticmethod
    def _cosines(rows: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
        r"""$\langle r_j, u_l \rangle / \lVert r_j \rVert$ for every row $r_j$ of ``rows`` and mode $u_l$, of shape
        ``(N, 2, rows)`` (modes are unit vectors)."""
        norms = torch.linalg.vector_norm(rows, dim=2).clamp_min(torch.finfo(rows.dtype).tiny)
        return torch.bmm(modes, rows.transpose(1, 2)) / norms[:, None, :]

    def quality(self, params, instance, last_updates, eval_rng):
        return self._cosines(params["generator"]["V"], instance["modes"]).amax(dim=2).mean(dim=1)

    def metrics(self, params, instance, last_updates, eval_rng):
        modes = instance["modes"]
        v, w = params["generator"]["V"], params["discriminator"]["W"]
        cos_g = self._cosines(v, modes)  # (N, 2, m_g)
        cos_d = self._cosines(w, modes)  # (N, 2, m_d)
        best = cos_g.amax(dim=2)  # (N, 2)
        if last_updates is None:
            ratio = torch.full((self.num_seeds,), math.nan, dtype=self.dtype, device=self.device)
        else:
            dw, dv = last_updates["discriminator"]["W"], last_updates["generator"]["V"]
            speed_d = per_seed_sum(dw * dw).sqrt() / per_seed_sum((w - dw) ** 2).sqrt()
            speed_g = per_seed_sum(dv * dv).sqrt() / per_seed_sum((v - dv) ** 2).sqrt()
            ratio = speed_d / speed_g
        return {
            "cos_u1": cos_g[:, 0], "cos_u2": cos_g[:, 1],
            "d_cos_u1": cos_d[:, 0], "d_cos_u2": cos_d[:, 1],
            "modes_recovered": (best >= RECOVERY_COSINE).to(self.dtype).sum(dim=1),
            "mode_alignment": best.mean(dim=1),
            "update_speed_ratio": ratio,
        }

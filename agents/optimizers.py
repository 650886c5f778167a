"""The named optimizers of the papers, as chains of small transformations (:mod:`agents.transforms`).

Where a fused equivalent of the chain exists (:mod:`agents.fused`: the same state, the same values to float
rounding, fewer passes), the optimizer runs it; the comment at each says which chain it stands for.

Every ``lr`` is a number or a schedule (:mod:`agents.schedules`). Updates are *added* to the
parameters and each player minimizes its own loss, so for the discriminator "descent on its loss" is
the ascent on the payoff that the papers write.
"""

from __future__ import annotations

from agents import fused
from agents._base import (
    ADAGRAD_EPS,
    EPS,
    GAN_BETAS,
    GRAFT_SCOPE,
    NSGDA_SCOPE,
    RMSPROP_ALPHA,
    GradientTransformation,
    Schedule,
    chain,
    check_betas,
)
from agents.norms import check_scope
from agents.transforms import SGDAState, optimism, scale_by_adagrad, scale_by_learning_rate, scale_by_rms, trace

LR = float | Schedule

# extragradient(base) and graft(magnitude, direction, scope, eps) (agents.transforms) are named agents
# too: ExtraAdam is extragradient(adam(...)), extra-SGD extragradient(sgda(...)).


def sgda(lr: LR, momentum: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """Stochastic gradient descent-ascent with heavy-ball momentum ("Adam is no better than normalized SGD", eq. (5)).

    .. math:: m_t = \\mu\\, m_{t-1} + g_t, \\qquad u_t = -\\eta_t\\, m_t
              \\quad (\\text{Nesterov: } u_t = -\\eta_t (g_t + \\mu\\, m_t))

    Equals ``torch.optim.SGD(lr=lr, momentum=momentum, nesterov=nesterov)``.
    """
    parts = [trace(momentum, nesterov)] if momentum or nesterov else []
    return chain(*parts, scale_by_learning_rate(lr), state=SGDAState)


def nsgda(lr: LR, momentum: float = 0.0, scope: str = NSGDA_SCOPE) -> GradientTransformation:
    """Normalized SGDA ("Adam is no better than normalized SGD", eq. (4); Section 4 uses the global form without
    momentum).

    .. math:: m_t = \\mu\\, m_{t-1} + g_t, \\qquad u_t = -\\eta_t\\, m_t / \\lVert m_t \\rVert

    The norm is per seed: per parameter tensor for ``scope="layer"`` (l-nSGDA), over all of one
    player's tensors for ``scope="global"`` (g-nSGDA). So every step has norm exactly ``lr`` per tensor
    (layer) or per player (global), whatever the gradient's scale.
    """
    check_scope(scope)
    # = chain(*([trace(momentum)] if momentum else []), normalize(scope), scale_by_learning_rate(lr)),
    # same state, with -lr folded into the normalization (one pass over the tensors instead of two)
    return fused.normalize_with_learning_rate(scope, lr, trace(momentum) if momentum else None)


def adam(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS) -> GradientTransformation:
    """Adam (Kingma & Ba 2015; "Adam is no better than normalized SGD", Algorithm 1), defaults ``betas = (0.5, 0.9)``,
    the paper's rule of
    thumb for GANs.

    .. math:: u_t = -\\eta_t\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)

    Equals ``torch.optim.Adam(lr=lr, betas=betas, eps=eps)``.
    """
    b1, b2 = check_betas(betas)
    # = chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr)), same state, in one fused pass
    return fused.adam_with_learning_rate(b1, b2, eps, lr)


def rmsprop(lr: LR, alpha: float = RMSPROP_ALPHA, eps: float = EPS) -> GradientTransformation:
    r"""RMSprop (Tieleman & Hinton 2012), with $\alpha$ = ``alpha`` and $\epsilon$ = ``eps``.

    .. math:: v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \qquad u_t = -\eta_t\, g_t / (\sqrt{v_t} + \epsilon)

    Equals ``torch.optim.RMSprop(lr=lr, alpha=alpha, eps=eps)``.
    """
    return chain(scale_by_rms(alpha, eps), scale_by_learning_rate(lr))


def adagrad(lr: LR, eps: float = ADAGRAD_EPS) -> GradientTransformation:
    r"""Adagrad (Duchi et al. 2011), with $\epsilon$ = ``eps``.

    .. math:: s_t = s_{t-1} + g_t^2, \qquad u_t = -\eta_t\, g_t / (\sqrt{s_t} + \epsilon)

    Equals ``torch.optim.Adagrad(lr=lr, eps=eps)``.
    """
    return chain(scale_by_adagrad(eps), scale_by_learning_rate(lr))


def adalr(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS,
          scope: str = GRAFT_SCOPE) -> GradientTransformation:
    """AdaLR ("Adam is no better than normalized SGD", eq. (2)): the direction of SGDA with momentum ``beta1``, the
    magnitude of Adam.

    .. math:: u_t = -\\eta_t \\lVert A_t \\rVert\\, M_t / (\\lVert M_t \\rVert + \\epsilon),
              \\qquad M_t = \\beta_1 M_{t-1} + g_t,\\ A_t \\text{ Adam's step}

    Layer-wise (per tensor, the paper's Figure 2) or global (per player) by ``scope``.
    """
    b1, _ = check_betas(betas)
    # = graft(adam(lr, betas, eps), sgda(1.0, momentum=b1), scope, eps): the direction at unit step, so that
    # eps is added to ||M|| as in eq. (2); same state, without writing the direction out
    return fused.graft_onto_momentum(adam(lr, betas, eps), 1.0, b1, scope, eps)


def adadir(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS,
           scope: str = GRAFT_SCOPE) -> GradientTransformation:
    """AdaDir ("Adam is no better than normalized SGD", eq. (3)): the direction of Adam, the magnitude of SGDA with
    momentum ``beta1``.

    .. math:: u_t = -\\eta_t \\lVert M_t \\rVert\\, A_t / (\\lVert A_t \\rVert + \\epsilon)
    """
    b1, _ = check_betas(betas)
    # = graft(sgda(lr, momentum=b1), adam(1.0, betas, eps), scope, eps): Adam's direction at unit step, so that
    # eps is added to ||A|| as in eq. (3); adam's step is a new tensor, so the graft rescales it in place
    return fused.graft_fresh(sgda(lr, momentum=b1), adam(1.0, betas, eps), scope, eps)


def optimistic(lr: LR, momentum: float = 0.0) -> GradientTransformation:
    r"""Optimistic gradient descent-ascent (OGDA; Daskalakis et al. 2018), with $\eta$ = ``lr``.

    .. math:: x_{t+1} = x_t - 2 \eta\, g_t + \eta\, g_{t-1}
    """
    return optimism(sgda(lr, momentum))


def optimistic_adam(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS) -> GradientTransformation:
    """Optimistic Adam (Daskalakis et al. 2018): $u_t = 2 A_t - A_{t-1}$ with $A_t$ Adam's step."""
    return optimism(adam(lr, betas, eps))


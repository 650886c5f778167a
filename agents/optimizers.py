"""The named optimizers of the papers, as chains of small transformations."""

from __future__ import annotations

from agents._base import GradientTransformation, chain
from agents.transforms import check_scope, normalize, scale_by_learning_rate, trace


def sgda(lr: float, momentum: float = 0.0) -> GradientTransformation:
    """Stochastic gradient descent-ascent with heavy-ball momentum (seed 001, eq. (5)).

    .. math:: m_t = \\mu\\, m_{t-1} + g_t, \\qquad u_t = -\\eta\\, m_t

    Applied to each player's gradient of its own loss, this is descent for the generator and ascent on
    the payoff for the discriminator. Equals ``torch.optim.SGD(lr=lr, momentum=momentum)``.
    """
    parts = [trace(momentum)] if momentum else []
    return chain(*parts, scale_by_learning_rate(lr))


def nsgda(lr: float, momentum: float = 0.0, scope: str = "global") -> GradientTransformation:
    """Normalized SGDA (seed 001, eq. (4); Section 4 uses the global form without momentum).

    .. math:: m_t = \\mu\\, m_{t-1} + g_t, \\qquad u_t = -\\eta\\, m_t / \\lVert m_t \\rVert

    The norm is per seed: per parameter tensor for ``scope="layer"`` (l-nSGDA), over all of one
    player's tensors for ``scope="global"`` (g-nSGDA). So every step has norm exactly ``lr`` per tensor
    (layer) or per player (global), whatever the gradient's scale.
    """
    check_scope(scope)
    parts = [trace(momentum)] if momentum else []
    return chain(*parts, normalize(scope), scale_by_learning_rate(lr))

"""Small composable transformations, the readable reference; the named optimizers are
:func:`~agents._base.chain`s of these.

Every transformation works on dicts of tensors with a leading seed dimension ``N``; element-wise rules
use PyTorch's ``_foreach`` kernels (one call per rule for all tensors), and norms are per seed
(:mod:`agents.norms`).

Speed: the named optimizers of :mod:`agents.optimizers` run fused equivalents of their chains
(:mod:`agents.fused`: same state, same values to float rounding, fewer passes over the tensors; Adam through
torch's fused Adam kernel on the CPU), each tested against the chain it stands for. ``benchmarks/bench_agents.py``
measures them against ``torch.optim``.

Every transformation pickles: its ``init`` and ``update`` are module-level functions, bound to the
hyperparameters with ``functools.partial``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch

from agents._base import (
    ADAGRAD_EPS,
    ADAM_BETAS,
    EPS,
    GRAFT_SCOPE,
    NSGDA_SCOPE,
    RMSPROP_ALPHA,
    ChainState,
    EmptyState,
    GradientTransformation,
    Params,
    Schedule,
    check_fraction,
    check_lr,
    check_real,
    stateless,
)
from agents.norms import SCOPES, check_scope, inverse_norms, norm_pairs, per_seed_norms, rescale

__all__ = [
    "SCOPES", "AdamState", "ExtragradientState", "GraftState", "NSGDAState", "OptimismState", "SGDAState",
    "ScaleByAdagradState", "ScaleByAdamState", "ScaleByRmsState", "ScaleByScheduleState", "TraceState", "adam_init",
    "adam_moments", "check_graft", "extragradient", "graft", "graft_factors", "graft_init", "graft_update",
    "learning_rate_state", "lr_step", "normalize", "optimism", "scale", "scale_by_adagrad", "scale_by_adam",
    "scale_by_learning_rate", "scale_by_rms", "trace", "trace_init",
]


def _items(d: Params) -> tuple[list[str], list[torch.Tensor]]:
    return list(d), list(d.values())


def _zeros(params: Params) -> Params:
    return {k: torch.zeros_like(v) for k, v in params.items()}


# --- scaling ------------------------------------------------------------------------------------
def scale(factor: float) -> GradientTransformation:
    r"""$u = \text{factor} \cdot g$."""
    return stateless(partial(_scale, float(factor)))


def _scale(factor: float, g: Params, p: Params | None) -> Params:
    keys, vals = _items(g)
    return dict(zip(keys, torch._foreach_mul(vals, factor)))


class ScaleByScheduleState(NamedTuple):
    count: int


def scale_by_learning_rate(lr: float | Schedule) -> GradientTransformation:
    r"""$u = -\eta_t\, g$: a descent step on the player's own loss, with step size $\eta_t$ = ``lr``, a number
    or a schedule $t \mapsto \eta_t$ of the number $t$ of updates made so far (see :mod:`agents.schedules`)."""
    lr = check_lr(lr)
    if not callable(lr):
        return scale(-lr)
    return GradientTransformation(partial(_learning_rate_init, lr), partial(_scale_by_schedule_update, lr))


def learning_rate_state(lr: float | Schedule) -> EmptyState | ScaleByScheduleState:
    """The state ``scale_by_learning_rate(lr).init`` makes: a count of updates for a schedule, else none."""
    return ScaleByScheduleState(0) if callable(lr) else EmptyState()


def _learning_rate_init(lr: float | Schedule, params: Params) -> EmptyState | ScaleByScheduleState:
    return learning_rate_state(lr)


def lr_step(lr: float | Schedule, state: EmptyState | ScaleByScheduleState) -> tuple[float, object]:
    r"""The step size $\eta_t$ of this update and the next state of ``scale_by_learning_rate(lr)``."""
    if callable(lr):
        return float(lr(state.count)), ScaleByScheduleState(state.count + 1)
    return lr, state


def _scale_by_schedule_update(lr: Schedule, grads: Params, state: ScaleByScheduleState,
                              params: Params | None = None) -> tuple[Params, ScaleByScheduleState]:
    lr_t, state = lr_step(lr, state)
    return _scale(-lr_t, grads, params), state


# --- momentum -----------------------------------------------------------------------------------
class TraceState(NamedTuple):
    momentum: Params


def trace(momentum: float, nesterov: bool = False) -> GradientTransformation:
    r"""Heavy-ball momentum $m_t = \mu\, m_{t-1} + g_t$ ($m_0 = 0$), with $\mu$ = ``momentum`` the weight of the
    previous buffer; $u = m_t$, or with ``nesterov=True`` $u = g_t + \mu\, m_t$.

    Followed by ``scale_by_learning_rate(lr)`` this is ``torch.optim.SGD(lr, momentum, nesterov=...)``
    (dampening 0): the SGDA-with-momentum of "Adam is no better than normalized SGD", eq. (5).
    """
    momentum = check_fraction("momentum", momentum)
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0")
    return GradientTransformation(trace_init, partial(_trace_update, momentum, bool(nesterov)))


def trace_init(params: Params) -> TraceState:
    """The state of :func:`trace` before its first step: a zero momentum buffer."""
    return TraceState(_zeros(params))


def _trace_update(momentum: float, nesterov: bool, grads: Params, state: TraceState,
                  params: Params | None = None) -> tuple[Params, TraceState]:
    keys, g = _items(grads)
    m = torch._foreach_mul([state.momentum[k] for k in keys], momentum)
    torch._foreach_add_(m, g)
    new = dict(zip(keys, m))
    if not nesterov:
        return new, TraceState(new)
    u = torch._foreach_mul(m, momentum)
    torch._foreach_add_(u, g)
    return dict(zip(keys, u)), TraceState(new)


# --- adaptive scalings --------------------------------------------------------------------------
class ScaleByAdamState(NamedTuple):
    count: int
    mu: Params
    nu: Params


def scale_by_adam(b1: float = ADAM_BETAS[0], b2: float = ADAM_BETAS[1], eps: float = EPS) -> GradientTransformation:
    r"""Adam's moment scaling (Kingma & Ba 2015), bias-corrected as ``torch.optim.Adam``, with $\beta_1, \beta_2$ =
    ``b1``, ``b2`` and $\epsilon$ = ``eps``:

    .. math::

        \begin{aligned}
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \\
        u_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
        \end{aligned}

    Algorithm 1 of "Adam is no better than normalized SGD" writes the accumulators without the $(1 - \beta)$
    factors and without bias correction; the difference is a scalar absorbed in the step size.

    This is the readable reference, one foreach kernel per rule (:func:`adam_moments`); ``agents.scale_by_adam``
    and :func:`agents.adam` run torch's fused Adam kernel where it applies (:func:`agents.fused.scale_by_adam`:
    the same state, the same steps to about one unit in the last place).
    """
    b1 = check_fraction("b1", b1)
    b2 = check_fraction("b2", b2)
    eps = check_real("eps", eps, low=0.0)
    return GradientTransformation(adam_init, partial(adam_moments, b1, b2, eps))


def adam_init(params: Params) -> ScaleByAdamState:
    """The state of :func:`scale_by_adam` before its first step: zero moments."""
    return ScaleByAdamState(0, _zeros(params), _zeros(params))


def adam_moments(b1: float, b2: float, eps: float, grads: Params, state: ScaleByAdamState,
                 params: Params | None = None) -> tuple[Params, ScaleByAdamState]:
    r"""The update of :func:`scale_by_adam` (pure: new moments, ``state`` left as it was), one foreach kernel per
    rule: $m = \operatorname{lerp}(m, g, 1 - \beta_1)$, $v = \beta_2 v + (1 - \beta_2) g^2$,
    $u = m \,/\, \big(\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon\big) \,/\, (1 - \beta_1^t)$ (torch.optim.Adam's order
    of operations; $\beta_1, \beta_2, \epsilon$ = ``b1``, ``b2``, ``eps``)."""
    keys, g = _items(grads)
    t = state.count + 1
    mu = torch._foreach_lerp([state.mu[k] for k in keys], g, 1.0 - b1)
    nu = torch._foreach_mul([state.nu[k] for k in keys], b2)
    torch._foreach_addcmul_(nu, g, g, 1.0 - b2)
    denom = torch._foreach_sqrt(nu)
    torch._foreach_div_(denom, (1.0 - b2**t) ** 0.5)
    torch._foreach_add_(denom, eps)
    u = torch._foreach_div(mu, denom)
    torch._foreach_div_(u, 1.0 - b1**t)
    return dict(zip(keys, u)), ScaleByAdamState(t, dict(zip(keys, mu)), dict(zip(keys, nu)))


class ScaleByRmsState(NamedTuple):
    nu: Params


def scale_by_rms(alpha: float = RMSPROP_ALPHA, eps: float = EPS) -> GradientTransformation:
    r"""RMSprop's scaling (Tieleman & Hinton 2012) as ``torch.optim.RMSprop``, with $\alpha$ = ``alpha`` and
    $\epsilon$ = ``eps``:

    .. math:: v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \qquad u_t = g_t / (\sqrt{v_t} + \epsilon)
    """
    alpha = check_fraction("alpha", alpha)
    eps = check_real("eps", eps, low=0.0)
    return GradientTransformation(_rms_init, partial(_rms_update, alpha, eps))


def _rms_init(params: Params) -> ScaleByRmsState:
    return ScaleByRmsState(_zeros(params))


def _rms_update(alpha: float, eps: float, grads: Params, state: ScaleByRmsState,
                params: Params | None = None) -> tuple[Params, ScaleByRmsState]:
    keys, g = _items(grads)
    nu = torch._foreach_mul([state.nu[k] for k in keys], alpha)
    torch._foreach_addcmul_(nu, g, g, 1.0 - alpha)
    denom = torch._foreach_sqrt(nu)
    torch._foreach_add_(denom, eps)
    return dict(zip(keys, torch._foreach_div(g, denom))), ScaleByRmsState(dict(zip(keys, nu)))


class ScaleByAdagradState(NamedTuple):
    sum_of_squares: Params


def scale_by_adagrad(eps: float = ADAGRAD_EPS, initial_accumulator_value: float = 0.0) -> GradientTransformation:
    r"""Adagrad's accumulation (Duchi et al. 2011) as ``torch.optim.Adagrad``, with $\epsilon$ = ``eps`` and
    $s_0$ = ``initial_accumulator_value``:

    .. math:: s_t = s_{t-1} + g_t^2, \qquad u_t = g_t / (\sqrt{s_t} + \epsilon)
    """
    eps = check_real("eps", eps, low=0.0)
    init_value = check_real("initial_accumulator_value", initial_accumulator_value, low=0.0)
    return GradientTransformation(partial(_adagrad_init, init_value), partial(_adagrad_update, eps))


def _adagrad_init(init_value: float, params: Params) -> ScaleByAdagradState:
    return ScaleByAdagradState({k: torch.full_like(v, init_value) for k, v in params.items()})


def _adagrad_update(eps: float, grads: Params, state: ScaleByAdagradState,
                    params: Params | None = None) -> tuple[Params, ScaleByAdagradState]:
    keys, g = _items(grads)
    s = torch._foreach_addcmul([state.sum_of_squares[k] for k in keys], g, g)
    denom = torch._foreach_sqrt(s)
    torch._foreach_add_(denom, eps)
    return dict(zip(keys, torch._foreach_div(g, denom))), ScaleByAdagradState(dict(zip(keys, s)))


# --- normalization, grafting --------------------------------------------------------------------
def normalize(scope: str = NSGDA_SCOPE) -> GradientTransformation:
    r"""$u = g / \lVert g \rVert$ per seed, the norm taken per tensor (``"layer"``) or over all of one player's
    tensors (``"global"``): $g \cdot (1 / \lVert g \rVert)$ with the per-seed factors of
    :func:`agents.norms.inverse_norms`.
    A zero gradient gives a zero update."""
    return stateless(partial(_normalize, check_scope(scope)))


def _normalize(scope: str, g: Params, p: Params | None) -> Params:
    return rescale(g, inverse_norms(g, scope)[0])


class GraftState(NamedTuple):
    r"""State of :func:`graft`: both optimizers' states and the magnitude's norms $\lVert A_0 \rVert$ (first
    update) and $\lVert A_t \rVert$ (last update), per seed, per tensor or per player by scope."""

    magnitude: object
    direction: object
    first_norm: Params | None
    last_norm: Params | None

    def advanced(self, magnitude: object, direction: object, norm: Params) -> GraftState:
        r"""The next state: the optimizers' new states, ``norm`` ($\lVert u_M \rVert$ of this step) as the last norm,
        and as the first one too at the first step."""
        return GraftState(magnitude, direction, norm if self.first_norm is None else self.first_norm, norm)


def graft(magnitude: GradientTransformation, direction: GradientTransformation, scope: str = GRAFT_SCOPE,
          eps: float = EPS) -> GradientTransformation:
    r"""Grafting (Agarwal et al. 2020, arXiv:2002.11803; "Adam is no better than normalized SGD", Sec. 2): both
    optimizers step from the
    same gradient and the step $u_D$ of ``direction`` is rescaled to the norm of the step $u_M$ of ``magnitude``
    ($\epsilon$ = ``eps``):

    .. math:: u = \frac{\lVert u_M \rVert}{\lVert u_D \rVert + \epsilon}\, u_D

    with norms per seed, per parameter tensor (``scope="layer"``) or over all of one player's tensors
    (``scope="global"``). The state keeps $\lVert u_M \rVert$ of the first and the last step, for the
    magnitude-ratio diagnostic $\lVert A_t \rVert / \lVert A_0 \rVert$ of "Adam is no better than normalized SGD",
    Figure 2(b, c)
    (:func:`agents.graft_magnitude_ratios`).
    """
    eps = check_graft(magnitude, direction, scope, eps)
    return GradientTransformation(partial(graft_init, magnitude, direction),
                                  partial(graft_update, rescale, magnitude, direction, scope, eps),
                                  max(magnitude.evaluations, direction.evaluations))


def check_graft(magnitude: GradientTransformation, direction: GradientTransformation, scope: str,
                eps: float) -> float:
    """Validate :func:`graft`'s arguments (also for its fast paths); the ``eps`` to use."""
    check_scope(scope)
    eps = check_real("eps", eps, low=0.0)
    for name, t in (("magnitude", magnitude), ("direction", direction)):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"graft {name} must be a GradientTransformation, got {type(t).__name__}")
    return eps


def graft_init(magnitude: GradientTransformation, direction: GradientTransformation, params: Params) -> GraftState:
    """The state of ``graft(magnitude, direction, ...)`` before its first step."""
    return GraftState(magnitude.init(params), direction.init(params), None, None)


def graft_factors(n_m: Params, n_d: Params, eps: float) -> Params:
    r"""The per-seed factors $\lVert u_M \rVert / (\lVert u_D \rVert + \epsilon)$ ($\epsilon$ = ``eps``) of
    :func:`graft` under every name, from the norms of both steps; computed once per distinct pair of norms (once
    per player in the global scope)."""
    keys = list(n_d)
    top, bottom, index = norm_pairs(keys, n_m, n_d)
    rows = (top / (bottom + eps)).unbind(0)
    return {k: rows[i] for k, i in zip(keys, index)}


def graft_update(rescaling: Callable[[Params, Params], Params], magnitude: GradientTransformation,
                 direction: GradientTransformation, scope: str, eps: float, grads: Params, state: GraftState,
                 params: Params | None = None) -> tuple[Params, GraftState]:
    """The update of :func:`graft`: both steps from ``grads``, then ``rescaling(u_D, factors)``, which is
    :func:`agents.norms.rescale` (new tensors) here, and :func:`agents.norms.rescale_` (in place) for directions
    known to return new tensors that nothing else holds (:func:`agents.fused.graft_fresh`)."""
    u_m, s_m = magnitude.update(grads, state.magnitude, params)
    u_d, s_d = direction.update(grads, state.direction, params)
    n_m = per_seed_norms(u_m, scope)
    return rescaling(u_d, graft_factors(n_m, per_seed_norms(u_d, scope), eps)), state.advanced(s_m, s_d, n_m)


# --- the named optimizers' states -----------------------------------------------------------------------------
class SGDAState(ChainState):
    """State of :func:`agents.sgda` (``chain(trace(momentum), scale_by_learning_rate(lr))``, no trace without
    momentum): ``(trace, schedule)``, or ``(schedule,)``. Also the direction's state of :func:`agents.adalr` and the
    magnitude's of :func:`agents.adadir`."""

    __slots__ = ()

    @classmethod
    def of(cls, trace: TraceState | None, schedule: EmptyState | ScaleByScheduleState) -> SGDAState:
        return cls((schedule,) if trace is None else (trace, schedule))

    @property
    def trace(self) -> TraceState | None:
        """The momentum buffer's state; ``None`` without momentum."""
        return self[0] if len(self) == 2 else None

    @property
    def schedule(self) -> EmptyState | ScaleByScheduleState:
        """The step size's state (:func:`learning_rate_state`: a count of updates for a schedule)."""
        return self[-1]


class NSGDAState(ChainState):
    """State of :func:`agents.nsgda` (``chain(trace(momentum), normalize(scope), scale_by_learning_rate(lr))``, no
    trace without momentum): ``(trace, normalize, schedule)``, or ``(normalize, schedule)``."""

    __slots__ = ()

    @classmethod
    def of(cls, trace: object | None, normalize: EmptyState,
           schedule: EmptyState | ScaleByScheduleState) -> NSGDAState:
        return cls((normalize, schedule) if trace is None else (trace, normalize, schedule))

    @property
    def trace(self) -> TraceState | None:
        """The momentum buffer's state; ``None`` without momentum."""
        return self[0] if len(self) == 3 else None

    @property
    def normalize(self) -> EmptyState:
        """The normalization's (empty) state."""
        return self[-2]

    @property
    def schedule(self) -> EmptyState | ScaleByScheduleState:
        """The step size's state (:func:`learning_rate_state`)."""
        return self[-1]


class AdamState(ChainState):
    """State of :func:`agents.adam` (``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))``):
    ``(moments, schedule)``. Also the magnitude's state of :func:`agents.adalr` and the direction's of
    :func:`agents.adadir`."""

    __slots__ = ()

    @classmethod
    def of(cls, moments: ScaleByAdamState, schedule: EmptyState | ScaleByScheduleState) -> AdamState:
        return cls((moments, schedule))

    @property
    def moments(self) -> ScaleByAdamState:
        """Adam's step count and moments."""
        return self[0]

    @property
    def schedule(self) -> EmptyState | ScaleByScheduleState:
        """The step size's state (:func:`learning_rate_state`)."""
        return self[1]


# --- optimism and extrapolation -----------------------------------------------------------------
class OptimismState(NamedTuple):
    base: object
    previous: Params | None


def optimism(base: GradientTransformation) -> GradientTransformation:
    r"""Optimistic update (Daskalakis et al. 2018, "Training GANs with optimism"): with $d_t$ the step
    of ``base``, $u_t = 2 d_t - d_{t-1}$ ($d_0 = 0$). With ``base = sgda(lr)`` this is optimistic
    gradient descent $x_{t+1} = x_t - 2 \eta\, g_t + \eta\, g_{t-1}$ ($\eta$ = ``lr``); with ``base = adam(...)``,
    Optimistic Adam."""
    if not isinstance(base, GradientTransformation):
        raise TypeError(f"optimism base must be a GradientTransformation, got {type(base).__name__}")
    return GradientTransformation(partial(_optimism_init, base), partial(_optimism_update, base), base.evaluations)


def _optimism_init(base: GradientTransformation, params: Params) -> OptimismState:
    return OptimismState(base.init(params), None)


def _optimism_update(base: GradientTransformation, grads: Params, state: OptimismState,
                     params: Params | None = None) -> tuple[Params, OptimismState]:
    d, s = base.update(grads, state.base, params)
    keys, vals = _items(d)
    u = torch._foreach_mul(vals, 2.0)
    if state.previous is not None:
        torch._foreach_sub_(u, [state.previous[k] for k in keys])
    return dict(zip(keys, u)), OptimismState(s, d)


class ExtragradientState(NamedTuple):
    base: object
    anchor: Params | None  # the iterate x_t saved at the extrapolation step; None before it


def extragradient(base: GradientTransformation) -> GradientTransformation:
    r"""Extragradient (Korpelevich 1976; Gidel et al. 2019, "A variational inequality perspective on GANs"):
    one iteration is two gradient evaluations (``evaluations = 2``), both from the saved point $x_t$:

    .. math::

        \begin{aligned}
        x_{t+1/2} &= x_t + \mathrm{base}(g(x_t)) && \text{(extrapolation)} \\
        x_{t+1} &= x_t + \mathrm{base}(g(x_{t+1/2})) && \text{(the real step)}
        \end{aligned}

    Calls alternate between the two phases. In the second, the update returned is
    $x_t + \mathrm{base}(g(x_{t+1/2})) - x_{t+1/2}$ (so it needs ``params``), which the env adds to the
    extrapolated point. The base state (Adam's moments for ExtraAdam) is updated in both phases, as in
    Gidel et al.'s ExtraAdam; a schedule inside ``base`` counts gradient evaluations.
    """
    if not isinstance(base, GradientTransformation):
        raise TypeError(f"extragradient base must be a GradientTransformation, got {type(base).__name__}")
    return GradientTransformation(partial(_extragradient_init, base), partial(_extragradient_update, base),
                                  2 * base.evaluations)


def _extragradient_init(base: GradientTransformation, params: Params) -> ExtragradientState:
    return ExtragradientState(base.init(params), None)


def _extragradient_update(base: GradientTransformation, grads: Params, state: ExtragradientState,
                          params: Params | None = None) -> tuple[Params, ExtragradientState]:
    if params is None:
        raise ValueError("extragradient needs the current params in update(grads, state, params)")
    u, s = base.update(grads, state.base, params)
    if state.anchor is None:  # extrapolation from x_t: remember x_t (a copy: params may change in place)
        return u, ExtragradientState(s, {k: v.clone() for k, v in params.items()})
    keys, vals = _items(u)
    out = torch._foreach_add(vals, [state.anchor[k] for k in keys])
    torch._foreach_sub_(out, [params[k] for k in keys])
    return dict(zip(keys, out)), ExtragradientState(s, None)

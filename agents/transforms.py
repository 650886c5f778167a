"""Small composable transformations; the named optimizers are :func:`~agents._base.chain`s of these.

Every transformation works on dicts of tensors with a leading seed dimension ``N``; element-wise rules
use PyTorch's ``_foreach`` kernels (one call per rule for all tensors), and norms are per seed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from agents._base import (
    GradientTransformation,
    Params,
    Schedule,
    check_lr,
    check_number,
    seed_view,
    stateless,
)

SCOPES = ("layer", "global")


def _items(d: Params) -> tuple[list[str], list[torch.Tensor]]:
    return list(d), list(d.values())


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose 'layer' (per tensor) or 'global' (per player)")
    return scope


# --- scaling ------------------------------------------------------------------------------------
def scale(factor: float) -> GradientTransformation:
    """``u = factor * g``."""
    factor = float(factor)

    def fn(g: Params, p: Params | None) -> Params:
        keys, vals = _items(g)
        return dict(zip(keys, torch._foreach_mul(vals, factor)))

    return stateless(fn)


class ScaleByScheduleState(NamedTuple):
    count: int


def scale_by_learning_rate(lr: float | Schedule) -> GradientTransformation:
    """``u = -lr_t * g``: a descent step on the player's own loss. ``lr`` is a number or a schedule
    ``t -> lr_t`` of the number ``t`` of updates made so far (see :mod:`agents.schedules`)."""
    lr = check_lr(lr)
    if not callable(lr):
        return scale(-lr)

    def init(params: Params) -> ScaleByScheduleState:
        return ScaleByScheduleState(0)

    def update(grads: Params, state: ScaleByScheduleState, params: Params | None = None):
        keys, vals = _items(grads)
        return dict(zip(keys, torch._foreach_mul(vals, -float(lr(state.count))))), ScaleByScheduleState(
            state.count + 1)

    return GradientTransformation(init, update)


# --- momentum -----------------------------------------------------------------------------------
class TraceState(NamedTuple):
    momentum: Params


def trace(momentum: float, nesterov: bool = False) -> GradientTransformation:
    """Heavy-ball momentum ``m_t = momentum * m_{t-1} + g_t`` (``m_0 = 0``); ``u = m_t``, or with
    ``nesterov=True`` ``u = g_t + momentum * m_t``.

    Followed by ``scale_by_learning_rate(lr)`` this is ``torch.optim.SGD(lr, momentum, nesterov=...)``
    (dampening 0): the SGDA-with-momentum of seed 001, eq. (5).
    """
    momentum = check_number("momentum", momentum, high=1.0)
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0")

    def init(params: Params) -> TraceState:
        return TraceState({k: torch.zeros_like(v) for k, v in params.items()})

    def update(grads: Params, state: TraceState, params: Params | None = None):
        keys, g = _items(grads)
        m = torch._foreach_mul([state.momentum[k] for k in keys], momentum)
        torch._foreach_add_(m, g)
        new = dict(zip(keys, m))
        if not nesterov:
            return new, TraceState(new)
        u = torch._foreach_mul(m, momentum)
        torch._foreach_add_(u, g)
        return dict(zip(keys, u)), TraceState(new)

    return GradientTransformation(init, update)


# --- adaptive scalings --------------------------------------------------------------------------
class ScaleByAdamState(NamedTuple):
    count: int
    mu: Params
    nu: Params


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """Adam's moment scaling (Kingma & Ba 2015), bias-corrected as ``torch.optim.Adam``::

        m_t = b1 m_{t-1} + (1 - b1) g_t,      v_t = b2 v_{t-1} + (1 - b2) g_t^2
        u_t = (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps)

    Seed 001's Algorithm 1 writes the accumulators without the ``(1 - b)`` factors and without bias
    correction; the difference is a scalar absorbed in the step size.
    """
    b1 = check_number("b1", b1, high=1.0)
    b2 = check_number("b2", b2, high=1.0)
    eps = check_number("eps", eps)

    def init(params: Params) -> ScaleByAdamState:
        return ScaleByAdamState(0, {k: torch.zeros_like(v) for k, v in params.items()},
                                {k: torch.zeros_like(v) for k, v in params.items()})

    def update(grads: Params, state: ScaleByAdamState, params: Params | None = None):
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

    return GradientTransformation(init, update)


class ScaleByRmsState(NamedTuple):
    nu: Params


def scale_by_rms(alpha: float = 0.99, eps: float = 1e-8) -> GradientTransformation:
    """RMSprop's scaling (Tieleman & Hinton 2012) as ``torch.optim.RMSprop``::

        v_t = alpha v_{t-1} + (1 - alpha) g_t^2,      u_t = g_t / (sqrt(v_t) + eps)
    """
    alpha = check_number("alpha", alpha, high=1.0)
    eps = check_number("eps", eps)

    def init(params: Params) -> ScaleByRmsState:
        return ScaleByRmsState({k: torch.zeros_like(v) for k, v in params.items()})

    def update(grads: Params, state: ScaleByRmsState, params: Params | None = None):
        keys, g = _items(grads)
        nu = torch._foreach_mul([state.nu[k] for k in keys], alpha)
        torch._foreach_addcmul_(nu, g, g, 1.0 - alpha)
        denom = torch._foreach_sqrt(nu)
        torch._foreach_add_(denom, eps)
        return dict(zip(keys, torch._foreach_div(g, denom))), ScaleByRmsState(dict(zip(keys, nu)))

    return GradientTransformation(init, update)


class ScaleByAdagradState(NamedTuple):
    sum_of_squares: Params


def scale_by_adagrad(eps: float = 1e-10, initial_accumulator_value: float = 0.0) -> GradientTransformation:
    """Adagrad's accumulation (Duchi et al. 2011) as ``torch.optim.Adagrad``::

        s_t = s_{t-1} + g_t^2,      u_t = g_t / (sqrt(s_t) + eps)
    """
    eps = check_number("eps", eps)
    init_value = check_number("initial_accumulator_value", initial_accumulator_value)

    def init(params: Params) -> ScaleByAdagradState:
        return ScaleByAdagradState({k: torch.full_like(v, init_value) for k, v in params.items()})

    def update(grads: Params, state: ScaleByAdagradState, params: Params | None = None):
        keys, g = _items(grads)
        s = torch._foreach_addcmul([state.sum_of_squares[k] for k in keys], g, g)
        denom = torch._foreach_sqrt(s)
        torch._foreach_add_(denom, eps)
        return dict(zip(keys, torch._foreach_div(g, denom))), ScaleByAdagradState(dict(zip(keys, s)))

    return GradientTransformation(init, update)


# --- norms, normalization, grafting -------------------------------------------------------------
def per_seed_norms(tensors: Params, scope: str) -> Params:
    """Euclidean norms per seed: per tensor (``scope="layer"``, each of shape ``(N,)``) or over all the
    tensors of the dict (``scope="global"``: the same ``(N,)`` tensor under every name).

    Computed as ``s * ||x / s||`` with ``s`` the largest magnitude in the scope (as LAPACK's ``nrm2``), so
    that tiny gradients (``1e-23`` in float32, a saturated discriminator's) do not underflow to a zero norm
    and huge ones do not overflow.
    """
    flat = {k: v.reshape(v.shape[0], -1) for k, v in tensors.items()}
    peak = {k: f.abs().amax(dim=1) for k, f in flat.items()}
    if scope == "global":
        top = torch.stack(list(peak.values())).amax(dim=0)
        peak = dict.fromkeys(flat, top)
    scale_ = {k: p.clamp_min(torch.finfo(p.dtype).tiny) for k, p in peak.items()}
    sq = {k: (f / scale_[k][:, None]).pow(2).sum(dim=1) for k, f in flat.items()}
    if scope == "layer":
        return {k: s.sqrt() * scale_[k] for k, s in sq.items()}
    total = torch.stack(list(sq.values())).sum(dim=0).sqrt() * top.clamp_min(torch.finfo(top.dtype).tiny)
    return dict.fromkeys(tensors, total)


def _rescale(tensors: Params, factors: Params) -> Params:
    """``x_k * factor_k`` with per-seed ``(N,)`` factors broadcast over each tensor."""
    return {k: v * seed_view(factors[k], v) for k, v in tensors.items()}


def normalize(scope: str = "global") -> GradientTransformation:
    """``u = g / ||g||`` per seed, the norm taken per tensor (``"layer"``) or over all of one player's
    tensors (``"global"``). A zero gradient gives a zero update."""
    check_scope(scope)

    def fn(g: Params, p: Params | None) -> Params:
        norms = per_seed_norms(g, scope)
        return _rescale(g, {k: 1.0 / n.clamp_min(torch.finfo(n.dtype).tiny) for k, n in norms.items()})

    return stateless(fn)


class GraftState(NamedTuple):
    """State of :func:`graft`: both optimizers' states and the magnitude's norms ``|A_0|`` (first
    update) and ``|A_t|`` (last update), per seed, per tensor or per player by scope."""

    magnitude: object
    direction: object
    first_norm: Params | None
    last_norm: Params | None


def graft(magnitude: GradientTransformation, direction: GradientTransformation, scope: str = "layer",
          eps: float = 1e-8) -> GradientTransformation:
    """Grafting (Agarwal et al. 2020, arXiv:2002.11803; seed 001 Sec. 2): both optimizers step from the
    same gradient and the step of ``direction`` is rescaled to the norm of the step of ``magnitude``::

        u = ||u_M|| / (||u_D|| + eps) * u_D

    with norms per seed, per parameter tensor (``scope="layer"``) or over all of one player's tensors
    (``scope="global"``). The state keeps ``||u_M||`` of the first and the last step, for the
    magnitude-ratio diagnostic ``|A_t| / |A_0|`` of seed 001, Figure 2(b, c)
    (:func:`agents.graft_magnitude_ratios`).
    """
    check_scope(scope)
    eps = check_number("eps", eps)
    for name, t in (("magnitude", magnitude), ("direction", direction)):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"graft {name} must be a GradientTransformation, got {type(t).__name__}")

    def init(params: Params) -> GraftState:
        return GraftState(magnitude.init(params), direction.init(params), None, None)

    def update(grads: Params, state: GraftState, params: Params | None = None):
        u_m, s_m = magnitude.update(grads, state.magnitude, params)
        u_d, s_d = direction.update(grads, state.direction, params)
        n_m, n_d = per_seed_norms(u_m, scope), per_seed_norms(u_d, scope)
        out = _rescale(u_d, {k: n_m[k] / (n_d[k] + eps) for k in u_d})
        first = n_m if state.first_norm is None else state.first_norm
        return out, GraftState(s_m, s_d, first, n_m)

    return GradientTransformation(init, update, max(magnitude.evaluations, direction.evaluations))


# --- optimism and extrapolation -----------------------------------------------------------------
class OptimismState(NamedTuple):
    base: object
    previous: Params | None


def optimism(base: GradientTransformation) -> GradientTransformation:
    """Optimistic update (Daskalakis et al. 2018, "Training GANs with optimism"): with ``d_t`` the step
    of ``base``, ``u_t = 2 d_t - d_{t-1}`` (``d_0 = 0``). With ``base = sgda(lr)`` this is optimistic
    gradient descent ``x_{t+1} = x_t - 2 lr g_t + lr g_{t-1}``; with ``base = adam(...)``, Optimistic Adam."""

    def init(params: Params) -> OptimismState:
        return OptimismState(base.init(params), None)

    def update(grads: Params, state: OptimismState, params: Params | None = None):
        d, s = base.update(grads, state.base, params)
        keys, vals = _items(d)
        u = torch._foreach_mul(vals, 2.0)
        if state.previous is not None:
            torch._foreach_sub_(u, [state.previous[k] for k in keys])
        return dict(zip(keys, u)), OptimismState(s, d)

    return GradientTransformation(init, update, base.evaluations)


class ExtragradientState(NamedTuple):
    base: object
    anchor: Params | None  # the iterate x_t saved at the extrapolation step; None before it


def extragradient(base: GradientTransformation) -> GradientTransformation:
    """Extragradient (Korpelevich 1976; Gidel et al. 2019, "A variational inequality perspective on GANs"):
    one iteration is two gradient evaluations (``evaluations = 2``)::

        x_{t+1/2} = x_t + base(g(x_t))            (extrapolation, from the saved point)
        x_{t+1}   = x_t + base(g(x_{t+1/2}))      (the real step, from the saved point)

    Calls alternate between the two phases. In the second, the update returned is
    ``x_t + base(g(x_{t+1/2})) - x_{t+1/2}`` (so it needs ``params``), which the env adds to the
    extrapolated point. The base state (Adam's moments for ExtraAdam) is updated in both phases, as in
    Gidel et al.'s ExtraAdam; a schedule inside ``base`` counts gradient evaluations.
    """
    if not isinstance(base, GradientTransformation):
        raise TypeError(f"extragradient base must be a GradientTransformation, got {type(base).__name__}")

    def init(params: Params) -> ExtragradientState:
        return ExtragradientState(base.init(params), None)

    def update(grads: Params, state: ExtragradientState, params: Params | None = None):
        if params is None:
            raise ValueError("extragradient needs the current params in update(grads, state, params)")
        u, s = base.update(grads, state.base, params)
        if state.anchor is None:  # extrapolation from x_t: remember x_t
            return u, ExtragradientState(s, dict(params))
        keys, vals = _items(u)
        out = torch._foreach_add(vals, [state.anchor[k] for k in keys])
        torch._foreach_sub_(out, [params[k] for k in keys])
        return dict(zip(keys, out)), ExtragradientState(s, None)

    return GradientTransformation(init, update, 2 * base.evaluations)

"""Small composable transformations; the named optimizers are :func:`~agents._base.chain`s of these.

Every transformation works on dicts of tensors with a leading seed dimension ``N``; element-wise rules
use PyTorch's ``_foreach`` kernels (one call per rule for all tensors), and norms are per seed.

Speed: the named optimizers of :mod:`agents.optimizers` use fused equivalents of their chains (private
helpers below: same state, same values to float rounding), with fewer passes over the tensors; Adam runs
torch's fused Adam kernel on the CPU. ``benchmarks/bench_agents.py`` measures them against ``torch.optim``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from agents._base import (
    GradientTransformation,
    Params,
    Schedule,
    chain,
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


def _check_chain_state(state: object, n: int) -> None:
    """The check of :func:`~agents._base.chain`, for the fused equivalents of chains below."""
    if not isinstance(state, tuple) or len(state) != n:
        raise ValueError(f"chain state must be the tuple of {n} states made by init(), got {state!r}")


def _lr_step(lr: float | Schedule, state: object) -> tuple[float, object]:
    """The step size ``lr_t`` of this update and the next state of ``scale_by_learning_rate(lr)``."""
    if callable(lr):
        return float(lr(state.count)), ScaleByScheduleState(state.count + 1)
    return lr, state


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
        return _adam_step(grads, state, b1, b2, eps, None)

    return GradientTransformation(init, update)


def _fused_adam_ok(tensors: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam kernel (the one of ``torch.optim.Adam(fused=True)``) can run on these:
    dense contiguous float32/float64 CPU tensors of one dtype, outside autograd. (The kernel exists for CUDA
    too; enabling it there awaits a check of this path on a GPU.)"""
    first = tensors[0]
    return (hasattr(torch, "_fused_adam_") and first.device.type == "cpu"
            and first.dtype in (torch.float32, torch.float64)
            and all(t.layout == torch.strided and t.device == first.device and t.dtype == first.dtype
                    and t.is_contiguous() and not t.requires_grad for t in tensors))


def _adam_step(grads: Params, state: ScaleByAdamState, b1: float, b2: float, eps: float,
               lr: float | None) -> tuple[Params, ScaleByAdamState]:
    """One step of :func:`scale_by_adam`: ``u = m_hat / (sqrt(v_hat) + eps)``, or with ``lr`` the step of
    ``chain(scale_by_adam, scale_by_learning_rate(lr))``, ``u = -lr * m_hat / (sqrt(v_hat) + eps)``.

    Pure: the new moments are new tensors and ``state`` is left as it was. Where it can, this runs torch's
    fused Adam kernel once, on copies of the moments and on a zero "parameter" (which then holds
    ``0 - lr * m_hat / (sqrt(v_hat) + eps)``, i.e. the update; ``lr = -1`` without a learning rate): the
    same arithmetic as ``torch.optim.Adam``, in one pass instead of eight.
    """
    keys, g = _items(grads)
    t = state.count + 1
    m_old, v_old = [state.mu[k] for k in keys], [state.nu[k] for k in keys]
    if g and _fused_adam_ok(g + m_old + v_old) and all(
            x.shape == y.shape == z.shape for x, y, z in zip(g, m_old, v_old)):
        mu = [m.clone() for m in m_old]
        nu = [v.clone() for v in v_old]
        u = [torch.zeros_like(x) for x in g]
        step = torch.full((), float(t), dtype=torch.float32, device=g[0].device)
        torch._fused_adam_(u, g, mu, nu, [], [step] * len(u), lr=-1.0 if lr is None else lr, beta1=b1,
                           beta2=b2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        return dict(zip(keys, u)), ScaleByAdamState(t, dict(zip(keys, mu)), dict(zip(keys, nu)))
    mu = torch._foreach_lerp(m_old, g, 1.0 - b1)
    nu = torch._foreach_mul(v_old, b2)
    torch._foreach_addcmul_(nu, g, g, 1.0 - b2)
    denom = torch._foreach_sqrt(nu)
    torch._foreach_div_(denom, (1.0 - b2**t) ** 0.5)
    torch._foreach_add_(denom, eps)
    u = torch._foreach_div(mu, denom)
    torch._foreach_div_(u, 1.0 - b1**t)
    if lr is not None:
        torch._foreach_mul_(u, -lr)  # u is fresh: scale in place
    return dict(zip(keys, u)), ScaleByAdamState(t, dict(zip(keys, mu)), dict(zip(keys, nu)))


def _adam_with_learning_rate(b1: float, b2: float, eps: float, lr: float | Schedule) -> GradientTransformation:
    """``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))`` (same state) with the step size
    applied inside the Adam step (:func:`_adam_step`) instead of in a second pass."""
    reference = chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))
    lr = check_lr(lr)

    def update(grads: Params, state: tuple, params: Params | None = None):
        _check_chain_state(state, 2)
        lr_t, lr_state = _lr_step(lr, state[1])
        u, adam_state = _adam_step(grads, state[0], b1, b2, eps, lr_t)
        return u, (adam_state, lr_state)

    return GradientTransformation(reference.init, update)


def _normalize_with_learning_rate(scope: str, lr: float | Schedule,
                                  before: GradientTransformation | None = None) -> GradientTransformation:
    """``chain(before, normalize(scope), scale_by_learning_rate(lr))`` (``before`` optional; same state)
    with ``-lr_t`` folded into the per-seed normalization factor (:func:`_normalized`)."""
    parts = [before] if before is not None else []
    reference = chain(*parts, normalize(scope), scale_by_learning_rate(lr))
    lr = check_lr(lr)

    def update(grads: Params, state: tuple, params: Params | None = None):
        _check_chain_state(state, len(parts) + 2)
        head = []
        if before is not None:
            grads, s = before.update(grads, state[0], params)
            head.append(s)
        lr_t, lr_state = _lr_step(lr, state[-1])
        return _normalized(grads, scope, lr_t), (*head, state[-2], lr_state)

    return GradientTransformation(reference.init, update, reference.evaluations)


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
    and huge ones do not overflow. On the CPU, a plain ``||x||`` (one pass) is used where it provably gives
    the same value to rounding (:func:`_direct_norms`), which is the common case.
    """
    flat = {k: v.reshape(v.shape[0], -1) for k, v in tensors.items()}
    direct = _direct_norms(flat, scope)
    if direct is not None:
        return direct
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


def _direct_norms(flat: Params, scope: str) -> Params | None:
    """The norms of :func:`per_seed_norms` by one reduction per tensor, without the peak scaling, where
    that gives the same values to rounding; ``None`` where it may not (then the scaled computation runs).

    The plain sum of squares ``S`` of ``n`` numbers is exact to rounding unless a square overflows (then
    ``S`` is not finite) or squares underflow: each underflowing square is off by at most ``tiny``, so
    the sum is off by at most ``n * tiny``, below ``eps * S`` when ``S >= n * tiny / eps``. Only on the
    CPU, where the check costs no device synchronization, for float32 and float64.
    """
    vals = list(flat.values())
    if not vals or vals[0].device.type != "cpu" or vals[0].dtype not in (torch.float32, torch.float64) or any(
            f.dtype != vals[0].dtype or f.device != vals[0].device for f in vals) or vals[0].shape[0] == 0:
        return None
    fi = torch.finfo(vals[0].dtype)
    norms = [torch.linalg.vector_norm(f, dim=1) for f in vals]
    if scope == "layer":
        count = max(f.shape[1] for f in vals)
        checked = torch.stack(norms) if len(norms) > 1 else norms[0]
        out = dict(zip(flat, norms))
    else:
        count = sum(f.shape[1] for f in vals)
        checked = torch.linalg.vector_norm(torch.stack(norms), dim=0) if len(norms) > 1 else norms[0]
        out = dict.fromkeys(flat, checked)
    low, high = torch.aminmax(checked)
    if not (low >= math.sqrt(count * fi.tiny / fi.eps) and high <= fi.max):  # NaN fails too
        return None
    return out


def _rescale(tensors: Params, factors: Params) -> Params:
    """``x_k * factor_k`` with per-seed ``(N,)`` factors broadcast over each tensor."""
    return {k: v * seed_view(factors[k], v) for k, v in tensors.items()}


def normalize(scope: str = "global") -> GradientTransformation:
    """``u = g / ||g||`` per seed, the norm taken per tensor (``"layer"``) or over all of one player's
    tensors (``"global"``). A zero gradient gives a zero update."""
    check_scope(scope)

    def fn(g: Params, p: Params | None) -> Params:
        return _normalized(g, scope, None)

    return stateless(fn)


def _normalized(grads: Params, scope: str, lr: float | None) -> Params:
    """:func:`normalize` (``u = g / ||g||``), or with ``lr`` then ``scale_by_learning_rate(lr)``
    (``u = -lr * (g / ||g||)``).

    Both factors are per seed, so ``-lr`` is folded into ``1 / ||g||`` and the tensors are read and written
    once; that is the same product to rounding unless ``-lr / ||g||`` leaves float's normal range, which
    the CPU checks (on other devices, where that check would synchronize, the two products stay apart).
    """
    norms = per_seed_norms(grads, scope)
    if not norms:
        return {}
    distinct = list({id(n): n for n in norms.values()}.values())  # the global scope shares one tensor
    stacked = torch.stack(distinct) if len(distinct) > 1 else distinct[0][None]
    inverse = 1.0 / stacked.clamp_min(torch.finfo(stacked.dtype).tiny)  # one op for all the tensors
    if lr is not None:
        folded = inverse * -lr
        if _normal_range(folded):
            inverse, lr = folded, None
    index = {id(n): i for i, n in enumerate(distinct)}
    rows = inverse.unbind(0)
    out = _rescale(grads, {k: rows[index[id(n)]] for k, n in norms.items()})
    if lr is not None:
        torch._foreach_mul_(list(out.values()), -lr)  # fresh tensors: scale in place
    return out


def _normal_range(x: torch.Tensor) -> bool:
    """Whether every ``|x|`` is a normal floating-point number (checked on the CPU only; False elsewhere)."""
    if x.device.type != "cpu" or x.numel() == 0:
        return False
    fi = torch.finfo(x.dtype)
    low, high = torch.aminmax(x.abs())
    return bool(low >= fi.tiny and high <= fi.max)


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
    return _graft(magnitude, direction, scope, eps, fresh_direction=False)


def _graft(magnitude: GradientTransformation, direction: GradientTransformation, scope: str, eps: float,
           fresh_direction: bool) -> GradientTransformation:
    """:func:`graft`; with ``fresh_direction`` (for directions known to return new tensors that nothing
    else holds, such as a chain ending in ``scale_by_learning_rate``) ``u_D`` is rescaled in place."""
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
        factors: dict[tuple[int, int], torch.Tensor] = {}  # the global scope shares one factor
        for k in u_d:
            if (id(n_m[k]), id(n_d[k])) not in factors:
                factors[id(n_m[k]), id(n_d[k])] = n_m[k] / (n_d[k] + eps)
        if fresh_direction:
            for k, v in u_d.items():
                v.mul_(seed_view(factors[id(n_m[k]), id(n_d[k])], v))
            out = u_d
        else:
            out = _rescale(u_d, {k: factors[id(n_m[k]), id(n_d[k])] for k in u_d})
        first = n_m if state.first_norm is None else state.first_norm
        return out, GraftState(s_m, s_d, first, n_m)

    return GradientTransformation(init, update, max(magnitude.evaluations, direction.evaluations))


def _graft_onto_momentum(magnitude: GradientTransformation, lr: float | Schedule, momentum: float, scope: str,
                         eps: float) -> GradientTransformation:
    """``graft(magnitude, chain(trace(momentum), scale_by_learning_rate(lr)), scope, eps)`` (the direction is
    SGDA with momentum, ``sgda(lr, momentum)``; no trace for ``momentum = 0``), same state, in fewer passes.

    With ``M`` the momentum buffer and ``u_D = -lr_t M``: ``||u_D|| = lr_t ||M||`` and
    ``u = u_D ||u_M|| / (||u_D|| + eps) = M * (-lr_t ||u_M|| / (lr_t ||M|| + eps))``, a per-seed factor on
    ``M``, so ``u_D`` is never written out; the result is written over ``u_M`` (of which only the norm is
    needed), so ``magnitude`` must return new tensors that nothing else holds, as :func:`agents.adam` does.
    The momentum buffer is updated in one pass, ``m = g + momentum * m`` (one rounding instead of
    :func:`trace`'s two). Where the factor is not a normal float, or off the CPU (where checking it would
    synchronize), the update takes the literal route (``u_D``, its norms, the rescale).
    """
    direction = chain(*([trace(momentum)] if momentum else []), scale_by_learning_rate(lr))
    reference = _graft(magnitude, direction, scope, eps, fresh_direction=True)
    lr = check_lr(lr)

    def update(grads: Params, state: GraftState, params: Params | None = None):
        _check_chain_state(state.direction, 2 if momentum else 1)
        u_m, s_m = magnitude.update(grads, state.magnitude, params)
        head: list = []
        m = grads
        if momentum:  # trace's m = momentum * m + g, in one pass (one rounding instead of two)
            keys, g = _items(grads)
            m = dict(zip(keys, torch._foreach_add(g, [state.direction[0].momentum[k] for k in keys],
                                                  alpha=momentum)))
            head.append(TraceState(m))
        lr_t, lr_state = _lr_step(lr, state.direction[-1])
        s_d = (*head, lr_state)
        n_m = per_seed_norms(u_m, scope)
        first = n_m if state.first_norm is None else state.first_norm
        n_buf = per_seed_norms(m, scope)
        factors: dict[tuple[int, int], torch.Tensor] = {}
        for k in m:
            if (id(n_m[k]), id(n_buf[k])) not in factors:
                factors[id(n_m[k]), id(n_buf[k])] = -lr_t * n_m[k] / (lr_t * n_buf[k] + eps)
        if all(_normal_range(f) for f in factors.values()):
            out = {}
            for k, v in m.items():  # written over the magnitude's step, a new tensor only its norm needed
                f = factors[id(n_m[k]), id(n_buf[k])]
                out[k] = torch.mul(v, seed_view(f, v), out=u_m[k]) if _reusable(u_m[k], v) else v * seed_view(f, v)
            return out, GraftState(s_m, s_d, first, n_m)
        keys, vals = _items(m)  # the literal route: u_D = -lr_t M (new tensors), rescaled in place
        u_d = dict(zip(keys, torch._foreach_mul(vals, -lr_t)))
        n_d = per_seed_norms(u_d, scope)
        for k, v in u_d.items():
            v.mul_(seed_view(n_m[k] / (n_d[k] + eps), v))
        return u_d, GraftState(s_m, s_d, first, n_m)

    return GradientTransformation(reference.init, update, reference.evaluations)


def _reusable(buffer: torch.Tensor, like: torch.Tensor) -> bool:
    """Whether ``buffer`` can hold the result of an element-wise op on ``like`` (same shape, dtype, device)."""
    return buffer.shape == like.shape and buffer.dtype == like.dtype and buffer.device == like.device


# --- optimism and extrapolation -----------------------------------------------------------------
class OptimismState(NamedTuple):
    base: object
    previous: Params | None


def optimism(base: GradientTransformation) -> GradientTransformation:
    """Optimistic update (Daskalakis et al. 2018, "Training GANs with optimism"): with ``d_t`` the step
    of ``base``, ``u_t = 2 d_t - d_{t-1}`` (``d_0 = 0``). With ``base = sgda(lr)`` this is optimistic
    gradient descent ``x_{t+1} = x_t - 2 lr g_t + lr g_{t-1}``; with ``base = adam(...)``, Optimistic Adam."""
    if not isinstance(base, GradientTransformation):
        raise TypeError(f"optimism base must be a GradientTransformation, got {type(base).__name__}")

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
        if state.anchor is None:  # extrapolation from x_t: remember x_t (a copy: params may change in place)
            return u, ExtragradientState(s, {k: v.clone() for k, v in params.items()})
        keys, vals = _items(u)
        out = torch._foreach_add(vals, [state.anchor[k] for k in keys])
        torch._foreach_sub_(out, [params[k] for k in keys])
        return dict(zip(keys, out)), ExtragradientState(s, None)

    return GradientTransformation(init, update, 2 * base.evaluations)

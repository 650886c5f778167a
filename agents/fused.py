r"""Fused fast paths of the named optimizers: each stands for a chain of :mod:`agents.transforms` (the same
state, the same values to float rounding) and makes fewer passes over the tensors.

* :func:`scale_by_adam` is :func:`agents.transforms.scale_by_adam` through torch's fused Adam kernel
  (:func:`adam_step`): ``agents.scale_by_adam``.
* :func:`adam_with_learning_rate` is ``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))``, one
  pass through torch's fused Adam kernel (:func:`adam_step`).
* :func:`normalize_with_learning_rate` is ``chain(before, normalize(scope), scale_by_learning_rate(lr))``, with
  $-\eta_t$ (the step size ``lr`` at this update) folded into the per-seed normalization factor.
* :func:`graft_onto_momentum` is ``graft(magnitude, chain(trace(momentum), scale_by_learning_rate(lr)))``,
  without writing the direction out.
* :func:`graft_fresh` is ``graft(magnitude, direction)`` rescaling the direction's step in place.

``tests/test_fast_paths.py`` checks every one against its chain, step for step; :mod:`agents.inplace` builds its
in-place agents from the same pieces.
"""

from __future__ import annotations

from functools import partial

import torch

from agents._base import (
    ADAM_BETAS,
    EPS,
    GRAFT_SCOPE,
    EmptyState,
    GradientTransformation,
    Params,
    Schedule,
    check_chain_state,
    check_fraction,
    check_lr,
    check_real,
    seed_view,
)
from agents.norms import check_scope, inverse_norms, norm_pairs, normal_range, per_seed_norms, rescale, rescale_
from agents.transforms import (
    AdamState,
    GraftState,
    NSGDAState,
    ScaleByAdamState,
    SGDAState,
    TraceState,
    adam_init,
    adam_moments,
    check_graft,
    graft_factors,
    graft_init,
    graft_update,
    learning_rate_state,
    lr_step,
    trace_init,
)

__all__ = [
    "adam_kernel_applies", "adam_step", "adam_with_learning_rate", "fused_adam_into", "fused_adam_ok", "graft_fresh",
    "graft_onto_momentum", "momentum_graft_factors", "momentum_graft_literal", "normalize_with_learning_rate",
    "normalized", "scale_by_adam",
]


# --- Adam ---------------------------------------------------------------------------------------
def fused_adam_ok(tensors: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam kernel (the one of ``torch.optim.Adam(fused=True)``) can run on these:
    dense contiguous float32/float64 CPU tensors of one dtype, outside autograd. (The kernel exists for CUDA
    too; enabling it there awaits a check of this path on a GPU.)"""
    first = tensors[0]
    return (hasattr(torch, "_fused_adam_") and first.device.type == "cpu"
            and first.dtype in (torch.float32, torch.float64)
            and all(t.layout == torch.strided and t.device == first.device and t.dtype == first.dtype
                    and t.is_contiguous() and not t.requires_grad for t in tensors))


def adam_kernel_applies(g: list[torch.Tensor], mu: list[torch.Tensor], nu: list[torch.Tensor]) -> bool:
    """Whether :func:`adam_step` runs torch's fused Adam kernel on these gradients and moments."""
    return bool(g) and fused_adam_ok(g + mu + nu) and all(x.shape == y.shape == z.shape for x, y, z in zip(g, mu, nu))


def fused_adam_into(out: list[torch.Tensor], g: list[torch.Tensor], mu: list[torch.Tensor], nu: list[torch.Tensor],
                    t: int, b1: float, b2: float, eps: float, lr: float) -> None:
    r"""$\text{out} \leftarrow \text{out} - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$ ($\eta$ = ``lr``,
    $\epsilon$ = ``eps``, $\hat m$ and $\hat v$ the bias-corrected moments) with the moments updated in place
    (step ``t``): torch's fused Adam kernel (``torch.optim.Adam(fused=True)``'s), once for all the tensors."""
    step = torch.full((), float(t), dtype=torch.float32, device=g[0].device)
    torch._fused_adam_(out, g, mu, nu, [], [step] * len(out), lr=lr, beta1=b1, beta2=b2, weight_decay=0.0, eps=eps,
                       amsgrad=False, maximize=False)


def adam_step(grads: Params, state: ScaleByAdamState, b1: float, b2: float, eps: float,
              lr: float | None) -> tuple[Params, ScaleByAdamState]:
    r"""One step of ``scale_by_adam(b1, b2, eps)``, $u = \hat m / (\sqrt{\hat v} + \epsilon)$ ($\hat m$, $\hat v$
    the bias-corrected moments, $\epsilon$ = ``eps``), or with ``lr`` the step of
    ``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))``,
    $u = -\eta\, \hat m / (\sqrt{\hat v} + \epsilon)$ ($\eta$ = ``lr``).

    Pure: the new moments are new tensors and ``state`` is left as it was. Where it can
    (:func:`adam_kernel_applies`), this runs torch's fused Adam kernel once, on copies of the moments and on a zero
    "parameter" (which then holds $0 - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$, i.e. the update; ``lr = -1`` without
    a learning rate): the arithmetic of :func:`agents.transforms.adam_moments` in one pass instead of eight (the
    kernel's vectorized loop rounds in its own order: the same values to about one unit in the last place).
    Elsewhere it is that reference, then times $-\eta$.
    """
    keys = list(grads)
    g = [grads[k] for k in keys]
    m_old, v_old = [state.mu[k] for k in keys], [state.nu[k] for k in keys]
    if not adam_kernel_applies(g, m_old, v_old):
        u, new = adam_moments(b1, b2, eps, grads, state)
        if lr is not None:
            torch._foreach_mul_(list(u.values()), -lr)  # u is fresh: scale in place
        return u, new
    mu = [m.clone() for m in m_old]
    nu = [v.clone() for v in v_old]
    u = [torch.zeros_like(x) for x in g]
    fused_adam_into(u, g, mu, nu, state.count + 1, b1, b2, eps, -1.0 if lr is None else lr)
    return dict(zip(keys, u)), ScaleByAdamState(state.count + 1, dict(zip(keys, mu)), dict(zip(keys, nu)))


def scale_by_adam(b1: float = ADAM_BETAS[0], b2: float = ADAM_BETAS[1], eps: float = EPS) -> GradientTransformation:
    """:func:`agents.transforms.scale_by_adam` (same signature, validation and state) through :func:`adam_step`:
    torch's fused Adam kernel in one pass where it applies. The kernel's vectorized arithmetic rounds in its own
    order, so the steps differ from the reference's foreach kernels by about one unit in the last place; this is
    the ``agents.scale_by_adam`` that the package exports (and that its records were made with)."""
    b1 = check_fraction("b1", b1)
    b2 = check_fraction("b2", b2)
    eps = check_real("eps", eps, low=0.0)
    return GradientTransformation(adam_init, partial(_scale_by_adam_update, b1, b2, eps))


def _scale_by_adam_update(b1: float, b2: float, eps: float, grads: Params, state: ScaleByAdamState,
                          params: Params | None = None) -> tuple[Params, ScaleByAdamState]:
    return adam_step(grads, state, b1, b2, eps, None)


def adam_with_learning_rate(b1: float, b2: float, eps: float, lr: float | Schedule) -> GradientTransformation:
    """``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))`` (same state) with the step size
    applied inside the Adam step (:func:`adam_step`) instead of in a second pass."""
    b1 = check_fraction("b1", b1)
    b2 = check_fraction("b2", b2)
    eps = check_real("eps", eps, low=0.0)
    lr = check_lr(lr)
    return GradientTransformation(partial(_adam_lr_init, lr), partial(_adam_lr_update, b1, b2, eps, lr))


def _adam_lr_init(lr: float | Schedule, params: Params) -> AdamState:
    return AdamState.of(adam_init(params), learning_rate_state(lr))


def _adam_lr_update(b1: float, b2: float, eps: float, lr: float | Schedule, grads: Params, state: AdamState,
                    params: Params | None = None) -> tuple[Params, AdamState]:
    check_chain_state(state, 2)
    state = AdamState.named(state)
    lr_t, lr_state = lr_step(lr, state.schedule)
    u, moments = adam_step(grads, state.moments, b1, b2, eps, lr_t)
    return u, AdamState.of(moments, lr_state)


# --- normalization ------------------------------------------------------------------------------
def normalized(grads: Params, scope: str, lr: float) -> Params:
    r"""``chain(normalize(scope), scale_by_learning_rate(lr))``'s update $u = -\eta\, (g / \lVert g \rVert)$
    ($\eta$ = ``lr``), as $g \cdot (-\eta / \lVert g \rVert)$: both factors are per seed, so $-\eta$ is folded
    into $1 / \lVert g \rVert$ and the tensors
    are read and written once (the same product to rounding; where it would leave float's normal range, or off
    the CPU, the two products stay apart: :func:`agents.norms.inverse_norms`)."""
    factors, folded = inverse_norms(grads, scope, -lr)
    out = rescale(grads, factors)
    if out and not folded:
        torch._foreach_mul_(list(out.values()), -lr)  # fresh tensors: scale in place
    return out


def normalize_with_learning_rate(scope: str, lr: float | Schedule,
                                 before: GradientTransformation | None = None) -> GradientTransformation:
    r"""``chain(before, normalize(scope), scale_by_learning_rate(lr))`` (``before`` optional; same state)
    with $-\eta_t$ (the step size ``lr`` at this update) folded into the per-seed normalization factor
    (:func:`normalized`)."""
    check_scope(scope)
    lr = check_lr(lr)
    return GradientTransformation(partial(_normalize_lr_init, before, lr),
                                  partial(_normalize_lr_update, before, scope, lr),
                                  1 if before is None else before.evaluations)


def _normalize_lr_init(before: GradientTransformation | None, lr: float | Schedule, params: Params) -> NSGDAState:
    return NSGDAState.of(None if before is None else before.init(params), EmptyState(), learning_rate_state(lr))


def _normalize_lr_update(before: GradientTransformation | None, scope: str, lr: float | Schedule, grads: Params,
                         state: NSGDAState, params: Params | None = None) -> tuple[Params, NSGDAState]:
    check_chain_state(state, 2 if before is None else 3)
    state = NSGDAState.named(state)
    trace = None
    if before is not None:
        grads, trace = before.update(grads, state.trace, params)
    lr_t, lr_state = lr_step(lr, state.schedule)
    return normalized(grads, scope, lr_t), NSGDAState.of(trace, state.normalize, lr_state)


# --- grafting -----------------------------------------------------------------------------------
def graft_fresh(magnitude: GradientTransformation, direction: GradientTransformation, scope: str = GRAFT_SCOPE,
                eps: float = EPS) -> GradientTransformation:
    """``graft(magnitude, direction, scope, eps)`` (same state, same values) for a ``direction`` known to return
    new tensors that nothing else holds (such as :func:`agents.adam`): its step is rescaled in place."""
    eps = check_graft(magnitude, direction, scope, eps)
    return GradientTransformation(partial(graft_init, magnitude, direction),
                                  partial(graft_update, rescale_, magnitude, direction, scope, eps),
                                  max(magnitude.evaluations, direction.evaluations))


def momentum_graft_factors(keys: list[str], n_m: Params, n_buf: Params, lr: float,
                           eps: float) -> list[torch.Tensor] | None:
    r"""The per-seed factors $f = -\eta \lVert u_M \rVert / (\eta \lVert M \rVert + \epsilon)$ ($\eta$ = ``lr``,
    $\epsilon$ = ``eps``, $\lVert u_M \rVert$ the magnitude's norms ``n_m``, $\lVert M \rVert$ the momentum
    buffer's ``n_buf``) that put the grafted step on the momentum buffer, $u = f M$, one per name of ``keys``
    (computed once per pair of norms); ``None`` where some factor is not a normal float, or off the CPU (where
    checking would synchronize): then the literal route (:func:`momentum_graft_literal`) runs."""
    top, bottom, index = norm_pairs(keys, n_m, n_buf)
    factors = -lr * top / (lr * bottom + eps)
    if not normal_range(factors):
        return None
    rows = factors.unbind(0)
    return [rows[i] for i in index]


def momentum_graft_literal(m: Params, n_m: Params, lr: float, scope: str, eps: float) -> Params:
    r"""The grafted step of the literal route: $u_D = -\eta M$ ($\eta$ = ``lr``, $M$ the momentum buffer ``m``;
    new tensors), its norms, then $u_D \lVert u_M \rVert / (\lVert u_D \rVert + \epsilon)$ ($\epsilon$ = ``eps``)
    in place: :func:`agents.graft`'s arithmetic."""
    keys = list(m)
    u_d = dict(zip(keys, torch._foreach_mul([m[k] for k in keys], -lr)))
    return rescale_(u_d, graft_factors(n_m, per_seed_norms(u_d, scope), eps))


def graft_onto_momentum(magnitude: GradientTransformation, lr: float | Schedule, momentum: float, scope: str,
                        eps: float) -> GradientTransformation:
    r"""``graft(magnitude, chain(trace(momentum), scale_by_learning_rate(lr)), scope, eps)`` (the direction is
    SGDA with momentum, ``sgda(lr, momentum)``; no trace for ``momentum = 0``), same state, in fewer passes.

    With $M$ the momentum buffer, $\eta_t$ the step size ``lr`` at this update and $u_D = -\eta_t M$:
    $\lVert u_D \rVert = \eta_t \lVert M \rVert$ and

    $$
    u = \frac{\lVert u_M \rVert}{\lVert u_D \rVert + \epsilon}\, u_D
      = M \cdot \frac{-\eta_t \lVert u_M \rVert}{\eta_t \lVert M \rVert + \epsilon}
    $$

    ($\epsilon$ = ``eps``), a per-seed factor on $M$ (:func:`momentum_graft_factors`), so $u_D$ is never written
    out; the result is written over $u_M$ (of which only the norm is needed), so ``magnitude`` must return new
    tensors that nothing else holds, as :func:`agents.adam` does. The momentum buffer is updated in one pass,
    $m = g + \mu\, m$ ($\mu$ = ``momentum``; one rounding instead of :func:`~agents.transforms.trace`'s two).
    Where the factor is not a normal float, or off the CPU, the update takes the literal route
    (:func:`momentum_graft_literal`).
    """
    if not isinstance(magnitude, GradientTransformation):
        raise TypeError(f"graft magnitude must be a GradientTransformation, got {type(magnitude).__name__}")
    momentum = check_fraction("momentum", momentum)
    lr = check_lr(lr)
    check_scope(scope)
    eps = check_real("eps", eps, low=0.0)
    return GradientTransformation(partial(_momentum_graft_init, magnitude, momentum, lr),
                                  partial(_momentum_graft_update, magnitude, lr, momentum, scope, eps),
                                  magnitude.evaluations)


def _momentum_graft_init(magnitude: GradientTransformation, momentum: float, lr: float | Schedule,
                         params: Params) -> GraftState:
    direction = SGDAState.of(trace_init(params) if momentum else None, learning_rate_state(lr))
    return GraftState(magnitude.init(params), direction, None, None)


def _momentum_graft_update(magnitude: GradientTransformation, lr: float | Schedule, momentum: float, scope: str,
                           eps: float, grads: Params, state: GraftState,
                           params: Params | None = None) -> tuple[Params, GraftState]:
    check_chain_state(state.direction, 2 if momentum else 1)
    direction = SGDAState.named(state.direction)
    u_m, s_m = magnitude.update(grads, state.magnitude, params)
    keys = list(grads)
    trace = None
    m = grads
    if momentum:  # trace's m = momentum * m + g, in one pass (one rounding instead of two)
        m = dict(zip(keys, torch._foreach_add([grads[k] for k in keys],
                                              [direction.trace.momentum[k] for k in keys], alpha=momentum)))
        trace = TraceState(m)
    lr_t, lr_state = lr_step(lr, direction.schedule)
    n_m = per_seed_norms(u_m, scope)
    new_state = state.advanced(s_m, SGDAState.of(trace, lr_state), n_m)
    factors = momentum_graft_factors(keys, n_m, per_seed_norms(m, scope), lr_t, eps)
    if factors is None:
        return momentum_graft_literal(m, n_m, lr_t, scope, eps), new_state
    out = {}
    for k, f in zip(keys, factors):  # written over the magnitude's step, a new tensor only its norm needed
        v = m[k]
        out[k] = torch.mul(v, seed_view(f, v), out=u_m[k]) if _reusable(u_m[k], v) else v * seed_view(f, v)
    return out, new_state


def _reusable(buffer: torch.Tensor, like: torch.Tensor) -> bool:
    """Whether ``buffer`` can hold the result of an element-wise op on ``like`` (same shape, dtype, device)."""
    return buffer.shape == like.shape and buffer.dtype == like.dtype and buffer.device == like.device

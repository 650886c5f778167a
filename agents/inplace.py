r"""Agents that update parameters in place (torch.optim's contract): :class:`~agents._base.InPlaceTransformation`.

A pure transformation returns updates that the env adds to the parameters; an in-place agent writes the new
parameters itself, into the env's own tensors (inside :meth:`~minmax_envs.env.BatchedEnv.writable`), and the env
only settles them (stopped seeds restored, projection). That saves writing an update tensor and reading it back:
the fast path, and the door for any ``torch.optim.Optimizer`` (:func:`agents.from_torch`).

:func:`in_place` plays any pure transformation this way ($p \leftarrow p + u$). The built-in optimizers have fast
paths of their own here, :func:`sgda`, :func:`nsgda`, :func:`adam`, :func:`adalr` and :func:`adadir`: the
signatures, defaults, validation and *state* of :mod:`agents.optimizers` (the same NamedTuples and values, so
a checkpoint of one resumes the other), and the parameters of ``in_place(<pure optimizer>)`` step for step:

* :func:`adam` runs torch's fused Adam kernel (``torch.optim.Adam(fused=True)``'s) directly on the parameters
  and the moment buffers: bit for bit ``in_place(agents.adam(...))`` on every CPU.
* The others update the momentum buffers in place and add $\text{factor} \cdot \text{direction}$ to the
  parameters in one pass per tensor (``_foreach_add_`` with ``alpha``, ``_foreach_addcmul_``), with no update
  tensor. Where the pure chain rounds a product and then a sum ($u = f g$, then $p + u$; $m = \mu\, m + g$ with
  $\mu$ the momentum), the one-pass
  kernel does a fused multiply-add on CPUs with FMA (AVX2, AVX-512): one rounding instead of two, so the
  parameters differ from the pure agent's by float rounding (about one unit in the last place per step). With
  torch's scalar kernels (``ATEN_CPU_CAPABILITY=default``, no FMA) every fast path is bit for bit the pure one,
  which is how the tests pin the arithmetic down.
* :func:`adalr` and :func:`adadir` take the norm of Adam's step, which torch cannot reduce without writing it:
  that step is written once, into a zero buffer, by the fused kernel (the moments updated in place).

Off the CPU the fused Adam kernel and the CPU-only range checks of :mod:`agents.norms` are not used (as in
the pure agents), so these agents follow the pure agents' general route there, with its temporaries.
"""

from __future__ import annotations

from functools import partial

import torch

from agents import optimizers as pure
from agents._base import (
    EPS,
    GAN_BETAS,
    GRAFT_SCOPE,
    NSGDA_SCOPE,
    GradientTransformation,
    InPlaceTransformation,
    Params,
    Schedule,
    State,
    check_betas,
    check_chain_state,
    check_lr,
    seed_view,
)
from agents.fused import (
    adam_kernel_applies,
    adam_step,
    fused_adam_into,
    fused_adam_ok,
    momentum_graft_factors,
    momentum_graft_literal,
)
from agents.norms import check_scope, inverse_norms, per_seed_norms
from agents.transforms import (
    AdamState,
    GraftState,
    NSGDAState,
    ScaleByAdamState,
    SGDAState,
    TraceState,
    graft_factors,
    lr_step,
)

LR = float | Schedule


def in_place(tx: GradientTransformation) -> InPlaceTransformation:
    r"""The pure transformation ``tx`` as an in-place agent: $p \leftarrow p + u$ with ``tx``'s update $u$, written
    into the parameter tensors (one foreach kernel). The same numbers and the same state as ``tx`` played by the
    env (the env adds updates with the same kernel); the reference every in-place fast path is tested against."""
    if not isinstance(tx, GradientTransformation):
        raise TypeError(f"in_place() takes a GradientTransformation, got {type(tx).__name__}")
    return InPlaceTransformation(tx.init, partial(_in_place_step, tx), tx.evaluations)


def _in_place_step(tx: GradientTransformation, grads: Params, state: State, params: Params) -> State:
    updates, state = tx.update(grads, state, params)
    names = list(params)
    torch._foreach_add_([params[k] for k in names], [updates[k] for k in names])
    return state


# --- shared steps ---------------------------------------------------------------------------------------
def _aligned(grads: Params, params: Params) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    """The names (in the gradients' order, as the pure agents use), gradients and parameter tensors."""
    if grads.keys() != params.keys():
        raise ValueError(f"gradients and parameters must name the same tensors, got {sorted(grads)} and "
                         f"{sorted(params)}")
    keys = list(grads)
    return keys, [grads[k] for k in keys], [params[k] for k in keys]


def _momentum_(buffers: list[torch.Tensor], grads: list[torch.Tensor], momentum: float) -> None:
    r"""$m \leftarrow g + \mu\, m$ ($\mu$ = ``momentum``) in place, one pass per tensor
    (:func:`agents.transforms.trace`'s buffer)."""
    for m, g in zip(buffers, grads):
        torch.add(g, m, alpha=momentum, out=m)


def _traced(trace: TraceState | None, keys: list[str], g: list[torch.Tensor],
            momentum: float) -> tuple[list[torch.Tensor], TraceState | None]:
    r"""The direction after the momentum step of a state's ``trace`` (its buffer, $m \leftarrow g + \mu\, m$ in
    place, $\mu$ = ``momentum``) and the new trace; without momentum (``trace`` is ``None``) the gradients
    themselves and no trace."""
    if trace is None:
        return g, None
    m = [trace.momentum[k] for k in keys]
    _momentum_(m, g, momentum)  # the pure agent's kernel (a fused multiply-add there too): the same buffer
    return m, TraceState(dict(zip(keys, m)))


def _adam_add_(grads: Params, state: ScaleByAdamState, params: Params, b1: float, b2: float, eps: float,
               lr: float) -> ScaleByAdamState:
    r"""$p \leftarrow p + u$ with $u$ the step of :func:`agents.fused.adam_step` ``(grads, state, b1, b2, eps, lr)``,
    the moments updated in place; the new state.

    Where that step runs torch's fused Adam kernel (on a zero buffer and copies of the moments), this runs the
    same kernel once on the parameters themselves and the moment buffers: the kernel's own $p + u$ rounds
    exactly as adding the pure step's update to the parameters, so the results are bit for bit the same (and
    the moments too). Elsewhere (other devices, non-contiguous tensors) it is the pure step, then the addition.
    """
    keys = list(grads)
    g, p = [grads[k] for k in keys], [params[k] for k in keys]
    mu, nu = [state.mu[k] for k in keys], [state.nu[k] for k in keys]
    if adam_kernel_applies(g, mu, nu) and fused_adam_ok(p) and p[0].dtype == g[0].dtype and all(
            x.shape == y.shape and x.device == y.device for x, y in zip(p, g)):
        fused_adam_into(p, g, mu, nu, state.count + 1, b1, b2, eps, lr)
        return ScaleByAdamState(state.count + 1, dict(zip(keys, mu)), dict(zip(keys, nu)))
    u, new = adam_step(grads, state, b1, b2, eps, lr)
    torch._foreach_add_(p, [u[k] for k in keys])
    return new


def _adam_update(grads: Params, state: ScaleByAdamState, b1: float, b2: float, eps: float, lr: float,
                 buffers: list[torch.Tensor] | None = None) -> tuple[Params, ScaleByAdamState]:
    """The update and state of :func:`agents.fused.adam_step` (the same values), the moments updated in place
    where it runs the fused kernel; the update then is written into ``buffers`` (zeroed first; tensors that are
    free to overwrite) where they fit, else into a new zero buffer, as the pure step does."""
    keys = list(grads)
    g = [grads[k] for k in keys]
    mu, nu = [state.mu[k] for k in keys], [state.nu[k] for k in keys]
    if not adam_kernel_applies(g, mu, nu):
        return adam_step(grads, state, b1, b2, eps, lr)
    if buffers is not None and fused_adam_ok(buffers) and buffers[0].dtype == g[0].dtype and all(
            b.shape == x.shape and b.device == x.device for b, x in zip(buffers, g)):
        torch._foreach_zero_(buffers)
        out = buffers
    else:
        out = [torch.zeros_like(x) for x in g]
    fused_adam_into(out, g, mu, nu, state.count + 1, b1, b2, eps, lr)
    return dict(zip(keys, out)), ScaleByAdamState(state.count + 1, dict(zip(keys, mu)), dict(zip(keys, nu)))


def _add_normalized_(params: list[torch.Tensor], grads: Params, scope: str, lr: float) -> None:
    r"""$p \leftarrow p - \eta\, g / \lVert g \rVert$ ($\eta$ = ``lr``, norms per seed by ``scope``): the update
    of :func:`agents.fused.normalized` (the same per-seed factors, $-\eta$ folded into $1 / \lVert g \rVert$:
    :func:`agents.norms.inverse_norms`) added in one pass per tensor, $p + \text{factor} \cdot g$ (a fused
    multiply-add where the CPU has one). Where the folded factor leaves float's normal range (or off the CPU) the
    factors stay apart, as in the pure step: $p + (-\eta) \cdot (g / \lVert g \rVert)$."""
    factors, folded = inverse_norms(grads, scope, -lr)
    if not factors:
        return
    vals = list(grads.values())
    if folded:
        torch._foreach_addcmul_(params, vals, [seed_view(factors[k], v) for k, v in grads.items()])
        return
    torch._foreach_add_(params, [v * seed_view(factors[k], v) for k, v in grads.items()], alpha=-lr)


# --- the built-in optimizers, in place ------------------------------------------------------------------
def sgda(lr: LR, momentum: float = 0.0, nesterov: bool = False) -> InPlaceTransformation:
    r""":func:`agents.sgda` in place: $m \leftarrow g + \mu\, m$ (in the state's buffer; $\mu$ = ``momentum``),
    $p \leftarrow p - \eta_t\, m$ ($\eta_t$ the step size ``lr`` at this update; Nesterov:
    $p \leftarrow p - \eta_t (g + \mu\, m)$, through one temporary), one pass per rule. The state of
    :func:`agents.sgda`; the parameters of ``in_place(agents.sgda(...))`` to float rounding (module docstring).
    """
    reference = pure.sgda(lr, momentum, nesterov)  # validates, and its init is this agent's
    traced = bool(momentum or nesterov)
    return InPlaceTransformation(reference.init, partial(_sgda_step, check_lr(lr), float(momentum) if traced else 0.0,
                                                         bool(nesterov), traced), reference.evaluations)


def _sgda_step(lr: LR, momentum: float, nesterov: bool, traced: bool, grads: Params, state: SGDAState,
               params: Params) -> SGDAState:
    check_chain_state(state, 2 if traced else 1)
    state = SGDAState.named(state)
    keys, g, p = _aligned(grads, params)
    lr_t, lr_state = lr_step(lr, state.schedule)
    if not traced:
        torch._foreach_add_(p, g, alpha=-lr_t)
        return SGDAState.of(None, lr_state)
    m = [state.trace.momentum[k] for k in keys]
    _momentum_(m, g, momentum)
    torch._foreach_add_(p, torch._foreach_add(g, m, alpha=momentum) if nesterov else m, alpha=-lr_t)
    return SGDAState.of(TraceState(dict(zip(keys, m))), lr_state)


def nsgda(lr: LR, momentum: float = 0.0, scope: str = NSGDA_SCOPE) -> InPlaceTransformation:
    r""":func:`agents.nsgda` in place: $m \leftarrow g + \mu\, m$ (in the state's buffer, $\mu$ = ``momentum``;
    $m = g$ without momentum), then $p \leftarrow p - \eta_t\, m / \lVert m \rVert$ ($\eta_t$ the step size
    ``lr`` at this update) in one pass per tensor after the per-seed norms. The state of
    :func:`agents.nsgda`; the parameters of ``in_place(agents.nsgda(...))`` to float rounding (module docstring).
    """
    reference = pure.nsgda(lr, momentum, scope)
    traced = bool(momentum)
    return InPlaceTransformation(reference.init, partial(_nsgda_step, check_lr(lr), float(momentum) if traced else 0.0,
                                                         scope, traced), reference.evaluations)


def _nsgda_step(lr: LR, momentum: float, scope: str, traced: bool, grads: Params, state: NSGDAState,
                params: Params) -> NSGDAState:
    check_chain_state(state, 3 if traced else 2)
    state = NSGDAState.named(state)
    keys, g, p = _aligned(grads, params)
    m, trace = _traced(state.trace, keys, g, momentum)
    lr_t, lr_state = lr_step(lr, state.schedule)
    _add_normalized_(p, dict(zip(keys, m)), scope, lr_t)
    return NSGDAState.of(trace, state.normalize, lr_state)


def adam(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS) -> InPlaceTransformation:
    """:func:`agents.adam` in place: torch's fused Adam kernel on the parameters and the moment buffers (one pass,
    as ``torch.optim.Adam(fused=True)``). The state of :func:`agents.adam`; bit for bit the parameters of
    ``in_place(agents.adam(...))`` where the kernel runs (dense float32/float64 CPU tensors), else its route."""
    reference = pure.adam(lr, betas, eps)
    b1, b2 = check_betas(betas)
    return InPlaceTransformation(reference.init, partial(_adam_step, check_lr(lr), b1, b2, float(eps)),
                                 reference.evaluations)


def _adam_step(lr: LR, b1: float, b2: float, eps: float, grads: Params, state: AdamState,
               params: Params) -> AdamState:
    check_chain_state(state, 2)
    state = AdamState.named(state)
    _aligned(grads, params)
    lr_t, lr_state = lr_step(lr, state.schedule)
    return AdamState.of(_adam_add_(grads, state.moments, params, b1, b2, eps, lr_t), lr_state)


def adalr(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS,
          scope: str = GRAFT_SCOPE) -> InPlaceTransformation:
    r""":func:`agents.adalr` in place: Adam's step $A_t$ by the fused kernel into a zero buffer (moments in
    place; only its norm is used), $M \leftarrow g + \beta_1 M$ ($\beta_1$ the first of ``betas``) in the
    state's buffer, then $p \leftarrow p - \lVert A_t \rVert\, M / (\lVert M \rVert + \epsilon)$
    ($\epsilon$ = ``eps``) in one pass per tensor. The state of :func:`agents.adalr`; the
    parameters of ``in_place(agents.adalr(...))`` to float rounding (module docstring)."""
    reference = pure.adalr(lr, betas, eps, scope)
    b1, b2 = check_betas(betas)
    check_scope(scope)
    return InPlaceTransformation(reference.init, partial(_adalr_step, check_lr(lr), b1, b2, float(eps), scope),
                                 reference.evaluations)


def _adalr_step(lr: LR, b1: float, b2: float, eps: float, scope: str, grads: Params, state: GraftState,
                params: Params) -> GraftState:
    check_chain_state(state.direction, 2 if b1 else 1)
    check_chain_state(state.magnitude, 2)
    magnitude, direction = AdamState.named(state.magnitude), SGDAState.named(state.direction)
    keys, g, p = _aligned(grads, params)
    lr_m, lr_m_state = lr_step(lr, magnitude.schedule)
    a, moments = _adam_update(grads, magnitude.moments, b1, b2, eps, lr_m)
    m, trace = _traced(direction.trace, keys, g, b1)
    lr_t, lr_d_state = lr_step(1.0, direction.schedule)  # the direction at unit step
    n_m = per_seed_norms(a, scope)
    buf = dict(zip(keys, m))
    new_state = state.advanced(AdamState.of(moments, lr_m_state), SGDAState.of(trace, lr_d_state), n_m)
    factors = momentum_graft_factors(keys, n_m, per_seed_norms(buf, scope), lr_t, eps)  # the pure agent's factor
    if factors is not None:
        torch._foreach_addcmul_(p, m, [seed_view(f, v) for f, v in zip(factors, m)])
    else:  # the pure agent's literal route: u_D = -lr_t M, its norms, the rescale
        u_d = momentum_graft_literal(buf, n_m, lr_t, scope, eps)
        torch._foreach_add_(p, [u_d[k] for k in keys])
    return new_state


def adadir(lr: LR, betas: tuple[float, float] = GAN_BETAS, eps: float = EPS,
           scope: str = GRAFT_SCOPE) -> InPlaceTransformation:
    r""":func:`agents.adadir` in place: $M \leftarrow g + \beta_1 M$ ($\beta_1$ the first of ``betas``) in the
    state's buffer, the norm of SGDA's step $-\eta_t M$ ($\eta_t$ the step size ``lr`` at this update) and of
    Adam's unit step $A_t$ (fused kernel, moments in place; both written into one buffer in turn, for their
    norms), then $p \leftarrow p + \lVert \eta_t M \rVert\, A_t / (\lVert A_t \rVert + \epsilon)$
    ($\epsilon$ = ``eps``) in one pass per tensor. The state
    of :func:`agents.adadir`; the parameters of ``in_place(agents.adadir(...))`` to float rounding (module
    docstring)."""
    reference = pure.adadir(lr, betas, eps, scope)
    b1, b2 = check_betas(betas)
    check_scope(scope)
    return InPlaceTransformation(reference.init, partial(_adadir_step, check_lr(lr), b1, b2, float(eps), scope),
                                 reference.evaluations)


def _adadir_step(lr: LR, b1: float, b2: float, eps: float, scope: str, grads: Params, state: GraftState,
                 params: Params) -> GraftState:
    check_chain_state(state.magnitude, 2 if b1 else 1)
    check_chain_state(state.direction, 2)
    magnitude, direction = SGDAState.named(state.magnitude), AdamState.named(state.direction)
    keys, g, p = _aligned(grads, params)
    m, trace = _traced(magnitude.trace, keys, g, b1)
    lr_t, lr_m_state = lr_step(lr, magnitude.schedule)
    u_m = torch._foreach_mul(m, -lr_t)  # SGDA's step, written for its norm (the pure agent's values)
    n_m = per_seed_norms(dict(zip(keys, u_m)), scope)
    adam_lr, lr_d_state = lr_step(1.0, direction.schedule)  # Adam's direction at unit step
    a, moments = _adam_update(grads, direction.moments, b1, b2, eps, adam_lr, u_m)  # into u_m's buffer
    factors = graft_factors(n_m, per_seed_norms(a, scope), eps)  # the pure graft's factor, per pair of norms
    steps = [a[k] for k in keys]
    torch._foreach_addcmul_(p, steps, [seed_view(factors[k], v) for k, v in zip(keys, steps)])
    return state.advanced(SGDAState.of(trace, lr_m_state), AdamState.of(moments, lr_d_state), n_m)


__all__ = ["adadir", "adalr", "adam", "in_place", "nsgda", "sgda"]

"""Small composable transformations; the named optimizers are :func:`~agents._base.chain`s of these."""

from __future__ import annotations

from typing import NamedTuple

import torch

from agents._base import GradientTransformation, Params, check_number, seed_view, stateless

SCOPES = ("layer", "global")


def scale(factor: float) -> GradientTransformation:
    """``u = factor * g``."""
    factor = float(factor)
    return stateless(lambda g, p: {k: v * factor for k, v in g.items()})


def scale_by_learning_rate(lr: float) -> GradientTransformation:
    """``u = -lr * g``: a descent step on the player's own loss."""
    check_number("lr", lr)
    return scale(-lr)


class TraceState(NamedTuple):
    momentum: Params


def trace(momentum: float) -> GradientTransformation:
    """Heavy-ball momentum: ``m_t = momentum * m_{t-1} + g_t``, ``u = m_t`` (``m_0 = 0``).

    With ``scale_by_learning_rate(lr)`` after it this is ``torch.optim.SGD(lr, momentum)``
    (dampening 0), the SGDA-with-momentum of seed 001, eq. (5).
    """
    momentum = check_number("momentum", momentum, high=1.0)

    def init(params: Params) -> TraceState:
        return TraceState({k: torch.zeros_like(v) for k, v in params.items()})

    def update(grads: Params, state: TraceState, params: Params | None = None):
        m = {k: state.momentum[k] * momentum + g for k, g in grads.items()}
        return m, TraceState(m)

    return GradientTransformation(init, update)


def per_seed_norms(tensors: Params, scope: str) -> Params:
    """Euclidean norms per seed: per tensor (``scope="layer"``, each of shape ``(N,)``) or over all the
    tensors of the dict (``scope="global"``: the same ``(N,)`` tensor under every name).

    Computed as ``s * ||x / s||`` with ``s`` the largest magnitude in the scope (as LAPACK's ``nrm2``), so
    that tiny gradients (``1e-23`` in float32, a saturated discriminator's) do not underflow to a zero norm.
    """
    flat = {k: v.reshape(v.shape[0], -1) for k, v in tensors.items()}
    peak = {k: f.abs().amax(dim=1) for k, f in flat.items()}
    if scope == "global":
        top = torch.stack(list(peak.values())).amax(dim=0)
        peak = dict.fromkeys(flat, top)
    scale = {k: p.clamp_min(torch.finfo(p.dtype).tiny) for k, p in peak.items()}
    sq = {k: (f / scale[k][:, None]).pow(2).sum(dim=1) for k, f in flat.items()}
    if scope == "layer":
        return {k: s.sqrt() * scale[k] for k, s in sq.items()}
    total = torch.stack(list(sq.values())).sum(dim=0).sqrt() * top.clamp_min(torch.finfo(top.dtype).tiny)
    return dict.fromkeys(tensors, total)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose 'layer' (per tensor) or 'global' (per player)")
    return scope


def normalize(scope: str = "global") -> GradientTransformation:
    """``u = g / ||g||`` per seed, the norm taken per tensor (``"layer"``) or over all of one player's
    tensors (``"global"``). A zero gradient gives a zero update."""
    check_scope(scope)

    def fn(g: Params, p: Params | None) -> Params:
        norms = per_seed_norms(g, scope)
        return {k: v / seed_view(norms[k].clamp_min(torch.finfo(v.dtype).tiny), v) for k, v in g.items()}

    return stateless(fn)

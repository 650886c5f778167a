"""Per-seed norms: the scopes (per tensor or per player), the norms themselves and the per-seed factors built
from them, for :func:`agents.normalize`, :func:`agents.graft`, :func:`agents.balanced`, the diagnostics and the
fast paths of :mod:`agents.fused` and :mod:`agents.inplace`.

Every tensor has a leading seed dimension ``N``; a norm is an ``(N,)`` tensor, one number per seed. In the
``"global"`` scope every name of a dict maps to the *same* ``(N,)`` tensor (one norm per player), which the
helpers below use (by ``id``) to compute a per-seed factor once per player instead of once per tensor.
"""

from __future__ import annotations

import math

import torch

from agents._base import Params, seed_view

SCOPES = ("layer", "global")


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose 'layer' (per tensor) or 'global' (per player)")
    return scope


def per_seed_norms(tensors: Params, scope: str) -> Params:
    r"""Euclidean norms per seed: per tensor (``scope="layer"``, each of shape ``(N,)``) or over all the
    tensors of the dict (``scope="global"``: the same ``(N,)`` tensor under every name).

    Computed as $s\, \lVert x / s \rVert$ with $s$ the largest magnitude in the scope (as LAPACK's ``nrm2``), so
    that tiny gradients ($10^{-23}$ in float32, a saturated discriminator's) do not underflow to a zero norm
    and huge ones do not overflow. On the CPU, a plain $\lVert x \rVert$ (one pass) is used where it provably gives
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
    r"""The norms of :func:`per_seed_norms` by one reduction per tensor, without the peak scaling, where
    that gives the same values to rounding; ``None`` where it may not (then the scaled computation runs).

    The plain sum of squares $S$ of $n$ numbers is exact to rounding unless a square overflows (then
    $S$ is not finite) or squares underflow: each underflowing square is off by at most $\text{tiny}$ (the
    smallest normal float, ``torch.finfo(dtype).tiny``), so the sum is off by at most $n \cdot \text{tiny}$,
    below $\epsilon S$ ($\epsilon$ the machine epsilon, ``torch.finfo(dtype).eps``) when
    $S \ge n \cdot \text{tiny} / \epsilon$. Only on the CPU, where the check costs no device synchronization,
    for float32 and float64.
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


def rescale(tensors: Params, factors: Params) -> Params:
    r"""$x_k \cdot f_k$ for every name $k$, with the per-seed ``(N,)`` factors $f_k$ (``factors[k]``) broadcast
    over each tensor (new tensors)."""
    return {k: v * seed_view(factors[k], v) for k, v in tensors.items()}


def rescale_(tensors: Params, factors: Params) -> Params:
    """:func:`rescale` in place, for tensors that nothing else holds (the same products); returns ``tensors``."""
    for k, v in tensors.items():
        v.mul_(seed_view(factors[k], v))
    return tensors


def normal_range(x: torch.Tensor) -> bool:
    r"""Whether every $\lvert x \rvert$ is a normal floating-point number (checked on the CPU only; False
    elsewhere, where the check would synchronize)."""
    if x.device.type != "cpu" or x.numel() == 0:
        return False
    fi = torch.finfo(x.dtype)
    low, high = torch.aminmax(x.abs())
    return bool(low >= fi.tiny and high <= fi.max)


def inverse_norms(tensors: Params, scope: str, times: float | None = None) -> tuple[Params, bool]:
    r"""The per-seed factors $1 / \lVert x \rVert$ of :func:`agents.normalize` under every name (norms by
    ``scope``; a zero norm gives $1 / \text{tiny}$, ``tiny`` the smallest normal float of the dtype, so that a
    zero tensor stays zero), and whether ``times`` was folded in.

    With ``times``, the factors are $\text{times} / \lVert x \rVert$ (one product per seed:
    $x \cdot (\text{times} / \lVert x \rVert)$ then reads and writes each tensor once instead of twice) where that
    product is a normal float, which is the same product as $(x / \lVert x \rVert) \cdot \text{times}$ to
    rounding; where it is not, or off the CPU (where checking would synchronize), the factors stay
    $1 / \lVert x \rVert$ and the second value is ``False``: the caller multiplies by
    ``times`` itself. The distinct norms (one per player in the global scope) are inverted in one op.
    """
    norms = per_seed_norms(tensors, scope)
    if not norms:
        return {}, False
    distinct = list({id(n): n for n in norms.values()}.values())
    stacked = torch.stack(distinct) if len(distinct) > 1 else distinct[0][None]
    inverse = 1.0 / stacked.clamp_min(torch.finfo(stacked.dtype).tiny)  # one op for all the tensors
    folded = False
    if times is not None:
        product = inverse * times
        if normal_range(product):
            inverse, folded = product, True
    index = {id(n): i for i, n in enumerate(distinct)}
    rows = inverse.unbind(0)
    return {k: rows[index[id(n)]] for k, n in norms.items()}, folded


def norm_pairs(keys: list[str], a: Params, b: Params) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The distinct pairs ``(a[k], b[k])`` of per-seed norm tensors (the global scope shares one per dict), each
    side stacked ``(K, N)``, and the row of each name in ``keys``: so that a per-seed factor of two norms is
    computed once per pair, in one op per rule for all the pairs (element-wise: the same values as one op per
    pair)."""
    rows: dict[tuple[int, int], int] = {}
    firsts, seconds, index = [], [], []
    for k in keys:
        pair = (id(a[k]), id(b[k]))
        if pair not in rows:
            rows[pair] = len(firsts)
            firsts.append(a[k])
            seconds.append(b[k])
        index.append(rows[pair])
    return torch.stack(firsts), torch.stack(seconds), index


__all__ = ["SCOPES", "check_scope", "inverse_norms", "norm_pairs", "normal_range", "per_seed_norms", "rescale",
           "rescale_"]

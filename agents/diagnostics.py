"""Diagnostics cheap enough to record at every step (metric names namespaced as in CleanRL)."""

from __future__ import annotations

import torch

from agents._base import Params
from agents.norms import per_seed_norms
from agents.transforms import GraftState


def update_norms(updates: Params) -> dict[str, torch.Tensor]:
    """Per-seed update norms: ``"update_norm"`` over all tensors and ``"update_norm/<tensor>"`` each."""
    out = {"update_norm": next(iter(per_seed_norms(updates, "global").values()))}
    out.update({f"update_norm/{k}": n for k, n in per_seed_norms(updates, "layer").items()})
    return out


def sum_of_norms(tensors: Params) -> torch.Tensor:
    r"""$\sum_k \lVert x_k \rVert$ per seed, over the tensors $x_k$ of ``tensors``: the "sum of all the parameters
    norm" of "Adam is no better than normalized SGD", Figure 1."""
    return torch.stack(list(per_seed_norms(tensors, "layer").values())).sum(dim=0)


def gradient_ratio(grads: dict[str, Params], initial: dict[str, torch.Tensor]) -> torch.Tensor:
    r"""Figure 1 of "Adam is no better than normalized SGD":

    $$
    \frac{\lVert \nabla G_t \rVert}{\lVert \nabla G_0 \rVert}
    + \frac{\lVert \nabla D_t \rVert}{\lVert \nabla D_0 \rVert}
    $$

    with $\nabla G_t$, $\nabla D_t$ the generator's and the discriminator's gradients at step $t$ (``grads``),
    each norm the sum of the per-tensor norms of that player; ``initial`` holds :func:`sum_of_norms` of the first
    gradients."""
    return sum(sum_of_norms(grads[pl]) / initial[pl] for pl in initial)


def _graft_states(state, path: str = ""):
    if isinstance(state, GraftState):
        yield path, state
        for name in ("magnitude", "direction"):
            yield from _graft_states(getattr(state, name), f"{path}{name}/")
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from _graft_states(v, f"{path}{k}/")
    elif isinstance(state, tuple):
        for i, v in enumerate(state):
            yield from _graft_states(v, path if len(state) == 1 else f"{path}{i}/")


def graft_magnitude_ratios(state) -> dict[str, torch.Tensor]:
    r"""For every :func:`~agents.graft` inside an agent's state, $\lVert A_t \rVert / \lVert A_0 \rVert$: the norm
    of the magnitude optimizer's last step $A_t$ over its first one $A_0$ ("Adam is no better than normalized SGD",
    Figure 2(b, c)), per tensor (``"magnitude_ratio/<tensor>"``; layer scope) or per player (global scope, under
    every tensor name). Empty before the first update or for agents without grafting."""
    out = {}
    for path, g in _graft_states(state):
        if g.first_norm is None:
            continue
        for k, first in g.first_norm.items():
            out[f"{path}magnitude_ratio/{k}"] = g.last_norm[k] / first
    return out

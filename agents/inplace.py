"""Agents that update parameters in place (torch.optim's contract): :class:`~agents._base.InPlaceTransformation`.

A pure transformation returns updates that the env adds to the parameters; an in-place agent writes the new
parameters itself, into the env's own tensors, and the env only settles them (stopped seeds restored,
projection). That saves writing an update tensor and reading it back: the fast path, and the door for any
``torch.optim.Optimizer`` (:func:`agents.from_torch`).
"""

from __future__ import annotations

import torch

from agents._base import GradientTransformation, InPlaceTransformation, Params, State


def in_place(tx: GradientTransformation) -> InPlaceTransformation:
    """The pure transformation ``tx`` as an in-place agent: ``p <- p + u`` with ``tx``'s update ``u``, written
    into the parameter tensors (one foreach kernel). The same numbers and the same state as ``tx`` played by the
    env (the env adds updates with the same kernel); the reference every in-place fast path is tested against."""
    if not isinstance(tx, GradientTransformation):
        raise TypeError(f"in_place() takes a GradientTransformation, got {type(tx).__name__}")

    def step(grads: Params, state: State, params: Params) -> State:
        updates, state = tx.update(grads, state, params)
        names = list(params)
        torch._foreach_add_([params[k] for k in names], [updates[k] for k in names])
        return state

    return InPlaceTransformation(tx.init, step, tx.evaluations)


__all__ = ["in_place"]

"""Game arguments given one value per seed: the same argument of a batched game may differ from seed to seed.

An argument that changes no tensor's shape (a correlation, a penalty weight, a radius) can be a number, the same
for every seed, or one number per seed: a sequence, array or 1-D tensor of ``num_seeds`` numbers. A game's
``Config`` lists these fields (``per_seed_args``) and holds per-seed values as tuples of floats
(:func:`number_or_per_seed`); the game made from it checks their length and keeps them as float64 tensors ``(N,)``
(:attr:`Game.seed_args <minmax_envs.games._base.Game.seed_args>`),
copies them into the instance its ``init`` draws and reads them from the instance afterwards, so that
:meth:`~minmax_envs.env.BatchedEnv.reset_where` gives restarted slots the values set for them
(:meth:`Game.set_per_seed <minmax_envs.games._base.Game.set_per_seed>`) while the others keep theirs. Slot ``i``
computes exactly what a batch of one with slot ``i``'s values computes: the values only ever enter elementwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from minmax_envs._checks import check_real


def is_per_seed(value: Any) -> bool:
    """Whether ``value`` is given per seed: a tensor, array, list or tuple (a number is the same for every seed)."""
    return isinstance(value, (torch.Tensor, np.ndarray, list, tuple))


def _items(name: str, value: Any) -> list[Any]:
    """The items of a value given per seed (:func:`is_per_seed`): a 1-D tensor or array, a list or a tuple."""
    if isinstance(value, torch.Tensor):
        if value.ndim != 1 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} per seed must be a 1-D tensor of real numbers, one per seed, got a tensor of "
                             f"dtype {value.dtype} and shape {tuple(value.shape)}")
        return value.detach().cpu().double().tolist()
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ValueError(f"{name} per seed must be a 1-D array of numbers, one per seed, got shape {value.shape}")
        return value.tolist()
    return list(value)


def per_seed_values(name: str, value: Any, **bounds: Any) -> tuple[float, ...]:
    """``value``, given per seed (:func:`is_per_seed`), as a tuple of floats, each checked against ``bounds`` (the
    keywords of :func:`~minmax_envs._checks.check_real`): how a game's ``Config`` holds it. Its length is checked
    by the game, which knows ``num_seeds`` (:func:`seed_values`)."""
    return tuple(check_real(f"{name}[{i}]", v, **bounds) for i, v in enumerate(_items(name, value)))


def number_or_per_seed(name: str, value: Any, **bounds: Any) -> float | tuple[float, ...]:
    """An argument that may be given per seed, checked against ``bounds``: a number as a float, one value per seed
    as a tuple of floats (:func:`per_seed_values`)."""
    return per_seed_values(name, value, **bounds) if is_per_seed(value) else check_real(name, value, **bounds)


def seed_values(name: str, value: Any, num_seeds: int, device: torch.device, **bounds: Any) -> torch.Tensor:
    """``value``, one number per seed, as a float64 tensor ``(num_seeds,)`` on ``device``, each checked against
    ``bounds`` (the keywords of :func:`~minmax_envs._checks.check_real`); a ``ValueError`` names the argument, the
    seed slot and the allowed interval, or says that the length is not ``num_seeds``."""
    items: Sequence[Any] = _items(name, value)
    if len(items) != num_seeds:
        raise ValueError(f"{name} per seed must have one value per seed (num_seeds={num_seeds}), got {len(items)}")
    checked = [check_real(f"{name}[{i}]", v, **bounds) for i, v in enumerate(items)]
    return torch.tensor(checked, dtype=torch.float64, device=device)


def column(value: float | torch.Tensor, ndim: int) -> float | torch.Tensor:
    """A per-seed tensor ``(N,)`` shaped ``(N, 1, ..., 1)`` to broadcast against ``ndim``-dimensional per-seed
    tensors; a number as it is."""
    if isinstance(value, torch.Tensor):
        return value.reshape((-1,) + (1,) * (ndim - 1))
    return value


def sqrt(value: float | torch.Tensor) -> float | torch.Tensor:
    """``math.sqrt`` of a number, ``torch.sqrt`` of a per-seed tensor."""
    return torch.sqrt(value) if isinstance(value, torch.Tensor) else math.sqrt(value)

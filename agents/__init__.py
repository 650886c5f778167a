"""Optimizers as agents: pure gradient transformations over dicts of per-seed tensors (optax-style)."""

from agents._base import EmptyState, GradientTransformation, chain, stateless
from agents.optimizers import nsgda, sgda
from agents.transforms import normalize, per_seed_norms, scale, scale_by_learning_rate, trace

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "chain",
    "normalize",
    "nsgda",
    "per_seed_norms",
    "scale",
    "scale_by_learning_rate",
    "sgda",
    "stateless",
    "trace",
]

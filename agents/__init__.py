"""Optimizers as agents: pure gradient transformations over dicts of per-seed tensors (optax-style).

Named agents: :func:`sgda`, :func:`nsgda`, :func:`adam`, :func:`rmsprop`, :func:`adagrad`, :func:`adalr`,
:func:`adadir`, :func:`graft`, :func:`extragradient`, :func:`optimistic`, :func:`optimistic_adam`; for
both players at once: :func:`pair` (TTUR) and :func:`balanced`. Building blocks in
:mod:`agents.transforms` (the readable reference), per-seed norms and scopes in :mod:`agents.norms`, the fused
fast paths the named optimizers run in :mod:`agents.fused`, step-size schedules in :mod:`agents.schedules`.

Agents that update parameters in place (torch.optim's contract, :class:`InPlaceTransformation`): any
``torch.optim.Optimizer`` through :func:`from_torch`, any pure agent through :func:`in_place`, and the fast
in-place built-ins of :mod:`agents.inplace`.
"""

__version__ = "0.1.0"  # the version of minmax-envs, the distribution that ships this package
#: Marks this package as minmax_envs' ``agents`` (the import name is shared with other distributions; ``import
#: minmax_envs`` reads this line before it imports anything from here).
__minmax_envs_agents__ = True

from agents import schedules
from agents._base import (
    Agent,
    ChainState,
    EmptyState,
    GradientTransformation,
    InPlaceTransformation,
    PairTransformation,
    Schedule,
    chain,
    stateless,
)
from agents.diagnostics import gradient_ratio, graft_magnitude_ratios, sum_of_norms, update_norms
from agents.fused import scale_by_adam
from agents.inplace import in_place
from agents.norms import per_seed_norms
from agents.optimizers import adadir, adagrad, adalr, adam, nsgda, optimistic, optimistic_adam, rmsprop, sgda
from agents.pairs import as_pair, balanced, pair
from agents.torch_optim import allow_optimizer_modules, from_torch
from agents.transforms import (
    extragradient,
    graft,
    normalize,
    optimism,
    scale,
    scale_by_adagrad,
    scale_by_learning_rate,
    scale_by_rms,
    trace,
)

__all__ = [
    "Agent", "ChainState", "EmptyState", "GradientTransformation", "InPlaceTransformation", "PairTransformation",
    "Schedule", "adadir", "adagrad", "adalr", "adam", "allow_optimizer_modules", "as_pair", "balanced", "chain",
    "extragradient", "from_torch",
    "gradient_ratio", "graft", "graft_magnitude_ratios", "in_place", "normalize", "nsgda", "optimism", "optimistic",
    "optimistic_adam", "pair", "per_seed_norms", "rmsprop", "scale", "scale_by_adagrad", "scale_by_adam",
    "scale_by_learning_rate", "scale_by_rms", "schedules", "sgda", "stateless", "sum_of_norms", "trace",
    "update_norms"
]

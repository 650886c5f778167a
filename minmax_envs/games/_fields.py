"""Deprecated alias of :mod:`minmax_envs.games.regularizers` (the gradient-field regularizers)."""

from minmax_envs._moved import moved

moved(__name__, globals(), "minmax_envs.games.regularizers", what="the gradient-field regularizers")

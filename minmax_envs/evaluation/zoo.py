"""Deprecated alias of :mod:`minmax_envs.evaluation.agent_names` (agents by name, the ``Runner`` interface)."""

from minmax_envs._moved import moved

moved(__name__, globals(), "minmax_envs.evaluation.agent_names", what="agents by name")

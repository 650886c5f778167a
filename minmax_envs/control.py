"""Deprecated alias of :mod:`minmax_envs.step_size_control` (the step-size control problem) and
:mod:`minmax_envs.charts` (the charts its envs render)."""

from minmax_envs._moved import moved

moved(__name__, globals(), "minmax_envs.step_size_control", "minmax_envs.charts",
      what="the step-size control problem (and its charts)")

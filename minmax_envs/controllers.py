"""Deprecated alias of :mod:`minmax_envs.controller_files` (learned step-size controllers and their files)."""

from minmax_envs._moved import moved

moved(__name__, globals(), "minmax_envs.controller_files", what="learned step-size controllers and their files")

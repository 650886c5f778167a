"""Modules that moved: the old name stays importable, re-exports the new module(s) and warns once on import."""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def moved(old: str, namespace: dict[str, Any], *new: str, what: str) -> None:
    """Make module ``old`` (its globals ``namespace``) an alias of the modules ``new``, and warn.

    Every name of every new module, public or private (not dunder), becomes a name of ``old``, so that
    ``from old import X`` and objects pickled under ``old`` keep working.

    Args:
        old: the dotted name of the module that moved (its ``__name__``).
        namespace: that module's ``globals()``, filled in place.
        new: the dotted names of the modules that hold its contents now, the first the main one.
        what: what the new modules hold, for the warning (e.g. ``"the step-size control problem"``).
    """
    for name in new:
        module = importlib.import_module(name)
        namespace.update({k: v for k, v in vars(module).items() if not (k.startswith("__") and k.endswith("__"))})
    places = " and ".join(new)
    warnings.warn(f"{old} is deprecated; import from {places} ({what})", DeprecationWarning, stacklevel=3)

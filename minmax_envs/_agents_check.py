"""The top-level package ``agents`` is this project's, or ``import minmax_envs`` stops with one clear message."""

from __future__ import annotations

import importlib.util
import os
import sys


def check_agents_package() -> None:
    """Stop with one clear ``ImportError`` unless the top-level ``agents`` is this project's.

    ``agents`` is also the import name of other distributions (``openai-agents``, PyPI's ``agents``): installed
    after this one, they overwrite ``agents/__init__.py``; a folder or module ``agents`` in the working directory
    (or earlier on ``sys.path``) shadows it. Ours sits beside ``minmax_envs`` and carries the marker
    ``__minmax_envs_agents__``; the check reads the file found, it runs none of it."""
    mine = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "agents", "__init__.py")
    loaded = sys.modules.get("agents")
    if loaded is not None:
        found = getattr(loaded, "__file__", None) or repr(loaded)
        ours = getattr(loaded, "__minmax_envs_agents__", False) is True
    else:
        spec = importlib.util.find_spec("agents")
        found = spec.origin if spec is not None and spec.origin else None
        if found is None:
            raise ImportError(f"minmax_envs: its package 'agents' is missing (expected {mine}); reinstall minmax-envs")
        try:
            with open(found, encoding="utf-8", errors="replace") as f:
                ours = "__minmax_envs_agents__ = True" in f.read()
        except OSError:
            ours = False
    if ours and os.path.realpath(found) == os.path.realpath(mine):
        return
    if os.path.realpath(found) != os.path.realpath(mine):
        what = (f"'import agents' finds {found}, which shadows minmax_envs' own agents package ({mine}): rename that "
                "'agents' folder or module, or run from another directory")
    else:
        from importlib.metadata import packages_distributions

        owners = sorted(set(packages_distributions().get("agents", [])) - {"minmax-envs", "minmax_envs"})
        by = f" (installed by {', '.join(owners)})" if owners else ""
        what = (f"{found} is another distribution's 'agents' package{by}, which overwrote minmax_envs' own: "
                "they share the import name 'agents'; install minmax-envs in its own virtual environment, or "
                "uninstall the other distribution and reinstall minmax-envs (pip install --force-reinstall --no-deps)")
    raise ImportError(f"minmax_envs: {what}")


check_agents_package()

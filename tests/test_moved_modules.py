"""Modules that moved stay importable: the old name warns once, naming the new place, and holds every name of the
new module (the same objects); the package itself never imports an old name; an object pickled under an old module
path loads."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from minmax_envs.step_size_control import ControlConfig

ROOT = Path(__file__).resolve().parent.parent

#: old module -> the modules that hold its contents now
MOVED = {
    "minmax_envs.control": ("minmax_envs.step_size_control", "minmax_envs.charts"),
    "minmax_envs.controllers": ("minmax_envs.controller_files",),
    "minmax_envs.evaluation.zoo": ("minmax_envs.evaluation.agent_names",),
    "minmax_envs.games._fields": ("minmax_envs.games.regularizers",),
}


def fresh_import(name: str):
    """Import ``name`` anew (its module-level code runs again), whatever was imported before."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", MOVED)
def test_an_old_module_warns_naming_its_new_place(old):
    with pytest.warns(DeprecationWarning) as caught:
        fresh_import(old)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1 and old in messages[0]
    assert all(new in messages[0] for new in MOVED[old])


@pytest.mark.parametrize("old", MOVED)
def test_an_old_module_holds_every_name_of_the_new_one(old):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        shim = fresh_import(old)
    for new in MOVED[old]:
        module = importlib.import_module(new)
        names = [k for k in vars(module) if not (k.startswith("__") and k.endswith("__"))]
        assert names and all(getattr(shim, k) is getattr(module, k) for k in names), new


def test_old_imports_keep_working():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from minmax_envs.control import OBS_NAMES, StepSizeCore, chart
        from minmax_envs.controllers import LearnedController, check_controller
        from minmax_envs.evaluation.zoo import AGENTS, Runner, make_runner
        from minmax_envs.games._fields import REGULARIZERS, gradient_field
    from minmax_envs.charts import chart as new_chart
    from minmax_envs.controller_files import LearnedController as NewLearned
    from minmax_envs.evaluation.agent_names import Runner as NewRunner
    from minmax_envs.games.regularizers import gradient_field as new_field
    from minmax_envs.step_size_control import StepSizeCore as NewCore
    assert (StepSizeCore, chart, LearnedController, Runner, gradient_field) == (
        NewCore, new_chart, NewLearned, NewRunner, new_field)
    assert OBS_NAMES and callable(check_controller) and "sgda" in AGENTS and callable(make_runner)
    assert REGULARIZERS == ("nk", "consensus")


def test_an_object_pickled_under_an_old_module_path_loads():
    config = ControlConfig(base="nsgda", base_lr={"generator": 0.02, "discriminator": 0.01}, horizon=7)
    data = pickle.dumps(config, protocol=2)  # protocol 2 names classes as text: "module\nname\n"
    assert b"minmax_envs.step_size_control\nControlConfig" in data
    old = data.replace(b"minmax_envs.step_size_control\n", b"minmax_envs.control\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert pickle.loads(old) == config


def test_the_package_imports_no_old_module():
    """Importing every module of the package (but the old names) imports none of the old names and warns nothing."""
    code = (
        "import pkgutil, importlib, sys, warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "import minmax_envs\n"
        f"old = {sorted(MOVED)!r}\n"
        "for m in pkgutil.walk_packages(minmax_envs.__path__, 'minmax_envs.'):\n"
        "    if m.name not in old and m.name != 'minmax_envs.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(set(old) & set(sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"

"""Helpers the tests share: small arguments for every registered game, interrupted agents, crafted files and
synthetic records. Tests import them from here (``from tests.helpers import ...``), never from each other or
from ``conftest``, which holds the fixtures."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import agents
import minmax_envs

# --- small games ---------------------------------------------------------------------------------------------------

_IMAGE = {"width": 4, "resolution": 8, "batch_size": 8, "eval_samples": 32, "classifier_epochs": 1,
          "max_images": 160}

#: CPU-sized arguments per env id; every registered id must have an entry (checked in test_registry).
SMALL_KWARGS: dict[str, dict] = {
    "TwoMode-v0": {"d": 40, "m_d": 3, "m_g": 3},
    "DiracGAN-v0": {"init_std": 0.5},
    "Bilinear-v0": {"n": 4},
    "MoG-Ring-v0": {"hidden": 16, "batch_size": 32, "eval_samples": 200},
    "MoG-Grid-v0": {"hidden": 16, "batch_size": 32, "eval_samples": 200},
    "Digits-DCGAN-v0": _IMAGE,
    "Digits-ResNetWGANGP-v0": {**_IMAGE, "n_critic": 2},
    "MNIST-DCGAN-v0": _IMAGE,
    "MNIST-ResNetWGANGP-v0": {**_IMAGE, "n_critic": 2},
    "CIFAR10-DCGAN-v0": _IMAGE,
    "CIFAR10-ResNetWGANGP-v0": {**_IMAGE, "n_critic": 2},
    "ImageFolder-ResNetWGANGP-v0": {**_IMAGE, "n_critic": 2},
}

#: Every registered env id, and those of the games batched over seeds.
ENV_IDS = minmax_envs.list_envs()
BATCHED_IDS = [i for i in ENV_IDS if minmax_envs.spec(i).game_class().batched]


def seeds_for(env_id: str, n: int) -> int:
    """``n`` seeds for a batched game, 1 for a single-seed (image) game."""
    return n if env_id in BATCHED_IDS else 1


def small_env(env_id: str, num_seeds: int = 1, **kwargs):
    """The env ``env_id`` with :data:`SMALL_KWARGS` (overridden by ``kwargs``) over ``num_seeds`` seeds (one for a
    single-seed game)."""
    return minmax_envs.make(env_id, num_seeds=seeds_for(env_id, num_seeds), **{**SMALL_KWARGS[env_id], **kwargs})


def simultaneous_kwargs(env_id: str) -> dict:
    """Arguments that make every player move at every step (image games alternate by default)."""
    return {} if env_id in BATCHED_IDS else {"update": "simultaneous", "n_critic": 1}


# --- interrupted episodes ------------------------------------------------------------------------------------------

PROBE_CALLS = 3  # agent calls of run_episode's fingerprint probe, at the start of a checkpointed episode


class Interrupt(Exception):
    """A sweep killed mid-episode (raised by :func:`interrupting`)."""


def interrupting(tx, after: int):
    """``tx`` (a pure or an in-place agent) that raises :class:`Interrupt` after ``after`` calls of its
    ``update`` / ``step``: a sweep killed mid-episode."""
    calls = {"n": 0}
    in_place = isinstance(tx, agents.InPlaceTransformation)
    inner = tx.step if in_place else tx.update

    def call(*args):
        calls["n"] += 1
        if calls["n"] > after:
            raise Interrupt
        return inner(*args)

    return tx._replace(step=call) if in_place else tx._replace(update=call)


# --- crafted files: loading them runs code, which creates the marker file -------------------------------------------

def marker(tmp: Path) -> Path:
    """The file a crafted input creates when its code runs (for a file in ``tmp``)."""
    return tmp / "MARKER"


def plant_marker(path: str) -> None:
    """What a malicious checkpoint would call on load."""
    Path(path).write_text("code ran")


class ExecPickle:
    """A pickle whose loading runs code (``exec``)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


class CallPickle:
    """A pickle whose loading calls a function of ours (:func:`plant_marker`)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return plant_marker, (self.marker,)


class OpenPickle:
    """A pickle whose loading calls ``open(path, "w")``, creating the marker file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def crafted_sb3_zip(path: Path, marker: Path) -> Path:
    """An SB3-like controller zip whose ``data`` entry holds a ``:serialized:`` pickle that creates ``marker``."""
    payload = base64.b64encode(pickle.dumps(OpenPickle(marker))).decode()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": payload},
            "observation_space": {":type:": "<class 'gymnasium.spaces.box.Box'>", ":serialized:": payload}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", json.dumps(data))
        z.writestr("_stable_baselines3_version", "2.3.0")
    path.with_suffix(".json").write_text(json.dumps({"algorithm": "PPO"}))  # the settings file beside the zip
    return path


#: controller weights files that are malicious pickles: ``write(path, marker)``
MALICIOUS_WEIGHTS: dict[str, Callable[[Path, Path], Any]] = {
    "torch.save": lambda p, m: torch.save({"log_std": OpenPickle(m)}, p),
    "raw-pickle": lambda p, m: p.write_bytes(pickle.dumps({"log_std": OpenPickle(m)})),
}


# --- the standard checkpointed episode -------------------------------------------------------------------------------

def standard_env(**kwargs: Any):
    """The env of :func:`standard_run`: the Dirac GAN over two seeds."""
    return minmax_envs.make("DiracGAN-v0", num_seeds=2, **{"loss": "gan", "init_std": 0.5, **kwargs})


def standard_run(path: Path, agent: Any = None, env: Any = None, steps: int = 2):
    """The episode every bad checkpoint is offered to."""
    return minmax_envs.run_episode(env or standard_env(), agent or agents.sgda(0.1), steps=steps, seed=0,
                                   checkpoint=path)


# --- synthetic result records ------------------------------------------------------------------------------------

#: The evaluation steps of a synthetic record's curve.
STEPS = [0, 10, 20, 30]

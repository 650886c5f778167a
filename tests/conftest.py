"""Shared test configuration: small, fast arguments for every registered game, and offline test data."""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import agents
import minmax_envs


def _fake_image_data(root: Path) -> None:
    """A tiny CIFAR-10 (python version layout) and a tiny image folder, so that every id can be tested
    offline. Real data sets are used through the same loaders (see docs/images.md)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    cifar = root / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (40, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, 40).tolist()}
        with open(cifar / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f)
    for cls in ("a", "b"):
        d = root / "folder" / cls
        d.mkdir(parents=True)
        for j in range(12):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(d / f"{j}.png")


_TMP = Path(tempfile.mkdtemp(prefix="minmax_envs_tests_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_fake_image_data(_TMP)
os.environ["MINMAX_ENVS_CIFAR10"] = str(_TMP)
os.environ["MINMAX_ENVS_IMAGEFOLDER"] = str(_TMP / "folder")
os.environ["MINMAX_ENVS_CACHE"] = str(_TMP / "cache")

_IMAGE = {"width": 4, "resolution": 8, "batch_size": 8, "eval_samples": 32, "classifier_epochs": 1,
          "max_images": 160}

# CPU-sized arguments per env id; every registered id must have an entry (checked in test_registry).
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

ENV_IDS = minmax_envs.list_envs()
BATCHED_IDS = [i for i in ENV_IDS if minmax_envs.spec(i).game_class().batched]


def seeds_for(env_id: str, n: int) -> int:
    """``n`` seeds for a batched game, 1 for a single-seed (image) game."""
    return n if env_id in BATCHED_IDS else 1


def small_env(env_id: str, num_seeds: int = 1, **kwargs):
    return minmax_envs.make(env_id, num_seeds=seeds_for(env_id, num_seeds), **{**SMALL_KWARGS[env_id], **kwargs})


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


def simultaneous_kwargs(env_id: str) -> dict:
    """Arguments that make every player move at every step (image games alternate by default)."""
    return {} if env_id in BATCHED_IDS else {"update": "simultaneous", "n_critic": 1}


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests use tiny tensors: with several OpenMP threads on a busy 2-core machine, tiny ops spend
    more time synchronising threads than computing (10-100x slower here). Benchmarks set threads themselves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

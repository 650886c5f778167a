"""Shared test configuration: small, fast arguments for every registered game."""

from __future__ import annotations

import pytest
import torch

import minmax_envs

# CPU-sized arguments per env id; every registered id must have an entry (checked below).
SMALL_KWARGS: dict[str, dict] = {
    "TwoMode-v0": {"d": 40, "m_d": 3, "m_g": 3},
    "DiracGAN-v0": {"init_std": 0.5},
    "Bilinear-v0": {"n": 4},
    "MoG-Ring-v0": {"hidden": 16, "batch_size": 32, "eval_samples": 200},
    "MoG-Grid-v0": {"hidden": 16, "batch_size": 32, "eval_samples": 200},
}

ENV_IDS = minmax_envs.list_envs()


def small_env(env_id: str, num_seeds: int = 1, **kwargs):
    return minmax_envs.make(env_id, num_seeds=num_seeds, **{**SMALL_KWARGS[env_id], **kwargs})


def test_every_env_has_small_kwargs():
    assert sorted(SMALL_KWARGS) == ENV_IDS


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests use tiny tensors: with several OpenMP threads on a busy 2-core machine, tiny ops spend
    more time synchronising threads than computing (10-100x slower here). Benchmarks set threads themselves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

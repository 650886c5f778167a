"""Test configuration: offline test data and the fixtures (shared helpers are in tests/helpers.py)."""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch


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

@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests use tiny tensors: with several OpenMP threads on a busy 2-core machine, tiny ops spend
    more time synchronising threads than computing (10-100x slower here). Benchmarks set threads themselves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_warnings():
    """Fail on any warning raised inside the test body (Gymnasium / SB3 checkers warn, never raise)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert not messages, "unexpected warnings:\n" + "\n".join(messages)

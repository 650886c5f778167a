"""scripts/controller_figures.py train-return: a controller scored there as the trainer scored it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "minmax_envs" / "controllers_data" / "dirac-wgan-nk"


def _table(*args: str) -> dict[str, tuple[float, float, int]]:
    r = subprocess.run([sys.executable, "scripts/controller_figures.py", "train-return", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [line.strip("|").split("|") for line in r.stdout.splitlines() if line.startswith("| ")][1:]
    return {name.strip(): (float(mean), float(se), int(n)) for name, mean, se, n in rows}


def test_train_return_scores_a_shipped_controller_as_its_trainer_did_in_the_trainers_reward():
    """The shipped dirac-wgan-nk controller was trained and scored on ``--reward log-distance`` over 64 episodes per
    group: ``train-return`` with the same reward and episodes prints its ``trained_on.train_return``; constants are
    scored beside action 0, and the env's reward (the change of the distance) is another unit."""
    trained_on = json.loads(SHIPPED.with_suffix(".json").read_text())["trained_on"]
    assert trained_on["args"]["reward"] == "log-distance" and trained_on["args"]["train_episodes"] == 64
    decades = _table("dirac-wgan-nk", str(SHIPPED.with_suffix(".pt")), "--base", "sgda", "--episodes", "64",
                     "--reward", "log-distance", "--constants", "0.5")
    assert list(decades) == ["action 0", "action 0.5", str(SHIPPED.with_suffix(".pt"))]
    assert decades[str(SHIPPED.with_suffix(".pt"))][0] == pytest.approx(trained_on["train_return"], abs=5e-4)
    assert all(n == 64 for _, _, n in decades.values())
    assert decades["action 0.5"][0] > decades["action 0"][0]  # larger constant steps close more decades here
    change = _table("dirac-wgan-nk", "--base", "sgda", "--episodes", "64")
    assert change["action 0"][0] < decades["action 0"][0] / 2  # the distance closed, about 1.8, not 6 decades

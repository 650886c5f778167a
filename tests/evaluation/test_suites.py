"""Suites and tasks: the registered suites are valid and survive a JSON round trip; suite files are read
strictly (the messages are in tests/test_bad_inputs.py)."""

from __future__ import annotations

import json

import pytest

import minmax_envs
from minmax_envs.evaluation import Suite, Task, get_suite, list_suites
from tests.helpers import ENV_IDS, small_env


@pytest.mark.parametrize("name", list_suites())
def test_registered_suites_are_valid_and_round_trip_through_a_json_file(name, tmp_path):
    suite = get_suite(name)
    for task in suite.tasks:
        assert task.steps % task.eval_every == 0, (name, task.name)  # the last evaluation point is the end
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(suite.to_dict()))
    assert get_suite(str(path)) == suite


def test_a_suite_file_may_leave_out_every_field_with_a_default(tmp_path):
    path = tmp_path / "min.json"
    path.write_text(json.dumps({"name": "min", "version": 2, "tasks": [
        {"name": "b", "env_id": "Bilinear-v0", "steps": 20, "eval_every": 5, "metric": "distance",
         "higher_is_better": False, "target": 1}]}))
    suite = get_suite(str(path))
    assert suite == Suite("min", 2, (Task("b", "Bilinear-v0", 20, 5, "distance", False, 1.0),))
    assert suite.tasks[0].lr_range == (1e-3, 1.0) and suite.tasks[0].ratios == (1.0,)
    assert suite.agents == ("sgda", "nsgda", "adam", "adalr", "adadir")


def test_lists_from_json_become_tuples_and_integers_numbers():
    t = Task("b", "Bilinear-v0", 20, 20, "distance", False, 1, lr_range=[1, 2], ratios=[1, 0.5])
    assert t.lr_range == (1.0, 2.0) and t.ratios == (1.0, 0.5)
    assert isinstance(t.target, float) and isinstance(t.lr_range[0], float)  # one record key for 1 and 1.0
    assert Suite("s", 1, [t], agents=["sgda"]).tasks == (t,)


# one env id per game class: what each game's metrics() returns against what it declares
_ONE_PER_GAME = {minmax_envs.spec(i).entry_point: i for i in reversed(ENV_IDS)}


@pytest.mark.parametrize("env_id", sorted(_ONE_PER_GAME.values()))
def test_every_game_declares_the_scalar_metrics_its_tasks_may_score(env_id):
    """Suites check a task's metric and target_metric against ``Game.scalar_metrics`` when they are read, so the
    declaration must be what ``metrics()`` returns as one number per seed (``inception_fid`` is optional)."""
    env = small_env(env_id, 2)
    env.reset(seed=0)
    scalar = {k for k, v in env.metrics().items() if v.ndim == 1} - {"diverged"}
    game = minmax_envs.spec(env_id).game_class()
    assert scalar <= set(game.scalar_metrics) and game.quality_metric in game.scalar_metrics
    assert set(game.scalar_metrics) - scalar <= {"inception_fid"}



def test_the_catalogue_registers_the_shipped_suites_and_suites_still_names_its_constants():
    from minmax_envs.evaluation import catalogue, suites

    assert {"quick", "paper", "balance"} <= set(suites.list_suites())
    assert suites.get_suite("quick").name == "quick"
    assert suites.NK_ADAM == catalogue.NK_ADAM and suites.BALANCE_CONTROLLERS == catalogue.BALANCE_CONTROLLERS
    with pytest.raises(AttributeError, match="has no attribute 'NOT_A_NAME'"):
        suites.NOT_A_NAME  # noqa: B018

"""Suites and tasks: the registered suites are valid and survive a JSON round trip; suite files are read
strictly (the messages are in tests/test_bad_inputs.py)."""

from __future__ import annotations

import json

import pytest

from minmax_envs.evaluation import Suite, Task, get_suite, list_suites


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

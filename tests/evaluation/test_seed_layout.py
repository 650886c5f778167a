"""A stored record is a function of its configuration and seed alone: however a sweep is sized, split,
interrupted or resumed, every record it stores is identical (outcome fields) to the record of one
uninterrupted run, on every small game in float32 (the canonical seed layout of the protocol)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import minmax_envs
from minmax_envs.evaluation import ResultStore, Suite, Task, bench
from minmax_envs.evaluation.protocol import Unit, run_unit
from tests.helpers import SMALL_KWARGS

# Fields that say what an episode did (not when or how fast it ran).
OUTCOME = ("final", "value", "success", "diverged", "divergence_step", "curve", "time_to_target", "config",
           "config_index", "seed", "seed_block")


def _task(name: str, env_id: str, metric: str, higher: bool, target: float, kwargs: dict, steps: int = 40,
          **extra) -> Task:
    return Task(name, env_id, steps, 10, metric, higher, target,
                {**SMALL_KWARGS[env_id], **kwargs, "dtype": "float32"}, **extra)


# Sizes where batching matters: with the old layout (one batch of whatever seeds a run asked for), a seed of
# dirac-gan-nk run in a batch of 1 or 5 ends 1e-6 away from the same seed in a batch of 8, two-mode 1e-5 away.

TASKS = (
    _task("dirac-gan-nk", "DiracGAN-v0", "distance", False, 0.3, {"loss": "gan", "regularizer": "nk"}, steps=200,
          lr_range=(0.05, 0.5)),
    _task("bilinear", "Bilinear-v0", "distance", False, 1.0, {}, lr_range=(0.02, 0.2)),
    _task("two-mode", "TwoMode-v0", "mode_alignment", True, 2.0, {"d": 100}, target_metric="modes_recovered",
          lr_range=(0.05, 0.5), ratios=(0.5,)),
    _task("mog-ring", "MoG-Ring-v0", "modes_covered", True, 4.0, {}, lr_range=(1e-3, 1e-2)),
    _task("mog-grid", "MoG-Grid-v0", "modes_covered", True, 10.0, {}, lr_range=(1e-3, 1e-2)),
)
SUITE = Suite("layout", 1, TASKS, budget=2, tune_seeds=4, eval_seeds=8, agents=("adam",))


def _outcomes(directory) -> dict[str, dict]:
    return {r["key"]: {k: r.get(k) for k in OUTCOME} for r in ResultStore(directory).records()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    bench(SUITE, out=out, progress=False)
    records = _outcomes(out)
    assert len(records) == len(TASKS) * (2 * 4 + 8)
    return out, records


def _assert_same(directory, reference: dict[str, dict]) -> None:
    got = _outcomes(directory)
    assert got.keys() == reference.keys()
    differ = [(got[k]["seed"], f) for k in reference for f in OUTCOME if got[k][f] != reference[k][f]]
    assert not differ, f"records differ from the uninterrupted run: {differ[:10]}"


def test_a_run_that_asks_for_fewer_seeds_first_stores_the_same_records(uninterrupted, tmp_path):
    """The issue's 15-then-16 case: asking for 3 held-out seeds first, then for all of them, stores what one
    run for all of them stores."""
    full, reference = uninterrupted
    bench(SUITE, out=tmp_path, seeds=3, progress=False)
    bench(SUITE, out=tmp_path, progress=False)
    _assert_same(tmp_path, reference)


def test_a_sweep_split_by_task_and_by_seeds_stores_the_same_records(uninterrupted, tmp_path):
    full, reference = uninterrupted
    names = [t.name for t in TASKS]
    bench(SUITE, out=tmp_path, tasks=names[:2], seeds=5, progress=False)
    bench(SUITE, out=tmp_path, tasks=names[2:], seeds=7, progress=False)
    bench(SUITE, out=tmp_path, progress=False)
    _assert_same(tmp_path, reference)


def test_resuming_after_a_torn_last_line_and_lost_records_stores_the_same_records(uninterrupted, tmp_path):
    """A crash mid-write (a torn last line) and records lost from the middle of a block: the resumed sweep
    recomputes exactly the missing seeds, bit for bit."""
    full, reference = uninterrupted
    lines = (full / "results.jsonl").read_text().splitlines(keepends=True)
    kept = [ln for i, ln in enumerate(lines) if i % 3 != 1]  # drop every third record: partial blocks
    (tmp_path / "results.jsonl").write_text("".join(kept[:-1]) + kept[-1][: len(kept[-1]) // 2])
    shutil.copy(full / "suite.json", tmp_path / "suite.json")
    summary = bench(SUITE, out=tmp_path, progress=False)
    assert summary.skipped == len(kept) - 1
    _assert_same(tmp_path, reference)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_a_seed_is_computed_in_its_block_whatever_else_is_asked(task):
    """Recording one seed alone runs its whole block: the same numbers as recording the whole block."""
    config = {"lr_d": task.lr_range[0], "lr_g": task.lr_range[0] * task.ratios[0]}
    whole = Unit("layout", 1, task, "adam", config, 0, "eval", tuple(range(4, 8)), block=4)
    alone = Unit("layout", 1, task, "adam", config, 0, "eval", (6,), block=4)
    assert alone.starts == whole.starts == [4]
    (one,) = run_unit(alone)
    (same,) = [r for r in run_unit(whole) if r["seed"] == 6]
    assert one["key"] == same["key"]
    assert {k: one[k] for k in OUTCOME} == {k: same[k] for k in OUTCOME}


def test_the_key_holds_every_input_that_changes_an_episode():
    task = TASKS[1]
    config = {"lr_d": 0.1, "lr_g": 0.1}

    def key(**changes) -> str:
        fields = {"task": task, "config": config, "block": 8, "device": "cpu", "phase": "eval", **changes}
        return Unit("layout", 1, fields["task"], "adam", fields["config"], 0, fields["phase"],
                    (0,) if fields["phase"] == "eval" else (10_000,), fields["block"], fields["device"]).key(
            0 if fields["phase"] == "eval" else 10_000)

    base = key()
    variants = {
        "env_kwargs": key(task=replace(task, env_kwargs={**task.env_kwargs, "n": 2})),
        "target": key(task=replace(task, target=0.5)),
        "metric": key(task=replace(task, metric="diverged")),
        "eval_every": key(task=replace(task, eval_every=20)),
        "steps": key(task=replace(task, steps=80)),
        "schedule": key(task=replace(task, schedule="linear_decay")),
        "config": key(config={"lr_d": 0.1, "lr_g": 0.05}),
        "block": key(block=4),
        "device": key(device="meta"),
        "phase": key(phase="tune"),
    }
    assert all(v != base for v in variants.values()), [k for k, v in variants.items() if v == base]
    assert key(device="cpu") == base and key(task=replace(task, description="another text")) == base


def test_a_directory_of_another_suite_definition_is_refused(tmp_path):
    small = Suite("layout", 1, TASKS[1:2], budget=1, tune_seeds=1, eval_seeds=2, agents=("sgda",))
    bench(small, out=tmp_path, progress=False)
    changed = replace(small, tasks=(replace(TASKS[1], env_kwargs={"n": 2}),))
    with pytest.raises(ValueError, match=r"another definition of suite 'layout' \(differs in "
                                         r"tasks\.bilinear\.env_kwargs\.dtype: 'float32' -> None"):
        bench(changed, out=tmp_path, progress=False)
    (tmp_path / "suite.json").unlink()  # lost: the records name their suite (tests/test_bad_inputs.py: recovery)
    with pytest.raises(ValueError, match=r"has results but its suite.json is missing, and the records are not of "
                                         r"suite 'layout' version 1 \(a record of task 'bilinear' has env_kwargs"):
        bench(changed, out=tmp_path, progress=False)
    # the same definition resumes (nothing to do), also with edited descriptions (they change no record)
    (tmp_path / "suite.json").write_text(json.dumps(small.to_dict()))
    assert bench(small, out=tmp_path, progress=False).ran == 0
    reworded = replace(small, description="new words", tasks=(replace(TASKS[1], description="new words"),))
    assert bench(reworded, out=tmp_path, progress=False).ran == 0


def test_batched_slots_follow_the_same_streams_as_single_seeds():
    """What the env itself promises outside the protocol: slot i of a batch starts from the parameters and
    data of a single-seed env with seed s + i (the same random streams); later steps may differ in the last
    bits, since kernels round differently for different batch sizes."""
    batch = minmax_envs.make("MoG-Ring-v0", num_seeds=4, **SMALL_KWARGS["MoG-Ring-v0"])
    obs, _ = batch.reset(seed=10)
    for i in range(4):
        one = minmax_envs.make("MoG-Ring-v0", num_seeds=1, **SMALL_KWARGS["MoG-Ring-v0"])
        single, _ = one.reset(seed=10 + i)
        for pl in minmax_envs.PLAYERS:
            for k, v in single[pl].params.items():
                assert torch.equal(obs[pl].params[k][i], v[0])


def test_a_retrained_controller_at_the_same_path_gets_new_keys(tmp_path):
    """``learned:PATH`` records are keyed by a hash of the controller's files, not just by the path."""
    src = Path(__file__).resolve().parents[2] / "docs" / "controllers" / "two-mode-small"
    for suffix in (".pt", ".json"):
        shutil.copy(src / f"controller{suffix}", tmp_path / f"c{suffix}")
    name = f"learned:{tmp_path / 'c.pt'}"

    def key() -> str:  # as a new sweep sees it: a new unit
        return Unit("layout", 1, TASKS[2], name, {"lr_d": 0.1, "lr_g": 0.05}, 0, "eval", (0,), 8).key(0)

    before = key()
    assert key() == before  # stable while the files stay the same
    weights = torch.load(tmp_path / "c.pt", weights_only=True)
    first = next(iter(weights))
    weights[first] = weights[first] + 1.0
    torch.save(weights, tmp_path / "c.pt")
    assert key() != before

"""The results store: the record schema, torn and damaged lines (skipped with a warning, set aside on the next
write), atomic appends. Bad inputs with their messages are in tests/test_bad_inputs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from minmax_envs._files import Folder
from minmax_envs.evaluation import ResultStore, Suite, Task, bench
from minmax_envs.evaluation.protocol import Unit, claimed, task_fields
from minmax_envs.evaluation.record import (
    FIELDS,
    IDENTITY,
    OPTIONAL_FIELDS,
    RECORD_FIELDS,
    TASK_FIELDS,
    build_record,
    validate_record,
)
from minmax_envs.evaluation.store import CLAIMS_DIR, DAMAGED_FILE, RESULTS_FILE, DamagedRecordWarning, episode_key
from tests.evaluation.records import make_record


def rec(seed: int, **fields):
    r = make_record("dirac", "DiracGAN-v0", "sgda", seed)
    r.update(fields)
    return r


def read(store):
    """Records and the damaged-line warnings of one read."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(store.records())
    return records, [str(w.message) for w in caught if issubclass(w.category, DamagedRecordWarning)]


def test_the_schema_is_what_bench_writes(tmp_path):
    task = Task("ring", "MoG-Ring-v0", 4, 2, "modes_covered", True, 8.0,
                {"hidden": 8, "batch_size": 16, "eval_samples": 50}, lr_range=(1e-3, 1e-2))
    bench(Suite("schema", 1, (task,), budget=2, tune_seeds=1, eval_seeds=2, agents=("sgda",)), out=tmp_path,
          progress=False)
    records, warned = read(ResultStore(tmp_path))
    assert len(records) == 2 * 1 + 2 and not warned
    for r in records:
        assert set(RECORD_FIELDS) <= set(r) <= set(RECORD_FIELDS) | set(OPTIONAL_FIELDS)
        assert validate_record(r) is r
        assert list(r) == [name for name in FIELDS if name in r]  # written in the declared order
    assert any("samples" in r for r in records)


def test_the_key_is_the_declared_identity_and_the_stored_identity_fields_are_the_units():
    task = Task("ring", "MoG-Ring-v0", 4, 2, "modes_covered", True, 8.0, {"hidden": 8}, lr_range=(1e-3, 1e-2))
    unit = Unit("s", 1, task, "sgda", {"lr_d": 0.1, "lr_g": 0.1}, 0, "eval", (0, 1), block=2, device="cpu")
    identity = unit.identity(1)
    assert set(identity) == set(IDENTITY) - {"family"}  # family: only for a task with an instance family
    assert unit.key(1) == episode_key(identity)
    assert tuple(task_fields(task)) == TASK_FIELDS
    stored = {name for name, f in FIELDS.items() if f.role in ("identity", "task")} - {"family"}
    assert set(unit.described(1)) == stored


def test_build_record_lays_out_the_declared_fields_and_names_what_is_wrong():
    r = rec(0)
    shuffled = dict(reversed(list(r.items())))
    assert list(build_record(shuffled)) == list(r) == [name for name in FIELDS if name in r]
    del shuffled["value"]
    with pytest.raises(ValueError, match=r"^a record has undeclared field\(s\) extra; lacks field\(s\) value "):
        build_record({**shuffled, "extra": 1})


def test_validate_record_names_every_missing_field_and_each_wrong_type():
    r = rec(0)
    del r["value"], r["curve"]
    r["seed"], r["diverged"], r["seed_block"] = "0", 0, 0
    with pytest.raises(ValueError) as e:
        validate_record(r)
    assert str(e.value) == ('missing field(s) value, curve; seed must be an integer, got "0"; diverged must be true '
                            'or false, got 0; seed_block must be a positive integer, got 0')
    validate_record({**rec(0), "extra": {"any": "thing"}})  # other fields are allowed


def test_a_torn_last_line_is_skipped_silently_and_set_aside_on_append(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(0), rec(1)])
    with open(store.path, "a") as f:
        f.write(json.dumps(rec(2))[:50])  # a crash in the middle of a write
    records, warned = read(store)
    assert [r["seed"] for r in records] == [0, 1] and not warned
    store.append([rec(2), rec(0, value=9.0)])
    records, warned = read(store)
    assert [(r["seed"], r["value"]) for r in records] == [(0, 1.0), (1, 1.0), (2, 1.0)] and not warned
    assert all(validate_record(json.loads(x)) for x in store.path.read_text().splitlines())
    (aside,) = map(json.loads, (tmp_path / DAMAGED_FILE).read_text().splitlines())
    assert aside["line"] == 3 and aside["problem"].startswith("torn last line, an interrupted write (not JSON")
    assert aside["text"] == json.dumps(rec(2))[:50]


def test_a_whole_last_record_without_its_newline_is_read_and_kept(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(0)])
    with open(store.path, "a") as f:
        f.write(json.dumps(rec(1)))
    assert [r["seed"] for r in read(store)[0]] == [0, 1]
    store.append([rec(2)])
    assert [r["seed"] for r in read(store)[0]] == [0, 1, 2]
    assert not (tmp_path / DAMAGED_FILE).exists()


def test_damaged_lines_warn_once_per_read_and_move_aside_on_the_next_append(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(0)])
    with open(store.path, "ab") as f:
        f.write(b"\n".join([b"[1, 2]", b"\xff", b"", json.dumps(rec(1)).encode(), *[b"{"] * 6]) + b"\n")
    records, warned = read(store)
    assert [r["seed"] for r in records] == [0, 1]
    (message,) = warned
    assert message.startswith(f"{store.path}: skipped 8 damaged line(s) (line 2: not a record (a record is a JSON "
                              "object, got an array: [1, 2]); line 3: invalid UTF-8 (byte 0xff at column 1); line 6: ")
    assert "line 8: not JSON" in message and "; and 3 more)" in message and "line 9" not in message
    assert read(store)[1] == [message]  # every read says so until the next write
    store.append([rec(2)])
    records, warned = read(store)
    assert [r["seed"] for r in records] == [0, 1, 2] and not warned
    assert [json.loads(x)["seed"] for x in store.path.read_text().splitlines()] == [0, 1, 2]  # blank line dropped
    aside = [json.loads(x) for x in (tmp_path / DAMAGED_FILE).read_text().splitlines()]
    assert [a["line"] for a in aside] == [2, 3, 6, 7, 8, 9, 10, 11]
    assert aside[1]["text"] == "\\xff" and aside[0]["text"] == "[1, 2]"


def test_damage_written_after_a_clean_append_is_found_by_the_next_one(tmp_path):
    """The store reads only what is new since it last knew the file clean, and still finds damage there."""
    store, other = ResultStore(tmp_path), ResultStore(tmp_path)
    store.append([rec(0)])
    other.append([rec(1)])
    with open(store.path, "ab") as f:
        f.write(b'{"key": "abc"}\n')
    store.append([rec(2)])
    other.append([rec(3)])
    records, warned = read(ResultStore(tmp_path))
    assert [r["seed"] for r in records] == [0, 1, 2, 3] and not warned
    (aside,) = map(json.loads, (tmp_path / DAMAGED_FILE).read_text().splitlines())
    assert aside["line"] == 3 and aside["problem"].startswith("not a record (missing field(s) suite, ")


def test_an_invalid_record_is_refused_and_nothing_is_written(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(0)])
    before = store.path.read_bytes()
    with pytest.raises(ValueError, match="not an episode record: phase must be \"tune\" or \"eval\", got \"test\""):
        store.append([rec(1), rec(2, phase="test")])
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        store.append([rec(3, value=float("nan"))])
    assert store.path.read_bytes() == before


def test_a_key_already_stored_is_read_once(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(0, value=1.0)])
    store.append([rec(0, value=2.0), rec(1)])
    assert [(r["seed"], r["value"]) for r in store.records()] == [(0, 1.0), (1, 1.0)]
    assert len(store) == 2 and store.keys() == {rec(0)["key"], rec(1)["key"]}


# --- two writers on one directory: units are claimed ---------------------------------------------------------------

CLAIMS_TASK = Task("bilinear", "Bilinear-v0", 20, 10, "distance", False, 1.0, {"n": 3}, lr_range=(0.03, 0.3))
CLAIMS_SUITE = Suite("claims", 1, (CLAIMS_TASK,), budget=1, tune_seeds=1, eval_seeds=3, agents=("sgda", "adam"))


def _lines(out):
    return [json.loads(x) for x in (out / RESULTS_FILE).read_text().splitlines()]


def test_a_unit_claimed_by_another_writer_is_left_to_it_and_never_run_twice(tmp_path):
    """While another writer holds a unit's claim, bench runs the other units, then waits; when the other writer has
    stored the unit's records and released its claim, bench finds them and does not run the unit again."""
    reference = tmp_path / "reference"
    bench(CLAIMS_SUITE, out=reference, progress=False)
    theirs = [r for r in ResultStore(reference).records() if r["agent"] == "sgda"]
    unit = Unit.of_records(CLAIMS_SUITE, theirs)
    out = tmp_path / "out"
    out.mkdir()
    holding, release = threading.Event(), threading.Event()

    def other_writer():
        with claimed(Folder(out), unit, wait=False) as mine:
            assert mine
            holding.set()
            release.wait(60)
            ResultStore(out).append(theirs)  # its records land while it still holds the claim

    other = threading.Thread(target=other_writer)
    other.start()
    assert holding.wait(60)
    done = {}
    ours = threading.Thread(target=lambda: done.update(summary=bench(CLAIMS_SUITE, out=out, progress=False)))
    ours.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(r["agent"] == "adam" for r in ResultStore(out).records()):
        time.sleep(0.05)  # bench runs the unclaimed unit first
    assert ours.is_alive(), "bench must wait for the claimed unit"
    release.set()
    other.join(60)
    ours.join(120)
    summary = done["summary"]
    assert (summary.ran, summary.skipped) == (1, 3)
    lines = _lines(out)
    assert len(lines) == len({r["key"] for r in lines}) == 6
    assert not list((out / CLAIMS_DIR).iterdir())  # claims are removed when their unit is done


def test_the_claim_of_a_killed_writer_is_released(tmp_path):
    """A claim is a flock: the kernel releases it when its process dies, so a killed writer never locks a sweep out."""
    reference = tmp_path / "reference"
    bench(CLAIMS_SUITE, out=reference, progress=False)
    unit = Unit.of_records(CLAIMS_SUITE, [r for r in ResultStore(reference).records() if r["agent"] == "sgda"])
    out = tmp_path / "out"
    (out / CLAIMS_DIR).mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'ab'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)",
                               str(out / CLAIMS_DIR / f"{unit.claim}.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    summary = bench(CLAIMS_SUITE, out=out, progress=False)
    assert summary.ran == 2 and len(_lines(out)) == 6


def test_two_concurrent_writers_share_the_units(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(Suite("share", 1, (CLAIMS_TASK,), budget=4, tune_seeds=2, eval_seeds=2,
                                      agents=("sgda", "adam", "nsgda")).to_dict()))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "minmax_envs", "--threads", "1", "bench", "--suite", str(suite), "--out",
           str(tmp_path / "out"), "--no-report", "--no-progress"]
    writers = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    said = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], said
    lines = _lines(tmp_path / "out")
    assert len(lines) == len({r["key"] for r in lines}) == 3 * 4 * 2 + 3 * 2  # every episode stored once
    ran = [int(s.strip().splitlines()[-1].split(" runs done")[0]) for s in said]
    assert sum(ran) == 3 * 4 + 3  # every unit run by one of the two


def test_suite_json_is_written_again_only_when_it_changes(tmp_path):
    bench(CLAIMS_SUITE, out=tmp_path, progress=False)
    path = tmp_path / "suite.json"
    first = path.stat()
    bench(CLAIMS_SUITE, out=tmp_path, progress=False)  # a resume with the same options: the file is left alone
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    bench(CLAIMS_SUITE, out=tmp_path, seeds=2, progress=False)  # other options: replaced by a new file
    assert path.stat().st_ino != first.st_ino and json.loads(path.read_text())["run"]["seeds"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

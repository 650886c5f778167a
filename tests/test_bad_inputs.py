"""Every bad input a user can give, in one table: each gives a clear one-line message, never a traceback.

A row is ``(id, trigger, message regex)``, made by one of three helpers:

* ``cli(id, argv, message, setup=None)``: ``minmax ARGV`` exits with status 2 and ``minmax: error: MESSAGE`` on
  stderr (``{tmp}`` in an argument is the test's temporary directory; ``setup(tmp)`` prepares files first);
* ``api(id, fn, message)``: ``fn(tmp)`` raises a ``ValueError`` matching ``message``;
* ``damaged(id, transform, message)``: line 2 of a finished sweep's ``results.jsonl`` is replaced by
  ``transform(line)`` (bytes, without the newline). ``minmax report`` still works and warns once, naming the
  file, the line and ``message``; ``minmax bench`` then resumes: it runs the lost episode again, the damaged line
  moves to ``results.damaged.jsonl`` and every record is back.

Append new rows (checkpoints, controllers, ...) to ``ROWS``; the three tests at the end run them all.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minmax_envs.cli import main
from minmax_envs.evaluation import ResultStore, Suite, Task
from minmax_envs.evaluation.store import DAMAGED_FILE, RESULTS_FILE, DamagedRecordWarning, validate_record


@dataclass(frozen=True)
class Row:
    id: str
    trigger: list[str] | Callable[[Path], Any] | Damage
    message: str
    setup: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Damage:
    """How line 2 of a results file is damaged: the original line (bytes, no newline) -> the damaged one."""

    transform: Callable[[bytes], bytes]


def cli(id: str, argv: list[str], message: str, setup: Callable[[Path], None] | None = None) -> Row:
    return Row(id, argv, message, setup)


def api(id: str, fn: Callable[[Path], Any], message: str) -> Row:
    return Row(id, fn, message)


def damaged(id: str, transform: Callable[[bytes], bytes], message: str) -> Row:
    return Row(id, Damage(transform), message)


# --- inputs the rows use -------------------------------------------------------------------------------------------

RUN = ["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "5"]
BENCH = ["bench", "--suite", "quick", "--out", "{tmp}/out", "--no-progress", "--no-plots"]

TASK = {"name": "t", "env_id": "Bilinear-v0", "steps": 30, "eval_every": 10, "metric": "distance",
        "higher_is_better": False, "target": 1.0, "env_kwargs": {"n": 3}}
SUITE = {"name": "s", "version": 1, "tasks": [TASK], "budget": 1, "eval_seeds": 3, "agents": ["sgda"]}


def suite(**fields: Any) -> Callable[[Path], Suite]:
    """``Suite.from_dict`` of :data:`SUITE` with ``fields`` replaced."""
    return lambda tmp: Suite.from_dict({**SUITE, **fields})


def task(**fields: Any) -> Callable[[Path], Suite]:
    """``Suite.from_dict`` of :data:`SUITE` whose task has ``fields`` replaced."""
    return lambda tmp: Suite.from_dict({**SUITE, "tasks": [{**TASK, **fields}]})


def write(name: str, content: bytes | str | dict) -> Callable[[Path], None]:
    """A setup writing ``tmp/name`` (a dict as JSON)."""
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(content) if isinstance(content, dict) else content
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def mkdir(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir(parents=True)


def edit(field: str, value: Any = None, *, drop: bool = False) -> Callable[[bytes], bytes]:
    """A damage: the record with ``field`` set to ``value`` (or dropped), as JSON."""
    def transform(line: bytes) -> bytes:
        rec = json.loads(line)
        if drop:
            del rec[field]
        else:
            rec[field] = value
        return json.dumps(rec).encode()
    return transform


ROWS: list[Row] = [
    # --- minmax run: --arg colliding with an option of its own, and other bad options
    cli("run-arg-num_seeds", RUN + ["--arg", "num_seeds=3"], r"--arg num_seeds: not an environment argument; use "
        r"--seeds instead"),
    cli("run-arg-seeds", RUN + ["--arg", "seeds=3"], r"--arg seeds: .*use --seeds instead"),
    cli("run-arg-steps", RUN + ["--arg", "steps=3"], r"--arg steps: .*use --steps instead"),
    cli("run-arg-device", RUN + ["--arg", "device=cpu"], r"--arg device: .*use --device instead"),
    cli("run-arg-seed", RUN + ["--arg", "seed=1"], r"--arg seed: .*use --seed instead"),
    cli("run-arg-agent", RUN + ["--arg", "agent=adam"], r"--arg agent: .*use --agent instead"),
    cli("run-arg-lr_d", RUN + ["--arg", "lr_d=0.1"], r"--arg lr_d: .*use --lr instead"),
    cli("run-arg-lr_g", RUN + ["--arg", "lr_g=0.1"], r"--arg lr_g: .*use --lr-g instead"),
    cli("run-arg-env_id", RUN + ["--arg", "env_id=Bilinear-v0"], r"--arg env_id: .*use the ENV argument instead"),
    cli("run-arg-count", RUN + ["--arg", "count=2"], r"--arg count: .*use --seeds instead"),
    cli("run-arg-eval_every", RUN + ["--arg", "eval_every=2"], r"--arg eval_every: not an environment argument"),
    cli("run-arg-twice", RUN + ["--arg", "loss=gan", "--arg", "loss=wgan"],
        r"--arg loss given twice \('gan' and 'wgan'\)"),
    cli("run-arg-no-key", RUN + ["--arg", "=3"], r"--arg expects key=value with a non-empty key, got '=3'"),
    cli("run-arg-no-value", RUN + ["--arg", "loss"], r"--arg expects key=value, got 'loss'"),
    cli("run-arg-unknown", RUN + ["--arg", "lossy=wgan"], r"DiracGAN-v0 got unknown argument\(s\) \['lossy'\]"),
    cli("run-seeds-0", RUN + ["--seeds", "0"], r"--seeds must be an integer >= 1, got 0"),
    cli("run-seeds-negative", RUN + ["--seeds", "-2"], r"--seeds must be an integer >= 1, got -2"),
    cli("run-seed-negative", RUN + ["--seed", "-1"], r"--seed must be an integer >= 0, got -1"),
    cli("run-steps-negative", ["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "-3"],
        r"--steps must be an integer >= 0, got -3"),
    cli("run-steps-not-int", ["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "x"],
        r"argument --steps: invalid int value: 'x'"),
    cli("run-lr-negative", ["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "-1", "--steps", "5"], r"lr must be"),
    cli("run-lr-nan", ["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "nan", "--steps", "5"],
        r"lr must be a finite number"),
    cli("run-device-unknown", RUN + ["--device", "tpu"],
        r"--device 'tpu' is not a device; use cpu, cuda, cuda:N or mps"),
    cli("run-device-meta", RUN + ["--device", "meta"], r"--device 'meta' is not a device"),
    cli("run-device-missing-gpu", RUN + ["--device", "cuda:99"],
        r"--device 'cuda:99': (CUDA is not available here|this machine has \d+ CUDA device)"),
    cli("run-env-unknown", ["run", "Nope-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "2"],
        r"unknown environment id 'Nope-v0'"),
    cli("run-agent-unknown", ["run", "DiracGAN-v0", "--agent", "sdga", "--lr", "0.1", "--steps", "2"],
        r"unknown agent 'sdga'"),
    cli("threads-0", ["--threads", "0", "list"], r"--threads must be >= 1, got 0"),
    cli("list-unknown", ["list", "nope"], r"minmax list: unknown 'nope'; choose from envs, agents, suites"),

    # --- minmax bench: options
    cli("bench-agents-empty", BENCH + ["--agents", ""], r"--agents '' names nothing"),
    cli("bench-agents-commas", BENCH + ["--agents", ",,"], r"--agents ',,' names nothing"),
    cli("bench-agents-twice", BENCH + ["--agents", "sgda,adam,sgda"], r"--agents names sgda more than once"),
    cli("bench-agents-unknown", BENCH + ["--agents", "sgda,magic"], r"unknown agent 'magic'"),
    cli("bench-tasks-empty", BENCH + ["--tasks", ""], r"--tasks '' names nothing"),
    cli("bench-tasks-twice", BENCH + ["--tasks", "bilinear,bilinear"], r"--tasks names bilinear more than once"),
    cli("bench-tasks-unknown", BENCH + ["--tasks", "nope"], r"suite 'quick' has no task 'nope'"),
    cli("bench-seeds-negative", BENCH + ["--seeds", "-1"], r"--seeds must be an integer >= 1, got -1"),
    cli("bench-tune-seeds-0", BENCH + ["--tune-seeds", "0"], r"--tune-seeds must be an integer >= 1, got 0"),
    cli("bench-budget-0", BENCH + ["--budget", "0"], r"--budget must be an integer >= 1, got 0"),
    cli("bench-budget-not-a-multiple", ["bench", "--suite", "two-mode", "--budget", "4", "--out", "{tmp}/out"],
        r"budget 4 must be a multiple of the 3 step-size ratios of task 'correlated-modes'"),
    cli("bench-device-unknown", BENCH + ["--device", "tpu"], r"--device 'tpu' is not a device"),
    cli("bench-backend-unknown", BENCH + ["--backend", "spark"], r"invalid choice: 'spark'"),
    cli("bench-address-local", BENCH + ["--address", "ray://x:1"], r"address is only used with backend='ray'"),
    cli("bench-suite-unknown", ["bench", "--suite", "nope"], r"unknown suite 'nope'; registered suites: "),
    cli("bench-out-is-a-file", ["bench", "--suite", "quick", "--out", "{tmp}/f"],
        r"results directory '.*/f' exists and is not a directory", setup=write("f", "x")),
    cli("bench-out-under-a-file", ["bench", "--suite", "quick", "--out", "{tmp}/f/sub"], r"Not a directory",
        setup=write("f", "x")),
    cli("bench-results-is-a-dir", ["bench", "--suite", "quick", "--out", "{tmp}/out"],
        rf"results file '.*/out/{RESULTS_FILE}' is a directory", setup=mkdir(f"out/{RESULTS_FILE}")),

    # --- minmax bench: suite files
    cli("suite-file-missing", ["bench", "--suite", "{tmp}/none.json"], r"suite file '.*/none.json' does not exist"),
    cli("suite-file-is-a-dir", ["bench", "--suite", "{tmp}/d.json"], r"suite file '.*/d.json' is a directory",
        setup=mkdir("d.json")),
    cli("suite-file-bad-json", ["bench", "--suite", "{tmp}/s.json"],
        r"suite file '.*/s.json' is not valid JSON: Expecting .* at line 1 column", setup=write("s.json", "{nope")),
    cli("suite-file-bad-utf8", ["bench", "--suite", "{tmp}/s.json"], r"suite file '.*/s.json' is not UTF-8 text",
        setup=write("s.json", b'{"name": "\xff"}')),
    cli("suite-file-not-an-object", ["bench", "--suite", "{tmp}/s.json"],
        r"suite file '.*/s.json' is not a valid suite: a suite is a JSON object", setup=write("s.json", "[1, 2]")),
    cli("suite-file-eval-every", ["bench", "--suite", "{tmp}/s.json", "--out", "{tmp}/out"],
        r"suite file '.*/s.json' is not a valid suite: suite 's': task 't': eval_every 7 must divide steps 30",
        setup=write("s.json", {**SUITE, "tasks": [{**TASK, "eval_every": 7}]})),

    # --- suites (Suite.from_dict, as read from a suite file)
    api("suite-lr_range-3-values", task(lr_range=[1e-3, 1e-2, 1e-1]),
        r"suite 's': task 't': lr_range must be \[low, high\], two numbers .*got \[0.001, 0.01, 0.1\]"),
    api("suite-lr_range-number", task(lr_range=0.1), r"task 't': lr_range must be \[low, high\].*got 0.1"),
    api("suite-lr_range-reversed", task(lr_range=[1.0, 0.1]), r"task 't': lr_range\[1\] must be a finite number "
        r"in \[1.0, inf\), got 0.1"),
    api("suite-agents-string", suite(agents="sgda"),
        r"suite 's': agents must be a non-empty list of agent names, got 'sgda' \(a list: \['sgda'\]\)"),
    api("suite-agents-empty", suite(agents=[]), r"suite 's': agents must be a non-empty list"),
    api("suite-agents-not-strings", suite(agents=["sgda", 3]), r"suite 's': agents\[1\] must be a non-empty string"),
    api("suite-tasks-number", suite(tasks=5), r"suite 's': tasks must be a list of task objects, got 5"),
    api("suite-tasks-empty", suite(tasks=[]), r"suite 's' has no tasks"),
    api("suite-task-not-object", suite(tasks=["dirac"]), r"suite 's': tasks\[0\] must be a task object"),
    api("suite-higher_is_better-string", task(higher_is_better="no"),
        r"task 't': higher_is_better must be a bool \(true or false\), got 'no'"),
    api("suite-higher_is_better-int", task(higher_is_better=1), r"higher_is_better must be a bool .*got 1"),
    api("suite-eval_every-not-dividing", task(eval_every=7), r"suite 's': task 't': eval_every 7 must divide steps 30"),
    api("task-eval_every-not-dividing", lambda tmp: Task("x", "Bilinear-v0", 100, 30, "distance", False, 0.1),
        r"task 'x': eval_every 30 must divide steps 100"),
    api("suite-target-string", task(target="low"), r"task 't': target must be a finite number .*got 'low'"),
    api("suite-target-null", task(target=None), r"task 't': target must be a finite number .*got None"),
    api("suite-env_kwargs-list", task(env_kwargs=[["n", 3]]), r"task 't': env_kwargs must be an object"),
    api("suite-ratios-number", task(ratios=0.5), r"task 't': ratios must be a non-empty list of positive numbers"),
    api("suite-ratios-empty", task(ratios=[]), r"task 't': ratios must be a non-empty list"),
    api("suite-ratios-negative", task(ratios=[1.0, -0.5]), r"task 't': ratios\[1\] must be a finite number in "
        r"\(0.0, inf\), got -0.5"),
    api("suite-ratios-string", task(ratios=["1"]), r"task 't': ratios\[0\] must be a finite number"),
    *[api(f"suite-{name}-{label}", suite(**{name: value}), rf"suite 's': {name} must be an int >= 1")
      for name in ("budget", "tune_seeds", "eval_seeds", "version", "seed_block")
      for label, value in (("0", 0), ("negative", -2), ("float", 2.0), ("bool", True), ("string", "3"))],
    api("suite-steps-0", task(steps=0), r"task 't': steps must be an int >= 1, got 0"),
    api("suite-steps-bool", task(steps=True), r"task 't': steps must be an int >= 1, got True"),
    api("suite-eval_every-string", task(eval_every="10"), r"task 't': eval_every must be an int >= 1, got '10'"),
    api("suite-metric-number", task(metric=3), r"task 't': metric must be a non-empty string, got 3"),
    api("suite-metric-empty", task(metric=""), r"task 't': metric must be a non-empty string, got ''"),
    api("suite-target_metric-list", task(target_metric=["a"]), r"task 't': target_metric must be a non-empty string "
        r"or None"),
    api("suite-schedule-unknown", task(schedule="cosine"),
        r"task 't': unknown schedule 'cosine'; choose one of constant, linear_decay"),
    api("suite-env_id-unknown", task(env_id="Nope-v0"), r"task 't': unknown environment id 'Nope-v0'"),
    api("suite-env_id-number", task(env_id=3), r"task 't': env_id must be a non-empty string, got 3"),
    api("suite-device-unknown", suite(device="tpu"), r"suite 's': device 'tpu' is not a torch device"),
    api("suite-name-number", suite(name=3), r"suite name must be a non-empty string, got 3"),
    api("suite-unknown-field", suite(budgets=3), r"suite 's': unknown suite field\(s\) \['budgets'\]; allowed: "),
    api("suite-task-unknown-field", task(step=3), r"suite 's': task 't': unknown task field\(s\) \['step'\]"),
    api("suite-missing-field", lambda tmp: Suite.from_dict({"name": "s", "tasks": [TASK]}),
        r"suite 's': missing suite field\(s\) \['version'\]; required: name, version, tasks"),
    api("suite-task-missing-field", lambda tmp: Suite.from_dict(
        {**SUITE, "tasks": [{k: v for k, v in TASK.items() if k != "target"}]}),
        r"suite 's': task 't': missing task field\(s\) \['target'\]"),
    api("suite-not-an-object", lambda tmp: Suite.from_dict([1, 2]), r"a suite is a JSON object with the fields name"),
    api("suite-tasks-not-Task", lambda tmp: Suite("s", 1, ({"name": "t"},)), r"suite 's': tasks\[0\] must be a Task"),

    # --- minmax report
    cli("report-dir-missing", ["report", "{tmp}/nope"], r"no results in '.*/nope': the directory does not exist"),
    cli("report-dir-is-a-file", ["report", "{tmp}/f"], r"results directory '.*/f' exists and is not a directory",
        setup=write("f", "x")),
    cli("report-no-results", ["report", "{tmp}/empty"], rf"no results in '.*/empty': expected .*/{RESULTS_FILE}",
        setup=mkdir("empty")),
    cli("report-results-is-a-dir", ["report", "{tmp}/out"], rf"results file '.*/out/{RESULTS_FILE}' is a directory",
        setup=mkdir(f"out/{RESULTS_FILE}")),

    # --- the results store
    api("store-results-is-a-dir", lambda tmp: (tmp / RESULTS_FILE).mkdir() or ResultStore(tmp),
        rf"results file '.*/{RESULTS_FILE}' is a directory"),
    api("store-append-not-a-record", lambda tmp: ResultStore(tmp).append([{"key": "abc"}]),
        r"not an episode record: missing field\(s\) suite, suite_version, "),
    api("store-append-nan", lambda tmp: ResultStore(tmp).append([{"key": "abc", "value": float("nan")}]),
        r"Out of range float values are not JSON compliant"),
    api("record-not-an-object", lambda tmp: validate_record([1, 2]), r"a record is a JSON object, got an array"),

    # --- damaged lines of results.jsonl: reported with file and line, skipped; resuming and reporting go on
    damaged("results-bad-utf8", lambda line: line[:20] + b"\xff" + line[21:],
            r"invalid UTF-8 \(byte 0xff at column 21\)"),
    damaged("results-bad-json", lambda line: line[: len(line) // 2], r"not JSON \("),
    damaged("results-json-array", lambda line: b"[1, 2]", r"not a record \(a record is a JSON object, got an array"),
    damaged("results-json-string", lambda line: b'"hello"', r"not a record \(a record is a JSON object, got a string"),
    damaged("results-key-only", lambda line: b'{"key": "abc"}', r"not a record \(missing field\(s\) suite, "),
    damaged("results-missing-field", edit("value", drop=True), r"not a record \(missing field\(s\) value\)"),
    damaged("results-seed-string", edit("seed", "1"), r'not a record \(seed must be an integer, got "1"\)'),
    damaged("results-seed-bool", edit("seed", True), r"not a record \(seed must be an integer, got true\)"),
    damaged("results-success-string", edit("success", "yes"), r'success must be true or false, got "yes"'),
    damaged("results-phase-unknown", edit("phase", "test"), r'phase must be "tune" or "eval", got "test"'),
    damaged("results-config-no-lr", edit("config", {"lr_d": 0.1}), r'config must be an object \{"lr_d": number'),
    damaged("results-curve-ragged", edit("curve", {"steps": [0, 10], "distance": [1.0]}), r"curve must be an object"),
    damaged("results-nan", lambda line: re.sub(rb'"value": [^,]+', b'"value": NaN', line),
            r"not JSON \(NaN is not a JSON number\)"),
]


# --- the tests -----------------------------------------------------------------------------------------------------

def _rows(kind: str) -> list[Any]:
    """The rows of one kind: ``"cli"``, ``"api"`` or ``"damaged"``."""
    def kind_of(row: Row) -> str:
        return "cli" if isinstance(row.trigger, list) else "damaged" if isinstance(row.trigger, Damage) else "api"
    return [pytest.param(r, id=r.id) for r in ROWS if kind_of(r) == kind]


def test_row_ids_are_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("row", _rows("cli"))
def test_bad_command_line_input_exits_2_with_a_one_line_error(row, tmp_path, capsys):
    if row.setup is not None:
        row.setup(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in row.trigger]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors (usage line, then the error)
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("minmax") and "error: " in last, err
    assert re.search(row.message, last), (row.message, last)


@pytest.mark.parametrize("row", _rows("api"))
def test_bad_api_input_raises_a_value_error_with_a_clear_message(row, tmp_path):
    with pytest.raises(ValueError, match=row.message):
        row.trigger(tmp_path)


# the finished sweep damaged by the damage rows: 3 held-out seeds of one configuration of one task
TINY = {**SUITE, "name": "tiny", "tasks": [{**TASK, "name": "bilinear"}]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("finished")
    (d / "tiny.json").write_text(json.dumps(TINY))
    assert main(["bench", "--suite", str(d / "tiny.json"), "--out", str(d / "out"), "--no-progress",
                 "--no-report"]) == 0
    return d


@pytest.mark.parametrize("row", _rows("damaged"))
def test_a_damaged_results_line_is_named_skipped_and_resumed(row, finished, tmp_path, capsys):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    out = tmp_path / "out"
    path = out / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    original = [json.loads(x) for x in lines]
    lines[1] = row.trigger.transform(lines[1].rstrip(b"\n")) + b"\n"
    path.write_bytes(b"".join(lines))

    # the report works without the damaged line and names it once: file, line number, what is wrong
    assert main(["report", str(out), "--no-plots"]) == 0
    err = capsys.readouterr().err
    warned = [x for x in err.splitlines() if x.startswith("minmax: warning: ")]
    assert len(warned) == 1 and "Traceback" not in err, err
    assert f"{path}: skipped 1 damaged line(s) (line 2: " in warned[0]
    assert re.search(row.message, warned[0]), (row.message, warned[0])
    assert "2 episodes stored" in (out / "leaderboard.md").read_text()

    # bench resumes: the lost episode is run again, the damaged line moves aside, the main file is clean
    assert main(["bench", "--suite", str(tmp_path / "tiny.json"), "--out", str(out), "--no-progress",
                 "--no-plots"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedRecordWarning)
        resumed = list(ResultStore(out).records())
    assert sorted(r["seed"] for r in resumed) == [0, 1, 2]
    assert {r["key"]: r["value"] for r in resumed} == {r["key"]: r["value"] for r in original}
    assert [json.loads(x)["seed"] for x in path.read_bytes().splitlines()] == [0, 2, 1]
    (aside,) = [json.loads(x) for x in (out / DAMAGED_FILE).read_bytes().splitlines()]
    assert aside["line"] == 2 and re.search(row.message, aside["problem"])
    assert main(["report", str(out), "--no-plots"]) == 0
    assert "minmax: warning" not in capsys.readouterr().err

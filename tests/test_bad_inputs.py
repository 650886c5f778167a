"""Every bad input a user can give, in one table: each gives a clear one-line message, never a traceback.

A row is ``(id, trigger, message regex)``, made by one of five helpers:

* ``cli(id, argv, message, setup=None)``: ``minmax ARGV`` exits with status 2 and ``minmax: error: MESSAGE`` on
  stderr (``{tmp}`` in an argument is the test's temporary directory; ``setup(tmp)`` prepares files first);
* ``api(id, fn, message)``: ``fn(tmp)`` raises a ``ValueError`` matching ``message``;
* ``damaged(id, transform, message)``: line 2 of a finished sweep's ``results.jsonl`` is replaced by
  ``transform(line)`` (bytes, without the newline). ``minmax report`` still works and warns once, naming the
  file, the line and ``message``; ``minmax bench`` then resumes: it runs the lost episode again, the damaged line
  moves to ``results.damaged.jsonl`` and every record is back;
* ``checkpoint(id, make, message)``: ``make(path)`` writes a bad ``run_episode`` checkpoint at ``path``; resuming
  the standard episode (:func:`standard_run`) from it raises a ``ValueError`` matching ``message`` that names the
  file and says to delete it;
* ``controller(id, make, message)``: ``make(tmp, good)`` builds a bad controller from a copy of the good one
  ``good`` (a ``.pt`` path) and returns the path a user would pass; ``check_controller``,
  ``LearnedController.load`` and ``check_agent("learned:PATH")`` each raise a ``ValueError`` matching ``message``
  and naming the file.

No row may run code: crafted files (malicious pickles, a stable-baselines3 zip with a pickled payload) create the
file :func:`marker` when their code runs, and every test checks it is not there. The controls, that these files do
run code when loaded unsafely, are in tests/test_episode.py and tests/test_controllers.py.

Append new rows to ``ROWS``; the tests at the end run them all.
"""

from __future__ import annotations

import base64
import json
import pickle
import re
import shutil
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import agents
import minmax_envs
from minmax_envs.cli import main
from minmax_envs.controllers import (
    ControllerConfig,
    LearnedController,
    check_controller,
    convert_sb3_zip,
    save_controller,
)
from minmax_envs.evaluation import ResultStore, Suite, Task, check_agent
from minmax_envs.evaluation.store import DAMAGED_FILE, RESULTS_FILE, DamagedRecordWarning, validate_record


@dataclass(frozen=True)
class Row:
    id: str
    trigger: list[str] | Callable[[Path], Any] | Damage | Checkpoint | Controller
    message: str
    setup: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Damage:
    """How line 2 of a results file is damaged: the original line (bytes, no newline) -> the damaged one."""

    transform: Callable[[bytes], bytes]


@dataclass(frozen=True)
class Checkpoint:
    """How a bad checkpoint file is made: ``make(path)`` writes it at ``path``."""

    make: Callable[[Path], Any]


@dataclass(frozen=True)
class Controller:
    """How a bad controller is made: ``make(tmp, good)`` -> the path passed to the loaders."""

    make: Callable[[Path, Path], Path]


def cli(id: str, argv: list[str], message: str, setup: Callable[[Path], None] | None = None) -> Row:
    return Row(id, argv, message, setup)


def api(id: str, fn: Callable[[Path], Any], message: str) -> Row:
    return Row(id, fn, message)


def damaged(id: str, transform: Callable[[bytes], bytes], message: str) -> Row:
    return Row(id, Damage(transform), message)


def checkpoint(id: str, make: Callable[[Path], Any], message: str) -> Row:
    return Row(id, Checkpoint(make), message)


def controller(id: str, make: Callable[[Path, Path], Path], message: str) -> Row:
    return Row(id, Controller(make), message)


# --- inputs the rows use -------------------------------------------------------------------------------------------

RUN = ["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "5"]


def _torch_run(agent: str) -> list[str]:
    return ["run", "Bilinear-v0", "--agent", agent, "--lr", "0.1", "--steps", "2"]
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
    path.with_suffix(".json").write_text(json.dumps({"algorithm": "PPO"}))  # the former settings sidecar
    return path


#: controller weights files that are malicious pickles: ``write(path, marker)``
MALICIOUS_WEIGHTS: dict[str, Callable[[Path, Path], Any]] = {
    "torch.save": lambda p, m: torch.save({"log_std": OpenPickle(m)}, p),
    "raw-pickle": lambda p, m: p.write_bytes(pickle.dumps({"log_std": OpenPickle(m)})),
}


# --- checkpoints: the standard episode and how its checkpoint is damaged -------------------------------------------

def standard_env(**kwargs: Any):
    return minmax_envs.make("DiracGAN-v0", num_seeds=2, **{"loss": "gan", "init_std": 0.5, **kwargs})


def standard_run(path: Path, agent: Any = None, env: Any = None, steps: int = 2):
    """The episode every bad checkpoint is offered to."""
    return minmax_envs.run_episode(env or standard_env(), agent or agents.sgda(0.1), steps=steps, seed=0,
                                   checkpoint=path)


def valid_checkpoint(path: Path) -> dict:
    """A real checkpoint of the standard episode, as loaded back."""
    standard_run(path)
    return torch.load(path, weights_only=True)


def rewrite(mutate: Callable[[dict], Any]) -> Callable[[Path], None]:
    """A bad checkpoint: the standard episode's checkpoint changed by ``mutate(payload)``."""
    def make(path: Path) -> None:
        payload = valid_checkpoint(path)
        mutate(payload)
        torch.save(payload, path)
    return make


def truncate(path: Path) -> None:
    valid_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def other_run(**kwargs: Any) -> Callable[[Path], None]:
    """A bad checkpoint: one of another episode (``env`` = its env's arguments, else run_episode arguments)."""
    def make(path: Path) -> None:
        env_kwargs = kwargs.get("env", {})
        standard_run(path, env=standard_env(**env_kwargs), **{k: v for k, v in kwargs.items() if k != "env"})
    return make


# --- controllers: a copy of the good one, changed --------------------------------------------------------------------

def copy_controller(tmp: Path, good: Path) -> Path:
    """A copy ``tmp/c.pt`` + ``tmp/c.json`` of the controller ``good``."""
    shutil.copy(good, tmp / "c.pt")
    shutil.copy(good.with_suffix(".json"), tmp / "c.json")
    return tmp / "c.pt"


def described(change: Callable[[dict], Any]) -> Callable[[Path, Path], Path]:
    """A bad controller: the good one with its description changed by ``change(description)``."""
    def make(tmp: Path, good: Path) -> Path:
        path = copy_controller(tmp, good)
        data = json.loads(path.with_suffix(".json").read_text())
        change(data)
        path.with_suffix(".json").write_text(json.dumps(data))
        return path
    return make


def weights(change: Callable[[dict], Any]) -> Callable[[Path, Path], Path]:
    """A bad controller: the good one with its weights replaced by ``torch.save(change(state_dict))``."""
    def make(tmp: Path, good: Path) -> Path:
        path = copy_controller(tmp, good)
        torch.save(change(torch.load(path, weights_only=True)), path)
        return path
    return make


def replaced(suffix: str, content: bytes) -> Callable[[Path, Path], Path]:
    """A bad controller: the good one with its ``suffix`` file (``.pt`` or ``.json``) replaced by ``content``."""
    def make(tmp: Path, good: Path) -> Path:
        path = copy_controller(tmp, good)
        path.with_suffix(suffix).write_bytes(content)
        return path
    return make


def removed(suffix: str) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, good: Path) -> Path:
        path = copy_controller(tmp, good)
        path.with_suffix(suffix).unlink()
        return path
    return make


def malicious_weights(write: Callable[[Path, Path], Any]) -> Callable[[Path, Path], Path]:
    """A bad controller: the good description with weights written by ``write(path, marker)``."""
    def make(tmp: Path, good: Path) -> Path:
        path = copy_controller(tmp, good)
        write(path, marker(tmp))
        return path
    return make


def policy(key: str, value: Any) -> Callable[[Path, Path], Path]:
    return described(lambda d: d["policy"].__setitem__(key, value))


def kwarg(key: str, value: Any) -> Callable[[Path, Path], Path]:
    return described(lambda d: d["policy"]["kwargs"].__setitem__(key, value))


def space(name: str, key: str, value: Any) -> Callable[[Path, Path], Path]:
    return described(lambda d: d["policy"][name].__setitem__(key, value))


def crafted_zip(tmp: Path, good: Path | None = None) -> Path:
    """``tmp/evil.zip``, a crafted stable-baselines3 zip (``good`` unused)."""
    return crafted_sb3_zip(tmp / "evil.zip", marker(tmp))


SB3_ZIP_REFUSED = r"is a stable-baselines3 \.zip, which is not loaded: reading it unpickles its ':serialized:' entries"


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
    # --- torch:MODULE.CLASS agents (any torch.optim.Optimizer)
    cli("torch-agent-bad-hyperparameter", _torch_run("torch:torch.optim.Adam?betas=[0.5,1.5]"),
        r"agent 'torch:torch.optim.Adam\?betas=\[0.5,1.5\]': Invalid beta parameter at index 1: 1.5"),
    cli("torch-agent-lr-given", _torch_run("torch:torch.optim.Adam?lr=3"),
        r"lr is tuned by the protocol \(lr_d, lr_g\); do not give it"),
    cli("torch-agent-closure", _torch_run("torch:torch.optim.LBFGS"),
        r"torch.optim.LBFGS cannot play as an agent: it needs a closure"),
    cli("torch-agent-no-module", _torch_run("torch:nope.Adam"), r"optimizer 'nope.Adam': no module to import"),
    cli("torch-agent-no-class", _torch_run("torch:torch.optim.Adamm"), r"'torch.optim' has no attribute 'Adamm'"),
    cli("torch-agent-not-dotted", _torch_run("torch:Adam"), r"name the optimizer class by its dotted path"),
    cli("torch-agent-not-json", _torch_run("torch:torch.optim.Adam?betas=(0.5,0.9)"),
        r"the value of betas must be JSON"),
    cli("torch-agent-not-key-value", _torch_run("torch:torch.optim.Adam?amsgrad"), r"'amsgrad' is not key=value"),
    cli("torch-agent-bench", ["bench", "--suite", "quick", "--agents", "sgda,torch:torch.optim.SGD?momentum=-1",
                              "--out", "{tmp}/out"], r"agent 'torch:torch.optim.SGD\?momentum=-1': Invalid momentum"),
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
    api("suite-task-agents-string", task(agents="sgda"),
        r"task 't': agents must be null \(every agent\) or a non-empty list of agent names, got 'sgda'"),
    api("suite-task-agents-empty", task(agents=[]), r"task 't': agents must be null \(every agent\) or a non-empty"),
    api("suite-task-agents-number", task(agents=["sgda", 1]), r"task 't': agents\[1\] must be a non-empty string"),
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

    # --- run_episode checkpoints: each named, with advice to delete it; crafted pickles run no code
    checkpoint("checkpoint-empty", lambda p: p.write_bytes(b""), r"cannot be read: the file is empty"),
    checkpoint("checkpoint-truncated", truncate,
               r"cannot be read: it is truncated or corrupt \(not a complete torch zip archive\)"),
    checkpoint("checkpoint-not-torch", lambda p: p.write_bytes(b"hello, I am not a checkpoint"),
               r"cannot be read: it is not a torch checkpoint"),
    checkpoint("checkpoint-raw-pickle", lambda p: p.write_bytes(pickle.dumps({"t": 1})),
               r"cannot be read: it is not a torch checkpoint"),
    checkpoint("checkpoint-is-a-dir", lambda p: p.mkdir(), r"cannot be read: it is a directory"),
    checkpoint("checkpoint-crafted-exec",
               lambda p: torch.save({"format": "x", "payload": ExecPickle(marker(p.parent))}, p),
               r"cannot be read: it refers to (builtins\.)?exec, which is neither a tensor nor a plain container"),
    checkpoint("checkpoint-crafted-call", lambda p: torch.save(CallPickle(marker(p.parent)), p),
               r"cannot be read: it refers to tests\.test_bad_inputs\.plant_marker"),
    checkpoint("checkpoint-crafted-call-raw-pickle",
               lambda p: p.write_bytes(pickle.dumps(CallPickle(marker(p.parent)), protocol=2)),
               r"cannot be read: it refers to tests\.test_bad_inputs\.plant_marker"),
    checkpoint("checkpoint-namedtuple-state", lambda p: torch.save({"agent": agents.EmptyState()}, p),  # the format
               r"cannot be read: it refers to agents\._base\.EmptyState"),  # before this one: NamedTuple states
    checkpoint("checkpoint-list", lambda p: torch.save([1, 2], p),
               r"not a run_episode checkpoint of this version: it holds a list, not a dict"),
    checkpoint("checkpoint-no-format", lambda p: torch.save({"t": 1}, p),
               r"not a run_episode checkpoint of this version: it has no 'format' entry"),
    checkpoint("checkpoint-format-1", rewrite(lambda c: c.update(format="minmax_envs.run_episode/1")),
               r"its format is 'minmax_envs\.run_episode/1', this version reads 'minmax_envs\.run_episode/2'"),
    checkpoint("checkpoint-missing-env", rewrite(lambda c: c.pop("env")),
               r"not a run_episode checkpoint of this version: it is missing \['env'\]"),
    checkpoint("checkpoint-t-string", rewrite(lambda c: c.update(t="1")), r"its entry 't' is a str, expected int"),
    checkpoint("checkpoint-agent-empty", rewrite(lambda c: c.update(agent={})),
               r"its entry 'agent' must hold the lists 'treedef' and 'leaves'"),
    checkpoint("checkpoint-env-missing-params", rewrite(lambda c: c["env"].pop("params")),
               r"holds an episode state that cannot be restored here: env state is missing \['params'\]"),
    checkpoint("checkpoint-param-shape",
               rewrite(lambda c: c["env"]["params"]["generator"].update(theta=torch.zeros(2, 3))),
               r"cannot be restored here: env state\['params'\]\['generator'\]\['theta'\] is torch\.float32 of shape "
               r"\(2, 3\), this env's torch\.float32 of shape \(2,\)"),
    checkpoint("checkpoint-env-t-seeds", rewrite(lambda c: c["env"].update(t=torch.zeros(5, dtype=torch.int64))),
               r"cannot be restored here: env state\['t'\] must be a tensor with a leading dimension of 2 seeds, "
               r"got shape \(5,\)"),
    checkpoint("checkpoint-agent-keys",
               rewrite(lambda c: c["agent"].update(treedef=["dict", ["generator"], [["leaf"]]], leaves=[1])),
               r"cannot be restored here: agent state has the keys \['generator'\], a fresh agent\.init\(\) has "
               r"\{generator: \(EmptyState\(\),\), discriminator: \(EmptyState\(\),\)\}"),
    checkpoint("checkpoint-t-out-of-range", rewrite(lambda c: c.update(t=7)),
               r"cannot be restored here: it stopped at iteration 7, outside \[0, 2\]"),
    # checkpoints of other episodes
    checkpoint("checkpoint-other-env-loss", other_run(env={"loss": "wgan"}),
               r"belongs to another episode: env\.loss: 'wgan' in the checkpoint, 'gan' now"),
    checkpoint("checkpoint-other-env-init_std", other_run(env={"init_std": 0.25}),
               r"belongs to another episode: env\.init_std: 0\.25 in the checkpoint, 0\.5 now"),
    checkpoint("checkpoint-other-agent-lr", other_run(agent=agents.sgda(5.0)),
               r"belongs to another episode: agent\.updates\.generator/theta\.norm: \[\S+, \S+, \S+\] in the "
               r"checkpoint, \[\S+, \S+, \S+\] now; agent\.updates\.discriminator/psi\.norm: "),
    checkpoint("checkpoint-other-agent-state", other_run(agent=agents.adam(0.1)),
               r"belongs to another episode: agent\.state: '\{generator: \(ScaleByAdamState.*\}' in the checkpoint, "
               r"'\{generator: \(EmptyState\(\),\), .*\}' now"),
    checkpoint("checkpoint-other-steps", other_run(steps=3),
               r"belongs to another episode: episode\.steps: 3 in the checkpoint, 2 now"),

    # --- learned controllers (NAME.pt + NAME.json): each a ValueError naming the file and what is allowed
    controller("controller-missing", lambda tmp, good: tmp / "missing",
               r"controller weights file '.*missing\.pt' and description file '.*missing\.json' do not exist; a "
               r"controller is NAME\.pt \(its weights\) with NAME\.json \(its description\) next to it"),
    controller("controller-weights-missing", removed(".pt"), r"controller weights file '.*c\.pt' does not exist"),
    controller("controller-description-missing", removed(".json"),
               r"controller description file '.*c\.json' does not exist"),
    controller("controller-zip-missing", lambda tmp, good: tmp / "missing.zip",
               r"controller '.*missing\.zip' is a stable-baselines3 \.zip, which is not loaded.*convert_sb3_zip"),
    controller("controller-description-bad-json", replaced(".json", b"{not json"),
               r"controller description '.*c\.json' is not valid JSON"),
    controller("controller-description-list", replaced(".json", b"[1, 2]"),
               r"controller description '.*c\.json' must be a JSON object, got list"),
    controller("controller-description-sb3-settings",
               replaced(".json", json.dumps({"algorithm": "PPO", "base": "sgda"}).encode()),
               r"'.*c\.json' is not a minmax_envs controller description: its 'format' is None, expected "
               r"'minmax_envs\.controller' \(the settings file of an old stable-baselines3 \.zip\? convert"),
    controller("controller-format_version-2", described(lambda d: d.update(format_version=2)),
               r"'.*c\.json' has format_version 2; this minmax_envs reads 1"),
    controller("controller-unknown-key", described(lambda d: d.update(extra=1)),
               r"'.*c\.json': unknown key\(s\) 'extra'; a description has the keys format"),
    controller("controller-missing-policy", described(lambda d: d.pop("policy")),
               r"'.*c\.json': missing key\(s\) 'policy'"),
    controller("controller-algorithm-unknown", described(lambda d: d.update(algorithm="DQN")),
               r"'.*c\.json': unknown algorithm 'DQN'; choose one of PPO, A2C, SAC, TD3, DDPG"),
    controller("controller-base-unknown", described(lambda d: d.update(base="rmsprop")),
               r"'.*c\.json': unknown base 'rmsprop'; choose one of"),
    controller("controller-log10_range-negative", described(lambda d: d.update(log10_range=-1)),
               r"'.*c\.json': log10_range must be a finite number in \[0.0, inf\), got -1"),
    controller("controller-policy-no-kwargs", described(lambda d: d["policy"].pop("kwargs")),
               r"'.*c\.json': policy must be an object with exactly the keys class, kwargs, observation_space, "
               r"action_space"),
    controller("controller-policy-class-unknown", policy("class", "CnnPolicy"),
               r"'.*c\.json': unknown policy class 'CnnPolicy' for PPO; choose one of MlpPolicy"),
    controller("controller-activation_fn-os.system", kwarg("activation_fn", "os.system"),
               r"'.*c\.json': policy kwargs: unknown activation_fn 'os\.system'; choose one of Tanh, ReLU, LeakyReLU"),
    controller("controller-kwarg-optimizer_class", kwarg("optimizer_class", "Adam"),
               r"policy kwargs: unknown argument\(s\) 'optimizer_class'; allowed: net_arch, activation_fn"),
    controller("controller-features_extractor_class-unknown", kwarg("features_extractor_class", "NatureCNN"),
               r"unknown features_extractor_class 'NatureCNN'; choose one of FlattenExtractor"),
    controller("controller-net_arch-negative", kwarg("net_arch", [64, -1]),
               r"net_arch must be a list of layer widths \(ints >= 1\) or an object with keys"),
    controller("controller-ortho_init-string", kwarg("ortho_init", "yes"),
               r"policy kwargs: ortho_init must be true or false, got 'yes'"),
    controller("controller-kwarg-n_critics", kwarg("n_critics", 2),
               r"'.*c\.json': stable-baselines3's ActorCriticPolicy cannot be built from it: TypeError"),
    controller("controller-action_space-discrete", space("action_space", "type", "Discrete"),
               r"'.*c\.json': policy action_space: unknown space type 'Discrete'; choose one of Box"),
    controller("controller-observation_space-int64", space("observation_space", "dtype", "int64"),
               r"policy observation_space: unknown dtype 'int64'; choose one of float32, float64"),
    controller("controller-observation_space-low-short", space("observation_space", "low", [0.0] * 3),
               r"policy observation_space: low must be a list of 11 numbers \(the shape \[11\] flattened\)"),
    controller("controller-action_space-high-nan", space("action_space", "high", ["nan", 1.0]),
               r"policy action_space: high entries must be numbers or 'inf' / '-inf', got 'nan'"),
    controller("controller-net_arch-not-the-weights", kwarg("net_arch", {"pi": [32, 32], "vf": [64, 64]}),
               r"controller weights '.*c\.pt': 'mlp_extractor\.policy_net\.0\.weight' has shape \(64, 11\), the "
               r"policy described in '.*c\.json' needs \(32, 11\)"),
    controller("controller-weights-not-torch", replaced(".pt", b"not a torch file"),
               r"controller weights '.*c\.pt' are not a torch file of plain tensors \(read with "
               r"torch\.load\(weights_only=True\)"),
    controller("controller-weights-list", weights(lambda s: list(s.values())),
               r"controller weights '.*c\.pt' must hold a dict \{parameter name: tensor\} \(a policy's state_dict\), "
               r"found a list"),
    controller("controller-weights-float", weights(lambda s: {**s, "log_std": 0.5}),
               r"controller weights '.*c\.pt' hold a float under 'log_std'; only dense tensors are allowed"),
    controller("controller-weights-missing-key",
               weights(lambda s: {k: v for k, v in s.items() if k != "value_net.bias"}),
               r"controller weights '.*c\.pt' do not fit the ActorCriticPolicy described in '.*c\.json': missing "
               r"\['value_net\.bias'\]; unexpected nothing"),
    controller("controller-weights-float64", weights(lambda s: {**s, "log_std": s["log_std"].double()}),
               r"controller weights '.*c\.pt': 'log_std' has dtype torch\.float64, the policy needs torch\.float32"),
    controller("controller-weights-nan",
               weights(lambda s: {**s, "log_std": torch.full_like(s["log_std"], float("nan"))}),
               r"controller weights '.*c\.pt': 'log_std' holds non-finite values"),
    # crafted files: refused without running their code (tests/test_controllers.py shows that they do run it)
    *[controller(f"controller-weights-malicious-{name}", malicious_weights(write),
                 r"controller weights '.*c\.pt' are not a torch file of plain tensors "
                 r"\(read with torch\.load\(weights_only=True\).*UnpicklingError")
      for name, write in MALICIOUS_WEIGHTS.items()],
    controller("controller-crafted-sb3-zip", crafted_zip, SB3_ZIP_REFUSED),
    controller("controller-crafted-sb3-zip-by-stem", lambda tmp, good: crafted_zip(tmp).with_suffix(""),
               SB3_ZIP_REFUSED),  # learned:NAME with only NAME.zip there
    api("convert-sb3-zip-without-opt-in", lambda tmp: convert_sb3_zip(crafted_zip(tmp)),
        r"convert_sb3_zip unpickles .*evil\.zip.*pass allow_pickle=True only for a file you trust"),
    cli("run-learned-crafted-sb3-zip", ["run", "DiracGAN-v0", "--agent", "learned:{tmp}/evil.zip", "--lr", "0.1",
                                        "--steps", "2"], SB3_ZIP_REFUSED, setup=crafted_zip),
    cli("bench-learned-crafted-sb3-zip", BENCH + ["--agents", "sgda,learned:{tmp}/evil.zip"], SB3_ZIP_REFUSED,
        setup=crafted_zip),
    cli("bench-learned-missing", BENCH + ["--agents", "sgda,learned:{tmp}/missing.pt"],
        r"controller weights file '.*/missing\.pt' and description file '.*/missing\.json' do not exist"),
    # a controller shipped in the package (learned:pkg:NAME): only the shipped names, never a path
    cli("bench-learned-pkg-unknown", BENCH + ["--agents", "sgda,learned:pkg:nope"],
        r"controller 'pkg:nope' is not shipped with minmax_envs; shipped: pkg:balance-correlated-coefficients, "
        r"pkg:balance-correlated-modes"),
    api("learned-pkg-path", lambda tmp: check_agent("learned:pkg:../controllers_data/balance-correlated-modes"),
        r"controller 'pkg:\.\./controllers_data/balance-correlated-modes' is not shipped with minmax_envs"),
    api("save-controller-into-the-package", lambda tmp: save_controller(None, None, "pkg:mine"),
        r"save_controller writes NAME\.pt and NAME\.json; pass NAME or NAME\.pt, not 'pkg:mine'"),
]


# --- the tests -----------------------------------------------------------------------------------------------------

KINDS = {list: "cli", Damage: "damaged", Checkpoint: "checkpoint", Controller: "controller"}


def _kind(row: Row) -> str:
    return KINDS.get(type(row.trigger), "api")


def _rows(kind: str) -> list[Any]:
    """The rows of one kind: ``"cli"``, ``"api"``, ``"damaged"``, ``"checkpoint"`` or ``"controller"``."""
    return [pytest.param(r, id=r.id) for r in ROWS if _kind(r) == kind]


def test_row_ids_are_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert all(re.fullmatch(r"[\w.-]+", i) for i in ids), [i for i in ids if not re.fullmatch(r"[\w.-]+", i)]


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
    assert not marker(tmp_path).exists(), "a crafted input ran code"


@pytest.mark.parametrize("row", _rows("api"))
def test_bad_api_input_raises_a_value_error_with_a_clear_message(row, tmp_path):
    with pytest.raises(ValueError, match=row.message):
        row.trigger(tmp_path)
    assert not marker(tmp_path).exists(), "a crafted input ran code"


@pytest.mark.parametrize("row", _rows("checkpoint"))
def test_a_bad_checkpoint_file_is_named_and_refused_and_runs_no_code(row, tmp_path):
    path = tmp_path / "episode.pt"
    row.trigger.make(path)
    with pytest.raises(ValueError, match=row.message) as info:
        standard_run(path)
    message = str(info.value)
    assert f"checkpoint {path} " in message
    assert "Delete it (or pass another checkpoint path)" in message or "delete it" in message
    assert not marker(tmp_path).exists(), "loading a checkpoint ran code"


@pytest.fixture(scope="module")
def good_controller(tmp_path_factory) -> Path:
    """A valid controller (``good.pt`` + ``good.json``, written by ``save_controller``) that the controller rows
    damage copies of: an untrained PPO policy of the step-size env, so that no training is needed."""
    from stable_baselines3 import PPO

    from minmax_envs.gym_env import StepSizeEnv

    model = PPO("MlpPolicy", StepSizeEnv("DiracGAN-v0"), seed=0, device="cpu")
    path = save_controller(model, ControllerConfig(), tmp_path_factory.mktemp("controller") / "good")
    torch.set_num_threads(1)  # SB3 models set torch's thread count; keep the suite's
    return path


@pytest.mark.parametrize("row", _rows("controller"))
def test_a_bad_controller_is_refused_by_every_loader_and_runs_no_code(row, good_controller, tmp_path):
    path = row.trigger.make(tmp_path, good_controller)
    loaders = {"check_controller": check_controller,  # what the zoo runs before a sweep starts
               "LearnedController.load": LearnedController.load,
               "check_agent": lambda p: check_agent(f"learned:{p}")}
    try:
        for name, load in loaders.items():
            with pytest.raises(ValueError, match=row.message) as info:
                load(path)
            assert str(tmp_path) in str(info.value), (name, str(info.value))  # names the file
    finally:
        torch.set_num_threads(1)
    assert not marker(tmp_path).exists(), "loading a controller ran code"


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

"""Every bad input a user can give, in one table: each gives a clear one-line message, never a traceback.

A row is ``(id, trigger, message regex)``, made by one of five helpers:

* ``cli(id, argv, message, setup=None)``: ``minmax ARGV`` exits with status 2 and ``minmax: error: MESSAGE`` on
  stderr (``{tmp}`` in an argument is the test's temporary directory; ``setup(tmp)`` prepares files first);
* ``api(id, fn, message, error=ValueError, setup=None)``: ``fn(tmp)`` raises ``error`` matching ``message``;
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

No row may run code: crafted files (malicious pickles, a stable-baselines3 zip with a pickled payload, planted
Python modules) create the file :func:`marker` when their code runs, and every test checks it is not there. The
controls, that these files do run code when loaded unsafely, are in tests/test_episode.py,
tests/test_controllers.py and tests/test_cli.py (a planted module opted in to).

The ``cli`` and ``api`` rows run as an attacker would want them to: in ``tmp`` as the working directory, with
``tmp`` first on ``sys.path`` (what ``python -m minmax_envs`` does), beside a directory ``outside`` holding a file of
the user's; and no row touches a file outside ``tmp`` or changes one inside it (new files only under
``tmp/out``, the results directory the rows name; see :func:`untouched`).

Append new rows to ``ROWS``; the tests at the end run them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import agents
import minmax_envs
from baselines.ppo_step_size import Args as PPOArgs
from baselines.ppo_step_size import make_env as make_ppo_env
from minmax_envs.cli import main
from minmax_envs.controller_files import (
    ControllerConfig,
    LearnedController,
    check_controller,
    convert_sb3_zip,
    save_controller,
)
from minmax_envs.evaluation import ResultStore, Suite, Task, check_agent
from minmax_envs.evaluation.store import DAMAGED_FILE, RESULTS_FILE, DamagedRecordWarning, validate_record
from tests.helpers import MALICIOUS_WEIGHTS, CallPickle, ExecPickle, crafted_sb3_zip, marker, standard_env, standard_run


@dataclass(frozen=True)
class Row:
    id: str
    trigger: list[str] | Callable[[Path], Any] | Damage | Checkpoint | Controller
    message: str
    setup: Callable[[Path], None] | None = None
    error: type[Exception] = ValueError


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


def api(id: str, fn: Callable[[Path], Any], message: str, error: type[Exception] = ValueError,
        setup: Callable[[Path], None] | None = None) -> Row:
    return Row(id, fn, message, setup, error)


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


def linked_weights(tmp: Path, good: Path) -> Path:
    """A bad controller: its weights file a link to a good one (links are not followed)."""
    path = copy_controller(tmp, good)
    path.rename(tmp / "real.pt")
    path.symlink_to("real.pt")
    return path


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


# --- planted modules, torn and special files, crafted images -----------------------------------------------------

PLANTED = """
import pathlib
import torch
pathlib.Path(__file__).with_name("MARKER").write_text("code ran")  # the payload: importing the module runs it


class Opt(torch.optim.SGD):
    pass
"""


def plant(module: str) -> Callable[[Path], None]:
    """A setup planting ``tmp/MODULE.py``, an optimizer module whose import creates the marker file."""
    return write(f"{module}.py", PLANTED)


def suite_naming(agent: str, module: str | None = None) -> Callable[[Path], None]:
    """A setup writing ``tmp/s.json``, a suite whose agents are ``[agent]``, with ``module`` planted beside it."""
    def setup(tmp: Path) -> None:
        write("s.json", {**SUITE, "agents": [agent]})(tmp)
        if module is not None:
            plant(module)(tmp)
    return setup


def fifo(name: str) -> Callable[[Path], None]:
    """A setup making ``tmp/name`` a FIFO (a named pipe: reading it blocks until someone writes)."""
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(tmp / name)
    return setup


def results_dir_of(suite_name: str, results: Callable[[Path], None]) -> Callable[[Path], None]:
    """A setup writing ``tmp/out``, a results directory of the registered suite ``suite_name`` whose
    ``results.jsonl`` is made by ``results(path)``."""
    def setup(tmp: Path) -> None:
        from minmax_envs.evaluation import get_suite

        write("out/suite.json", get_suite(suite_name).to_dict())(tmp)
        results(tmp / "out" / RESULTS_FILE)
    return setup


def deep_json(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def crafted_png(path: Path, width: int, height: int) -> Path:
    """A PNG of a few dozen bytes declaring a ``width`` x ``height`` image (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])  # 1-bit grey
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def image_folder(width: int, height: int) -> Callable[[Path], None]:
    """A setup writing ``tmp/images``, an image folder of one good image and one crafted PNG of ``width`` x
    ``height``."""
    def setup(tmp: Path) -> None:
        from PIL import Image

        (tmp / "images").mkdir(exist_ok=True)
        if not (tmp / "images" / "a.png").exists():
            Image.new("RGB", (8, 8)).save(tmp / "images" / "a.png")
        crafted_png(tmp / "images" / "b.png", width, height)
    return setup


def load_image_folder(tmp: Path) -> Any:
    from minmax_envs.images.data import load_images

    return load_images("imagefolder", data_dir=tmp / "images", resolution=8)


def bad_param_groups(groups: Callable[[tuple[str, ...]], Any]) -> Callable[[Path], Any]:
    def init(tmp: Path) -> Any:
        env = minmax_envs.make("Bilinear-v0", num_seeds=2, n=3)
        obs, _ = env.reset(seed=0)
        return agents.from_torch("torch.optim.SGD", lr=0.1, param_groups=groups).init(
            {"x": obs["generator"].params["x"], "z": obs["generator"].params["x"].clone()})
    return init


def gym_make(gym_id: str, **kwargs: Any) -> Callable[[Path], Any]:
    def make(tmp: Path) -> Any:
        import gymnasium

        return gymnasium.make(gym_id, **kwargs)
    return make


def rendered_before_reset(vector: bool) -> Callable[[Path], Any]:
    def render(tmp: Path) -> Any:
        from minmax_envs.gym_env import StepSizeEnv
        from minmax_envs.vector_env import StepSizeVectorEnv

        env = StepSizeVectorEnv(2, "DiracGAN-v0", render_mode="rgb_array") if vector else \
            StepSizeEnv("DiracGAN-v0", render_mode="rgb_array")
        return env.render()
    return render


NOT_AN_OPTIMIZER_PACKAGE = r"is not an optimizer package this program imports by name \(torch\.optim, pytorch_optimizer"
OPT_IN = r"opt in: minmax --allow-module {m}; Python: from_torch\(\.\.\., allow_modules=\['{m}'\]\)"


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
    cli("run-arg-unknown", RUN + ["--arg", "lossy=wgan"],
        r"DiracGAN-v0 got an unexpected keyword argument 'lossy'; allowed: "),
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
    cli("torch-agent-no-module", _torch_run("torch:nope.Adam"),
        rf"optimizer 'nope.Adam': the module 'nope' {NOT_AN_OPTIMIZER_PACKAGE}.*{OPT_IN.format(m='nope')}"),
    cli("torch-agent-uninstalled-package", _torch_run("torch:heavyball.ForeachAdamW"),
        r"optimizer 'heavyball.ForeachAdamW': no module to import, the package 'heavyball' is not installed \(pip "
        r"install heavyball\)"),
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
    api("suite-device-unknown", suite(device="tpu"), r"suite 's': device 'tpu' is not a device episodes run on"),
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
    api("store-results-is-a-dir", lambda tmp: ResultStore(tmp), rf"results file '.*/{RESULTS_FILE}' is a directory",
        setup=mkdir(RESULTS_FILE)),
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
               r"cannot be read: it refers to tests\.helpers\.plant_marker"),
    checkpoint("checkpoint-crafted-call-raw-pickle",
               lambda p: p.write_bytes(pickle.dumps(CallPickle(marker(p.parent)), protocol=2)),
               r"cannot be read: it refers to tests\.helpers\.plant_marker"),
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
    # files that are not regular files of their own: a link is not followed, a FIFO not waited on
    checkpoint("checkpoint-symlink", lambda p: (valid_checkpoint(p.with_name("real.pt")), p.symlink_to("real.pt")),
               r"cannot be read: it is a symbolic link, which is not followed"),
    checkpoint("checkpoint-fifo", lambda p: os.mkfifo(p), r"cannot be read: it is a FIFO file, not a regular file"),

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
    controller("controller-weights-symlink", linked_weights,
               r"controller weights '.*c\.pt' cannot be read: it is a symbolic link, which is not followed"),
    controller("controller-crafted-sb3-zip", crafted_zip, SB3_ZIP_REFUSED),
    controller("controller-crafted-sb3-zip-by-stem", lambda tmp, good: crafted_zip(tmp).with_suffix(""),
               SB3_ZIP_REFUSED),  # learned:NAME with only NAME.zip there
    api("convert-sb3-zip-without-opt-in", lambda tmp: convert_sb3_zip(tmp / "evil.zip"),
        r"convert_sb3_zip unpickles .*evil\.zip.*pass allow_pickle=True only for a file you trust", setup=crafted_zip),
    cli("run-learned-crafted-sb3-zip", ["run", "DiracGAN-v0", "--agent", "learned:{tmp}/evil.zip", "--lr", "0.1",
                                        "--steps", "2"], SB3_ZIP_REFUSED, setup=crafted_zip),
    cli("bench-learned-crafted-sb3-zip", BENCH + ["--agents", "sgda,learned:{tmp}/evil.zip"], SB3_ZIP_REFUSED,
        setup=crafted_zip),
    cli("bench-learned-missing", BENCH + ["--agents", "sgda,learned:{tmp}/missing.pt"],
        r"controller weights file '.*/missing\.pt' and description file '.*/missing\.json' do not exist"),

    # --- names never run code: torch:MODULE.CLASS imports only installed optimizer packages, or what is opted in to
    cli("torch-agent-this", _torch_run("torch:this.X"),  # importing `this` prints the Zen of Python
        rf"agent 'torch:this.X': optimizer 'this.X': the module 'this' {NOT_AN_OPTIMIZER_PACKAGE}.*"
        + OPT_IN.format(m="this")),
    cli("torch-agent-antigravity", _torch_run("torch:antigravity.X"),  # importing it opens a web browser
        rf"the module 'antigravity' {NOT_AN_OPTIMIZER_PACKAGE}"),
    cli("torch-agent-os", _torch_run("torch:os.system"), rf"the module 'os' {NOT_AN_OPTIMIZER_PACKAGE}"),
    cli("torch-agent-torch-not-optim", _torch_run("torch:torch.nn.Linear"),
        rf"the module 'torch.nn' {NOT_AN_OPTIMIZER_PACKAGE}.*{OPT_IN.format(m='torch')}"),
    cli("torch-agent-planted-module", _torch_run("torch:evil.Opt"),
        rf"the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}.*{OPT_IN.format(m='evil')}", setup=plant("evil")),
    cli("torch-agent-planted-submodule", _torch_run("torch:evil.sub.Opt"), r"the module 'evil.sub' "
        + NOT_AN_OPTIMIZER_PACKAGE, setup=plant("evil")),
    cli("torch-agent-planted-module-in-a-suite", ["bench", "--suite", "{tmp}/s.json", "--out", "{tmp}/out"],
        rf"agent 'torch:evil.Opt': .*the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}",
        setup=suite_naming("torch:evil.Opt", "evil")),
    cli("torch-agent-planted-module-balanced", _torch_run("balanced:torch:evil.Opt?ratio=2"),
        rf"the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}", setup=plant("evil")),
    cli("torch-agent-planted-package-name", _torch_run("torch:schedulefree.AdamWScheduleFree"),
        r"optimizer 'schedulefree.AdamWScheduleFree': 'schedulefree' would be imported from '.*/work/schedulefree"
        r"\.py', which is not an installed package \(not in site-packages.*" + OPT_IN.format(m="schedulefree"),
        setup=plant("schedulefree")),  # a planted file named like an allowed package is not that package
    cli("torch-agent-opt-in-not-a-module-name", _torch_run("torch:evil.Opt") + ["--allow-module", "evil;rm"],
        r"a module to allow optimizers from is a dotted module name such as 'my_optim'", setup=plant("evil")),
    cli("torch-agent-opt-in-another-module", _torch_run("torch:evil.Opt") + ["--allow-module", "good"],
        rf"the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}", setup=plant("evil")),
    api("from_torch-planted-module", lambda tmp: agents.from_torch("evil.Opt", lr=0.1),
        rf"optimizer 'evil.Opt': the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}.*{OPT_IN.format(m='evil')}",
        setup=plant("evil")),
    api("check_agent-planted-module", lambda tmp: check_agent("torch:evil.Opt"),
        rf"the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}", setup=plant("evil")),

    # --- hyperparameters typed by the optimizer's own signature; options torch would refuse only at the first step
    cli("torch-agent-bool-as-string", _torch_run('torch:torch.optim.Adam?amsgrad="false"'),
        r"amsgrad of torch\.optim\.Adam takes true or false \(its default is false\), got \"false\""),
    cli("torch-agent-bool-as-number", _torch_run("torch:torch.optim.Adam?amsgrad=1"),
        r"amsgrad of torch\.optim\.Adam takes true or false \(its default is false\), got 1"),
    cli("torch-agent-optional-bool-as-string", _torch_run('torch:torch.optim.SGD?foreach="no"'),
        r"foreach of torch\.optim\.SGD takes true, false or null \(its default is null\), got \"no\""),
    cli("torch-agent-number-as-string", _torch_run('torch:torch.optim.Adam?eps="1e-8"'),
        r"eps of torch\.optim\.Adam takes a number \(its default is 1e-08\), got \"1e-8\""),
    cli("torch-agent-number-as-bool", _torch_run("torch:torch.optim.SGD?momentum=true"),
        r"momentum of torch\.optim\.SGD takes a number .*got true"),
    cli("torch-agent-betas-one-number", _torch_run("torch:torch.optim.Adam?betas=[0.5]"),
        r"betas of torch\.optim\.Adam takes a list of 2 numbers \(its default is \[0\.9, 0\.999\]\), got \[0\.5\]"),
    cli("torch-agent-int-as-float", _torch_run("torch:pytorch_optimizer.Muon?ns_steps=2.5"),
        r"ns_steps of pytorch_optimizer\.Muon takes an integer \(its default is 5\), got 2\.5"),
    cli("torch-agent-unknown-hyperparameter", _torch_run("torch:torch.optim.Adam?amsgrd=true"),
        r"torch\.optim\.Adam has no hyperparameter 'amsgrd'; it takes amsgrad, betas, capturable"),
    cli("torch-agent-deep-json", _torch_run("torch:torch.optim.Adam?betas=" + "[" * 5000 + "]" * 5000),
        r"the value of betas must be JSON .*nested deeper than 64 levels"),
    cli("torch-agent-capturable", _torch_run("torch:torch.optim.Adam?capturable=true"),
        r"torch\.optim\.Adam with capturable=True steps tensors on cuda.* only \(for CUDA graphs\)"),
    cli("torch-agent-sparse-adam", _torch_run("torch:torch.optim.SparseAdam"),
        r"torch\.optim\.SparseAdam steps sparse gradients only .*the env's gradients are dense"),
    api("from_torch-param_groups-unknown-name", bad_param_groups(lambda names: [{"params": [*names, "w"]}]),
        r"param_groups\(names\) must return a list of dicts .*unknown names: \['w'\]"),
    api("from_torch-param_groups-name-left-out", bad_param_groups(lambda names: [{"params": ["x"]}]),
        r"param_groups\(names\) must return .*names in no group: \['z'\]"),
    api("from_torch-param_groups-name-twice",
        bad_param_groups(lambda names: [{"params": list(names)}, {"params": ["x"], "lr": 1.0}]),
        r"names in more than one group: \['x'\]"),
    api("from_torch-param_groups-not-a-list", bad_param_groups(lambda names: {"params": list(names)}),
        r"must return a list of dicts \{'params': \[parameter names\], \*\*options\}"),
    api("from_torch-param_groups-not-callable",
        lambda tmp: agents.from_torch("torch.optim.SGD", lr=0.1, param_groups=[{"params": ["x"]}]),
        r"param_groups must be a callable names -> "),

    # --- suites: what would fail only inside errors.jsonl is refused when the suite is read, naming the field
    api("suite-env_kwargs-num_seeds", task(env_kwargs={"n": 3, "num_seeds": 64}),
        r"suite 's': task 't': env_kwargs may not hold 'num_seeds': the protocol sets it"),
    api("suite-env_kwargs-device", task(env_kwargs={"n": 3, "device": "cuda"}),
        r"task 't': env_kwargs may not hold 'device': the suite's device field \(or --device\) sets it"),
    api("suite-env_kwargs-seed", task(env_kwargs={"n": 3, "seed": 1}), r"env_kwargs may not hold 'seed'"),
    api("suite-env_kwargs-unknown", task(env_kwargs={"n": 3, "nn": 4}),
        r"task 't': env_kwargs: Bilinear-v0 got unknown argument\(s\) \['nn'\]; allowed: dtype, regularizer, .*, n, "),
    api("suite-metric-unknown", task(metric="distnace"),
        r"task 't': metric 'distnace' is not a metric of Bilinear-v0 \(one number per seed\); choose one of "
        r"distance, diverged"),
    api("suite-target_metric-unknown", task(env_id="TwoMode-v0", env_kwargs={}, metric="mode_alignment",
                                            target_metric="cos_u1"),
        r"task 't': target_metric 'cos_u1' is not a metric of TwoMode-v0 \(one number per seed\)"),
    api("suite-device-meta", suite(device="meta"),
        r"suite 's': device 'meta' is not a device episodes run on; use cpu, cuda, cuda:N or mps"),
    api("suite-lr-times-ratio-overflows", task(lr_range=[1e-3, 1e300], ratios=[1.0, 1e10]),
        r"task 't': lr_range\[1\] \* ratios\[1\] = 1e\+300 \* 10000000000\.0 = inf is not a finite positive "
        r"step size"),
    api("suite-lr-times-ratio-underflows", task(lr_range=[1e-300, 1e-3], ratios=[1e-30]),
        r"task 't': lr_range\[0\] \* ratios\[0\] = 1e-300 \* 1e-30 = 0\.0 is not a finite positive step size"),
    api("suite-seed_block-absurd", suite(seed_block=10**9),
        r"suite 's': seed_block 1000000000 is more seeds than one batched env holds here \(at most 65536\)"),
    api("suite-task-agent-not-in-suite", task(agents=["adam"]),
        r"suite 's': task 't': agents names 'adam', which the suite's agents do not list \(sgda\)"),
    cli("suite-file-deep-json", ["bench", "--suite", "{tmp}/s.json"],
        r"suite file '.*/s\.json' is not valid JSON: nested deeper than 64 levels of arrays and objects at line 1 "
        r"column 65", setup=write("s.json", deep_json())),
    cli("suite-file-deep-json-in-a-field", ["bench", "--suite", "{tmp}/s.json"],
        r"suite file '.*/s\.json' is not valid JSON: nested deeper than 64 levels",
        setup=write("s.json", json.dumps({**SUITE, "description": "x"})[:-1] + ', "x": ' + "[" * 500 + "]" * 500
                    + "}")),
    cli("suite-file-fifo", ["bench", "--suite", "{tmp}/s.json"],
        r"suite file '.*/s\.json' is a FIFO \(named pipe\), not a regular file; it is not read", setup=fifo("s.json")),
    cli("suite-file-dev-zero", ["bench", "--suite", "{tmp}/s.json"],
        r"suite file '.*/s\.json' is a character device, not a regular file",
        setup=lambda tmp: os.symlink("/dev/zero", tmp / "s.json")),

    # --- results directories: special files, torn and deep suite.json
    cli("bench-suite.json-fifo", BENCH + ["--agents", "sgda"],
        r"/out/suite\.json is not a regular file; the program writes its suite\.json there",
        setup=fifo("out/suite.json")),
    cli("bench-results-fifo", BENCH + ["--agents", "sgda"],
        rf"/out/{RESULTS_FILE} is not a regular file; the program writes its {RESULTS_FILE} there",
        setup=results_dir_of("quick", os.mkfifo)),
    cli("bench-results-dev-zero", BENCH + ["--agents", "sgda"],
        rf"/out/{RESULTS_FILE} is a symbolic link",
        setup=results_dir_of("quick", lambda p: os.symlink("/dev/zero", p))),
    cli("report-results-fifo", ["report", "{tmp}/out"],
        rf"'.*/out/{RESULTS_FILE}' is a FIFO \(named pipe\), not a regular file", setup=fifo(f"out/{RESULTS_FILE}")),
    cli("report-results-dev-zero", ["report", "{tmp}/out"], rf"'.*/out/{RESULTS_FILE}' is a character device",
        setup=lambda tmp: mkdir("out")(tmp) or os.symlink("/dev/zero", tmp / "out" / RESULTS_FILE)),

    # --- sizes, images, services, envs
    cli("run-too-large-to-allocate", ["run", "Bilinear-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "1", "--arg",
                                      f"n={10**8}"],
        r"out of memory: can't allocate memory: you tried to allocate \d+ bytes.*; use smaller sizes \(--seeds, "
        r"--arg \.\.\.\)"),
    api("imagefolder-decompression-bomb", load_image_folder,
        r"cannot read image '.*/images/b\.png': it declares more than \d+ pixels \(PIL\.Image\.MAX_IMAGE_PIXELS\): "
        r"a decompression bomb", setup=image_folder(10**5, 10**5)),
    api("imagefolder-decompression-bomb-warned", load_image_folder,  # above PIL's limit, below twice it
        r"cannot read image '.*/images/b\.png': it declares more than \d+ pixels", setup=image_folder(10**4, 10**4)),
    api("imagefolder-fifo", load_image_folder,
        r"cannot read image '.*/images/a\.png': '.*a\.png' is a FIFO \(named pipe\), not a regular file",
        setup=lambda tmp: fifo("images/a.png")(tmp) or image_folder(8, 8)(tmp)),
    cli("bench-ray-unreachable", BENCH + ["--agents", "sgda", "--backend", "ray", "--address", "127.0.0.1:1"],
        r"--address '127\.0\.0\.1:1': no Ray cluster reachable there \(.* within 10 s\)"),
    cli("bench-ray-address-malformed", BENCH + ["--agents", "sgda", "--backend", "ray", "--address", "headnode"],
        r"--address 'headnode' is not a Ray cluster address: give host:port or ray://host:port"),
    api("bench-api-device-meta", lambda tmp: minmax_envs.evaluation.bench("quick", ["sgda"], tmp / "out",
                                                                          device="meta", progress=False),
        r"device 'meta' is not a device; use cpu, cuda, cuda:N or mps"),
    api("bench-api-device-cuda-index", lambda tmp: minmax_envs.evaluation.bench("quick", ["sgda"], tmp / "out",
                                                                                device="cuda:99", progress=False),
        r"device 'cuda:99': (CUDA is not available here|this machine has \d+ CUDA device)"),
    api("bench-api-ray-unreachable", lambda tmp: minmax_envs.evaluation.bench(
        "quick", ["sgda"], tmp / "out", backend="ray", address="127.0.0.1:1", progress=False),
        r"address '127\.0\.0\.1:1': no Ray cluster reachable there \(.* within 10 s\)"),
    api("bench-api-ray-address-malformed", lambda tmp: minmax_envs.evaluation.bench(
        "quick", ["sgda"], tmp / "out", backend="ray", address="headnode", progress=False),
        r"address 'headnode' is not a Ray cluster address: give host:port or ray://host:port"),
    api("bench-api-ray-address-not-a-string", lambda tmp: minmax_envs.evaluation.bench(
        "quick", ["sgda"], tmp / "out", backend="ray", address=6379, progress=False),
        r"address must be a string host:port or ray://host:port, got 6379"),
    api("gym-make-env_id-of-another-game", gym_make("minmax_envs/DiracGAN-v0", env_id="TwoMode-v0"),
        r"gymnasium id 'minmax_envs/DiracGAN-v0' is the game DiracGAN-v0; env_id='TwoMode-v0' names another game: "
        r"make minmax_envs/TwoMode-v0 instead"),
    api("gym-make_vec-env_id-of-another-game",
        lambda tmp: __import__("gymnasium").make_vec("minmax_envs/DiracGAN-v0", num_envs=2, env_id="Bilinear-v0",
                                                     vectorization_mode="vector_entry_point"),
        r"gymnasium id 'minmax_envs/DiracGAN-v0' is the game DiracGAN-v0; env_id='Bilinear-v0' names another game"),
    api("gym-render-before-reset", rendered_before_reset(vector=False), r"call reset\(\) before render\(\)",
        error=RuntimeError),
    api("gym-vector-render-before-reset", rendered_before_reset(vector=True), r"call reset\(\) before render\(\)",
        error=RuntimeError),
    controller("controller-description-deep-json", replaced(".json", deep_json()),
               r"controller description '.*c\.json' is not valid JSON: nested deeper than 64 levels"),
    # --- the RL faces: an unknown keyword is Python's TypeError (also a ValueError), worded as Python words it
    api("gym-make-unknown-keyword", lambda tmp: _gym_make("minmax_envs/DiracGAN-v0", frameskip=4),
        r"^DiracGAN-v0 got an unexpected keyword argument 'frameskip'; allowed: loss, "),
    api("vector-env-unknown-keyword", lambda tmp: _vector_env(2, "Bilinear-v0", size=3),
        r"^Bilinear-v0 got an unexpected keyword argument 'size'; allowed: n, "),
    api("parallel-env-unknown-keywords", lambda tmp: minmax_envs.parallel_env("DiracGAN-v0", lr=1, seed=2),
        r"^DiracGAN-v0 got unexpected keyword arguments 'lr', 'seed'; allowed: loss, "),
    api("vector-env-autoreset_mode-unknown", lambda tmp: _vector_env(2, "DiracGAN-v0", autoreset_mode="SAME_STEP"),
        r"unknown autoreset_mode 'SAME_STEP'; choose one of AutoresetMode\.NEXT_STEP \('NextStep'\), "
        r"AutoresetMode\.SAME_STEP \('SameStep'\), AutoresetMode\.DISABLED \('Disabled'\)"),
    # --- a controller's observation normalization (baselines/ppo_step_size.py writes one)
    controller("controller-observation_normalization-keys",
               described(lambda d: d.update(observation_normalization={"mean": [0.0] * 11})),
               r"'.*c\.json': observation_normalization must be an object with exactly the keys mean, var, epsilon, "
               r"clip"),
    controller("controller-observation_normalization-mean-short", described(lambda d: d.update(
        observation_normalization={"mean": [0.0] * 3, "var": [1.0] * 11, "epsilon": 1e-8, "clip": 10.0})),
               r"'.*c\.json': observation_normalization: mean must be a list of 11 finite numbers \(one per "
               r"observation entry, in the policy's order\)"),
    controller("controller-observation_normalization-var-negative", described(lambda d: d.update(
        observation_normalization={"mean": [0.0] * 11, "var": [-1.0] * 11, "epsilon": 1e-8, "clip": 10.0})),
               r"observation_normalization: var must be a list of 11 finite numbers >= 0"),
    controller("controller-observation_normalization-clip-zero", described(lambda d: d.update(
        observation_normalization={"mean": [0.0] * 11, "var": [1.0] * 11, "epsilon": 1e-8, "clip": 0})),
               r"observation_normalization: clip must be a finite number in \(0.0, inf\), got 0"),
    # --- the native PPO trainer's arguments (baselines/ppo_step_size.py)
    api("ppo-action-unknown", lambda tmp: PPOArgs(action="lr"),
        r"unknown action 'lr'; choose one of step_sizes, balance"),
    api("ppo-num_envs-zero", lambda tmp: PPOArgs(num_envs=0), r"num_envs must be an int >= 1, got 0"),
    api("ppo-total_timesteps-below-a-rollout", lambda tmp: PPOArgs(total_timesteps=100),
        r"total_timesteps=100 is less than one rollout, num_envs \* num_steps = 4096"),
    api("ppo-gamma-above-1", lambda tmp: PPOArgs(gamma=1.5), r"gamma must be in \[0.0, 1.0\], got 1.5"),
    api("ppo-device-unknown", lambda tmp: PPOArgs(device="tpu"), r"unknown device 'tpu'; choose cpu or cuda"),
    api("ppo-reward-unknown", lambda tmp: PPOArgs(reward="log"),
        r"unknown reward 'log'; choose one of change, log-distance"),
    api("ppo-reward-log-distance-of-a-larger-is-better-metric",
        lambda tmp: make_ppo_env(PPOArgs(suite="quick", task="two-mode-small", reward="log-distance", num_envs=4)),
        r"reward 'log-distance' needs a quality metric that is a distance \(smaller is better\); task "
        r"'two-mode-small'"),
    # a controller shipped in the package (learned:pkg:NAME): only the shipped names, never a path
    cli("bench-learned-pkg-unknown", BENCH + ["--agents", "sgda,learned:pkg:nope"],
        r"controller 'pkg:nope' is not shipped with minmax_envs; shipped: pkg:balance-correlated-coefficients, "
        r"pkg:balance-correlated-modes\b"),
    api("learned-pkg-path", lambda tmp: check_agent("learned:pkg:../controllers_data/balance-correlated-modes"),
        r"controller 'pkg:\.\./controllers_data/balance-correlated-modes' is not shipped with minmax_envs"),
    api("save-controller-into-the-package", lambda tmp: save_controller(None, None, "pkg:mine"),
        r"save_controller writes NAME\.pt and NAME\.json; pass NAME or NAME\.pt, not 'pkg:mine'"),
]


def _gym_make(env_id: str, **kwargs: Any) -> Any:
    import gymnasium

    return gymnasium.make(env_id, **kwargs)


def _vector_env(num_envs: int, env_id: str, **kwargs: Any) -> Any:
    from minmax_envs.vector_env import StepSizeVectorEnv

    return StepSizeVectorEnv(num_envs, env_id, **kwargs)


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


@pytest.fixture
def arena(tmp_path, monkeypatch) -> Path:
    """``tmp_path/work``, the directory a row gets as ``tmp``: the working directory and first on ``sys.path`` (as
    under ``python -m minmax_envs``), beside ``tmp_path/outside`` holding a file of the user's."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "notes.txt").write_text("the user's own file\n")
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    return work


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed): a file's sha1, a link's target, or its kind."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            rel = path.relative_to(root).as_posix()
            if stat.S_ISREG(mode):
                out[rel] = ("file", hashlib.sha1(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(mode):
                out[rel] = ("link", os.readlink(path))
            else:
                out[rel] = ("dir",) if stat.S_ISDIR(mode) else ("special", stat.S_IFMT(mode))
    return out


FOREIGN = ("this", "antigravity")  # modules whose import runs something (prints, opens a browser)


def untouched(work: Path, before: dict[str, tuple], modules: set[str]) -> None:
    """Nothing outside ``work`` changed (its sibling ``outside``, its parent), and in ``work`` only ``work/out``
    (the results directory the rows name); no planted or foreign module was imported."""
    assert sorted(os.listdir(work.parent)) == ["outside", "work"]
    assert snapshot(work.parent / "outside") == {"notes.txt": ("file", hashlib.sha1(b"the user's own file\n")
                                                                          .hexdigest())}
    after = snapshot(work)
    outside_out = [k for k in {*before, *after} if k != "out" and not k.startswith("out/")]
    assert [k for k in outside_out if before.get(k) != after.get(k)] == [], "a file was made or changed"
    imported = [m for m in set(sys.modules) - modules if m in FOREIGN or str(work) in str(
        getattr(sys.modules[m], "__file__", None) or "")]
    assert imported == [], f"imported {imported}"


@pytest.mark.parametrize("row", _rows("cli"))
def test_bad_command_line_input_exits_2_with_a_one_line_error(row, arena, capsys):
    if row.setup is not None:
        row.setup(arena)
    before, modules = snapshot(arena), set(sys.modules)
    argv = [a.replace("{tmp}", str(arena)) for a in row.trigger]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors (usage line, then the error)
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("minmax") and "error: " in last, err
    assert re.search(row.message, last), (row.message, last)
    assert not marker(arena).exists(), "a crafted input ran code"
    assert "The Zen of Python" not in out
    untouched(arena, before, modules)


@pytest.mark.parametrize("row", _rows("api"))
def test_bad_api_input_raises_a_value_error_with_a_clear_message(row, arena):
    if row.setup is not None:
        row.setup(arena)
    before, modules = snapshot(arena), set(sys.modules)
    with pytest.raises(row.error, match=row.message):
        row.trigger(arena)
    assert not marker(arena).exists(), "a crafted input ran code"
    untouched(arena, before, modules)


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


# === instance families (minmax_envs.families) ========================================================================
# Rows for families, their specs in suite files and per-seed game arguments. pytest parametrizes a test when it is
# defined, so these rows, appended after the table's tests, are run by the two tests below (which apply the table's
# checks); they join ROWS, whose ids must stay unique.

import gymnasium  # noqa: E402

from minmax_envs.families import Family, get_family  # noqa: E402

FAMILY = {"name": "f", "env_id": "Bilinear-v0", "train": 4, "test": 4, "group": 2,
          "params": [{"name": "sigma_min", "distribution": "log_uniform", "low": 0.1, "high": 0.5, "per_seed": True}]}
SIGMA = FAMILY["params"][0]


def family(**fields: Any) -> Callable[[Path], Family]:
    """``Family.from_dict`` of :data:`FAMILY` with ``fields`` replaced."""
    return lambda tmp: Family.from_dict({**FAMILY, **fields})


def param(**fields: Any) -> Callable[[Path], Family]:
    """:data:`FAMILY` whose parameter has ``fields`` replaced (``None``: dropped)."""
    p = {k: v for k, v in {**SIGMA, **fields}.items() if v is not None}
    return family(params=[p])


FAMILY_ROWS = [
    api("family-unknown-name", task(family="nope"),
        r"suite 's': task 't': unknown family 'nope'; registered families: .*bilinear-cond"),
    api("family-not-a-family", task(family=3), r"task 't': a family is a Family, a registered family's name \(.*\) or "
                                               r"a family object, got 3"),
    api("family-of-another-game", task(family="dirac-r1"),
        r"task 't': family 'dirac-r1' draws arguments of DiracGAN-v0, not of Bilinear-v0"),
    api("family-argument-set-by-the-task", task(family=FAMILY, env_kwargs={"sigma_min": 0.2}),
        r"task 't': \['sigma_min'\] are set by family 'f'; leave them out of the task's arguments"),
    api("family-unknown-field", family(seeds=3),
        r"family 'f': unknown family field\(s\) \['seeds'\]; allowed: name, env_id, params, kwargs, train, test, "
        r"group, seed, description"),
    api("family-missing-params", lambda tmp: Family.from_dict({k: v for k, v in FAMILY.items() if k != "params"}),
        r"family 'f': missing family field\(s\) \['params'\]; required: name, env_id, params"),
    api("family-no-params", family(params=[]), r"family 'f': params must be a non-empty list of parameters"),
    api("family-unknown-env", family(env_id="Nope-v0"), r"family 'f': unknown environment id 'Nope-v0'"),
    api("family-not-an-argument", param(name="gamma"),
        r"family 'f': Bilinear-v0 has no argument 'gamma'; its arguments: n, sigma_min, sigma_max"),
    api("family-shape-per-seed", param(name="n", distribution="choice", choices=[3, 4], low=None, high=None),
        r"family 'f': 'n' cannot vary per seed in Bilinear-v0 \(it changes a tensor's shape or is discrete\): set "
        r"per_seed false; arguments that can: sigma_min, sigma_max"),
    api("family-unknown-distribution", param(distribution="normal"),
        r"family 'f': parameter 'sigma_min': unknown distribution 'normal'; choose one of uniform, log_uniform, "
        r"choice"),
    api("family-empty-interval", param(high=0.1),
        r"parameter 'sigma_min': high must be a finite number in \(0\.1, inf\), got 0\.1"),
    api("family-log-uniform-from-zero", param(low=0.0),
        r"parameter 'sigma_min': low must be a finite number in \(0\.0, inf\), got 0\.0"),
    api("family-choices-and-interval", param(choices=[0.1, 0.2]),
        r"parameter 'sigma_min': a log_uniform distribution has low / high, not choices"),
    api("family-empty-choices", param(distribution="choice", choices=[], low=None, high=None),
        r"parameter 'sigma_min': choices must be a non-empty list of values, got \[\]"),
    api("family-text-choice-per-seed", param(distribution="choice", choices=[0.1, "x"], low=None, high=None),
        r"parameter 'sigma_min': a parameter drawn per seed takes numbers, got choices\[1\] = 'x'"),
    api("family-unknown-param-field", param(mean=0.2), r"params\[0\] 'sigma_min': unknown parameter field\(s\) "
                                                       r"\['mean'\]"),
    api("family-fixed-and-drawn", family(kwargs={"sigma_min": 0.2}),
        r"family 'f': \['sigma_min'\] are both drawn \(params\) and fixed \(kwargs\)"),
    api("family-group-does-not-divide", family(group=3, params=[
        SIGMA, {"name": "n", "distribution": "choice", "choices": [3, 4]}]),
        r"family 'f': group 3 must divide train 4 and test 4 \(instances of a group share n\)"),
    api("family-value-outside-the-game", param(low=0.5, high=3.0),
        r"family 'f': train instances 0\.\.3: sigma_max must be >= sigma_min for every seed; it is below for seed "
        r"slots \[\d"),
    api("family-too-few-values", family(params=[{"name": "n", "distribution": "choice", "choices": [3]}]),
        r"family 'f': cannot draw 4 test instances that differ from every train instance in 100 attempts"),
    api("family-unknown-split", lambda tmp: get_family("dirac-r1").instances("eval"),
        r"unknown split 'eval'; a family has the splits 'train' and 'test'"),
    api("family-gymnasium-unknown-name", lambda tmp: gymnasium.make("minmax_envs/DiracGAN-v0", family="nope"),
        r"unknown family 'nope'; registered families:"),
    api("family-gymnasium-argument-set-twice",
        lambda tmp: gymnasium.make("minmax_envs/DiracGAN-v0", family="dirac-r1", penalty_weight=2.0),
        r"\['penalty_weight'\] are set by family 'dirac-r1'; leave them out of the task's arguments"),
    api("per-seed-argument-wrong-length", lambda tmp: minmax_envs.make("TwoMode-v0", num_seeds=3, gamma=[0.1, 0.2]),
        r"gamma per seed must have one value per seed \(num_seeds=3\), got 2"),
    api("per-seed-argument-out-of-range", lambda tmp: minmax_envs.make("TwoMode-v0", num_seeds=2, gamma=[0.1, 1.5]),
        r"gamma\[1\] must be a finite number in \[0\.0, 1\.0\), got 1\.5"),
    cli("bench-suite-file-bad-family", ["bench", "--suite", "{tmp}/s.json", "--out", "{tmp}/out", "--no-progress"],
        r"suite file '.*s\.json' is not a valid suite: suite 's': task 't': family 'f': parameter 'sigma_min': "
        r"unknown distribution 'normal'",
        setup=write("s.json", {**SUITE, "tasks": [{**TASK, "env_kwargs": {}, "family": {
            **FAMILY, "params": [{**SIGMA, "distribution": "normal"}]}}]})),
]
ROWS += FAMILY_ROWS


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in FAMILY_ROWS if _kind(r) == "api"])
def test_bad_family_input_raises_a_value_error_with_a_clear_message(row, arena):
    test_bad_api_input_raises_a_value_error_with_a_clear_message(row, arena)


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in FAMILY_ROWS if _kind(r) == "cli"])
def test_bad_family_command_line_input_exits_2_with_a_one_line_error(row, arena, capsys):
    test_bad_command_line_input_exits_2_with_a_one_line_error(row, arena, capsys)


# --- cases beyond the table: the documented `python -m` form, Ctrl-C, huge lines, a deep suite.json ----------------

ROOT = Path(__file__).resolve().parent.parent


def test_python_dash_m_beside_a_planted_module_runs_no_code(tmp_path):
    """``python -m minmax_envs`` (documented as the ``minmax`` command) puts the working directory first on
    ``sys.path``: a suite file there naming ``torch:evil.Opt``, with ``evil.py`` beside it, is refused unimported."""
    plant("evil")(tmp_path)
    write("s.json", {**SUITE, "agents": ["torch:evil.Opt"]})(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "minmax_envs", "bench", "--suite", "s.json", "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(rf"agent 'torch:evil.Opt': .*the module 'evil' {NOT_AN_OPTIMIZER_PACKAGE}.*"
                     + OPT_IN.format(m="evil"), proc.stderr.strip().splitlines()[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.py", "s.json"]  # no MARKER, no __pycache__, no out


def test_ctrl_c_stops_a_sweep_with_one_line_and_status_130_and_the_store_resumes(tmp_path, monkeypatch, capsys):
    from minmax_envs.evaluation import protocol

    write("s.json", {**SUITE, "budget": 2})(tmp_path)  # two tuning units, then the held-out one
    argv = ["bench", "--suite", str(tmp_path / "s.json"), "--no-progress", "--no-report", "--out"]
    run_unit, calls = protocol.run_unit, []

    def interrupted_at_the_second(unit):
        calls.append(unit)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_unit(unit)

    monkeypatch.setattr(protocol, "run_unit", interrupted_at_the_second)
    assert main(argv + [str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("minmax: interrupted (every episode finished is stored: the same command "
                                            "resumes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedRecordWarning)
        kept = list(ResultStore(tmp_path / "out").records())
    assert len(kept) == 8  # the first unit's tuning seeds, intact
    monkeypatch.setattr(protocol, "run_unit", run_unit)
    assert main(argv + [str(tmp_path / "out")]) == 0
    assert main(argv + [str(tmp_path / "clean")]) == 0
    resumed, clean = (list(ResultStore(tmp_path / d).records()) for d in ("out", "clean"))
    assert {r["key"]: r["value"] for r in resumed} == {r["key"]: r["value"] for r in clean}
    assert all(r in resumed for r in kept)


def test_a_results_line_longer_than_any_record_is_refused_unread(finished, tmp_path, monkeypatch, capsys):
    """A multi-gigabyte line (the cap lowered to 1000 bytes here) is refused in one line, never read whole."""
    from minmax_envs import _json

    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "out" / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"[" + b" " * 5000 + b"]\n" + b"".join(lines[1:]))
    monkeypatch.setattr(_json, "MAX_LINE_BYTES", 1000)
    reads = []
    monkeypatch.setattr(_json, "lines", lambda f, max_bytes=None, name=None, real=_json.lines: (
        reads.append(str(name)), real(f, max_bytes, name))[1])
    for argv in (["report", str(tmp_path / "out"), "--no-plots"],
                 ["bench", "--suite", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "out"), "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert re.search(rf"minmax: error: '.*/out/{RESULTS_FILE}': line 2 is longer than 1000 bytes, which no record "
                         r"is; this is not a results file written by minmax_envs", err.strip().splitlines()[-1])
    assert reads and path.read_bytes().startswith(lines[0] + b"[ ")  # refused, not moved or rewritten


def test_a_suite_json_task_with_a_non_numeric_target_is_named_and_the_report_goes_on(finished, tmp_path, capsys):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    suite = json.loads((tmp_path / "out" / "suite.json").read_text())
    suite["tasks"].append({**suite["tasks"][0], "name": "no-records", "target": "ten"})
    suite["run"]["tasks"] = None
    (tmp_path / "out" / "suite.json").write_text(json.dumps(suite))
    assert main(["report", str(tmp_path / "out"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"minmax: warning: .*/out/suite\.json: task 'no-records': target must be a finite number, "
                     r"got 'ten'; the report is made without it", err)


@pytest.mark.parametrize("spec, problem", [
    ({"kind": "points", "name": "p"}, r"'p' \(x and y must name metrics\)"),
    ({"kind": "samples", "name": "s", "marks": [["a", 1]]}, r"'s' \(marks must be \[x, y\] pairs of numbers\)"),
    ({"kind": "samples", "name": "s", "limit": "big"}, r"'s' \(limit must be a positive number\)"),
])
def test_a_malformed_stored_plot_is_named_and_left_out(spec, problem, finished, tmp_path, capsys):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "out" / RESULTS_FILE
    records = [json.loads(x) for x in path.read_bytes().splitlines()]
    path.write_text("".join(json.dumps({**r, "plots": [spec]}) + "\n" for r in records))
    assert main(["report", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(rf"records describe malformed plots {problem}; they are left out", err)


def test_a_deep_suite_json_warns_once_and_the_report_goes_on(finished, tmp_path, capsys):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    (tmp_path / "out" / "suite.json").write_bytes(deep_json())
    assert main(["report", str(tmp_path / "out"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"minmax: warning: .*/out/suite\.json: cannot be read \(nested deeper than 64 levels", err)


# ======================================================================================================================
# Results and log directories: links, torn files, foreign directories (issue 26, section 2). A row of this block
# prepares a copy of the finished sweep (``tmp/out``, with its report) and files of the user's outside it
# (``tmp/victim``: the links point there), runs ``minmax ARGV`` and checks the outcome: exit 2 with the message, or
# success (``message`` None) and ``after(tmp)``. Every row checks that nothing changed outside the folders the
# command may write (``may_change``: ``tmp/out`` and ``tmp/tb``, or nothing at all for a refused directory).
# ======================================================================================================================

@dataclass(frozen=True)
class Confined:
    id: str
    setup: Callable[[Path], Any]
    argv: list[str]
    message: str | None  # None: the command succeeds
    after: Callable[[Path], Any] | None = None
    may_change: tuple[str, ...] = ("out", "tb")


OUT = "{tmp}/out"
REPORT = ["report", OUT, "--no-plots"]
REPORT_PLOTS = ["report", OUT]
TENSORBOARD = ["report", OUT, "--no-plots", "--tensorboard", "{tmp}/tb"]
TINY_BENCH = ["bench", "--suite", "{tmp}/tiny.json", "--out", OUT, "--no-progress", "--no-plots"]
VICTIM = b"the user's own file\n"
LINK_REFUSED = r"is a symbolic link; .*never follows a link"


def victim(tmp: Path, name: str = "file") -> Path:
    """A file of the user's (``tmp/victim/name``): what a planted link points to."""
    path = tmp / "victim" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(VICTIM)
    return path


def link(name: str, to: str = "file", *, folder: bool = False) -> Callable[[Path], None]:
    """A setup: ``tmp/out/name`` (what was there removed) is a symbolic link to the user's ``tmp/victim/to``: a file,
    or with ``folder`` a folder holding one."""
    def setup(tmp: Path) -> None:
        target = victim(tmp, f"{to}/inside").parent if folder else victim(tmp, to)
        path = tmp / "out" / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    return setup


def tb_link(run: str, to: Callable[[Path], Path]) -> Callable[[Path], None]:
    """A setup: ``tmp/tb/run`` is a symbolic link to ``to(tmp)``."""
    def setup(tmp: Path) -> None:
        path = tmp / "tb" / run
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(to(tmp))
    return setup


def each(*setups: Callable[[Path], Any]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


def is_file(name: str) -> Callable[[Path], None]:
    """An after-check: ``tmp/out/name`` is now a regular file (the link there was replaced)."""
    def check(tmp: Path) -> None:
        path = tmp / "out" / name
        assert path.is_file() and not path.is_symlink(), name
    return check


def edit_records(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    """A setup: every record of ``tmp/out/results.jsonl`` through ``change``."""
    def setup(tmp: Path) -> None:
        path = tmp / "out" / RESULTS_FILE
        path.write_text("".join(json.dumps(change(json.loads(x))) + "\n" for x in path.read_text().splitlines()))
    return setup


def edit_lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[Path], None]:
    """A setup: the lines of ``tmp/out/results.jsonl`` through ``change`` (a damaged line: its episode runs again)."""
    def setup(tmp: Path) -> None:
        path = tmp / "out" / RESULTS_FILE
        path.write_bytes(b"".join(change(path.read_bytes().splitlines(keepends=True))))
    return setup


def tear(name: str, keep: int = 40) -> Callable[[Path], None]:
    """A setup: ``tmp/out/name`` cut after ``keep`` bytes (a crash or a full disk during its write)."""
    def setup(tmp: Path) -> None:
        path = tmp / "out" / name
        path.write_bytes(path.read_bytes()[:keep])
    return setup


def fifo_in_out(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / "out" / name).unlink()
        os.mkfifo(tmp / "out" / name)
    return setup


def users_folder(**files: bytes) -> Callable[[Path], None]:
    """A setup: ``tmp/out`` is a folder of the user's holding ``files`` (nothing of a sweep)."""
    def setup(tmp: Path) -> None:
        shutil.rmtree(tmp / "out")
        (tmp / "out").mkdir()
        for name, data in files.items():
            (tmp / "out" / name).write_bytes(data)
    return setup


def recovered_suite_json(tmp: Path) -> None:
    saved = json.loads((tmp / "out" / "suite.json").read_text())
    assert saved["name"] == "tiny" and saved["run"]["agents"] == ["sgda"]
    assert len(list(ResultStore(tmp / "out").records())) == 3


def plots_inside(tmp: Path) -> None:
    assert "evil_curves.png" in {p.name for p in (tmp / "out" / "plots").iterdir()}
    assert not (tmp / "evil").exists() and not (tmp / "evil_curves.png").exists()


def tb_inside(tmp: Path) -> None:
    assert [p.name for p in (tmp / "tb").iterdir()] == ["_"]  # the task ".."
    assert [p.name for p in (tmp / "tb" / "_").iterdir()] == ["x"]  # the agent "../../x"


def one_event_file(tmp: Path) -> None:
    (only,) = [p for p in (tmp / "tb" / "bilinear" / "sgda").iterdir() if p.name.startswith("events.")]
    assert only.is_file() and not only.is_symlink()


SUITE_FILE_OF_THE_USER = json.dumps(TINY).encode()

CONFINED = [
    # files the program replaces: a link there is replaced by the file, the link's target untouched
    *[Confined(f"report-replaces-a-link-at-{name}", link(name), REPORT, None, is_file(name))
      for name in ("leaderboard.md", "summary.csv", "configs.csv")],
    Confined("report-replaces-a-link-at-a-plot", link("plots/bilinear_curves.png"), REPORT_PLOTS, None,
             is_file("plots/bilinear_curves.png")),
    Confined("bench-replaces-a-link-at-suite-json", link("suite.json"), TINY_BENCH, None,
             each(is_file("suite.json"), recovered_suite_json)),
    Confined("tensorboard-replaces-a-link-at-an-event-file",
             tb_link("bilinear/sgda/events.out.tfevents.1.h.1.0.minmax", victim), TENSORBOARD, None, one_event_file),
    # files appended and folders entered: a link there is refused before anything is written
    Confined("report-results-is-a-link", link(RESULTS_FILE), REPORT, rf"out/{RESULTS_FILE} {LINK_REFUSED}"),
    Confined("report-plots-is-a-link", link("plots", "pictures", folder=True), REPORT_PLOTS,
             rf"out/plots {LINK_REFUSED}"),
    Confined("bench-results-is-a-link", link(RESULTS_FILE), TINY_BENCH, rf"out/{RESULTS_FILE} {LINK_REFUSED}"),
    Confined("bench-errors-is-a-link", link("errors.jsonl"), TINY_BENCH, rf"out/errors.jsonl {LINK_REFUSED}"),
    Confined("bench-damaged-file-is-a-link", link(DAMAGED_FILE), TINY_BENCH, rf"out/{DAMAGED_FILE} {LINK_REFUSED}"),
    Confined("bench-lock-is-a-link", link(".results.lock"), TINY_BENCH, rf"out/\.results\.lock {LINK_REFUSED}"),
    Confined("bench-claims-is-a-link", link(".claims", "claims", folder=True), TINY_BENCH,
             rf"out/\.claims {LINK_REFUSED}"),
    Confined("bench-claims-is-a-file", lambda tmp: (tmp / "out" / ".claims").rmdir() or (
        tmp / "out" / ".claims").write_text("x"), TINY_BENCH,
             r"out/\.claims is not a folder"),
    Confined("bench-results-is-a-fifo", fifo_in_out(RESULTS_FILE), TINY_BENCH,
             rf"out/{RESULTS_FILE} is not a regular file"),
    Confined("tensorboard-run-folder-is-a-link", tb_link("bilinear", lambda tmp: victim(tmp, "logs/inside").parent),
             TENSORBOARD, rf"tb/bilinear {LINK_REFUSED}"),
    # the store's rewrite of a damaged file goes to a fresh temporary file: a link planted under the old name is inert
    Confined("bench-rewrite-ignores-a-planted-tmp-link",
             each(link(f".{RESULTS_FILE}.tmp"), edit_lines(lambda lines: [lines[0], b"not json\n", lines[2]])),
             TINY_BENCH, None, lambda tmp: (tmp / "out" / DAMAGED_FILE).is_file()),
    # names from records cannot leave the directories
    Confined("report-task-named-dot-dot", edit_records(lambda r: {**r, "task": "../../evil"}), REPORT_PLOTS, None,
             plots_inside),
    Confined("tensorboard-names-dot-dot", edit_records(lambda r: {**r, "task": "..", "agent": "../../x"}),
             TENSORBOARD, None, tb_inside),
    # a torn or lost suite.json beside intact records is recovered from the suite on the command line
    Confined("bench-recovers-a-torn-suite-json", tear("suite.json"), TINY_BENCH, None, recovered_suite_json),
    Confined("bench-recovers-a-missing-suite-json", lambda tmp: (tmp / "out" / "suite.json").unlink(), TINY_BENCH,
             None, recovered_suite_json),
    Confined("bench-torn-suite-json-and-records-of-another-suite",
             each(tear("suite.json"), edit_records(lambda r: {**r, "suite": "other"})), TINY_BENCH,
             r"has results but its suite.json cannot be read \(.*\), and the records are not of suite 'tiny' "
             r"version 1 \(a record is of suite 'other' version 1\)", may_change=()),
    Confined("bench-torn-suite-json-and-records-of-another-task-definition",
             each(tear("suite.json"), edit_records(lambda r: {**r, "steps": 31})), TINY_BENCH,
             r"the records are not of suite 'tiny' version 1 \(a record of task 'bilinear' has steps 31, the suite "
             r"30\)", may_change=()),
    # --out into a folder that is not a results directory of this suite: refused, nothing in it written
    Confined("bench-out-holds-other-files", users_folder(**{"thesis.tex": VICTIM}), TINY_BENCH,
             r"out directory '.*/out' exists and is not a results directory \(it holds 'thesis\.tex', and no "
             r"suite\.json or results\.jsonl\)", may_change=()),
    Confined("bench-out-holds-a-foreign-suite-json", users_folder(**{"suite.json": VICTIM}), TINY_BENCH,
             r"out directory '.*/out' holds a suite.json that bench did not write \(it cannot be read",
             may_change=()),
    Confined("bench-out-holds-the-suite-file-itself", users_folder(**{"suite.json": SUITE_FILE_OF_THE_USER}),
             TINY_BENCH, r"holds a suite.json that bench did not write \(it has no 'run'\) and no results.jsonl",
             may_change=()),
]


def _tree(root: Path, skip: set[Path]) -> dict[str, tuple]:
    """Everything under ``root`` but the ``skip`` folders, links not followed: kind, size, time and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            p = here / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                out[str(p)] = ("file", st.st_size, st.st_mtime_ns, p.read_bytes())
            else:
                out[str(p)] = ("other", st.st_mode)
    return out


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in CONFINED])
def test_writes_stay_inside_their_directory_and_never_follow_a_link(row, finished, tmp_path, capsys):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    assert main(["report", str(tmp_path / "out")]) == 0  # the finished sweep's report and plots
    victim(tmp_path)
    row.setup(tmp_path)
    capsys.readouterr()
    skip = {tmp_path / name for name in row.may_change}
    before = _tree(tmp_path, skip)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in row.argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if row.message is None:
        assert code == 0, err
        if row.after is not None:
            row.after(tmp_path)
    else:
        assert code == 2, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("minmax: error: ") and re.search(row.message, last), (row.message, last)
    assert _tree(tmp_path, skip) == before, "a file outside the directory changed"
    assert all(p.read_bytes() == VICTIM for p in (tmp_path / "victim").rglob("*") if p.is_file())

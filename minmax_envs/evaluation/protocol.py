"""The evaluation protocol: equal step-size tuning budget, tuned configuration re-run on held-out seeds.

For every (task, agent) of a suite:

1. **Tuning.** The agent's step sizes ``(lr_d, lr_g)`` are searched over ``budget`` configurations, the
   same configurations for every agent (:func:`search_space`: a log-spaced grid of ``lr_d`` over the
   task's ``lr_range`` times its generator/discriminator ``ratios``, or as many random draws), each run
   on the tuning seeds ``TUNE_SEED_BASE + i``.
2. **Selection.** The configuration with the highest success rate on the tuning seeds wins; ties go to
   the best median final metric (a diverged seed counts as the worst value), then to the first.
3. **Evaluation.** The winner is re-run on the held-out seeds ``0 .. eval_seeds - 1``.

Seeds are laid out in canonical blocks (:class:`Unit`, :meth:`Suite.block_size`): a seed is always computed in
the same slot of a batch of the same size, so a record depends on its configuration and seed alone, never on
how a sweep was sized, split or resumed. Every run of a block appends one record per requested seed to the
results store (:mod:`.store`) the moment it finishes; a re-run skips what is stored (records are keyed by
every input that can change them, :meth:`Unit.identity`), so an interrupted sweep resumes where it stopped.
A unit that raises is logged to ``errors.jsonl`` and the sweep goes on; divergence is not an error (it is
recorded per seed).

A task with an instance family (:mod:`minmax_envs.families`) plays its train instances in tuning and its test
instances in evaluation: seed ``s`` plays instance ``s mod n`` of the phase's split, for every agent; a block whose
seeds play instances of several groups (arguments drawn per batch) runs as one batched env per run of seeds of one
group (:meth:`Unit.runs`).

**The results directory** (docs/evaluation.md lists what it may hold). :func:`bench` writes only into a new or empty
directory or a results directory of the same suite definition; ``suite.json`` is replaced atomically, and only when
it changes; a missing or unreadable ``suite.json`` beside intact records is written again from the suite being run
when every record agrees with it. Every unit is **claimed** before it runs (an exclusive ``flock`` on
``.claims/<key>.lock``, released by the kernel if the process dies): writers sharing a directory run each unit once,
a writer that finds a unit claimed goes on with the others and comes back to it when the claim is released, running
whatever is still missing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

import minmax_envs
from agents import as_pair, schedules
from agents.torch_optim import allow_optimizer_modules, opted_in_modules
from minmax_envs._checks import check_choice, check_int
from minmax_envs._files import Folder
from minmax_envs.episode import EpisodeTask
from minmax_envs.evaluation.agent_names import (
    Runner,
    agent_digest,
    check_agent,
    make_agent,
    make_runner,
    resolve_agent,
)
from minmax_envs.evaluation.record import build_record
from minmax_envs.evaluation.stats import final_value
from minmax_envs.evaluation.store import (
    CLAIMS_DIR,
    ERRORS_FILE,
    LAYOUT,
    RESULTS_FILE,
    SUITE_FILE,
    ResultStore,
    check_layout,
    episode_key,
    read_json,
)
from minmax_envs.evaluation.suites import TUNE_SEED_BASE, Suite, Task, get_suite, list_suites
from minmax_envs.registry import spec

SEARCHES = ("grid", "random")
BACKENDS = ("local", "ray")
SAMPLES = 500  # generator samples stored for the first seed of an evaluation run (games that draw samples)
RAY_WINDOW = 256  # units claimed and in flight at once on Ray (each claim holds a file descriptor)


def hash_seed(*parts: str) -> int:
    """A stable 32-bit seed from strings (Python's ``hash`` is salted per process)."""
    return zlib.crc32("/".join(parts).encode())


def search_space(task: Task, budget: int, search: str = "grid", seed: int = 0) -> list[dict[str, float]]:
    """The ``budget`` step-size configurations ``{"lr_d", "lr_g"}`` every agent tries on ``task``.

    ``grid``: ``budget / len(task.ratios)`` values of ``lr_d`` log-spaced over ``task.lr_range`` (its
    geometric middle for one value), each with every ratio ``lr_g / lr_d`` of ``task.ratios``.
    ``random``: ``budget`` draws of ``lr_d`` log-uniform over the range and a ratio uniform over the
    ratios, from a generator seeded by ``seed`` (the same draws for every agent).
    """
    check_int("budget", budget)
    check_choice("search", search, SEARCHES)
    lo, hi = task.lr_range
    if search == "grid":
        if budget % len(task.ratios):
            raise ValueError(f"budget {budget} must be a multiple of the {len(task.ratios)} step-size ratios of "
                             f"task {task.name!r} {task.ratios} for a grid search (or use search='random')")
        points = budget // len(task.ratios)
        lrs = [math.sqrt(lo * hi)] if points == 1 else np.geomspace(lo, hi, points).tolist()
        return [{"lr_d": float(lr), "lr_g": float(lr * r)} for lr in lrs for r in task.ratios]
    rng = np.random.default_rng([seed, budget])
    lrs = np.exp(rng.uniform(math.log(lo), math.log(hi), budget))
    ratios = rng.choice(np.asarray(task.ratios), budget)
    return [{"lr_d": float(lr), "lr_g": float(lr * r)} for lr, r in zip(lrs, ratios)]


@dataclass(frozen=True)
class Unit:
    """One run: an agent with one configuration on a task, recording the episodes of ``seeds``.

    Seeds are laid out canonically: seed ``s`` of a phase is always computed in slot ``(s - base) % block`` of
    a batched env of ``block`` seeds reset with seed ``base + block * ((s - base) // block)`` (``base``: the
    phase's first seed), whatever seeds a run asks for; a unit runs each block that holds one of its
    ``seeds`` (the other seeds of the block are computed and not recorded). Games that run one seed per env
    have ``block == 1``. So a record depends on its configuration and seed alone, never on how a sweep was
    split, resumed or sized. ``root``: the directory of the suite file that names the agent, where a relative
    ``learned:PATH`` is found (:func:`~minmax_envs.evaluation.agent_names.resolve_agent`); not part of any record.
    """

    suite: str
    suite_version: int
    task: Task
    agent: str
    config: dict
    config_index: int
    phase: str
    seeds: tuple[int, ...]
    block: int = 1
    device: str = "cpu"
    root: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(sorted(self.seeds)))
        check_int("block", self.block)
        if not self.seeds or self.seeds[0] < self.base:
            raise ValueError(f"a {self.phase} unit needs seeds >= {self.base}, got {self.seeds}")

    @classmethod
    def of_records(cls, suite: Suite, records: list[dict[str, Any]]) -> Unit:
        """The unit that computed ``records`` (stored records of one task, agent, configuration and phase of
        ``suite``, as :meth:`~minmax_envs.evaluation.store.ResultStore.records` reads them): to replay them."""
        first = records[0]
        same = ("task", "agent", "config", "phase", "seed_block", "device")
        if any(r[k] != first[k] for r in records for k in same):
            raise ValueError(f"Unit.of_records takes records that agree on {same}")
        if first["suite"] != suite.name or first["suite_version"] != suite.version:
            raise ValueError(f"the records are of suite {first['suite']!r} version {first['suite_version']}, not "
                             f"{suite.name!r} version {suite.version}")
        return cls(suite.name, suite.version, suite.task(first["task"]), first["agent"], first["config"],
                   first["config_index"], first["phase"], tuple(r["seed"] for r in records), first["seed_block"],
                   first["device"])

    @property
    def base(self) -> int:
        """The phase's first seed: blocks are aligned on it."""
        return TUNE_SEED_BASE if self.phase == "tune" else 0

    @property
    def starts(self) -> list[int]:
        """The first seed of every block that holds one of :attr:`seeds`."""
        b = self.block
        return sorted({self.base + b * ((s - self.base) // b) for s in self.seeds})

    @property
    def split(self) -> str:
        """The split of the task's instance family the unit's seeds play: ``"train"`` in tuning, ``"test"`` in
        evaluation."""
        return "train" if self.phase == "tune" else "test"

    def runs(self, start: int) -> list[tuple[int, int]]:
        """The batched envs ``(first seed, seeds)`` of the block that begins at ``start``: the block itself, or, with
        an instance family, its runs of seeds whose instances share the arguments drawn per batch."""
        if self.task.family is None:
            return [(start, self.block)]
        return self.task.family.runs(self.split, start, self.block)

    def env_kwargs(self, start: int, count: int) -> dict[str, Any]:
        """The arguments of the batched env of seeds ``start .. start + count - 1`` (one of :meth:`runs`): the
        task's, and its family's for these seeds (per-seed arguments as lists)."""
        family = self.task.family
        extra = {} if family is None else family.arguments(self.split, range(start, start + count))
        return {**self.task.env_kwargs, **extra}

    @property
    def playing(self) -> str:
        """The agent's name with a relative ``learned:`` path resolved in :attr:`root`: what plays."""
        return resolve_agent(self.agent, self.root)

    @cached_property
    def agent_digest(self) -> str | None:
        """:func:`~minmax_envs.evaluation.agent_names.agent_digest` of the agent, read once per unit (a controller's
        files are hashed, not once per seed)."""
        return agent_digest(self.playing)

    def described(self, seed: int) -> dict[str, Any]:
        """The identity fields of the record of ``seed`` as stored (the fields of role ``"identity"`` and ``"task"``
        of :data:`~minmax_envs.evaluation.record.FIELDS`): the suite (name, version), the task and its episode and
        scoring (:func:`task_fields`), the agent and its configuration, the phase, the seed, its block (the seed
        layout), the device and, for a task with an instance family, the family's name, digest and split."""
        t = self.task
        described = {"suite": self.suite, "suite_version": self.suite_version, "task": t.name, **task_fields(t),
                     "device": self.device, "agent": self.agent, "config": self.config, "phase": self.phase,
                     "seed": seed, "seed_block": self.block}
        if t.family is not None:  # only then: the keys of tasks without a family stay what they were
            described["family"] = t.family.key(self.split)
        return described

    def identity(self, seed: int) -> dict[str, Any]:
        """Every input that can change the record of ``seed`` (the names of
        :data:`~minmax_envs.evaluation.record.IDENTITY`): what :meth:`described` stores, with the device's type in
        place of the device, and the task's step-size schedule and the agent's digest, which the record does not
        store."""
        identity = {**self.described(seed), "device": torch.device(self.device).type, "schedule": self.task.schedule,
                    "agent_digest": self.agent_digest}
        return identity

    def key(self, seed: int) -> str:
        return episode_key(self.identity(seed))

    def keys(self) -> list[str]:
        return [self.key(s) for s in self.seeds]

    @property
    def claim(self) -> str:
        """The name of the unit's claim: the key of its first block's first seed, so that writers asking for other
        seeds of the same block (or, one seed per env, the same first seed) share one claim."""
        return self.key(self.starts[0])

    def describe(self) -> str:
        span = (f"seed {self.seeds[0]}" if len(self.seeds) == 1
                else f"seeds {self.seeds[0]}..{self.seeds[-1]} ({len(self.seeds)})")
        return (f"{self.suite}/{self.task.name} {self.agent} lr_d={self.config['lr_d']:.3g} "
                f"lr_g={self.config['lr_g']:.3g} {self.phase} {span}, blocks of {self.block}")


def task_fields(task: Task) -> dict[str, Any]:
    """The fields of a record that come from its task (:data:`~minmax_envs.evaluation.record.TASK_FIELDS`): its
    episode (env id and arguments, steps, evaluation points) and its scoring (metric, direction, target, target
    metric)."""
    values = {"env_id": task.env_id, "env_kwargs": task.env_kwargs, "steps": task.steps, "eval_every": task.eval_every,
              "metric": task.metric, "higher_is_better": task.higher_is_better, "target": task.target,
              "target_metric": task.success_metric}
    return values


def _versions() -> dict[str, str]:
    return {"minmax_envs": minmax_envs.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _json_value(v: torch.Tensor) -> Any:
    """A per-seed value as JSON: a float (None if not finite) or a nested list of them."""
    if v.ndim == 0:
        x = float(v)
        return x if math.isfinite(x) else None
    return [_json_value(e) for e in v]


def _player_calls(game, evaluations: int) -> dict[str, int]:
    """Agent calls per iteration for each player (for schedules that span the episode)."""
    return {pl: evaluations * sum(pl in game.movers(s) for s in range(game.cycle)) for pl in minmax_envs.PLAYERS}


def _lrs(unit: Unit, game, evaluations: int | None = None) -> tuple[Any, Any]:
    """The unit's step sizes: its numbers, or linear decays over each player's agent calls in the episode
    (``evaluations``: the agent's gradient evaluations per step, looked up if not given)."""
    lr_d, lr_g = unit.config["lr_d"], unit.config["lr_g"]
    if unit.task.schedule == "constant":
        return lr_d, lr_g
    if evaluations is None:
        evaluations = as_pair(make_agent(unit.playing, lr_d, lr_g)).evaluations
    calls = _player_calls(game, evaluations)
    steps = unit.task.steps
    return (schedules.linear_decay(lr_d, max(1, steps * calls["discriminator"])),
            schedules.linear_decay(lr_g, max(1, steps * calls["generator"])))


def episode_agents(unit: Unit, game) -> Any:
    """The agents ``unit`` plays on ``game``, step sizes on the task's schedule: what :func:`run_unit`'s runner
    builds for a pair of agents, for a replay through :func:`~minmax_envs.run_episode` with its other options
    (``diagnostics_every``, checkpoints)."""
    return make_agent(unit.playing, *_lrs(unit, game))


def replay(unit: Unit, start: int, **options: Any) -> minmax_envs.EpisodeResult:
    """The block of ``unit`` that begins at seed ``start`` (one of :attr:`Unit.starts`; with an instance family, the
    batched env of the block that begins there, one of :meth:`Unit.runs`) played again by
    :func:`~minmax_envs.run_episode` with its other ``options`` (``diagnostics_every``, ``samples``): the batched
    env and the agents of :func:`run_unit`, so its metrics are the block's stored ones. A learned controller plays
    its own episodes and has no replay here."""
    task = unit.task
    runs = dict(unit.runs(start - (start - unit.base) % unit.block))
    if start not in runs:
        raise ValueError(f"seed {start} begins no batched env of {unit.describe()}; they begin at "
                         f"{sorted(runs)} (Unit.starts, Unit.runs)")
    env = minmax_envs.make(task.env_id, num_seeds=runs[start], device=unit.device,
                           **unit.env_kwargs(start, runs[start]))
    agents = episode_agents(unit, env.game)
    if isinstance(agents, Runner):
        raise ValueError(f"{unit.agent!r} plays its own episodes (a learned controller): replay takes pairs of agents")
    return minmax_envs.run_episode(env, agents, steps=task.steps, seed=start, eval_every=task.eval_every, **options)


def run_unit(unit: Unit) -> list[dict[str, Any]]:
    """Run one unit and return the records of its seeds (see :mod:`.store` for the layout): one episode of a
    batched env of ``unit.block`` seeds per block (see :class:`Unit`), played by the agent's
    :class:`~minmax_envs.evaluation.agent_names.Runner`."""
    task = unit.task
    schedule = None if task.schedule == "constant" else (
        lambda game, agents: _lrs(unit, game, as_pair(agents).evaluations))
    runner = make_runner(unit.playing, unit.config["lr_d"], unit.config["lr_g"], schedule)
    draws = spec(task.env_id).game_class().has_samples
    wanted = set(unit.seeds)
    records: list[dict[str, Any]] = []
    for block in unit.starts:
        for start, count in unit.runs(block):
            if not wanted.intersection(range(start, start + count)):
                continue  # a run of a family's block that holds no requested seed
            t0 = time.perf_counter()
            # generator samples of the evaluation's first seed (slot 0 of its block), for games that draw samples
            first = draws and unit.phase == "eval" and start == unit.base and start in wanted
            result = runner.run(EpisodeTask(task.env_id, task.steps, seed=start, count=count,
                                            eval_every=task.eval_every, device=unit.device,
                                            samples=SAMPLES if first else 0, env_kwargs=unit.env_kwargs(start, count)))
            sample = _json_value(result.samples[0].cpu()) if result.samples is not None else None
            wall = (time.perf_counter() - t0) / count
            records += [r for r in _records(unit, start, count, result, sample, wall) if r["seed"] in wanted]
    return records


def _held_from(steps: list[int], met: list[bool]) -> int | None:
    """The first evaluation point from which the target stays met to the end (None if it is not met at the end)."""
    first = None
    for t, ok in zip(steps, met):
        first = (t if first is None else first) if ok else None
    return first


def _records(unit: Unit, start: int, width: int, result, sample, wall: float) -> list[dict[str, Any]]:
    task = unit.task
    scalar = [k for k, v in result.metrics.items() if v.ndim == 1]
    steps = [t for t, _ in result.trajectory]
    curves = {k: torch.stack([m[k] for _, m in result.trajectory]).double().cpu() for k in scalar}  # (T, N)
    final = {k: v.double().cpu() for k, v in result.metrics.items()}
    diverged = result.diverged.cpu().tolist()
    div_step = result.divergence_step.cpu().tolist()
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    versions = _versions()
    out = []
    for i in range(width):
        seed = start + i
        value = _json_value(final[task.metric][i])
        success = bool(not diverged[i] and task.reached(float(final[task.success_metric][i])))
        held = _held_from(steps, [task.reached(v) for v in curves[task.success_metric][:, i].tolist()])
        values = {
            **unit.described(seed), "key": unit.key(seed), "config_index": unit.config_index,
            "final": {k: _json_value(v[i]) for k, v in final.items()}, "value": value, "success": success,
            "diverged": bool(diverged[i]), "divergence_step": int(div_step[i]),
            "curve": {"steps": steps, **{k: _json_value(c[:, i]) for k, c in curves.items()}},
            "time_to_target": held if success else None, "wall_time_s": wall, "versions": versions, "time": stamp,
        }
        if task.family is not None:
            values["instance"] = task.family.instance(unit.split, seed)
        if result.plots:
            values["plots"] = [dict(p) for p in result.plots]
        if sample is not None and i == 0:
            values["samples"] = sample
        out.append(build_record(values))  # the fields in the order of record.FIELDS
    return out


# --- selection -----------------------------------------------------------------------------------------------------

def config_score(task: Task, records: list[dict[str, Any]]) -> tuple[float, float]:
    """``(success rate, median signed final metric)`` of one configuration's records (diverged = worst);
    larger is better in both."""
    sign = 1.0 if task.higher_is_better else -1.0
    values = [sign * final_value({**r, "higher_is_better": task.higher_is_better}) for r in records]
    return float(np.mean([r["success"] for r in records])), float(np.median(values))


def select_config(task: Task, configs: list[dict], records: list[dict[str, Any]]) -> int | None:
    """Index of the winning configuration among ``configs`` given tuning ``records`` (None if none ran)."""
    best, best_score = None, None
    for i, config in enumerate(configs):
        rs = [r for r in records if r["config"] == config]
        if not rs:
            continue
        score = config_score(task, rs)
        if best_score is None or score > best_score:
            best, best_score = i, score
    return best


# --- the sweep -----------------------------------------------------------------------------------------------------

@dataclass
class BenchSummary:
    """What :func:`bench` did: batched runs done, episodes skipped (already stored), runs failed (logged
    to ``errors.jsonl``)."""

    out: Path
    ran: int = 0
    skipped: int = 0
    failed: int = 0


def _run_units(units: list[Unit], store: ResultStore, summary: BenchSummary, backend: str, address: str | None,
               progress: bool, desc: str) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(units), desc=desc, unit="run", disable=not progress, file=sys.stderr)

    def remaining(unit: Unit) -> Unit | None:
        """Under its claim: what of ``unit`` is not stored yet (another writer may have run it), or ``None``."""
        have = store.fresh_keys()
        seeds = [seed for seed, key in zip(unit.seeds, unit.keys()) if key not in have]
        summary.skipped += len(unit.seeds) - len(seeds)
        if not seeds:
            bar.update(1)
            return None
        return replace(unit, seeds=tuple(seeds))

    def finished(unit: Unit, records: list | None, error: BaseException | None) -> None:
        if error is None:
            store.append(records)
            summary.ran += 1
        else:
            summary.failed += 1
            _log_error(store.folder, unit, error)
        bar.update(1)

    try:
        if backend == "local":
            def run(unit: Unit) -> None:
                todo = remaining(unit)
                if todo is not None:
                    try:
                        records, error = run_unit(todo), None
                    except Exception as e:  # noqa: BLE001 - a failed unit is logged, the sweep goes on
                        records, error = None, e
                    finished(todo, records, error)

            deferred = []
            for u in units:
                with claimed(store.folder, u, wait=False) as mine:
                    if mine:
                        run(u)
                    else:
                        deferred.append(u)
            for u in deferred:  # claimed by another writer: wait for it, then run what it left
                with claimed(store.folder, u, wait=True):
                    run(u)
        else:
            _run_ray(units, address, remaining, finished, store.folder)
    finally:
        bar.close()


@contextmanager
def claimed(folder: Folder, unit: Unit, wait: bool) -> Iterator[bool]:
    """Hold the claim on ``unit`` in the results directory ``folder`` for the block: yields ``True`` while this
    process holds it, or ``False`` at once if another process does and ``wait`` is false (``wait``: block until it is
    released). A claim is an exclusive ``flock`` on ``.claims/<Unit.claim>.lock`` (holding the owner's pid, host and
    unit for a reader), so the kernel releases it when its process dies: a claim is never stale. The holder removes
    the file when it is done; a process that locked a file removed meanwhile claims the new one. Without ``flock``
    (not POSIX) every claim is granted."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: one writing process per directory
        yield True
        return
    name = f"{CLAIMS_DIR}/{unit.claim}.lock"
    while True:
        with folder.open(name, "ab") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            now = folder.lstat(name)
            if now is None or now.st_ino != os.fstat(f.fileno()).st_ino:
                continue  # its holder finished and removed it while this process waited
            f.truncate(0)
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "unit": unit.describe(),
                                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode())
            f.flush()
            try:
                yield True
            finally:
                folder.remove(name)  # before the lock goes with the file's closing
            return


RAY_CONNECT_TIMEOUT_S = 10.0  # how long a Ray address may take to answer before bench gives up


def check_ray_address(address: str | None, name: str = "address", timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A Ray address ``host:port`` or ``ray://host:port`` that accepts a connection within ``timeout`` seconds
    (``ray.init`` itself may wait far longer on an unreachable one); ``None``, ``auto`` and ``local`` are Ray's own.
    A ``ValueError`` names ``name`` (the option or argument it came from) otherwise."""
    if address is None or address in ("auto", "local"):
        return
    if not isinstance(address, str):
        raise ValueError(f"{name} must be a string host:port or ray://host:port, got {address!r}")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{name} {address!r} is not a Ray cluster address: give host:port or ray://host:port "
                         "(or auto, local)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = "no answer" if isinstance(e, (socket.timeout, TimeoutError)) else (e.strerror or str(e))
        raise ValueError(f"{name} {address!r}: no Ray cluster reachable there ({why} within {timeout:g} s); start "
                         "one (ray start --head) or check the address") from None


def _run_unit_opted_in(unit: Unit, modules: tuple[str, ...]) -> list[dict[str, Any]]:
    """:func:`run_unit` in a Ray worker, under the driver's opt-ins to optimizer modules."""
    with allow_optimizer_modules(*modules):
        return run_unit(unit)


def _run_ray(units: list[Unit], address: str | None, remaining, finished, folder: Folder) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("backend='ray' needs Ray: pip install 'minmax-envs[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_run_unit_opted_in)
    modules = opted_in_modules()  # the opt-ins of this process reach the workers with every unit
    queue, deferred = list(units), []
    pending: dict[Any, tuple[Unit, ExitStack]] = {}

    def submit(unit: Unit, wait: bool) -> None:
        stack = ExitStack()
        if not stack.enter_context(claimed(folder, unit, wait)):
            stack.close()
            deferred.append(unit)
            return
        todo = remaining(unit)
        if todo is None:
            stack.close()
            return
        pending[remote.remote(todo, modules)] = (todo, stack)

    try:
        while queue or pending or deferred:
            while queue and len(pending) < RAY_WINDOW:
                submit(queue.pop(0), wait=False)
            if not pending and deferred:  # claimed by another writer: wait for it, then run what it left
                submit(deferred.pop(0), wait=True)
                continue
            if not pending:
                continue
            done, _ = ray.wait(list(pending), num_returns=1)
            unit, stack = pending.pop(done[0])
            try:
                try:
                    records, error = ray.get(done[0]), None
                except Exception as e:  # noqa: BLE001 - a failed unit is logged, the sweep goes on
                    records, error = None, e
                finished(unit, records, error)
            finally:
                stack.close()
    finally:
        for _, stack in pending.values():
            stack.close()


def _log_error(folder: Folder, unit: Unit, error: BaseException) -> None:
    entry = {"unit": unit.describe(), "error": f"{type(error).__name__}: {error}",
             "traceback": "".join(traceback.format_exception(error)),
             "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with folder.open(ERRORS_FILE, "ab") as f:
        f.write((json.dumps(entry) + "\n").encode("utf-8"))


def bench(suite: str | Suite, agents: list[str] | tuple[str, ...] | None = None, out: str | Path = "results",
          *, seeds: int | None = None, tune_seeds: int | None = None, budget: int | None = None,
          search: str = "grid", tasks: list[str] | None = None, device: str | None = None, backend: str = "local",
          address: str | None = None, progress: bool = True) -> BenchSummary:
    """Run (or resume) the protocol of ``suite`` for ``agents`` and store every episode under ``out``.

    Args:
        suite: a :class:`Suite`, a registered suite name, or a ``.json`` suite file (a relative ``learned:PATH``
            that the file names is found relative to the file).
        agents: agent names (:func:`minmax_envs.evaluation.list_agents`); the suite's defaults if ``None``.
        out: results directory (``results.jsonl``, ``suite.json``, ``errors.jsonl``).
        seeds: held-out evaluation seeds ``0 .. seeds - 1`` (suite default if ``None``). They run in the suite's
            canonical blocks (:meth:`Suite.block_size`) whatever their number: fewer seeds than a block still
            compute the whole block, and the records are the same as those of any other request.
        tune_seeds: seeds per configuration in tuning (suite default if ``None``), likewise in blocks.
        budget: configurations per agent and task in tuning (suite default if ``None``); 1 skips tuning.
        search: ``"grid"`` or ``"random"`` (see :func:`search_space`).
        tasks: run only these task names (all if ``None``).
        device: overrides the suite's device (``"cpu"``, ``"cuda"``).
        backend: ``"local"`` (this process) or ``"ray"`` (one Ray task per unit; local Ray unless ``address``).
        address: a Ray cluster address (``backend="ray"`` only).
        progress: show progress bars on stderr.
    """
    s = suite if isinstance(suite, Suite) else get_suite(suite)
    names = list(s.agents if agents is None else agents)
    if not names:
        raise ValueError("no agents given")
    from_file = (not isinstance(suite, Suite) and os.fspath(suite) not in list_suites())
    root = os.path.dirname(os.path.abspath(os.fspath(suite))) if from_file else None
    named = set(s.agents) | {a for t in s.tasks for a in (t.agents or ())}
    roots = {a: root if a in named else None for a in names}  # the suite file's own names resolve beside it
    for a in names:
        check_agent(resolve_agent(a, roots[a]))
    check_choice("backend", backend, BACKENDS)
    check_choice("search", search, SEARCHES)
    if address is not None and backend != "ray":
        raise ValueError("address is only used with backend='ray'")
    n_eval = check_int("seeds", s.eval_seeds if seeds is None else seeds)
    n_tune = check_int("tune_seeds", s.tune_seeds if tune_seeds is None else tune_seeds)
    k = check_int("budget", s.budget if budget is None else budget)
    chosen = list(s.tasks) if tasks is None else [s.task(t) for t in tasks]
    dev = s.device if device is None else device
    minmax_envs.registry.parse_device(dev)  # a clear error now rather than in every unit
    if backend == "ray":
        check_ray_address(address)

    store = ResultStore(out)
    _prepare(store, s, {"agents": names, "seeds": n_eval, "tune_seeds": n_tune, "budget": k, "search": search,
                        "tasks": [t.name for t in chosen], "device": dev})
    summary = BenchSummary(out=store.dir)
    spaces = {t.name: search_space(t, k, search, seed=hash_seed(s.name, t.name)) for t in chosen}

    def unit(task: Task, agent: str, i: int, phase: str) -> Unit:
        """The request: every seed of the phase for one configuration (canonical blocks of the suite)."""
        seeds = range(TUNE_SEED_BASE, TUNE_SEED_BASE + n_tune) if phase == "tune" else range(n_eval)
        block = s.block_size(phase) if spec(task.env_id).game_class().batched else 1
        return Unit(s.name, s.version, task, agent, spaces[task.name][i], i, phase, tuple(seeds), block, dev,
                    roots[agent])

    def missing(units: list[Unit]) -> list[Unit]:
        """The units' seeds not in the store yet: one unit per block for batched games (each its own batched env),
        one unit for all missing seeds of a game that runs one seed per env."""
        have = store.keys()
        todo = []
        for u in units:
            seeds = [seed for seed, key in zip(u.seeds, u.keys()) if key not in have]
            summary.skipped += len(u.seeds) - len(seeds)
            if not seeds:
                continue
            groups: dict[int, list[int]] = {}
            for seed in seeds:
                groups.setdefault((seed - u.base) // u.block if u.block > 1 else 0, []).append(seed)
            todo += [replace(u, seeds=tuple(g)) for g in groups.values()]
        return todo

    tuning = [unit(t, a, i, "tune") for t in chosen for a in names if t.plays(a) and len(spaces[t.name]) > 1
              for i in range(len(spaces[t.name]))]
    _run_units(missing(tuning), store, summary, backend, address, progress, f"{s.name}: tuning")

    by_key = {r["key"]: r for r in store.records()}
    evaluation = []
    for t in chosen:
        for a in filter(t.plays, names):
            if len(spaces[t.name]) == 1:
                best = 0
            else:
                tuned = [by_key[key] for u in tuning if u.task.name == t.name and u.agent == a for key in u.keys()
                         if key in by_key]
                best = select_config(t, spaces[t.name], tuned)
            if best is not None:
                evaluation.append(unit(t, a, best, "eval"))
    _run_units(missing(evaluation), store, summary, backend, address, progress, f"{s.name}: evaluation")
    return summary


def _definition(suite: Suite) -> dict[str, Any]:
    """A suite's definition as it reads back from ``suite.json`` (JSON types)."""
    return json.loads(json.dumps(suite.to_dict()))


def _prepare(store: ResultStore, suite: Suite, run: dict[str, Any]) -> None:
    """Make ``store``'s directory a results directory of ``suite`` for this ``run``, or refuse it (``ValueError``):

    * a name of the results layout that is a link the program would follow, or of the wrong kind, is refused
      (:func:`~minmax_envs.evaluation.store.check_layout`);
    * a directory that holds neither ``suite.json`` nor ``results.jsonl`` must be new, empty or hold only names of
      the results layout (:data:`~minmax_envs.evaluation.store.LAYOUT`): a user's other files are never written over;
    * a readable ``suite.json`` must hold this suite's definition (any field but the descriptions) and, without
      ``results.jsonl``, a ``run`` (what bench writes): records of different definitions are never mixed;
    * a missing or unreadable ``suite.json`` beside ``results.jsonl`` is recovered from ``suite`` when every record
      agrees with it (suite, version and each task's episode and scoring), with a warning; else refused;
    * ``suite.json`` is then replaced atomically with the definition and ``run``, only if that changes it."""
    folder, where = store.folder, str(store.dir)
    entries = folder.listdir()
    check_layout(folder)
    has_results = RESULTS_FILE in entries
    try:
        old = read_json(folder, SUITE_FILE)
        problem = None if isinstance(old, dict) else ("is not a JSON object" if old is not None else "is missing")
    except ValueError as e:
        old, problem = None, str(e)
    if not has_results and SUITE_FILE not in entries:
        foreign = [e for e in entries if e not in LAYOUT and not (e.startswith(".") and e.endswith(".tmp"))]
        if foreign:
            raise ValueError(f"out directory {where!r} exists and is not a results directory (it holds "
                             f"{', '.join(map(repr, foreign[:5]))}{' ...' if len(foreign) > 5 else ''}, and no "
                             f"{SUITE_FILE} or {RESULTS_FILE}); bench writes into a new or empty directory or one it "
                             "wrote: use another out directory")
    new = _definition(suite)
    if problem is None:
        defined = {k: v for k, v in old.items() if k != "run"}
        if not has_results and not isinstance(old.get("run"), dict):
            raise ValueError(f"out directory {where!r} holds a {SUITE_FILE} that bench did not write (it has no "
                             f"'run') and no {RESULTS_FILE}; bench does not write over it: use another out directory")
        diff = [d for d in _differences(defined, new) if not d.split(":", 1)[0].endswith("description")]
        if diff:  # descriptions change no record: an edited one is taken as it is
            raise ValueError(f"results directory {where!r} holds results of another definition of suite "
                             f"{defined.get('name')!r} (differs in {'; '.join(diff[:5])}); records of different "
                             "definitions are never mixed: use another --out directory (or delete this one)")
    elif has_results:
        records = list(store.records())
        disagree = _disagreement(suite, records)
        if disagree is not None:
            raise ValueError(f"results directory {where!r} has results but its {SUITE_FILE} {problem}, and the "
                             f"records are not of suite {suite.name!r} version {suite.version} ({disagree}); use "
                             "another --out directory (or delete this one)")
        if records:
            warnings.warn(f"{folder / SUITE_FILE} {problem}: written again from suite {suite.name!r} version "
                          f"{suite.version}, with which all {len(records)} records of {folder / RESULTS_FILE} agree",
                          stacklevel=3)
    elif SUITE_FILE in entries:
        raise ValueError(f"out directory {where!r} holds a {SUITE_FILE} that bench did not write (it {problem}) and "
                         f"no {RESULTS_FILE}; bench does not write over it: use another out directory")
    content = {**(new if problem is not None else old), "run": run}
    if problem is not None or old != content:
        folder.write_text(SUITE_FILE, json.dumps(content, indent=1))


def _disagreement(suite: Suite, records: list[dict[str, Any]]) -> str | None:
    """Where the first record that does not belong to ``suite`` differs from it (``None``: all agree)."""
    tasks = {t.name: t for t in suite.tasks}
    for r in records:
        if (r["suite"], r["suite_version"]) != (suite.name, suite.version):
            return f"a record is of suite {r['suite']!r} version {r['suite_version']}"
        task = tasks.get(r["task"])
        if task is None:
            return f"a record is of task {r['task']!r}, which the suite does not have"
        for field, value in task_fields(task).items():
            want = json.loads(json.dumps(value))
            if r[field] != want:
                return f"a record of task {r['task']!r} has {field} {r[field]!r}, the suite {want!r}"
    return None


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as ``path: old -> new`` lines (tasks are matched by name)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))]
    if (isinstance(old, list) and isinstance(new, list) and where == "tasks"
            and all(isinstance(t, dict) for t in old + new)):
        return _differences({t.get("name"): t for t in old}, {t.get("name"): t for t in new}, where)
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def run_one(env_id: str, agent: str, lr_d: float, lr_g: float | None = None, *, steps: int, seeds: int = 1,
            seed: int = 0, eval_every: int | None = None, device: str = "cpu", **env_kwargs: Any):
    """One batched episode of a named agent on an env id (what ``minmax run`` does); returns the
    :class:`~minmax_envs.EpisodeResult`."""
    runner = make_runner(agent, lr_d, lr_d if lr_g is None else lr_g)
    return runner.run(EpisodeTask(env_id, steps, seed=seed, count=seeds, eval_every=eval_every, device=device,
                                  env_kwargs=env_kwargs))


__all__ = ["BenchSummary", "Unit", "bench", "config_score", "episode_agents", "run_one", "run_unit", "search_space",
           "select_config", "hash_seed", "task_fields"]

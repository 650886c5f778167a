"""The evaluation protocol: equal step-size tuning budget, tuned configuration re-run on held-out seeds.

For every (task, agent) of a suite:

1. **Tuning.** The agent's step sizes ``(lr_d, lr_g)`` are searched over ``budget`` configurations, the
   same configurations for every agent (:func:`search_space`: a log-spaced grid of ``lr_d`` over the
   task's ``lr_range`` times its generator/discriminator ``ratios``, or as many random draws), each run
   on the tuning seeds ``TUNE_SEED_BASE + i``.
2. **Selection.** The configuration with the highest success rate on the tuning seeds wins; ties go to
   the best median final metric (a diverged seed counts as the worst value), then to the first.
3. **Evaluation.** The winner is re-run on the held-out seeds ``0 .. eval_seeds - 1``.

Every batched run (a :class:`Unit`: one configuration over a block of seeds) appends one record per seed
to the results store (:mod:`.store`) the moment it finishes; a re-run skips what is stored, so an
interrupted sweep resumes where it stopped. A unit that raises is logged to ``errors.jsonl`` and the sweep
goes on; divergence is not an error (it is recorded per seed).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
import traceback
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import minmax_envs
from agents import as_pair, schedules
from minmax_envs._checks import check_choice, check_int
from minmax_envs.controllers import LearnedController
from minmax_envs.evaluation.stats import final_value
from minmax_envs.evaluation.store import ResultStore, episode_key
from minmax_envs.evaluation.suites import TUNE_SEED_BASE, Suite, Task, get_suite
from minmax_envs.evaluation.zoo import check_agent, make_agent
from minmax_envs.registry import spec

SEARCHES = ("grid", "random")
BACKENDS = ("local", "ray")
PHASES = ("tune", "eval")
MOG_SAMPLES = 500  # generator samples stored for the first seed of an evaluation run of a 2-D game


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
    """One batched run: an agent with one configuration on a task, over seeds ``seed .. seed + count - 1``."""

    suite: str
    suite_version: int
    task: Task
    agent: str
    config: dict
    config_index: int
    phase: str
    seed: int
    count: int
    device: str = "cpu"

    @property
    def seeds(self) -> range:
        return range(self.seed, self.seed + self.count)

    def key(self, seed: int) -> str:
        return episode_key(self.suite, self.suite_version, self.task.name, self.agent, self.config, self.phase, seed,
                           self.task.steps)

    def keys(self) -> list[str]:
        return [self.key(s) for s in self.seeds]

    def describe(self) -> str:
        return (f"{self.suite}/{self.task.name} {self.agent} lr_d={self.config['lr_d']:.3g} "
                f"lr_g={self.config['lr_g']:.3g} {self.phase} seeds {self.seed}..{self.seed + self.count - 1}")


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


def _lrs(unit: Unit, env, evaluations: int | None = None) -> tuple[Any, Any]:
    """The unit's step sizes: its numbers, or linear decays over each player's agent calls in the episode
    (``evaluations``: the agent's gradient evaluations per step, looked up if not given)."""
    lr_d, lr_g = unit.config["lr_d"], unit.config["lr_g"]
    if unit.task.schedule == "constant":
        return lr_d, lr_g
    if evaluations is None:
        evaluations = as_pair(make_agent(unit.agent, lr_d, lr_g)).evaluations
    calls = _player_calls(env.game, evaluations)
    steps = unit.task.steps
    return (schedules.linear_decay(lr_d, max(1, steps * calls["discriminator"])),
            schedules.linear_decay(lr_g, max(1, steps * calls["generator"])))


def _samples(env, n: int) -> list | None:
    """Generator samples of slot 0 for games with 2-D samples (mixtures of Gaussians), from a fixed latent draw."""
    game = env.game
    if not (hasattr(game, "generate") and hasattr(game, "z_dim") and hasattr(game, "modes")):
        return None
    gen = torch.Generator().manual_seed(0)
    z = torch.randn((1, n, game.z_dim), generator=gen, dtype=torch.float64).to(game.dtype).to(game.device)
    params = {k: v[:1] for k, v in env.params["generator"].items()}
    with torch.no_grad():
        return _json_value(game.generate(params, z)[0].cpu())


def run_unit(unit: Unit) -> list[dict[str, Any]]:
    """Run one unit and return its records (one per seed); see :mod:`.store` for the layout."""
    task = unit.task
    batched = spec(task.env_id).game_class().batched
    width = unit.count if batched else 1
    agent = make_agent(unit.agent, unit.config["lr_d"], unit.config["lr_g"])
    env = None  # a learned controller plays on the env of its own step-size core (its base step sizes stay constant)
    if not isinstance(agent, LearnedController):
        env = minmax_envs.make(task.env_id, num_seeds=width, device=unit.device, **task.env_kwargs)
        if task.schedule != "constant":
            agent = make_agent(unit.agent, *_lrs(unit, env, as_pair(agent).evaluations))
    records: list[dict[str, Any]] = []
    for start in range(unit.seed, unit.seed + unit.count, width):
        t0 = time.perf_counter()
        if env is None:
            result = agent.run(task.env_id, task.steps, start, width, task.eval_every, unit.device, **task.env_kwargs)
            played = agent.last_env
        else:
            result = minmax_envs.run_episode(env, agent, steps=task.steps, seed=start, eval_every=task.eval_every)
            played = env
        sample = _samples(played, MOG_SAMPLES) if unit.phase == "eval" and start == unit.seed else None
        wall = (time.perf_counter() - t0) / width
        records += _records(unit, start, width, result, sample, wall)
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
        rec = {
            "key": unit.key(seed), "suite": unit.suite, "suite_version": unit.suite_version, "task": task.name,
            "env_id": task.env_id, "env_kwargs": task.env_kwargs, "steps": task.steps, "eval_every": task.eval_every,
            "device": unit.device, "metric": task.metric, "higher_is_better": task.higher_is_better,
            "target": task.target, "target_metric": task.success_metric, "agent": unit.agent, "config": unit.config,
            "config_index": unit.config_index, "phase": unit.phase, "seed": seed,
            "final": {k: _json_value(v[i]) for k, v in final.items()}, "value": value, "success": success,
            "diverged": bool(diverged[i]), "divergence_step": int(div_step[i]),
            "curve": {"steps": steps, **{k: _json_value(c[:, i]) for k, c in curves.items()}},
            "time_to_target": held if success else None, "wall_time_s": wall, "versions": versions, "time": stamp,
        }
        if sample is not None and i == 0:
            rec["samples"] = sample
        out.append(rec)
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


def _blocks(seeds: list[int]) -> list[list[int]]:
    """Split sorted seeds into runs of consecutive ones: ``[0, 1, 2, 5, 6] -> [[0, 1, 2], [5, 6]]``."""
    blocks: list[list[int]] = []
    for s in seeds:
        if blocks and s == blocks[-1][-1] + 1:
            blocks[-1].append(s)
        else:
            blocks.append([s])
    return blocks


def _run_units(units: list[Unit], store: ResultStore, summary: BenchSummary, backend: str, address: str | None,
               progress: bool, desc: str) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(units), desc=desc, unit="run", disable=not progress, file=sys.stderr)

    def finished(unit: Unit, records: list | None, error: BaseException | None) -> None:
        if error is None:
            store.append(records)
            summary.ran += 1
        else:
            summary.failed += 1
            _log_error(store.dir, unit, error)
        bar.update(1)

    try:
        if backend == "local":
            for u in units:
                try:
                    records, error = run_unit(u), None
                except Exception as e:  # noqa: BLE001 - a failed unit is logged, the sweep goes on
                    records, error = None, e
                finished(u, records, error)
        else:
            _run_ray(units, address, finished)
    finally:
        bar.close()


def _run_ray(units: list[Unit], address: str | None, finished) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("backend='ray' needs Ray: pip install 'minmax-envs[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_unit)
    pending = {remote.remote(u): u for u in units}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        unit = pending.pop(done[0])
        try:
            records, error = ray.get(done[0]), None
        except Exception as e:  # noqa: BLE001 - a failed unit is logged, the sweep goes on
            records, error = None, e
        finished(unit, records, error)


def _log_error(directory: Path, unit: Unit, error: BaseException) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    entry = {"unit": unit.describe(), "error": f"{type(error).__name__}: {error}",
             "traceback": "".join(traceback.format_exception(error)),
             "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with open(directory / "errors.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def bench(suite: str | Suite, agents: list[str] | tuple[str, ...] | None = None, out: str | Path = "results",
          *, seeds: int | None = None, tune_seeds: int | None = None, budget: int | None = None,
          search: str = "grid", tasks: list[str] | None = None, device: str | None = None, backend: str = "local",
          address: str | None = None, progress: bool = True) -> BenchSummary:
    """Run (or resume) the protocol of ``suite`` for ``agents`` and store every episode under ``out``.

    Args:
        suite: a :class:`Suite`, a registered suite name, or a ``.json`` suite file.
        agents: agent names (:func:`minmax_envs.evaluation.list_agents`); the suite's defaults if ``None``.
        out: results directory (``results.jsonl``, ``suite.json``, ``errors.jsonl``).
        seeds: held-out evaluation seeds ``0 .. seeds - 1`` (suite default if ``None``).
        tune_seeds: seeds per configuration in tuning (suite default if ``None``).
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
    for a in names:
        check_agent(a)
    check_choice("backend", backend, BACKENDS)
    check_choice("search", search, SEARCHES)
    if address is not None and backend != "ray":
        raise ValueError("address is only used with backend='ray'")
    n_eval = check_int("seeds", s.eval_seeds if seeds is None else seeds)
    n_tune = check_int("tune_seeds", s.tune_seeds if tune_seeds is None else tune_seeds)
    k = check_int("budget", s.budget if budget is None else budget)
    chosen = list(s.tasks) if tasks is None else [s.task(t) for t in tasks]
    dev = s.device if device is None else device
    minmax_envs.registry._parse_device(dev)  # a clear error now rather than in every unit

    store = ResultStore(out)
    store.dir.mkdir(parents=True, exist_ok=True)
    with open(store.dir / "suite.json", "w", encoding="utf-8") as f:
        json.dump({**s.to_dict(), "run": {"agents": names, "seeds": n_eval, "tune_seeds": n_tune, "budget": k,
                                          "search": search, "tasks": [t.name for t in chosen], "device": dev}},
                  f, indent=1)
    summary = BenchSummary(out=store.dir)
    spaces = {t.name: search_space(t, k, search, seed=hash_seed(s.name, t.name)) for t in chosen}

    def unit(task: Task, agent: str, i: int, phase: str) -> Unit:
        seed, count = (TUNE_SEED_BASE, n_tune) if phase == "tune" else (0, n_eval)
        return Unit(s.name, s.version, task, agent, spaces[task.name][i], i, phase, seed, count, dev)

    def missing(units: list[Unit]) -> list[Unit]:
        """The units' seeds not in the store yet, as units over contiguous blocks of seeds."""
        have = store.keys()
        todo = []
        for u in units:
            seeds = [s for s in u.seeds if u.key(s) not in have]
            summary.skipped += u.count - len(seeds)
            for block in _blocks(seeds):
                todo.append(replace(u, seed=block[0], count=len(block)))
        return todo

    tuning = [unit(t, a, i, "tune") for t in chosen for a in names if len(spaces[t.name]) > 1
              for i in range(len(spaces[t.name]))]
    _run_units(missing(tuning), store, summary, backend, address, progress, f"{s.name}: tuning")

    records = [r for r in store.records() if r["phase"] == "tune" and r["suite"] == s.name
               and r["suite_version"] == s.version]
    evaluation = []
    for t in chosen:
        for a in names:
            if len(spaces[t.name]) == 1:
                best = 0
            else:
                tune_keys = {key for u in tuning if u.task.name == t.name and u.agent == a for key in u.keys()}
                best = select_config(t, spaces[t.name], [r for r in records if r["key"] in tune_keys])
            if best is not None:
                evaluation.append(unit(t, a, best, "eval"))
    _run_units(missing(evaluation), store, summary, backend, address, progress, f"{s.name}: evaluation")
    return summary


def run_one(env_id: str, agent: str, lr_d: float, lr_g: float | None = None, *, steps: int, seeds: int = 1,
            seed: int = 0, eval_every: int | None = None, device: str = "cpu", **env_kwargs: Any):
    """One batched episode of a named agent on an env id (what ``minmax run`` does); returns the
    :class:`~minmax_envs.EpisodeResult`."""
    built = make_agent(agent, lr_d, lr_d if lr_g is None else lr_g)
    if isinstance(built, LearnedController):
        return built.run(env_id, steps, seed, seeds, eval_every, device, **env_kwargs)
    env = minmax_envs.make(env_id, num_seeds=seeds, device=device, **env_kwargs)
    return minmax_envs.run_episode(env, built, steps=steps, seed=seed, eval_every=eval_every)


__all__ = ["BenchSummary", "Unit", "bench", "config_score", "run_one", "run_unit", "search_space", "select_config",
           "hash_seed"]

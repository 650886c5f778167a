"""The evaluation protocol: search spaces, tuning and selection, held-out evaluation, the results store,
resuming interrupted sweeps, failures and the Ray backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import minmax_envs
from minmax_envs.episode import EpisodeTask
from minmax_envs.evaluation import (
    TUNE_SEED_BASE,
    ResultStore,
    Suite,
    Task,
    bench,
    config_score,
    get_suite,
    list_suites,
    make_agent,
    register_agent_prefix,
    run_one,
    search_space,
)
from minmax_envs.evaluation.agent_names import AGENTS, Runner, make_runner
from minmax_envs.evaluation.protocol import Unit, run_unit
from tests.helpers import SMALL_KWARGS

DIRAC = Task("dirac-nk", "DiracGAN-v0", 40, 10, "distance", False, 0.3,
             {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.03, 0.3))
BILINEAR = Task("bilinear", "Bilinear-v0", 30, 10, "distance", False, 1.0, {"n": 3}, lr_range=(0.03, 0.3),
                ratios=(1.0, 0.5))
TINY = Suite("tiny", 1, (DIRAC, BILINEAR), budget=2, tune_seeds=3, eval_seeds=4, agents=("sgda", "adam"))


def _by_phase(records, phase):
    return [r for r in records if r["phase"] == phase]


def test_grid_search_space_is_log_spaced_times_ratios():
    configs = search_space(BILINEAR, 4)
    assert [c["lr_d"] for c in configs] == pytest.approx([0.03, 0.03, 0.3, 0.3])
    assert [c["lr_g"] / c["lr_d"] for c in configs] == pytest.approx([1.0, 0.5, 1.0, 0.5])
    (one,) = search_space(DIRAC, 1)
    assert one["lr_d"] == pytest.approx((0.03 * 0.3) ** 0.5)  # the geometric middle of the range
    with pytest.raises(ValueError, match="multiple of the 2 step-size ratios"):
        search_space(BILINEAR, 3)


def test_random_search_space_is_reproducible_and_in_range():
    a, b = search_space(BILINEAR, 5, "random", seed=7), search_space(BILINEAR, 5, "random", seed=7)
    assert a == b and len(a) == 5
    assert all(0.03 <= c["lr_d"] <= 0.3 and min(abs(c["lr_g"] / c["lr_d"] - r) for r in (1.0, 0.5)) < 1e-12
               for c in a)
    assert search_space(BILINEAR, 5, "random", seed=8) != a
    with pytest.raises(ValueError, match="unknown search 'bayes'; choose one of grid, random"):
        search_space(BILINEAR, 2, "bayes")


def test_bench_tunes_on_tuning_seeds_and_evaluates_the_best_config_on_held_out_seeds(tmp_path):
    summary = bench(TINY, out=tmp_path, progress=False)
    records = list(ResultStore(tmp_path).records())
    tune, ev = _by_phase(records, "tune"), _by_phase(records, "eval")
    assert len(tune) == 2 * 2 * 2 * 3 and len(ev) == 2 * 2 * 4  # tasks x agents x budget x tune seeds; x eval seeds
    assert summary.failed == 0 and summary.skipped == 0
    assert {r["seed"] for r in tune} == {TUNE_SEED_BASE + i for i in range(3)}
    assert {r["seed"] for r in ev} == {0, 1, 2, 3}
    assert len({r["key"] for r in records}) == len(records)
    for task in TINY.tasks:
        for agent in TINY.agents:
            mine = [r for r in tune if r["task"] == task.name and r["agent"] == agent]
            configs = search_space(task, 2)
            scores = [config_score(task, [r for r in mine if r["config"] == c]) for c in configs]
            best = configs[int(np.argmax([s[0] * 1e9 + s[1] for s in scores]))]
            chosen = {json.dumps(r["config"]) for r in ev if r["task"] == task.name and r["agent"] == agent}
            assert chosen == {json.dumps(best)}
    r = next(r for r in ev if r["task"] == "dirac-nk")
    assert r["versions"]["torch"] == torch.__version__ and r["versions"]["minmax_envs"] == minmax_envs.__version__
    assert r["curve"]["steps"] == [0, 10, 20, 30, 40] and len(r["curve"]["distance"]) == 5
    assert r["value"] == pytest.approx(r["final"]["distance"]) and r["success"] == (r["value"] <= DIRAC.target)


def test_a_task_that_names_its_agents_is_played_by_those_only(tmp_path):
    only = Task("bilinear-sgda", "Bilinear-v0", 30, 10, "distance", False, 1.0, {"n": 3}, lr_range=(0.03, 0.3),
                agents=("sgda",))
    suite = Suite("some", 1, (BILINEAR, only), budget=2, tune_seeds=2, eval_seeds=2, agents=("sgda", "adam"))
    bench(suite, out=tmp_path, progress=False)
    played = {(r["task"], r["agent"]) for r in ResultStore(tmp_path).records()}
    assert played == {("bilinear", "sgda"), ("bilinear", "adam"), ("bilinear-sgda", "sgda")}
    assert "agents" not in BILINEAR.to_dict() and only.to_dict()["agents"] == ["sgda"]  # old suite files unchanged
    assert Suite.from_dict(json.loads(json.dumps(suite.to_dict()))) == suite


def test_records_match_a_direct_episode(tmp_path):
    """A stored episode is what run_episode gives for that seed and configuration."""
    bench(TINY, out=tmp_path, progress=False, tasks=["dirac-nk"], agents=["sgda"])
    ev = _by_phase(ResultStore(tmp_path).records(), "eval")
    cfg = ev[0]["config"]
    env = minmax_envs.make("DiracGAN-v0", num_seeds=4, **DIRAC.env_kwargs)
    direct = minmax_envs.run_episode(env, make_agent("sgda", cfg["lr_d"], cfg["lr_g"]), steps=40, seed=0)
    got = torch.tensor([r["final"]["distance"] for r in sorted(ev, key=lambda r: r["seed"])], dtype=torch.float64)
    torch.testing.assert_close(got, direct.metrics["distance"].double())


def test_rerun_skips_stored_episodes_and_more_seeds_only_adds_the_new_ones(tmp_path):
    bench(TINY, out=tmp_path, progress=False)
    before = (tmp_path / "results.jsonl").read_bytes()
    again = bench(TINY, out=tmp_path, progress=False)
    assert again.ran == 0 and again.skipped == len(before.splitlines())
    assert (tmp_path / "results.jsonl").read_bytes() == before
    more = bench(TINY, out=tmp_path, progress=False, seeds=6)
    records = list(ResultStore(tmp_path).records())
    assert more.ran == 4  # one run of seeds 4..5 per (task, agent)
    assert sorted({r["seed"] for r in _by_phase(records, "eval")}) == list(range(6))
    assert len(records) == len(before.splitlines()) + 2 * 2 * 2


def test_divergence_is_recorded_and_the_sweep_finishes(tmp_path):
    task = Task("explode", "Bilinear-v0", 30, 10, "distance", False, 0.5, {"n": 3}, lr_range=(50.0, 100.0))
    bench(Suite("boom", 1, (task,), budget=1, eval_seeds=3, agents=("sgda",)), out=tmp_path, progress=False)
    records = list(ResultStore(tmp_path).records())
    assert len(records) == 3 and all(r["diverged"] and not r["success"] for r in records)
    assert all(r["divergence_step"] > 0 for r in records)
    assert config_score(task, records) == (0.0, -float("inf"))  # diverged seeds count as the worst value


def test_a_failing_run_is_logged_and_the_others_are_stored(tmp_path):
    def build(arg, lr_d, lr_g):
        raise RuntimeError(f"controller {arg} is broken")

    register_agent_prefix("broken", build)
    out = bench(TINY, ["sgda", "broken:x"], tmp_path, progress=False, tasks=["dirac-nk"])
    assert out.failed == 2  # its two tuning runs; with no tuning result it has no configuration to evaluate
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert all("controller x is broken" in e["error"] for e in errors)
    records = list(ResultStore(tmp_path).records())
    assert {r["agent"] for r in records} == {"sgda"} and len(_by_phase(records, "eval")) == 4


def test_mixture_eval_records_store_generator_samples(tmp_path):
    task = Task("ring", "MoG-Ring-v0", 4, 2, "modes_covered", True, 8.0, SMALL_KWARGS["MoG-Ring-v0"],
                lr_range=(1e-3, 1e-3))
    bench(Suite("ring", 1, (task,), budget=1, eval_seeds=2, agents=("adam",)), out=tmp_path, progress=False)
    first, second = sorted(ResultStore(tmp_path).records(), key=lambda r: r["seed"])
    assert np.asarray(first["samples"]).shape == (500, 2) and "samples" not in second
    # the samples are the first seed's of the episode its runner plays, asked for through run(..., samples=K)
    direct = make_runner("adam", 1e-3, 1e-3).run(EpisodeTask("MoG-Ring-v0", 4, 0, first["seed_block"], 2, samples=500,
                                                              env_kwargs=SMALL_KWARGS["MoG-Ring-v0"]))
    assert np.array_equal(np.asarray(first["samples"]), direct.samples[0].double().numpy())
    # every record carries the game's figure descriptions: here the samples over the ring's eight modes
    assert first["plots"] == second["plots"] == [dict(p) for p in direct.plots]
    assert first["plots"][0]["kind"] == "samples" and len(first["plots"][0]["marks"]) == 8


def test_every_agent_plays_through_one_runner_interface(monkeypatch):
    made = []
    make = minmax_envs.make
    monkeypatch.setattr(minmax_envs, "make", lambda *a, **k: made.append(a) or make(*a, **k))
    runner = make_runner("sgda", 0.1, 0.1)
    assert isinstance(runner, Runner)
    a = runner.run(EpisodeTask("DiracGAN-v0", 5, 0, 2, 5, env_kwargs={"init_std": 0.5}))
    b = runner.run(EpisodeTask("DiracGAN-v0", 5, 2, 2, 5, env_kwargs={"init_std": 0.5}))  # another block: same env
    c = runner.run(EpisodeTask("DiracGAN-v0", 5, 0, 2, 5, env_kwargs={"init_std": 0.5}))
    assert len(made) == 1 and torch.equal(a.metrics["distance"], c.metrics["distance"])
    assert not torch.equal(a.metrics["distance"], b.metrics["distance"])
    runner.run(EpisodeTask("DiracGAN-v0", 5, 0, 2, 5, env_kwargs={"init_std": 0.3}))  # other arguments: a new env
    assert len(made) == 2
    with pytest.warns(DeprecationWarning, match="pass one minmax_envs.episode.EpisodeTask"):
        old = runner.run("DiracGAN-v0", 5, 0, 2, 5, init_std=0.5)  # the positional form still plays the episode
    assert torch.equal(old.metrics["distance"], a.metrics["distance"])

    class Plays:  # an agent that plays its episodes itself (as a learned controller does) is its own runner
        def run(self, task):
            return make_runner("adam", 0.1, 0.1).run(task)

    plays = Plays()
    register_agent_prefix("plays", lambda arg, lr_d, lr_g: plays)
    assert make_runner("plays:x", 0.1, 0.1) is plays
    assert torch.equal(run_one("DiracGAN-v0", "plays:x", 0.1, steps=3, seeds=2).metrics["distance"],
                       run_one("DiracGAN-v0", "adam", 0.1, steps=3, seeds=2).metrics["distance"])


def test_bench_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="unknown agent 'sdga'; choose one of"):
        bench(TINY, ["sdga"], tmp_path)
    with pytest.raises(ValueError, match="unknown backend 'spark'; choose one of local, ray"):
        bench(TINY, out=tmp_path, backend="spark")
    with pytest.raises(ValueError, match="has no task 'nope'"):
        bench(TINY, out=tmp_path, tasks=["nope"])
    with pytest.raises(ValueError, match="seeds must be an int >= 1"):
        bench(TINY, out=tmp_path, seeds=0)
    with pytest.raises(ValueError, match="address is only used with backend='ray'"):
        bench(TINY, out=tmp_path, address="ray://x:10001")


def _suite_file(path: Path, steps: int = 200) -> Path:
    suite = Suite("resume", 1, (Task("bilinear", "Bilinear-v0", steps, 50, "distance", False, 1.0, {"n": 8},
                                     lr_range=(0.01, 0.3)),), budget=6, tune_seeds=2, eval_seeds=2,
                  agents=("sgda", "adam", "nsgda"))
    path.write_text(json.dumps(suite.to_dict()))
    return path


def _bench_cmd(suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "minmax_envs", "--threads", "1", "bench", "--suite", str(suite), "--out", str(out),
            "--no-report", "--no-progress"]


def test_a_killed_sweep_resumes_without_repeating_or_losing_episodes(tmp_path):
    suite = _suite_file(tmp_path / "suite.json")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_bench_cmd(suite, full), check=True, env=env, capture_output=True)
    expected = {r["key"]: r for r in ResultStore(full).records()}
    assert len(expected) == 3 * 6 * 2 + 3 * 2

    proc = subprocess.Popen(_bench_cmd(suite, cut), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = cut / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_bytes().splitlines()) >= 6:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = list(ResultStore(cut).records())
    assert 0 < len(partial) < len(expected), "the sweep should have been killed mid-way"

    subprocess.run(_bench_cmd(suite, cut), check=True, env=env, capture_output=True)
    lines = results.read_text().splitlines()
    resumed = {r["key"]: r for r in ResultStore(cut).records()}
    assert resumed.keys() == expected.keys()
    assert len(lines) == len(expected)  # nothing was run twice
    for key, r in expected.items():
        assert resumed[key]["final"] == r["final"] and resumed[key]["config"] == r["config"]


def test_ray_backend_gives_the_same_results_as_local(tmp_path):
    ray = pytest.importorskip("ray")
    bench(TINY, out=tmp_path / "local", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        bench(TINY, out=tmp_path / "ray", progress=False, backend="ray")
    finally:
        ray.shutdown()
    local = {r["key"]: r for r in ResultStore(tmp_path / "local").records()}
    remote = {r["key"]: r for r in ResultStore(tmp_path / "ray").records()}
    assert local.keys() == remote.keys()
    for key, r in local.items():  # the canonical seed layout: the same numbers, bit for bit
        assert {k: remote[key][k] for k in ("config", "final", "curve", "success")} == \
            {k: r[k] for k in ("config", "final", "curve", "success")}


def test_ray_workers_get_the_drivers_opt_in_to_an_optimizer_module(tmp_path, monkeypatch):
    """``allow_optimizer_modules`` in the driver reaches the Ray workers that run the units (other processes): a
    module of your own plays there as here, with the same records."""
    ray = pytest.importorskip("ray")
    from agents import allow_optimizer_modules

    (tmp_path / "lab_optim.py").write_text("import torch\n\n\nclass Opt(torch.optim.SGD):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab_optim", raising=False)
    agent = "torch:lab_optim.Opt?momentum=0.5"
    with allow_optimizer_modules("lab_optim"):
        bench(TINY, [agent], out=tmp_path / "local", progress=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}})
        try:
            summary = bench(TINY, [agent], out=tmp_path / "ray", progress=False, backend="ray")
        finally:
            ray.shutdown()
    assert summary.failed == 0 and summary.ran > 0
    local = {r["key"]: r for r in ResultStore(tmp_path / "local").records()}
    remote = {r["key"]: r for r in ResultStore(tmp_path / "ray").records()}
    assert local.keys() == remote.keys() and len(local) > 0
    for key, r in local.items():
        assert remote[key]["final"] == r["final"]


# --- suites and agents -----------------------------------------------------------------------------------------------

def test_registered_suites_cover_the_issue_and_their_tasks_are_valid():
    assert {"quick", "stability", "two-mode", "images-tiny", "paper"} <= set(list_suites())
    for name in list_suites():
        suite = get_suite(name)
        for task in suite.tasks:
            game_cls = minmax_envs.spec(task.env_id).game_class()
            assert suite.budget % len(task.ratios) == 0, (name, task.name)
            assert task.agents is None or set(task.agents) <= set(suite.agents), (name, task.name)
            if game_cls.batched:
                env = minmax_envs.make(task.env_id, num_seeds=1, **task.env_kwargs)
                env.reset(seed=0)
                metrics = env.metrics()
                assert task.metric in metrics and task.success_metric in metrics, (name, task.name)
            else:
                assert task.metric == game_cls.quality_metric


def test_suite_json_round_trip_and_errors(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(TINY.to_dict()))
    assert get_suite(str(path)) == TINY
    bad = {**TINY.to_dict(), "budgets": 3}
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"unknown suite field\(s\) \['budgets'\]"):
        get_suite(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        get_suite(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="unknown environment id 'Nope-v0'"):
        Task("x", "Nope-v0", 10, 5, "distance", False, 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'cosine'; choose one of constant, linear_decay"):
        Task("x", "Bilinear-v0", 10, 5, "distance", False, 0.1, schedule="cosine")
    with pytest.raises(ValueError, match="task names must be unique"):
        Suite("dup", 1, (DIRAC, DIRAC))


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_named_agent_plays_a_game(name):
    env = minmax_envs.make("Bilinear-v0", num_seeds=2, n=3)
    result = minmax_envs.run_episode(env, make_agent(name, 0.05, 0.02), steps=5, seed=0)
    assert not result.diverged.any() and torch.isfinite(result.metrics["distance"]).all()


def test_linear_decay_schedule_spans_each_players_updates():
    """With n_critic discriminator steps per generator step, each player's step size decays to zero over
    its own number of updates in the episode."""
    task = Task("img", "Digits-DCGAN-v0", 3, 3, "classifier_fd", False, 10.0,
                {**SMALL_KWARGS["Digits-DCGAN-v0"], "n_critic": 2}, schedule="linear_decay")
    unit = Unit("s", 1, task, "sgda", {"lr_d": 0.1, "lr_g": 0.01}, 0, "eval", (0,))
    env = minmax_envs.make(task.env_id, **task.env_kwargs)
    from minmax_envs.evaluation.protocol import _lrs

    lr_d, lr_g = _lrs(unit, env.game)
    assert lr_d(0) == pytest.approx(0.1) and lr_d(3) == pytest.approx(0.05) and lr_d(6) == 0.0
    assert lr_g(0) == pytest.approx(0.01) and lr_g(3) == 0.0
    (rec,) = run_unit(unit)
    assert rec["phase"] == "eval" and rec["seed"] == 0 and rec["value"] is not None


def test_any_torch_optimizer_plays_under_the_protocol(tmp_path):
    """``torch:MODULE.CLASS[?hyperparameters]`` agents are tuned and evaluated like the built-ins; torch's Adam
    with the built-in's betas lands where the built-in ``adam`` does (the same update rule)."""
    pytest.importorskip("pytorch_optimizer")
    names = ["adam", "torch:torch.optim.Adam?betas=[0.5,0.9]", "torch:pytorch_optimizer.Lion"]
    bench(TINY, names, out=tmp_path, progress=False)
    records = list(ResultStore(tmp_path).records())
    per_agent = {a: [r for r in records if r["agent"] == a] for a in names}
    assert all(len(rs) == 2 * (2 * 3 + 4) for rs in per_agent.values())  # 2 tasks x (2 configs x 3 + 4 seeds)
    ours = {(r["task"], r["phase"], r["seed"], r["config_index"]): r for r in per_agent["adam"]}
    for r in per_agent["torch:torch.optim.Adam?betas=[0.5,0.9]"]:
        ref = ours[(r["task"], r["phase"], r["seed"], r["config_index"])]
        assert r["value"] == pytest.approx(ref["value"], rel=1e-4, abs=1e-6)
    assert all(r["value"] is not None for r in per_agent["torch:pytorch_optimizer.Lion"])
    import pytorch_optimizer  # noqa: F401  (the optimizer's package version is part of the key)

    from minmax_envs.evaluation.agent_names import agent_digest

    assert agent_digest("torch:pytorch_optimizer.Lion").startswith("pytorch_optimizer==")


def test_balanced_agents_by_name_parse_build_and_play_under_the_protocol(tmp_path):
    from minmax_envs.evaluation.agent_names import agent_digest, parse_balanced_agent

    assert parse_balanced_agent("sgda") == ("sgda", 1.0, "geometric")
    assert parse_balanced_agent("adam?ratio=tuned&anchor=generator") == ("adam", "tuned", "generator")
    assert parse_balanced_agent("torch:torch.optim.SGD?momentum=0.9&ratio=2") == (
        "torch:torch.optim.SGD?momentum=0.9", 2.0, "geometric")  # the base keeps its own hyperparameters
    assert agent_digest("balanced:torch:torch.optim.SGD?momentum=0.9") == agent_digest("torch:torch.optim.SGD")
    # at the pace lr_d / lr_g with the size fixed, balanced SGDA is global nSGDA (eq. 4)
    a = run_one("Bilinear-v0", "balanced:sgda?ratio=tuned&anchor=fixed", 0.2, 0.05, steps=20, seeds=3, n=3)
    b = run_one("Bilinear-v0", "nsgda", 0.2, 0.05, steps=20, seeds=3, n=3)
    torch.testing.assert_close(a.metrics["distance"], b.metrics["distance"], rtol=1e-5, atol=0)
    # a tuned pace is searched over the task's step-size ratios: each configuration plays its own pace
    names = ["balanced:sgda?ratio=tuned", "balanced:adam?ratio=3&anchor=discriminator"]
    bench(TINY, names, out=tmp_path, progress=False, tasks=["bilinear"])
    records = list(ResultStore(tmp_path).records())
    assert {r["agent"] for r in records} == set(names) and all(r["value"] is not None for r in records)
    tuned = {json.dumps(r["config"]): r["value"] for r in records if r["agent"] == names[0] and r["phase"] == "tune"
             and r["seed"] == TUNE_SEED_BASE}
    assert len(tuned) == 2 and len(set(tuned.values())) == 2  # the ratios 1 and 0.5 give two different paces


@pytest.mark.parametrize("name,match", [
    ("balanced:", "name the base agent"),
    ("balanced:sgda?ratio=0", "ratio must be a positive number or 'tuned', got '0'"),
    ("balanced:sgda?ratio=fast", "ratio must be a positive number or 'tuned'"),
    ("balanced:sgda?anchor=both", "unknown anchor 'both'; choose one of geometric, generator, discriminator, fixed"),
    ("balanced:sgda?ratio=1&ratio=2", "ratio given twice"),
    ("balanced:balanced:sgda", "must be an optimizer"),
    ("balanced:learned:x.pt", "must be an optimizer"),
    ("balanced:sgdx", "unknown agent 'sgdx'"),
])
def test_bad_balanced_agent_names_are_refused_with_the_syntax(name, match):
    from minmax_envs.evaluation.agent_names import check_agent

    with pytest.raises(ValueError, match=match):
        check_agent(name)


def test_a_fixed_size_balanced_agent_refuses_decaying_step_sizes():
    task = Task("img", "Digits-DCGAN-v0", 2, 2, "classifier_fd", False, 10.0, SMALL_KWARGS["Digits-DCGAN-v0"],
                schedule="linear_decay")
    unit = Unit("s", 1, task, "balanced:sgda?anchor=fixed", {"lr_d": 0.1, "lr_g": 0.1}, 0, "eval", (0,))
    with pytest.raises(ValueError, match="anchor=fixed sets the update sizes from constant step sizes"):
        run_unit(unit)


def test_episode_agents_replay_a_stored_record_with_run_episodes_options():
    """The agents of a unit, schedule included, replayed by run_episode (here with diagnostics) give its record."""
    from minmax_envs.evaluation.protocol import episode_agents

    task = Task("img", "Digits-DCGAN-v0", 4, 4, "classifier_fd", False, 10.0, SMALL_KWARGS["Digits-DCGAN-v0"],
                schedule="linear_decay")
    unit = Unit("s", 1, task, "adam", {"lr_d": 0.01, "lr_g": 0.005}, 0, "eval", (0,))
    (rec,) = run_unit(unit)
    env = minmax_envs.make(task.env_id, **task.env_kwargs)
    result = minmax_envs.run_episode(env, episode_agents(unit, env.game), steps=4, seed=0, eval_every=4,
                                     diagnostics_every=2)
    assert float(result.metrics["classifier_fd"][0]) == pytest.approx(rec["value"], rel=1e-6)
    assert set(result.diagnostics) >= {"game/grad_ratio", "game/grad_norm/generator", "game/grad_norm/discriminator"}


def test_a_stored_block_replays_bit_for_bit_with_diagnostics(tmp_path):
    """Unit.of_records rebuilds the unit of stored records; replay plays its block again with run_episode's options:
    the same curves as the store, bit for bit, and the update norms the records do not keep."""
    from minmax_envs.evaluation.protocol import replay

    bench(TINY, out=tmp_path, progress=False, tasks=["bilinear"], agents=["balanced:sgda?ratio=tuned"])
    records = list(ResultStore(tmp_path).records())
    ev = sorted(_by_phase(records, "eval"), key=lambda r: r["seed"])
    unit = Unit.of_records(TINY, ev)
    assert unit.block == 4 and unit.starts == [0] and unit.config == ev[0]["config"]
    result = replay(unit, 0, diagnostics_every=5)
    assert [float(v) for v in result.metrics["distance"]] == [r["final"]["distance"] for r in ev]
    assert [float(m["distance"][1]) for _, m in result.trajectory] == ev[1]["curve"]["distance"]
    u_d, u_g = result.diagnostics["agent/discriminator/update_norm"], result.diagnostics["agent/generator/update_norm"]
    assert u_d.shape == (6, 4) and result.diagnostic_steps == [5, 10, 15, 20, 25, 30]
    pace = unit.config["lr_d"] / unit.config["lr_g"]  # the pace a tuned-ratio balanced agent holds
    torch.testing.assert_close((u_d / u_g).double(), torch.full((6, 4), pace, dtype=torch.float64), rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="agree on"):
        Unit.of_records(TINY, ev + _by_phase(records, "tune")[:1])
    with pytest.raises(ValueError, match="not 'quick'"):
        Unit.of_records(get_suite("quick"), ev)

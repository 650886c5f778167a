"""The suite on a CUDA device: every game, every named agent, checkpoint/resume and the seed layout.

Marked ``cuda``: skipped where torch sees no CUDA device; ``scripts/gpu_check.sh`` runs them on a GPU
(``pytest -m cuda``). The device is ``cuda`` unless the environment variable ``MINMAX_ENVS_TEST_DEVICE`` names
another (``gpu_check.sh --device cpu`` sets it to ``cpu``, so that the check's logic runs on any machine)."""

from __future__ import annotations

import os

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from minmax_envs.episode import EpisodeTask
from minmax_envs.evaluation import ResultStore, Suite, Task, bench, list_agents
from tests.helpers import ENV_IDS, PROBE_CALLS, SMALL_KWARGS, Interrupt, interrupting, small_env

DEVICE = os.environ.get("MINMAX_ENVS_TEST_DEVICE", "cuda")
KIND = torch.device(DEVICE).type
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(KIND == "cuda" and not torch.cuda.is_available(),
                                                   reason="needs a CUDA device")]

DIRAC = Task("dirac-nk", "DiracGAN-v0", 40, 10, "distance", False, 0.3,
             {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.03, 0.3))
TWO_MODE = Task("two-mode", "TwoMode-v0", 40, 10, "mode_alignment", True, 2.0, {**SMALL_KWARGS["TwoMode-v0"]},
                target_metric="modes_recovered", lr_range=(0.05, 0.5), ratios=(0.5,))
TORCH_AGENTS = ("torch:torch.optim.Adam", "torch:torch.optim.AdamW", "torch:torch.optim.RMSprop")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_game_plays_on_cuda(env_id):
    env = small_env(env_id, 4, device=DEVICE)
    result = minmax_envs.run_episode(env, agents.adam(1e-3), steps=3, seed=0, eval_every=3)
    for pl in PLAYERS:
        assert all(p.device.type == KIND for p in env.params[pl].values())
    quality = result.metrics[env.game.quality_metric]
    assert quality.device.type == KIND and torch.isfinite(quality).all()


def test_every_named_agent_plays_on_cuda(tmp_path):
    names = tuple(list_agents()) + TORCH_AGENTS
    _bench_plays_every_agent_on_cuda(Suite("cuda-agents", 1, (DIRAC,), budget=2, tune_seeds=2, eval_seeds=4,
                                           agents=names), tmp_path)


def _bench_plays_every_agent_on_cuda(suite: Suite, out) -> None:
    """bench ``suite`` on cuda: no failed episode, every record on cuda, every agent evaluated."""
    summary = bench(suite, out=out, device=DEVICE, progress=False)
    assert summary.failed == 0
    records = list(ResultStore(out).records())
    assert {r["device"] for r in records} == {KIND}
    assert {r["agent"] for r in records if r["phase"] == "eval"} == set(suite.agents)


@pytest.mark.parametrize("in_place", [False, True])
def test_an_interrupted_episode_resumes_bit_for_bit_on_cuda(in_place, tmp_path):
    tx = agents.in_place(agents.adam(1e-2)) if in_place else agents.adam(1e-2)
    kw = {"steps": 10, "seed": 3, "eval_every": 5}
    ref_env = small_env("MoG-Ring-v0", 4, device=DEVICE)
    ref = minmax_envs.run_episode(ref_env, tx, **kw)
    ckpt = tmp_path / "episode.pt"
    with pytest.raises(Interrupt):
        minmax_envs.run_episode(small_env("MoG-Ring-v0", 4, device=DEVICE),
                                {"generator": interrupting(tx, PROBE_CALLS + 6), "discriminator": tx},
                                checkpoint=ckpt, checkpoint_every=3, **kw)
    env = small_env("MoG-Ring-v0", 4, device=DEVICE)
    resumed = minmax_envs.run_episode(env, tx, checkpoint=ckpt, checkpoint_every=3, **kw)
    for pl in PLAYERS:
        for k, v in ref_env.params[pl].items():
            assert torch.equal(env.params[pl][k], v), (pl, k)
    for k, v in ref.metrics.items():
        torch.testing.assert_close(resumed.metrics[k], v, rtol=0, atol=0, equal_nan=True)


def test_in_place_fast_paths_match_their_pure_references_on_cuda():
    pairs = ((agents.inplace.adam(1e-2), agents.adam(1e-2)), (agents.inplace.nsgda(1e-2), agents.nsgda(1e-2)))
    for fast, pure in pairs:
        a, b = small_env("MoG-Ring-v0", 8, device=DEVICE), small_env("MoG-Ring-v0", 8, device=DEVICE)
        minmax_envs.run_episode(a, fast, steps=20, seed=0)
        minmax_envs.run_episode(b, pure, steps=20, seed=0)
        for pl in PLAYERS:
            for k, v in b.params[pl].items():  # the fused CUDA kernel may round differently from the reference
                torch.testing.assert_close(a.params[pl][k], v, rtol=1e-4, atol=1e-5)


def test_records_do_not_depend_on_how_a_cuda_sweep_is_split(tmp_path):
    suite = Suite("cuda-layout", 1, (DIRAC, TWO_MODE), budget=2, tune_seeds=4, eval_seeds=8, agents=("adam",))
    outcome = ("final", "value", "success", "diverged", "divergence_step", "curve", "seed", "seed_block")

    def outcomes(d):
        return {r["key"]: {k: r.get(k) for k in outcome} for r in ResultStore(d).records()}

    bench(suite, out=tmp_path / "full", device=DEVICE, progress=False)
    bench(suite, out=tmp_path / "split", device=DEVICE, seeds=3, progress=False)
    bench(suite, out=tmp_path / "split", device=DEVICE, progress=False)
    assert outcomes(tmp_path / "split") == outcomes(tmp_path / "full")


def test_a_batched_cuda_env_matches_single_seed_envs_closely():
    batch = small_env("TwoMode-v0", 8, device=DEVICE, dtype=torch.float64)
    minmax_envs.run_episode(batch, agents.nsgda(0.05), steps=30, seed=0)
    for i in (0, 5):
        one = small_env("TwoMode-v0", 1, device=DEVICE, dtype=torch.float64)
        minmax_envs.run_episode(one, agents.nsgda(0.05), steps=30, seed=i)
        for pl in PLAYERS:
            for k, v in one.params[pl].items():  # other batch sizes, other kernels: float64 rounding only
                torch.testing.assert_close(batch.params[pl][k][i:i + 1], v, rtol=1e-9, atol=1e-9)


def test_the_balance_suites_agents_play_on_cuda(tmp_path):
    """Suite `balance` runs with --device cuda unchanged: its balanced agents (a torch: base in place too) and the
    committed learned balance controller, on a short two-mode task."""
    from minmax_envs.evaluation.catalogue import BALANCE_CONTROLLERS
    from minmax_envs.evaluation.suites import get_suite

    names = (*get_suite("balance").agents[:9], "balanced:torch:torch.optim.SGD?momentum=0.9&ratio=tuned",
             BALANCE_CONTROLLERS["correlated-modes"])
    _bench_plays_every_agent_on_cuda(Suite("cuda-balance", 1, (TWO_MODE,), budget=2, tune_seeds=2, eval_seeds=4,
                                           agents=names), tmp_path)


@pytest.mark.parametrize("action", ["step_sizes", "balance"])
def test_the_native_ppo_trainer_trains_on_cuda_and_its_controller_plays_there(action, tmp_path):
    """baselines/ppo_step_size.py with --device cuda: env, policy and update on the GPU for a few iterations; the
    saved controller (learned:PATH) then plays its episodes on cuda, acting as the trained network does (up to the
    float rounding of another device's kernels)."""
    import numpy as np

    from baselines.ppo_step_size import Args, deterministic_actions, make_env, train
    from minmax_envs.controller_files import LearnedController

    args = Args(suite="quick", task="dirac-wgan", action=action, horizon=10, num_envs=64, num_steps=8,
                minibatch_size=128, total_timesteps=64 * 8 * 3, device=DEVICE, out=str(tmp_path), tensorboard=False)
    run = train(args)
    assert run.agent.params.device.type == torch.device(DEVICE).type and len(run.history) == 3
    assert all(np.isfinite(row["losses/value_loss"]) for row in run.history)
    controller = LearnedController.load(run.path, 0.1, 0.1)
    core, _ = make_env(Args(**{**args.__dict__, "num_envs": 8}))
    core.reset(range(8))
    obs = core.step_tensors(torch.zeros(8, 2, device=DEVICE)).obs
    assert obs.device.type == torch.device(DEVICE).type
    expected = deterministic_actions(run.agent, run.normalization, obs).cpu().numpy()
    np.testing.assert_allclose(controller.actions(obs.float().cpu().numpy()), expected, rtol=1e-5, atol=1e-6)
    task = minmax_envs.evaluation.get_suite("quick").task("dirac-wgan")
    result = controller.run(EpisodeTask("DiracGAN-v0", 10, 0, 8, device=DEVICE, env_kwargs=task.env_kwargs))
    distance = result.metrics["distance"]
    assert distance.device.type == torch.device(DEVICE).type and torch.isfinite(distance).all()

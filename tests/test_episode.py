"""run_episode: checkpoint and resume, alternating update schedules."""

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from minmax_envs.env import BatchedEnv
from minmax_envs.games.dirac import DiracGAN
from tests.conftest import small_env


class _Interrupt(Exception):
    pass


def _interrupting(tx, after_updates):
    """``tx`` that raises after ``after_updates`` calls: a sweep killed mid-episode."""
    calls = {"n": 0}

    def update(grads, state, params=None):
        calls["n"] += 1
        if calls["n"] > after_updates:
            raise _Interrupt
        return tx.update(grads, state, params)

    return agents.GradientTransformation(tx.init, update, tx.evaluations)


@pytest.mark.parametrize("env_id", ["MoG-Ring-v0", "TwoMode-v0"])
def test_interrupted_and_resumed_episode_ends_with_the_same_parameters(env_id, tmp_path):
    tx = agents.adam(1e-2)
    kw = {"steps": 10, "seed": 3, "eval_every": 5, "diagnostics_every": 2}
    ref_env = small_env(env_id, 2, dtype=torch.float64)
    ref = minmax_envs.run_episode(ref_env, tx, **kw)

    ckpt = tmp_path / "episode.pt"
    env = small_env(env_id, 2, dtype=torch.float64)
    with pytest.raises(_Interrupt):  # killed during iteration 7: the checkpoint holds iteration 6
        minmax_envs.run_episode(env, {"generator": _interrupting(tx, 6), "discriminator": tx},
                                checkpoint=ckpt, checkpoint_every=3, **kw)
    assert torch.load(ckpt, weights_only=False)["t"] == 6
    fresh = small_env(env_id, 2, dtype=torch.float64)
    resumed = minmax_envs.run_episode(fresh, tx, checkpoint=ckpt, checkpoint_every=3, **kw)
    for pl in PLAYERS:
        for k, v in ref_env.params[pl].items():
            assert torch.equal(fresh.params[pl][k], v), (pl, k)
    for k, v in ref.metrics.items():
        torch.testing.assert_close(resumed.metrics[k], v, rtol=0, atol=0, equal_nan=True)
    assert [t for t, _ in resumed.trajectory] == [0, 5, 10]
    for k, v in ref.diagnostics.items():
        torch.testing.assert_close(resumed.diagnostics[k], v, rtol=0, atol=0, equal_nan=True)
    # a finished checkpoint resumes straight to the result
    again = minmax_envs.run_episode(small_env(env_id, 2, dtype=torch.float64), tx, checkpoint=ckpt, **kw)
    torch.testing.assert_close(again.metrics[ref_env.game.quality_metric], ref.metrics[ref_env.game.quality_metric],
                               rtol=0, atol=0, equal_nan=True)


def test_checkpoint_of_another_episode_is_refused(tmp_path):
    ckpt = tmp_path / "c.pt"
    env = small_env("DiracGAN-v0", 2)
    minmax_envs.run_episode(env, agents.sgda(0.1), steps=3, seed=0, checkpoint=ckpt)
    with pytest.raises(ValueError, match="another episode"):
        minmax_envs.run_episode(env, agents.sgda(0.1), steps=4, seed=0, checkpoint=ckpt)
    with pytest.raises(ValueError, match="checkpoint path"):
        minmax_envs.run_episode(env, agents.sgda(0.1), steps=4, checkpoint_every=2)


class _AlternatingDirac(DiracGAN):
    """Dirac GAN with two discriminator steps per generator step (a test double for n_critic schedules)."""

    cycle = 3

    def movers(self, step):
        return ("discriminator",) if step % 3 < 2 else ("generator",)


def test_alternating_schedule_moves_one_player_at_a_time():
    env = BatchedEnv(_AlternatingDirac(2, dtype=torch.float64, loss="wgan"), env_id="alt")
    obs, _ = env.reset(seed=0)
    assert env.movers == ("discriminator",)
    assert obs["generator"].grads is None and not obs["generator"].moving and obs["discriminator"].moving
    with pytest.raises(ValueError, match="only these players move"):
        env.step({pl: {k: torch.zeros_like(v) for k, v in obs[pl].params.items()} for pl in PLAYERS})
    theta0 = obs["generator"].params["theta"].clone()
    for expected_next in ("discriminator", "generator", "discriminator"):
        upd = {pl: {k: torch.full_like(v, 0.1) for k, v in obs[pl].params.items()} for pl in env.movers}
        obs, rewards, *_ = env.step(upd)
        assert env.movers == (expected_next,)
    # two discriminator steps then one generator step
    torch.testing.assert_close(obs["generator"].params["theta"], theta0 + 0.1)
    torch.testing.assert_close(obs["discriminator"].params["psi"], torch.full((2,), 1.2, dtype=torch.float64))


def test_run_episode_calls_each_agent_only_when_its_player_moves():
    counts = {"generator": 0, "discriminator": 0}

    def counting(pl):
        tx = agents.adam(0.01)

        def update(grads, state, params=None):
            counts[pl] += 1
            return tx.update(grads, state, params)

        return agents.GradientTransformation(tx.init, update)

    env = BatchedEnv(_AlternatingDirac(2, loss="wgan"), env_id="alt")
    result = minmax_envs.run_episode(env, {pl: counting(pl) for pl in PLAYERS}, steps=4, seed=0,
                                     diagnostics_every=1)
    assert counts == {"generator": 4, "discriminator": 8}
    assert result.evaluations == 3 and env._steps == 12
    ratio = result.diagnostics["game/grad_ratio"]
    assert torch.isfinite(ratio).all()
    torch.testing.assert_close(ratio[0], torch.full((2,), 2.0))  # both players' first gradients
    with pytest.raises(ValueError, match="simultaneous"):
        minmax_envs.run_episode(env, agents.extragradient(agents.sgda(0.1)), steps=1)
    with pytest.raises(ValueError, match="simultaneous"):
        minmax_envs.run_episode(env, agents.balanced(agents.sgda(0.1)), steps=1)

"""run_episode: checkpoint and resume (safe loading, fingerprints), alternating update schedules. Every bad
checkpoint file is a row of the bad-input table, tests/test_bad_inputs.py."""

import re

import numpy as np
import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import Schedule
from minmax_envs.games.dirac import DiracGAN
from tests.helpers import (
    PROBE_CALLS,
    CallPickle,
    ExecPickle,
    Interrupt,
    interrupting,
    marker,
    small_env,
    standard_env,
    standard_run,
)


@pytest.mark.parametrize("env_id", ["MoG-Ring-v0", "TwoMode-v0"])
def test_interrupted_and_resumed_episode_ends_with_the_same_parameters(env_id, tmp_path):
    tx = agents.adam(1e-2)
    kw = {"steps": 10, "seed": 3, "eval_every": 5, "diagnostics_every": 2}
    ref_env = small_env(env_id, 2, dtype=torch.float64)
    ref = minmax_envs.run_episode(ref_env, tx, **kw)

    ckpt = tmp_path / "episode.pt"
    env = small_env(env_id, 2, dtype=torch.float64)
    with pytest.raises(Interrupt):  # killed during iteration 7 (after the probe's calls): the checkpoint holds 6
        minmax_envs.run_episode(env, {"generator": interrupting(tx, PROBE_CALLS + 6), "discriminator": tx},
                                checkpoint=ckpt, checkpoint_every=3, **kw)
    assert torch.load(ckpt, weights_only=True)["t"] == 6
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
    with pytest.raises(ValueError, match=r"another episode: episode\.steps: 3 in the checkpoint, 4 now"):
        minmax_envs.run_episode(env, agents.sgda(0.1), steps=4, seed=0, checkpoint=ckpt)
    with pytest.raises(ValueError, match="checkpoint path"):
        minmax_envs.run_episode(env, agents.sgda(0.1), steps=4, checkpoint_every=2)


def _alternating_dirac(dtype=torch.float32):
    """Dirac WGAN with two discriminator steps per generator step."""
    return DiracGAN(DiracGAN.Config(loss="wgan"), 2, dtype=dtype, schedule=Schedule("alternating", n_critic=2))


def test_alternating_schedule_moves_one_player_at_a_time():
    env = BatchedEnv(_alternating_dirac(torch.float64), env_id="alt")
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

    env = BatchedEnv(_alternating_dirac(), env_id="alt")
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


# --- checkpoints: safe loading, fingerprints (every bad checkpoint file is a row of tests/test_bad_inputs.py) ----
@pytest.mark.parametrize("payload", [ExecPickle, CallPickle])
def test_the_malicious_checkpoints_would_run_code_if_loaded_unsafely(payload, tmp_path):
    """The control of the crafted checkpoint rows of tests/test_bad_inputs.py: these files do run code under
    ``weights_only=False``."""
    path = tmp_path / "evil.pt"
    torch.save(payload(marker(tmp_path)), path)
    torch.load(path, weights_only=False)
    assert marker(tmp_path).read_text() == "code ran"


def test_agent_fingerprint_names_the_factor_and_tolerates_rounding(tmp_path):
    path = tmp_path / "c.pt"
    standard_run(path, agent=agents.sgda(5.0))
    with pytest.raises(ValueError) as info:
        standard_run(path, agent=agents.sgda(0.1))
    found = re.search(r"agent\.updates\.generator/theta\.norm: \[(.*?)\] in the checkpoint, \[(.*?)\] now",
                      str(info.value))
    old, new = ([float(x) for x in group.split(", ")] for group in found.groups())
    assert [o / n for o, n in zip(old, new)] == pytest.approx([50.0] * 3, rel=1e-4)  # the probe's norms scale with lr
    assert new[1] == pytest.approx(new[0] / 2, rel=1e-4) and new[2] == pytest.approx(2 * new[0], rel=1e-4)  # g, g/2, 2g

    def nudge(factor):
        payload = torch.load(path, weights_only=True)
        for entry in payload["fingerprint"]["agent"]["updates"].values():
            entry["norm"] = [v * factor for v in entry["norm"]]
        torch.save(payload, path)

    standard_run(path, agent=agents.sgda(5.0))  # the same agent resumes
    nudge(1 + 1e-5)  # as another thread count might round: still the same agent
    standard_run(path, agent=agents.sgda(5.0))
    nudge(1.01)  # 1% off: another agent
    with pytest.raises(ValueError, match=r"another episode: agent\.updates\.generator/theta\.norm"):
        standard_run(path, agent=agents.sgda(5.0))


def test_checkpoint_holds_only_plain_data(tmp_path):
    path = tmp_path / "c.pt"
    standard_run(path, agent=agents.adam(1e-2))
    payload = torch.load(path, weights_only=True)  # loads with nothing added to torch's allow-list
    assert payload["format"] == "minmax_envs.run_episode/2"
    assert payload["fingerprint"]["env"] == standard_env().make_kwargs
    assert payload["fingerprint"]["episode"] == {"steps": 2, "seed": 0, "eval_every": None, "diagnostics_every": None}
    assert set(payload["fingerprint"]["agent"]) == {"evaluations", "state", "updates"}


@pytest.mark.parametrize("tx", [
    agents.graft(agents.adam(1e-2), agents.sgda(1e-2, momentum=0.9)),  # None slots filled by the first update
    agents.extragradient(agents.adam(1e-2)),
    agents.sgda(agents.schedules.linear(0.1, 0.01, 10), momentum=0.5),
    agents.balanced(agents.adam(1e-2)),
], ids=["graft", "extragradient", "schedule", "balanced"])
def test_agent_states_of_every_shape_resume_bit_exactly(tx, tmp_path):
    kw = {"steps": 8, "seed": 1, "diagnostics_every": 2}
    ref_env = small_env("Bilinear-v0", 3, dtype=torch.float64)
    ref = minmax_envs.run_episode(ref_env, tx, **kw)
    ckpt = tmp_path / "c.pt"
    pair = agents.as_pair(tx)
    killer = interrupting(pair, PROBE_CALLS + 5 * pair.evaluations)  # killed in iteration 6: the checkpoint holds 4
    killer = agents.PairTransformation(killer.init, killer.update, killer.evaluations)
    with pytest.raises(Interrupt):
        minmax_envs.run_episode(small_env("Bilinear-v0", 3, dtype=torch.float64), killer, checkpoint=ckpt,
                                checkpoint_every=2, **kw)
    assert torch.load(ckpt, weights_only=True)["t"] == 4
    fresh = small_env("Bilinear-v0", 3, dtype=torch.float64)
    resumed = minmax_envs.run_episode(fresh, tx, checkpoint=ckpt, **kw)
    for pl in PLAYERS:
        for k, v in ref_env.params[pl].items():
            assert torch.equal(fresh.params[pl][k], v), (pl, k)
    assert resumed.diagnostics.keys() == ref.diagnostics.keys()
    for k, v in ref.diagnostics.items():  # graft's magnitude ratios read the rebuilt GraftState
        torch.testing.assert_close(resumed.diagnostics[k], v, rtol=0, atol=0, equal_nan=True)


def test_a_random_seed_episode_resumes_with_the_seed_it_drew(tmp_path):
    tx = agents.adam(1e-2)
    ckpt = tmp_path / "c.pt"
    with pytest.raises(Interrupt):
        minmax_envs.run_episode(standard_env(), {"generator": interrupting(tx, PROBE_CALLS + 3),
                                                  "discriminator": tx}, steps=6, checkpoint=ckpt, checkpoint_every=2)
    base = torch.load(ckpt, weights_only=True)["base_seed"]
    fresh = standard_env()
    minmax_envs.run_episode(fresh, tx, steps=6, checkpoint=ckpt)
    ref = standard_env()
    minmax_envs.run_episode(ref, tx, steps=6, seed=base)
    for pl in PLAYERS:
        for k, v in ref.params[pl].items():
            assert torch.equal(fresh.params[pl][k], v)


def test_an_agent_state_that_cannot_be_stored_fails_at_the_first_save(tmp_path):
    base = agents.sgda(0.1)
    odd = agents.GradientTransformation(lambda p: (base.init(p), np.zeros(2)),
                                        lambda g, s, p=None: (base.update(g, s[0], p)[0], s))
    with pytest.raises(TypeError, match=r"cannot checkpoint the agent state: state\['generator'\]\[1\] is a ndarray"):
        standard_run(tmp_path / "c.pt", agent=odd)


# --- generator samples and figure descriptions in the result ----------------------------------------------------

def test_generator_samples_come_back_in_the_result_only_when_asked_for():
    env = small_env("MoG-Ring-v0", 3)
    plain = minmax_envs.run_episode(env, agents.adam(1e-3), steps=3, seed=5)
    assert plain.samples is None and [p["kind"] for p in plain.plots] == ["samples"]
    result = minmax_envs.run_episode(env, agents.adam(1e-3), steps=3, seed=5, samples=40)
    assert result.samples.shape == (3, 40, 2) and torch.equal(result.metrics["modes_covered"],
                                                             plain.metrics["modes_covered"])
    # every seed's samples from its own final parameters and the same latents (torch's generator seeded 0)
    z = torch.randn((1, 40, env.game.z_dim), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i in range(3):
        own = env.game.generate({k: v[i:i + 1] for k, v in env.params["generator"].items()}, z.float())
        assert torch.equal(result.samples[i], own[0])


def test_samples_of_a_game_without_them_are_refused_before_the_episode():
    env = small_env("DiracGAN-v0", 2)
    calls = []
    tx = agents.sgda(0.1)
    counting = agents.GradientTransformation(tx.init, lambda *a: calls.append(1) or tx.update(*a))
    with pytest.raises(ValueError, match="samples=5: DiracGAN draws no generator samples"):
        minmax_envs.run_episode(env, counting, steps=3, samples=5)
    assert calls == []
    with pytest.raises(ValueError, match="samples"):
        minmax_envs.run_episode(small_env("MoG-Ring-v0"), agents.sgda(0.1), steps=1, samples=-1)
    assert minmax_envs.run_episode(env, tx, steps=2).plots[0]["kind"] == "trajectory"

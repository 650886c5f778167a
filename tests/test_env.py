"""The batched env's contract: stepping, validation, divergence, truncation, per-slot resets."""

import json
import shutil

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from tests.helpers import small_env


def _zero_updates(obs):
    return {pl: {k: torch.zeros_like(v) for k, v in obs[pl].params.items()} for pl in PLAYERS}


def test_reset_and_step_shapes_and_update_semantics():
    env = minmax_envs.make("Bilinear-v0", num_seeds=3, n=4)
    obs, info = env.reset(seed=1)
    assert set(obs) == set(PLAYERS)
    assert obs["generator"].params["x"].shape == (3, 4) and obs["generator"].loss.shape == (3,)
    assert obs["discriminator"].grads["y"].shape == (3, 4)
    upd = _zero_updates(obs)
    upd["generator"]["x"] = torch.ones(3, 4)
    before = obs["generator"].params["x"].clone()
    obs2, rewards, term, trunc, info = env.step(upd)
    assert torch.allclose(obs2["generator"].params["x"], before + 1)
    assert torch.equal(rewards["generator"], -obs2["generator"].loss)
    assert term["generator"].shape == (3,) and not term["generator"].any() and not trunc["generator"].any()
    assert torch.equal(info["step"], torch.ones(3, dtype=torch.int64))
    assert torch.equal(before, obs["generator"].params["x"]), "old observations must not be mutated by step"


def test_step_before_reset_raises():
    env = minmax_envs.make("DiracGAN-v0")
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


@pytest.mark.parametrize("mutate, match", [
    (lambda u: u.pop("generator"), "keys"),
    (lambda u: u["generator"].update(extra=torch.zeros(2, 3)), "must have the tensors"),
    (lambda u: u["generator"].update(x=torch.zeros(3, 3)), "shape"),
    (lambda u: u["generator"].update(x=torch.zeros(2, 3, dtype=torch.float64)), "dtype"),
    (lambda u: u["generator"].update(x=[0.0] * 3), "torch.Tensor"),
    (lambda u: u["discriminator"].update(y=torch.full((2, 3), float("nan"))), "not finite"),
    (lambda u: u["discriminator"].update(y=torch.full((2, 3), float("inf"))), "not finite"),
])
def test_malformed_updates_raise_clear_errors(mutate, match):
    env = minmax_envs.make("Bilinear-v0", num_seeds=2, n=3)
    obs, _ = env.reset(seed=0)
    upd = _zero_updates(obs)
    mutate(upd)
    with pytest.raises(ValueError, match=match):
        env.step(upd)


def test_divergence_ends_only_that_seed_and_is_recorded():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=3, loss="wgan", divergence_threshold=50.0)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        upd = _zero_updates(obs)
        upd["generator"]["theta"] = torch.tensor([30.0, 0.0, 0.0])  # slot 0 explodes past the threshold
        obs, _, term, _, info = env.step(upd)
    assert term["generator"].tolist() == [True, False, False]
    assert info["diverged"].tolist() == [True, False, False]
    assert info["divergence_step"].tolist() == [2, -1, -1]
    frozen = obs["generator"].params["theta"][0].item()
    # a stopped seed ignores its updates, even non-finite ones; the others go on
    upd = _zero_updates(obs)
    upd["generator"]["theta"] = torch.tensor([float("nan"), 1.0, 1.0])
    obs, *_ = env.step(upd)
    assert obs["generator"].params["theta"][0].item() == frozen
    assert env.metrics()["diverged"].tolist() == [1.0, 0.0, 0.0]


def test_nan_in_the_game_terminates_without_raising():
    env = minmax_envs.make("Bilinear-v0", num_seeds=2, n=3)
    obs, _ = env.reset(seed=0)
    bad = {"A": env._instance["A"].clone()}
    bad["A"][1] = float("nan")  # poison seed 1's game instance: its gradients become NaN
    env._instance.update(bad)
    obs, _, term, _, info = env.step(_zero_updates(obs))
    assert term["generator"].tolist() == [False, True]


def test_run_episode_records_agent_nans_as_divergence():
    def nan_on_seed_1(grads, state, params=None):
        return {k: torch.where(torch.arange(g.shape[0]).reshape(-1, *[1] * (g.ndim - 1)) == 1,
                               torch.full_like(g, float("nan")), -0.01 * g) for k, g in grads.items()}, state
    tx = agents.GradientTransformation(lambda p: agents.EmptyState(), nan_on_seed_1)
    env = minmax_envs.make("Bilinear-v0", num_seeds=3, n=3)
    result = minmax_envs.run_episode(env, tx, steps=10, seed=0)
    assert result.diverged.tolist() == [False, True, False]
    assert result.divergence_step.tolist() == [-1, 1, -1]
    assert torch.isfinite(result.metrics["distance"][[0, 2]]).all()


def test_max_steps_truncates():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=2, max_steps=3)
    obs, _ = env.reset(seed=0)
    truncs = []
    for _ in range(4):
        obs, _, _, trunc, info = env.step(_zero_updates(obs))
        truncs.append(trunc["generator"].tolist())
    assert truncs == [[False, False], [False, False], [True, True], [True, True]]
    assert info["step"].tolist() == [3, 3]


def test_reset_where_restarts_a_slot_exactly_like_a_fresh_env():
    kw = {"n": 3, "noise_std": 0.1, "dtype": torch.float64}
    env = minmax_envs.make("Bilinear-v0", num_seeds=3, **kw)
    obs, _ = env.reset(seed=10)
    tx = agents.sgda(0.05)
    state = tx.init({})

    def act(o):
        return {pl: tx.update(o[pl].grads, state, None)[0] for pl in PLAYERS}

    for _ in range(3):
        obs, *_ = env.step(act(obs))
    env.reset_where(torch.tensor([False, True, False]), torch.tensor([0, 99, 0]))
    obs, *_ = env.step(act(obs))
    fresh = minmax_envs.make("Bilinear-v0", num_seeds=1, **kw)
    fobs, _ = fresh.reset(seed=99)
    assert torch.equal(obs["generator"].params["x"][1], fobs["generator"].params["x"][0])
    assert torch.equal(obs["discriminator"].grads["y"][1], fobs["discriminator"].grads["y"][0])
    for _ in range(4):
        obs, *_ = env.step(act(obs))
        fobs, *_ = fresh.step(act(fobs))
    assert torch.allclose(obs["generator"].params["x"][1], fobs["generator"].params["x"][0], atol=1e-12)
    assert env.seeds.tolist() == [10, 99, 12]


def test_reset_seed_validation_and_unseeded_reset():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=2, init_std=1.0)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=bad)
    env.reset()
    a = env.seeds.clone()
    env.reset()
    assert not torch.equal(a, env.seeds)


def test_quality_is_signed_so_larger_is_better():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=1)
    env.reset(seed=0)
    m = env.metrics()
    assert env.quality(m).item() == pytest.approx(-m["distance"].item())


def test_tune_cpu_allocator_applies_on_linux_and_keeps_results_identical():
    import sys

    env = minmax_envs.make("TwoMode-v0", num_seeds=4, d=50)
    before = minmax_envs.run_episode(env, agents.nsgda(0.02), steps=20, seed=0).metrics["mode_alignment"]
    applied = minmax_envs.tune_cpu_allocator()
    assert applied == sys.platform.startswith("linux")
    after = minmax_envs.run_episode(env, agents.nsgda(0.02), steps=20, seed=0).metrics["mode_alignment"]
    assert torch.equal(before, after)


def test_one_diverging_seed_is_caught_by_the_fast_whole_batch_check():
    """On the CPU the divergence check first looks at whole tensors; a single bad seed must still be found."""
    env = minmax_envs.make("Bilinear-v0", num_seeds=5, n=3)
    obs, _ = env.reset(seed=0)
    updates = {pl: {k: torch.zeros_like(v) for k, v in obs[pl].params.items()} for pl in env.players}
    updates["generator"]["x"][3, 1] = 1e7  # beyond the divergence threshold, one seed only
    _, _, terminated, _, info = env.step(updates)
    assert info["diverged"].tolist() == [False, False, False, True, False]
    assert terminated["generator"].tolist() == [False, False, False, True, False]


@pytest.mark.parametrize("n", [5, 2**18])  # below and above the size where the check concatenates the tensors
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -2e6])
def test_whole_batch_check_finds_one_bad_entry_in_small_and_large_batches(n, bad):
    from minmax_envs.env import _all_within

    values = [torch.zeros(n, 3), torch.ones(n)]
    grads = [torch.zeros(n, 3), torch.zeros(n)]
    assert _all_within(values, grads, 1e6)
    values[0][n // 2, 1] = bad
    assert not _all_within(values, grads, 1e6)
    values[0][n // 2, 1] = 0.0
    grads[1][n - 1] = bad
    assert _all_within(values, grads, 1e6) == (abs(bad) < float("inf"))  # gradients: only finiteness counts


_HAS_CXX = any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.skipif(not _HAS_CXX, reason="torch.compile's CPU backend needs a C++ compiler")
@pytest.mark.parametrize(("env_id", "kw"), [("Bilinear-v0", {"noise_std": 0.1}), ("TwoMode-v0", {"d": 20})])
def test_compiled_env_follows_the_eager_trajectory(env_id, kw):
    """compile=True changes how the gradient field runs, not what it computes (float64: reassociation only)."""
    runs = []
    for compile in (False, True):
        env = minmax_envs.make(env_id, num_seeds=3, dtype=torch.float64, compile=compile, **kw)
        assert env.compiled == compile
        result = minmax_envs.run_episode(env, agents.adam(0.05), steps=15, seed=4, eval_every=5)
        runs.append((env.params, result))
    (eager, r_eager), (compiled, r_compiled) = runs
    for pl in eager:
        for k in eager[pl]:
            torch.testing.assert_close(compiled[pl][k], eager[pl][k], rtol=1e-9, atol=1e-12)
    assert torch.equal(r_compiled.divergence_step, r_eager.divergence_step)
    assert [t for t, _ in r_compiled.trajectory] == [0, 5, 10, 15]
    for (_, m_c), (_, m_e) in zip(r_compiled.trajectory, r_eager.trajectory):
        for name in m_e:
            torch.testing.assert_close(m_c[name], m_e[name], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_compile_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="True or False"):
        minmax_envs.make("DiracGAN-v0", compile="yes")
    with pytest.raises(ValueError, match="differentiate twice"):
        minmax_envs.make("DiracGAN-v0", compile=True, regularizer="nk")
    with pytest.raises(ValueError, match="batched games"):
        minmax_envs.make("Digits-DCGAN-v0", compile=True, width=4, resolution=8)


@pytest.mark.parametrize("env_id", ["Bilinear-v0", "MoG-Ring-v0", "Digits-DCGAN-v0"])
def test_updates_that_require_grad_are_applied_as_data(env_id):
    """An update computed with autograd never turns the parameters into graph nodes."""
    kw = {} if env_id != "Digits-DCGAN-v0" else {"update": "simultaneous", "n_critic": 1}
    env = small_env(env_id, 2 if env_id != "Digits-DCGAN-v0" else 1, **kw)
    obs, _ = env.reset(seed=0)
    before = {pl: {k: v.clone() for k, v in obs[pl].params.items()} for pl in PLAYERS}
    scale = torch.tensor(-1e-3, requires_grad=True)
    updates = {pl: {k: scale * g for k, g in obs[pl].grads.items()} for pl in env.movers}
    assert all(u.requires_grad and u.grad_fn is not None for upd in updates.values() for u in upd.values())
    obs, *_ = env.step(updates)
    for pl in PLAYERS:
        for k, p in obs[pl].params.items():
            assert not p.requires_grad and p.grad_fn is None, (pl, k)
            expected = before[pl][k] + updates[pl][k].detach() if pl in updates else before[pl][k]
            assert torch.equal(p, expected), (pl, k)
    assert all(not u.requires_grad for upd in env._last_updates.values() for u in upd.values())
    obs, *_ = env.step(updates)  # and the env steps on from them
    assert all(torch.isfinite(g).all() for pl in env.movers for g in obs[pl].grads.values())


def test_make_records_its_arguments_canonically():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=2, dtype="float64", loss="wgan", max_steps=5)
    kw = env.make_kwargs
    assert kw["env_id"] == "DiracGAN-v0" and kw["num_seeds"] == 2 and kw["max_steps"] == 5
    assert kw["dtype"] == "float64" and kw["device"] == "cpu" and kw["loss"] == "wgan"
    assert kw["theta0"] == 1.0 and kw["penalty"] is None  # the game's defaults filled in
    assert json.loads(json.dumps(kw)) == kw
    again = minmax_envs.make(**kw)
    assert again.make_kwargs == kw and again.dtype == torch.float64 and again.max_steps == 5
    # the same env spelled differently: same record
    same = minmax_envs.make("minmax_envs/DiracGAN-v0", 2, torch.device("cpu"), torch.float64, loss="wgan",
                            max_steps=5, theta0=1)
    assert same.make_kwargs == kw
    assert minmax_envs.make("DiracGAN-v0", num_seeds=2, dtype="float64", max_steps=5).make_kwargs["loss"] == "gan"
    assert minmax_envs.make("MoG-Ring-v0").make_kwargs["layout"] == "ring"  # the registry's own arguments
    assert minmax_envs.env.BatchedEnv(env.game).make_kwargs is None


def test_public_counters_and_an_unvalidated_non_finite_update():
    """``t``, ``diverged`` and ``divergence_step`` are the info's tensors; ``step(validate=False)`` lets a
    non-finite update through, and its seed is recorded as diverged instead of raising."""
    env = minmax_envs.make("Bilinear-v0", num_seeds=3, n=2)
    obs, _ = env.reset(seed=0)
    zero = {pl: {k: torch.zeros_like(v) for k, v in obs[pl].params.items()} for pl in env.players}
    bad = {pl: {k: v.clone() for k, v in ups.items()} for pl, ups in zero.items()}
    next(iter(bad["generator"].values()))[1] = float("nan")
    with pytest.raises(ValueError, match="is not finite"):
        env.step(bad)
    *_, info = env.step(bad, validate=False)
    assert env.diverged.tolist() == [False, True, False] and env.divergence_step.tolist() == [-1, 1, -1]
    *_, info = env.step(zero)
    assert env.t.tolist() == [2, 1, 2]  # the diverged slot stopped counting
    assert info["step"] is env.t and info["diverged"] is env.diverged and info["divergence_step"] is env.divergence_step


def test_restart_where_restarts_now_and_leaves_the_other_slots_where_they_were():
    kw = {"n": 3, "noise_std": 0.1, "dtype": torch.float64}  # noisy gradients: the data streams matter
    env, twin = (minmax_envs.make("Bilinear-v0", num_seeds=3, **kw) for _ in range(2))
    obs, _ = env.reset(seed=10)
    tobs, _ = twin.reset(seed=10)
    tx = agents.sgda(0.05)

    def act(o):
        return {pl: tx.update(o[pl].grads, tx.init({}), None)[0] for pl in PLAYERS}

    for _ in range(3):
        obs, *_ = env.step(act(obs))
        tobs, *_ = twin.step(act(tobs))
    obs = env.restart_where(torch.tensor([False, True, False]), torch.tensor([0, 99, 0]))
    fresh = minmax_envs.make("Bilinear-v0", num_seeds=1, **kw)
    fobs, _ = fresh.reset(seed=99)
    assert torch.equal(obs["generator"].params["x"][1], fobs["generator"].params["x"][0])
    assert torch.equal(obs["discriminator"].grads["y"][1], fobs["discriminator"].grads["y"][0])
    assert env.t.tolist() == [3, 0, 3] and env.seeds.tolist() == [10, 99, 12]
    for _ in range(4):  # the restarted slot plays the fresh episode; the others the twin's, bit for bit
        obs, *_ = env.step(act(obs))
        tobs, *_ = twin.step(act(tobs))
        fobs, *_ = fresh.step(act(fobs))
        keep = [0, 2]
        assert torch.equal(obs["generator"].params["x"][keep], tobs["generator"].params["x"][keep])
        assert torch.equal(obs["discriminator"].grads["y"][keep], tobs["discriminator"].grads["y"][keep])
        assert torch.equal(obs["generator"].params["x"][1], fobs["generator"].params["x"][0])

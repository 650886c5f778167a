"""Contract tests that every registered game must pass: parity, determinism, gradients, devices."""

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from minmax_envs.games._base import leaf_params, per_seed_sq_norm
from tests.helpers import BATCHED_IDS, ENV_IDS, seeds_for, simultaneous_kwargs, small_env


def _run(env_id, num_seeds, seed, steps=6, **kw):
    env = small_env(env_id, num_seeds, dtype=torch.float64, **kw)
    tx = {"generator": agents.nsgda(0.01, momentum=0.5), "discriminator": agents.sgda(0.02, momentum=0.5)}
    result = minmax_envs.run_episode(env, tx, steps=steps, seed=seed, eval_every=3)
    return env, result


@pytest.mark.parametrize("env_id", BATCHED_IDS)
def test_batched_slice_equals_single_seed_run(env_id):
    n, s = 3, 40
    batched, rb = _run(env_id, n, s)
    for i in range(n):
        single, rs = _run(env_id, 1, s + i)
        for pl in PLAYERS:
            for k, v in single.params[pl].items():
                torch.testing.assert_close(batched.params[pl][k][i], v[0], atol=1e-6, rtol=0)
        for k, v in rs.metrics.items():
            torch.testing.assert_close(rb.metrics[k][i], v[0], atol=1e-6, rtol=0, equal_nan=True)
        for (tb, mb), (ts, ms) in zip(rb.trajectory, rs.trajectory):
            assert tb == ts
            for k in ms:
                torch.testing.assert_close(mb[k][i], ms[k][0], atol=1e-6, rtol=0, equal_nan=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_episode_other_seed_other_episode(env_id):
    a, _ = _run(env_id, 2, 7)
    b, _ = _run(env_id, 2, 7)
    c, _ = _run(env_id, 2, 8)
    for pl in PLAYERS:
        for k in a.params[pl]:
            assert torch.equal(a.params[pl][k], b.params[pl][k])
    assert any(not torch.equal(a.params[pl][k][0], c.params[pl][k][0]) for pl in PLAYERS for k in a.params[pl])
    assert a.num_seeds == seeds_for(env_id, 2)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_metrics_do_not_perturb_training(env_id):
    env = small_env(env_id, 2, dtype=torch.float64)
    other = small_env(env_id, 2, dtype=torch.float64)
    tx = agents.sgda(0.01)
    results = []
    for e, every in ((env, 1), (other, None)):
        results.append(minmax_envs.run_episode(e, tx, steps=4, seed=3, eval_every=every))
    for pl in PLAYERS:
        for k in env.params[pl]:
            assert torch.equal(env.params[pl][k], other.params[pl][k])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_metrics_are_per_seed_and_include_diverged_and_quality(env_id):
    env = small_env(env_id, 3)
    env.reset(seed=0)
    m = env.metrics()
    assert env.game.quality_metric in m and "diverged" in m
    for k, v in m.items():
        assert v.shape[0] == seeds_for(env_id, 3), k
    assert env.quality().shape == (seeds_for(env_id, 3),)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_quality_alone_is_the_quality_metric_bit_for_bit(env_id):
    """``env.quality()`` (what the control envs' rewards read at every step, computed without the other metrics
    where a game can) equals the signed quality metric of ``env.metrics()`` exactly, mid-episode."""
    env = small_env(env_id, 3)
    tx = {"generator": agents.nsgda(0.01, momentum=0.5), "discriminator": agents.sgda(0.02, momentum=0.5)}
    minmax_envs.run_episode(env, tx, steps=5, seed=11)
    m = env.metrics()
    assert torch.equal(env.quality(), env.game.quality_sign * m[env.game.quality_metric])
    assert torch.equal(env.quality(m), env.quality())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float32_default_and_float64_allowed(env_id):
    for dtype in (torch.float32, torch.float64):
        env = small_env(env_id, 2, dtype=dtype)
        obs, _ = env.reset(seed=0)
        for pl in PLAYERS:
            assert all(v.dtype == dtype and v.shape[0] == seeds_for(env_id, 2) for v in obs[pl].params.values())
            if obs[pl].moving:
                assert obs[pl].loss.dtype == dtype
                assert all(obs[pl].grads[k].shape == v.shape for k, v in obs[pl].params.items())


EPSILONS = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)


def _assert_matches_some_difference(analytic, value_at, rtol=1e-4, atol=1e-6):
    """Central differences ``(f(+eps) - f(-eps)) / 2 eps`` for several ``eps``: piecewise-smooth losses (ReLU nets,
    gradient penalties) can put a kink inside one bracket (the squared field of a ReLU net even jumps there; one
    sat 1e-9 away on an image batch), so the closest estimate must match. A wrong gradient matches none of them."""
    errors = []
    for eps in EPSILONS:
        fd = (value_at(eps) - value_at(-eps)) / (2 * eps)
        errors.append(((analytic - fd).abs() - (atol + rtol * fd.abs())).max().item())
    assert min(errors) <= 0, f"analytic {analytic.tolist()} matches no central difference (excess {errors})"


def _generic_point(params, gen):
    """Jittered parameters: at initialization ReLU pre-activations can sit exactly on their kinks (zero
    biases over all-zero receptive fields), where a gradient penalty is not differentiable."""
    return {pl: {k: v + 2e-2 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in ps.items()}
            for pl, ps in params.items()}


def _objectives(env, regularizer, weight):
    """Each player's objective whose gradient the observed field must be (plain or NK-regularized)."""
    game, inst = env.game, env._instance

    def objective(params, batch, player):
        with torch.enable_grad():
            leaves = leaf_params(params)
            losses = game.losses(leaves, inst, batch)
            if regularizer is None or player == "discriminator":
                return losses[player]
            # nk: the generator's objective is f + eta * ||grad_D f||^2
            gd = torch.autograd.grad(losses["discriminator"].sum(), list(leaves["discriminator"].values()))
            return losses[player] + weight * per_seed_sq_norm(dict(enumerate(gd)))

    return objective


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("regularizer", [None, "nk"])
def test_gradients_match_finite_differences(env_id, regularizer):
    weight = 0.3
    env = small_env(env_id, 2, dtype=torch.float64, regularizer=regularizer,
                    reg_weight=None if regularizer is None else weight, **simultaneous_kwargs(env_id))
    n = env.num_seeds
    env.reset(seed=1)
    batch = env.game.sample(env._rng, env._instance)
    gen = torch.Generator().manual_seed(0)
    params = _generic_point(env.params, gen)
    _, grads = env._field(params, env._instance, batch, env.movers)
    objective = _objectives(env, regularizer, weight)
    for pl in PLAYERS:
        for _ in range(2):
            v = {k: torch.randn(p.shape, generator=gen, dtype=torch.float64) for k, p in params[pl].items()}

            def value_at(eps, pl=pl, v=v):
                p2 = {q: dict(ps) for q, ps in params.items()}
                p2[pl] = {k: p + eps * v[k] for k, p in params[pl].items()}
                return objective(p2, batch, pl).detach()

            analytic = sum((grads[pl][k] * v[k]).reshape(n, -1).sum(1) for k in v)
            _assert_matches_some_difference(analytic, value_at)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_consensus_adds_the_gradient_of_half_the_squared_field(env_id):
    gamma = 0.2
    kw = simultaneous_kwargs(env_id)
    plain = small_env(env_id, 2, dtype=torch.float64, **kw)
    cons = small_env(env_id, 2, dtype=torch.float64, regularizer="consensus", reg_weight=gamma, **kw)
    n = plain.num_seeds
    plain.reset(seed=2)
    cons.reset(seed=2)
    batch = plain.game.sample(plain._rng, plain._instance)
    gen = torch.Generator().manual_seed(1)
    params = _generic_point(plain.params, gen)
    _, g_plain = plain._field(params, plain._instance, batch)
    _, g_cons = cons._field(params, cons._instance, batch)

    def half_sq_field(params):
        _, g = plain.game.grads(params, plain._instance, batch)
        return 0.5 * sum(per_seed_sq_norm(g[pl]) for pl in PLAYERS)

    for pl in PLAYERS:
        v = {k: torch.randn(p.shape, generator=gen, dtype=torch.float64) for k, p in params[pl].items()}

        def value_at(eps, pl=pl, v=v):
            p2 = {q: dict(ps) for q, ps in params.items()}
            p2[pl] = {k: p + eps * v[k] for k, p in params[pl].items()}
            return gamma * half_sq_field(p2)

        extra = sum(((g_cons[pl][k] - g_plain[pl][k]) * v[k]).reshape(n, -1).sum(1) for k in v)
        _assert_matches_some_difference(extra, value_at)

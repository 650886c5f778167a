"""Agents: hand-checked first steps, parity with torch.optim, normalization invariants, validation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import agents
import minmax_envs
from minmax_envs import PLAYERS


def _random_params(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"w": (n, 3, 5), "b": (n, 5), "s": (n,)}
    return {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in shapes.items()}


def _quadratic_grads(params):
    # gradient of sum_k 0.5 * ||p_k - 1||^2 * (k-dependent curvature): a stateful, param-dependent field
    return {k: (i + 1.0) * (p - 1.0) + 0.1 * p**2 for i, (k, p) in enumerate(sorted(params.items()))}


@pytest.mark.parametrize("lr, momentum", [(0.1, 0.0), (0.05, 0.9), (0.2, 0.5)])
def test_sgda_matches_torch_sgd_over_20_steps(lr, momentum):
    ours = _random_params()
    ref = {k: v.clone().requires_grad_(True) for k, v in ours.items()}
    opt = torch.optim.SGD(list(ref.values()), lr=lr, momentum=momentum)
    tx = agents.sgda(lr, momentum=momentum)
    state = tx.init(ours)
    for _ in range(20):
        g = _quadratic_grads(ours)
        upd, state = tx.update(g, state, ours)
        ours = {k: ours[k] + upd[k] for k in ours}
        opt.zero_grad()
        for k, p in ref.items():
            p.grad = _quadratic_grads({kk: pp.detach() for kk, pp in ref.items()})[k]
        opt.step()
    for k in ours:
        torch.testing.assert_close(ours[k], ref[k].detach(), atol=1e-6, rtol=0)


def test_sgda_matches_torch_sgd_on_a_real_game():
    env = minmax_envs.make("Bilinear-v0", num_seeds=2, n=5, dtype=torch.float64)
    obs, _ = env.reset(seed=3)
    lr, mom = 0.05, 0.8
    ref = {pl: {k: v.clone().requires_grad_(True) for k, v in obs[pl].params.items()} for pl in PLAYERS}
    opts = {pl: torch.optim.SGD(list(ref[pl].values()), lr=lr, momentum=mom) for pl in PLAYERS}
    tx = agents.sgda(lr, momentum=mom)
    states = {pl: tx.init(obs[pl].params) for pl in PLAYERS}
    game, inst = env.game, env._instance
    for _ in range(20):
        ref_params = {pl: {k: v.detach() for k, v in ref[pl].items()} for pl in PLAYERS}
        _, ref_grads = game.grads(ref_params, inst, {"noise": torch.zeros(2, 2, 5, dtype=torch.float64)})
        for pl in PLAYERS:
            opts[pl].zero_grad()
            for k, p in ref[pl].items():
                p.grad = ref_grads[pl][k].clone()
            opts[pl].step()
        upd = {}
        for pl in PLAYERS:
            upd[pl], states[pl] = tx.update(obs[pl].grads, states[pl], obs[pl].params)
        obs, *_ = env.step(upd)
    for pl in PLAYERS:
        for k in ref[pl]:
            torch.testing.assert_close(obs[pl].params[k], ref[pl][k].detach(), atol=1e-6, rtol=0)


def test_first_steps_by_hand():
    g = {"a": torch.tensor([[3.0, 4.0], [0.0, 1.0]])}
    tx = agents.sgda(0.1, momentum=0.5)
    s = tx.init(g)
    u, s = tx.update(g, s)
    torch.testing.assert_close(u["a"], -0.1 * g["a"])
    u, s = tx.update(g, s)
    torch.testing.assert_close(u["a"], -0.1 * 1.5 * g["a"])
    tx = agents.nsgda(0.5)
    u, _ = tx.update(g, tx.init(g), None)
    torch.testing.assert_close(u["a"], torch.tensor([[-0.3, -0.4], [0.0, -0.5]]))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_nsgda_step_norm_equals_lr_per_tensor_and_per_player(momentum):
    p = _random_params(n=6)
    for scope in ("layer", "global"):
        tx = agents.nsgda(0.03, momentum=momentum, scope=scope)
        state = tx.init(p)
        for step in range(3):
            u, state = tx.update(_random_params(n=6, seed=step + 1), state, p)
            norms = agents.per_seed_norms(u, scope)
            for k in u:
                torch.testing.assert_close(norms[k], torch.full((6,), 0.03, dtype=torch.float64))


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("magnitude", [1.3e-23, 1e-30, 1e18])
def test_nsgda_step_norm_is_lr_for_tiny_and_huge_float32_gradients(scope, magnitude):
    # a saturated discriminator gives the generator gradients around 1e-23: their squares underflow in float32
    g = {"V": torch.full((2, 5, 1000), magnitude), "c": torch.full((2,), -magnitude)}
    tx = agents.nsgda(0.05, scope=scope)
    u, _ = tx.update(g, tx.init(g), g)
    for n in agents.per_seed_norms(u, scope).values():
        torch.testing.assert_close(n, torch.full((2,), 0.05))
    norms = agents.per_seed_norms(g, "global")["V"]
    torch.testing.assert_close(norms, torch.full((2,), magnitude * 5001**0.5), rtol=1e-5, atol=0)


def test_nsgda_zero_gradient_gives_zero_update():
    tx = agents.nsgda(0.1)
    u, _ = tx.update({"a": torch.zeros(2, 3)}, tx.init({"a": torch.zeros(2, 3)}), None)
    assert torch.equal(u["a"], torch.zeros(2, 3))


@settings(max_examples=30, deadline=None)
@given(c=st.floats(min_value=1e-3, max_value=1e3), scope=st.sampled_from(["layer", "global"]))
def test_nsgda_direction_is_invariant_to_gradient_scale(c, scope):
    g = _random_params(n=3, seed=7)
    tx = agents.nsgda(0.1, scope=scope)
    u1, _ = tx.update(g, tx.init(g), None)
    u2, _ = tx.update({k: c * v for k, v in g.items()}, tx.init(g), None)
    for k in g:
        torch.testing.assert_close(u1[k], u2[k], atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("make, match", [
    (lambda: agents.sgda(-0.1), "lr"), (lambda: agents.sgda(float("nan")), "lr"),
    (lambda: agents.sgda(0.1, momentum=1.0), "momentum"), (lambda: agents.sgda(0.1, momentum=-0.5), "momentum"),
    (lambda: agents.nsgda(0.1, scope="tensor"), "scope"), (lambda: agents.nsgda("0.1"), "lr"),
])
def test_invalid_hyperparameters_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_chain_rejects_a_state_it_did_not_make():
    tx = agents.nsgda(0.1)
    with pytest.raises(ValueError, match="tuple of 2 states"):
        tx.update({"a": torch.ones(1, 2)}, (), None)


def test_chain_rejects_non_transforms():
    with pytest.raises(TypeError, match="argument 1"):
        agents.chain(agents.scale(1.0), lambda g: g)


def test_run_episode_accepts_one_agent_or_a_pair_and_rejects_others():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=2, init_std=0.3)
    a = minmax_envs.run_episode(env, agents.sgda(0.1), steps=5, seed=0).metrics["distance"]
    b = minmax_envs.run_episode(env, {"generator": agents.sgda(0.1), "discriminator": agents.sgda(0.1)},
                                steps=5, seed=0).metrics["distance"]
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match="generator"):
        minmax_envs.run_episode(env, {"generator": agents.sgda(0.1)}, steps=5)
    with pytest.raises(ValueError, match="steps"):
        minmax_envs.run_episode(env, agents.sgda(0.1), steps=-1)


def test_extragradient_is_unaffected_by_in_place_parameter_updates():
    # image games add updates to their parameters in place: the saved point must be a copy
    tx = agents.extragradient(agents.sgda(0.1))
    x = {"x": torch.tensor([[1.0, 2.0]], dtype=torch.float64)}
    s = tx.init(x)
    for _ in range(2):
        u, s = tx.update({"x": 2 * x["x"]}, s, x)
        x["x"].add_(u["x"])
    # x1/2 = x - 0.1 * 2x = 0.8 x; x1 = x - 0.1 * 2 * 0.8 x = 0.84 x
    torch.testing.assert_close(x["x"], torch.tensor([[0.84, 1.68]], dtype=torch.float64))


@pytest.mark.parametrize("magnitude", [1e-6, 1e-10])
def test_adalr_keeps_adams_step_norm_for_small_gradients(magnitude):
    # "Adam is no better than normalized SGD", eq. (2), adds eps to ||M||, not to lr * ||M||: small gradients
    # keep Adam's magnitude
    g = {"V": torch.full((1, 3, 4), magnitude, dtype=torch.float64)}
    a, _ = agents.adam(1e-3).update(g, agents.adam(1e-3).init(g), g)
    tx = agents.adalr(1e-3)
    u, _ = tx.update(g, tx.init(g), g)
    n = agents.per_seed_norms(g, "layer")["V"]
    want = agents.per_seed_norms(a, "layer")["V"] * n / (n + 1e-8)
    torch.testing.assert_close(agents.per_seed_norms(u, "layer")["V"], want, rtol=1e-9, atol=0)


def test_optimism_rejects_non_transforms():
    with pytest.raises(TypeError, match="optimism base"):
        agents.optimism(lambda g: g)

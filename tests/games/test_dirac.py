"""Dirac GAN: vector fields against Mescheder et al.'s closed forms, stability with and without NK."""

import math

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS


def fprime(t):
    return 1.0 / (1.0 + math.exp(t))  # f'(t) = sigmoid(-t)


def _field(env, theta, psi):
    """The vector field (v_theta, v_psi): minus each player's observed gradient (descent directions)."""
    env.reset(seed=0)
    params = {"generator": {"theta": torch.tensor([theta], dtype=torch.float64)},
              "discriminator": {"psi": torch.tensor([psi], dtype=torch.float64)}}
    _, g = env._field(params, env._instance, {})
    return -g["generator"]["theta"].item(), -g["discriminator"]["psi"].item()


@pytest.mark.parametrize("theta, psi", [(0.7, -1.3), (-2.0, 0.4), (1.0, 1.0)])
@pytest.mark.parametrize("loss, kw, expected", [
    ("gan", {}, lambda t, p: (-p * fprime(p * t), t * fprime(p * t))),
    ("nsgan", {}, lambda t, p: (-p * fprime(-p * t), t * fprime(p * t))),
    ("wgan", {}, lambda t, p: (-p, t)),
    ("wgan-gp", {"penalty_weight": 0.7, "gp_target": 0.3},
     lambda t, p: (-p, t - 0.7 * (abs(p) - 0.3) * math.copysign(1, p))),
    ("gan", {"penalty": "r1", "penalty_weight": 2.0}, lambda t, p: (-p * fprime(p * t), t * fprime(p * t) - 2.0 * p)),
])
@pytest.mark.parametrize("use_closed_form", [True, False])
def test_vector_fields_match_the_closed_forms(theta, psi, loss, kw, expected, use_closed_form):
    env = minmax_envs.make("DiracGAN-v0", dtype=torch.float64, loss=loss, **kw)
    if not use_closed_form:  # the autograd path the regularizers use
        env._field = lambda p, i, b, players=PLAYERS: minmax_envs.games._base.autograd_grads(env.game, p, i, b, players)
    got = _field(env, theta, psi)
    want = expected(theta, psi)
    assert got == pytest.approx(want, abs=1e-12)


def _jacobian_at_equilibrium(env, h=1e-5):
    """Central finite differences of the observed vector field at (0, 0)."""
    cols = []
    for j in range(2):
        e = torch.zeros(2)
        e[j] = h
        cols.append((torch.tensor(_field(env, *e.tolist())) - torch.tensor(_field(env, *(-e).tolist()))) / (2 * h))
    return torch.stack(cols, dim=1).to(torch.float64)


def test_nk_makes_the_wgan_equilibrium_locally_stable():
    plain = _jacobian_at_equilibrium(minmax_envs.make("DiracGAN-v0", dtype=torch.float64, loss="wgan"))
    torch.testing.assert_close(plain, torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64),
                               atol=1e-8, rtol=0)
    assert torch.linalg.eigvals(plain).real.abs().max() < 1e-8  # purely imaginary: no local stability
    for eta in (0.1, 0.5, 2.0):
        env = minmax_envs.make("DiracGAN-v0", dtype=torch.float64, loss="wgan", regularizer="nk", reg_weight=eta)
        jac = _jacobian_at_equilibrium(env)
        torch.testing.assert_close(jac, torch.tensor([[-2 * eta, -1.0], [1.0, 0.0]], dtype=torch.float64),
                                   atol=1e-8, rtol=0)
        assert torch.linalg.eigvals(jac).real.max() < 0


def test_nk_linearization_on_the_gan_loss_matches_the_derivation():
    for eta in (0.3, 1.0):
        env = minmax_envs.make("DiracGAN-v0", dtype=torch.float64, loss="gan", regularizer="nk", reg_weight=eta)
        jac = _jacobian_at_equilibrium(env)
        torch.testing.assert_close(jac, torch.tensor([[-eta / 2, -0.5], [0.5, 0.0]], dtype=torch.float64),
                                   atol=1e-8, rtol=0)
        ev = torch.linalg.eigvals(jac)
        want = torch.tensor([complex(-eta / 4, 0) + s * torch.tensor(complex(eta**2 / 16 - 0.25)).sqrt().item()
                             for s in (1, -1)])
        assert sorted(ev.tolist(), key=lambda z: z.imag) == pytest.approx(sorted(want.tolist(), key=lambda z: z.imag),
                                                                          abs=1e-7)
        assert ev.real.max() < 0


def test_wgan_sgda_does_not_approach_equilibrium_but_nk_sgda_does():
    kw = {"loss": "wgan", "init_std": 0.2, "dtype": torch.float64}
    d0 = math.sqrt(2)
    plain = minmax_envs.run_episode(minmax_envs.make("DiracGAN-v0", num_seeds=8, **kw), agents.sgda(0.1),
                                    steps=500, seed=0)
    nk = minmax_envs.run_episode(minmax_envs.make("DiracGAN-v0", num_seeds=8, regularizer="nk", reg_weight=0.5, **kw),
                                 agents.sgda(0.1), steps=500, seed=0)
    assert (plain.metrics["distance"] > d0).all()
    assert (nk.metrics["distance"] < 1e-3).all()


def test_consensus_field_on_wgan_by_hand():
    gamma = 0.3
    env = minmax_envs.make("DiracGAN-v0", dtype=torch.float64, loss="wgan", regularizer="consensus",
                           reg_weight=gamma)
    # v = (psi, -theta) as gradients; R = (psi^2 + theta^2)/2; grads + gamma * grad R
    theta, psi = 0.8, -0.6
    v = _field(env, theta, psi)
    assert v == pytest.approx((-(psi + gamma * theta), -(-theta + gamma * psi)), abs=1e-12)


def test_clipping_keeps_psi_in_range():
    env = minmax_envs.make("DiracGAN-v0", loss="wgan", clip=0.5)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step({pl: {k: torch.full_like(v, 0.4) for k, v in obs[pl].params.items()} for pl in PLAYERS})
    assert obs["discriminator"].params["psi"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("kw, match", [
    ({"loss": "hinge"}, "loss"), ({"penalty": "r3"}, "penalty"), ({"loss": "wgan", "penalty": "r1"}, "penalty"),
    ({"clip": 0.0}, "clip"), ({"penalty_weight": -1.0}, "penalty_weight"), ({"init_std": float("inf")}, "init_std"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        minmax_envs.make("DiracGAN-v0", **kw)


def _alternating_by_hand(loss, theta, psi, lr_g, lr_d, n_critic, iterations, clip=None):
    """Mescheder et al.'s alternating gradient descent written out: per iteration ``n_critic`` discriminator
    steps along $v_\\psi$, then one generator step along $v_\\theta$ at the discriminator's new parameter."""
    v = {"gan": lambda t, p: (-p * fprime(p * t), t * fprime(p * t)),
         "nsgan": lambda t, p: (-p * fprime(-p * t), t * fprime(p * t)),
         "wgan": lambda t, p: (-p, t)}[loss]
    for _ in range(iterations):
        for _ in range(n_critic):
            psi = psi + lr_d * v(theta, psi)[1]
            if clip is not None:
                psi = min(max(psi, -clip), clip)
        theta = theta + lr_g * v(theta, psi)[0]
    return theta, psi


@pytest.mark.parametrize("loss, n_critic, clip", [("gan", 1, None), ("nsgan", 3, None), ("wgan", 2, 0.8)])
def test_alternating_updates_match_a_hand_written_alternating_loop(loss, n_critic, clip):
    lr_g, lr_d, iterations = 0.3, 0.2, 40
    env = minmax_envs.make("DiracGAN-v0", num_seeds=3, dtype=torch.float64, loss=loss, clip=clip, init_std=0.5,
                           update="alternating", n_critic=n_critic)
    assert env.game.cycle == n_critic + 1
    result = minmax_envs.run_episode(env, agents.pair(agents.sgda(lr_g), agents.sgda(lr_d)), steps=iterations,
                                     seed=0)
    assert result.metrics["theta"].shape == (3,) and env.t.tolist() == [iterations * (n_critic + 1)] * 3
    start, _ = minmax_envs.make("DiracGAN-v0", num_seeds=3, dtype=torch.float64, init_std=0.5).reset(seed=0)
    simultaneous = minmax_envs.run_episode(
        minmax_envs.make("DiracGAN-v0", num_seeds=3, dtype=torch.float64, loss=loss, clip=clip, init_std=0.5),
        agents.pair(agents.sgda(lr_g), agents.sgda(lr_d)), steps=iterations, seed=0)
    for i in range(3):
        theta0, psi0 = start["generator"].params["theta"][i].item(), start["discriminator"].params["psi"][i].item()
        want = _alternating_by_hand(loss, theta0, psi0, lr_g, lr_d, n_critic, iterations, clip)
        got = (result.metrics["theta"][i].item(), result.metrics["psi"][i].item())
        assert got == pytest.approx(want, abs=1e-12)
        # the schedule matters: simultaneous play from the same start ends elsewhere
        other = (simultaneous.metrics["theta"][i].item(), simultaneous.metrics["psi"][i].item())
        assert abs(other[0] - got[0]) + abs(other[1] - got[1]) > 1e-3


def test_the_schedule_is_an_env_argument_recorded_in_make_kwargs():
    env = minmax_envs.make("DiracGAN-v0", update="alternating", n_critic=2)
    assert env.make_kwargs["update"] == "alternating" and env.make_kwargs["n_critic"] == 2
    assert minmax_envs.make(**env.make_kwargs).game.schedule == env.game.schedule
    assert [env.game.movers(s) for s in range(3)] == [("discriminator",), ("discriminator",), ("generator",)]
    plain = minmax_envs.make("DiracGAN-v0")
    assert (plain.make_kwargs["update"], plain.make_kwargs["n_critic"], plain.game.cycle) == ("simultaneous", 1, 1)
    with pytest.raises(ValueError, match="n_critic must be 1"):
        minmax_envs.make("DiracGAN-v0", n_critic=2)
    with pytest.raises(ValueError, match="unknown update 'unrolled'; choose one of simultaneous, alternating"):
        minmax_envs.make("DiracGAN-v0", update="unrolled")


def test_the_distance_does_not_underflow_in_float32_and_is_unchanged_where_the_squares_are_normal():
    from minmax_envs.games.dirac import distance

    theta = torch.tensor([8.6e-28, 3e-23, 1e-19, 0.0, 1.0, 2e-10])
    psi = torch.tensor([0.0, 4e-23, 0.0, 0.0, 1.0, 1e-10])
    d = distance(theta, psi)
    assert d[:3].tolist() == pytest.approx([8.6e-28, 5e-23, 1e-19], rel=1e-6)  # sqrt of the squares gives 0 here
    assert d[3] == 0.0
    x = torch.randn(10_000) * torch.logspace(-18, 3, 10_000)
    y = torch.randn(10_000)
    assert torch.equal(distance(x, y), torch.sqrt(x**2 + y**2))  # stored records keep their values
    env = minmax_envs.make("DiracGAN-v0", theta0=8.6e-28, psi0=0.0)
    env.reset(seed=0)
    assert env.game.metrics(env.params, None, None, None)["distance"].item() == pytest.approx(8.6e-28, rel=1e-6)

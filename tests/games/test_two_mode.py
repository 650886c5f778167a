"""TwoMode-v0 ("Adam is no better than normalized SGD", Section 4): data facts, the truncated cubic, gradients,
metrics, parity, behaviour."""

import math

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import autograd_grads
from minmax_envs.games.two_mode import TwoMode, truncated_cubic, truncated_cubic_grad

SMALL = {"d": 40, "m_d": 3, "m_g": 3}
CASES = ["correlated_modes", "correlated_coefficients"]
F64 = torch.float64


def _game(num_seeds=1, dtype=F64, **kw):
    return minmax_envs.make_game("TwoMode-v0", num_seeds=num_seeds, dtype=dtype, **kw)


def _instance_and_batches(game, seed=0, draws=1):
    rng = SeedStreams(seed + torch.arange(game.num_seeds, dtype=torch.int64))
    params, inst = game.init(rng)
    return params, inst, [game.sample(rng, inst) for _ in range(draws)]


# --- data ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_modes_are_unit_vectors_with_the_right_correlation(case):
    game = _game(6, case=case, d=50, gamma=0.2)
    _, inst, _ = _instance_and_batches(game)
    u1, u2 = inst["modes"][:, 0], inst["modes"][:, 1]
    torch.testing.assert_close(u1.norm(dim=1), torch.ones(6, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(u2.norm(dim=1), torch.ones(6, dtype=F64), atol=1e-12, rtol=0)
    want = 0.2 if case == "correlated_modes" else 0.0
    torch.testing.assert_close((u1 * u2).sum(1), torch.full((6,), want, dtype=F64), atol=1e-12, rtol=0)
    assert (u1[0] - u1[1]).abs().max() > 0.1, "every seed draws its own modes"


def test_default_hyperparameters_follow_the_paper():
    game = TwoMode()
    assert (game.d, game.m_d, game.m_g, game.batch_size, game.case) == (1000, 5, 5, 1, "correlated_modes")
    assert game.gamma == pytest.approx(1 / math.log(1000))
    assert game.trunc == pytest.approx(1000**0.2)
    assert game.w_init_std == pytest.approx(1000**-0.5) and game.v_init_std == pytest.approx(1e-3)
    assert game.a_init_std == pytest.approx(1 / math.sqrt(5 * math.log(1000)))
    assert game.z_pair_prob == pytest.approx(1 / math.log(1000) ** 2)


def test_initial_scales():
    params, _, _ = _instance_and_batches(_game(4, d=1000))
    assert params["generator"]["V"].shape == (4, 5, 1000) and params["discriminator"]["W"].shape == (4, 5, 1000)
    assert params["discriminator"]["W"].std().item() == pytest.approx(1000**-0.5, rel=0.03)
    assert params["generator"]["V"].std().item() == pytest.approx(1e-3, rel=0.03)
    assert (params["discriminator"]["b"] == 0).all()
    a = _instance_and_batches(_game(4000, d=4, a_init_std=0.5))[0]["discriminator"]["a"]
    assert a.shape == (4000,) and a.std().item() == pytest.approx(0.5, rel=0.05)


def test_correlated_modes_data_is_one_mode_with_probability_one_half():
    game = _game(2000, d=6, batch_size=4, case="correlated_modes")
    _, inst, batches = _instance_and_batches(game, draws=2)
    x = torch.cat([b["X"] for b in batches], dim=1)  # (N, 8, d)
    is1 = (x - inst["modes"][:, None, 0]).abs().amax(-1) < 1e-12
    is2 = (x - inst["modes"][:, None, 1]).abs().amax(-1) < 1e-12
    assert (is1 ^ is2).all(), "X is exactly u1 or exactly u2"
    assert is1.double().mean().item() == pytest.approx(0.5, abs=0.015)


@pytest.mark.parametrize("gamma", [0.3, None])
def test_correlated_coefficients_frequencies(gamma):
    game = _game(2000, d=6, batch_size=4, case="correlated_coefficients", gamma=gamma)
    _, inst, batches = _instance_and_batches(game, draws=2)
    x = torch.cat([b["X"] for b in batches], dim=1)
    s = torch.einsum("nbd,nld->nbl", x, inst["modes"])  # orthonormal modes: coefficients are projections
    assert ((s - s.round()).abs() < 1e-12).all() and set(s.round().unique().tolist()) == {0.0, 1.0}
    s = s.round().bool()
    both, only1, only2 = (s[..., 0] & s[..., 1]), (s[..., 0] & ~s[..., 1]), (~s[..., 0] & s[..., 1])
    assert (both | only1 | only2).all(), "||s||_0 >= 1"
    g = game.gamma
    assert both.double().mean().item() == pytest.approx(g, abs=0.015)
    assert only1.double().mean().item() == pytest.approx((1 - g) / 2, abs=0.015)
    assert only2.double().mean().item() == pytest.approx((1 - g) / 2, abs=0.015)


def test_latents_are_sparse_with_the_given_pair_probability():
    m, p = 4, 0.2
    game = _game(2000, d=4, m_g=m, batch_size=4, z_pair_prob=p)
    _, _, batches = _instance_and_batches(game, draws=2)
    z = torch.cat([b["z"] for b in batches], dim=1).reshape(-1, m)  # 16000 latents
    assert set(z.unique().tolist()) <= {0.0, 1.0}
    k = z.sum(1)
    assert ((k == 1) | (k == 2)).all()
    assert (k == 2).double().mean().item() == pytest.approx(p, abs=0.015)
    torch.testing.assert_close(z.mean(0), torch.full((m,), (1 + p) / m, dtype=F64), atol=0.015, rtol=0)
    pair01 = (z[:, 0] * z[:, 1]).mean().item()
    assert pair01 == pytest.approx(2 * p / (m * (m - 1)), abs=0.01)
    one = _game(50, d=4, m_g=1, z_pair_prob=1.0)
    assert torch.equal(_instance_and_batches(one)[2][0]["z"], torch.ones(50, 1, 1, dtype=F64))


# --- the truncated cubic ---------------------------------------------------------------------------
def test_truncated_cubic_values_continuity_and_derivative():
    L = 2.0
    x = torch.tensor([-3.0, -2.0, -0.5, 0.0, 0.5, 2.0, 3.0], dtype=F64)
    want = torch.tensor([3 * 4 * -3 + 2 * 8, -8.0, -0.125, 0.0, 0.125, 8.0, 3 * 4 * 3 - 2 * 8], dtype=F64)
    torch.testing.assert_close(truncated_cubic(x, L), want, atol=1e-12, rtol=0)
    eps = 1e-9
    for edge in (L, -L):
        lo, hi = truncated_cubic(torch.tensor([edge - eps, edge + eps], dtype=F64), L)
        assert abs(hi - lo) < 1e-7, "continuous at +-Lambda"
    xs = torch.linspace(-5, 5, 101, dtype=F64).requires_grad_(True)
    (auto,) = torch.autograd.grad(truncated_cubic(xs, L).sum(), xs)
    torch.testing.assert_close(truncated_cubic_grad(xs.detach(), L), auto, atol=1e-12, rtol=0)
    torch.testing.assert_close(truncated_cubic_grad(torch.tensor([L - eps, L + eps], dtype=F64), L),
                               torch.full((2,), 3 * L * L, dtype=F64), atol=1e-7, rtol=0)


# --- gradients -------------------------------------------------------------------------------------
def _random_params(game, scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n, d = game.num_seeds, game.d

    def r(*shape):
        return scale * torch.randn(*shape, generator=gen, dtype=game.dtype)

    return {"generator": {"V": r(n, game.m_g, d)},
            "discriminator": {"W": r(n, game.m_d, d), "a": r(n), "b": r(n)}}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("scale", [0.3, 3.0])  # small: cubic region; large: truncated and saturated
def test_closed_form_gradients_match_autograd(case, batch_size, scale):
    game = _game(3, d=7, m_d=3, m_g=4, batch_size=batch_size, trunc=1.5, case=case, z_pair_prob=0.5,
                 bias_scale=0.7)
    _, inst, (batch,) = _instance_and_batches(game, seed=3)
    params = _random_params(game, scale)
    pre = torch.bmm(torch.cat([batch["X"], torch.bmm(batch["z"], params["generator"]["V"])], 1),
                    params["discriminator"]["W"].transpose(1, 2))
    if scale > 1:
        assert (pre.abs() > game.trunc).any() and (pre.abs() < game.trunc).any()
    losses, grads = game.grads(params, inst, batch)
    a_losses, a_grads = autograd_grads(game, params, inst, batch)
    for pl in PLAYERS:
        torch.testing.assert_close(losses[pl], a_losses[pl], atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(losses[pl], game.losses(params, inst, batch)[pl], atol=1e-12, rtol=1e-10)
        for k in params[pl]:
            torch.testing.assert_close(grads[pl][k], a_grads[pl][k], atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(losses["discriminator"], -losses["generator"], atol=0, rtol=0)


def test_payoff_gradcheck_in_float64():
    game = _game(2, d=5, m_d=2, m_g=3, batch_size=2, trunc=1.0, z_pair_prob=0.5)
    _, inst, (batch,) = _instance_and_batches(game, seed=1)
    p = _random_params(game, 0.8, seed=2)
    leaves = [p["generator"]["V"], p["discriminator"]["W"], p["discriminator"]["a"], p["discriminator"]["b"]]
    leaves = [t.clone().requires_grad_(True) for t in leaves]

    def payoff(v, w, a, b):
        return game.losses({"generator": {"V": v}, "discriminator": {"W": w, "a": a, "b": b}}, inst, batch)["generator"]

    assert torch.autograd.gradcheck(payoff, leaves, eps=1e-6, atol=1e-6)


def test_payoff_by_hand_for_one_sample():
    game = _game(1, d=3, m_d=2, m_g=2, trunc=1.0, bias_scale=2.0)
    e = torch.eye(3, dtype=F64)
    inst = {"modes": torch.stack([e[0], e[1]])[None]}
    batch = {"X": e[0].reshape(1, 1, 3), "z": torch.tensor([[[0.0, 1.0]]], dtype=F64)}
    w = torch.tensor([[[0.5, 0.0, 0.0], [2.0, 0.0, 1.0]]], dtype=F64)
    v = torch.tensor([[[9.0, 9.0, 9.0], [0.0, 0.0, -0.4]]], dtype=F64)  # G(z) = v_2
    a, b = torch.tensor([0.7], dtype=F64), torch.tensor([-0.3], dtype=F64)
    params = {"generator": {"V": v}, "discriminator": {"W": w, "a": a, "b": b}}
    # real: <w1,X>=0.5 -> 0.125, <w2,X>=2 -> 3*2-2=4; fake: <w1,G>=0, <w2,G>=-0.4 -> -0.064
    h_real, h_fake = 0.7 * (0.125 + 4.0) + 2.0 * -0.3, 0.7 * -0.064 + 2.0 * -0.3

    def logsig(t):
        return -math.log1p(math.exp(-t))

    f = logsig(h_real) + logsig(-h_fake)
    losses = game.losses(params, inst, batch)
    assert losses["generator"].item() == pytest.approx(f, abs=1e-12)
    assert losses["discriminator"].item() == pytest.approx(-f, abs=1e-12)


# --- metrics ---------------------------------------------------------------------------------------
def _env_with(params_fn, case="correlated_modes", **kw):
    env = minmax_envs.make("TwoMode-v0", num_seeds=2, dtype=F64, case=case, **{**SMALL, **kw})
    env.reset(seed=0)
    u = env._instance["modes"]
    env._params = params_fn(env.params, u[:, 0], u[:, 1])
    return env


@pytest.mark.parametrize("case", CASES)
def test_metrics_of_hand_set_generators(case):
    def learnt_both(p, u1, u2):
        v = p["generator"]["V"].clone()
        v[:, 0], v[:, 2] = 3.0 * u1, 0.5 * u2  # scale does not matter
        return {**p, "generator": {"V": v}}

    m = _env_with(learnt_both, case).metrics()
    assert m["cos_u1"].shape == (2, 3) and m["d_cos_u1"].shape == (2, 3)
    torch.testing.assert_close(m["cos_u1"][:, 0], torch.ones(2, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(m["cos_u2"][:, 2], torch.ones(2, dtype=F64), atol=1e-12, rtol=0)
    gamma = 1 / math.log(40) if case == "correlated_modes" else 0.0
    torch.testing.assert_close(m["cos_u2"][:, 0], torch.full((2,), gamma, dtype=F64), atol=1e-12, rtol=0)
    assert m["modes_recovered"].tolist() == [2.0, 2.0]
    torch.testing.assert_close(m["mode_alignment"], torch.ones(2, dtype=F64), atol=1e-12, rtol=0)

    def averaged(p, u1, u2):
        avg = (u1 + u2) / (u1 + u2).norm(dim=1, keepdim=True)
        return {**p, "generator": {"V": avg[:, None].repeat(1, 3, 1)}}

    m = _env_with(averaged, case).metrics()
    want = math.sqrt((1 + gamma) / 2)  # cos((u1+u2)/|u1+u2|, u_l)
    torch.testing.assert_close(m["cos_u1"], torch.full((2, 3), want, dtype=F64), atol=1e-12, rtol=0)
    assert m["modes_recovered"].tolist() == [0.0, 0.0]
    torch.testing.assert_close(m["mode_alignment"], torch.full((2,), want, dtype=F64), atol=1e-12, rtol=0)

    def one_mode_and_negative(p, u1, u2):
        v = torch.stack([u1, -u2, 0.8 * u1 + 0.2 * u2], dim=1)
        return {**p, "generator": {"V": v}}

    m = _env_with(one_mode_and_negative, case).metrics()
    assert m["modes_recovered"].tolist() == [1.0, 1.0], "a neuron on -u2 does not recover u2"

    def all_negative(p, u1, u2):
        return {**p, "generator": {"V": -u1[:, None].repeat(1, 3, 1)}}

    m = _env_with(all_negative, case).metrics()
    assert m["modes_recovered"].tolist() == [0.0, 0.0], "G(z) = -u1 is not the mode u1"
    torch.testing.assert_close(m["mode_alignment"], torch.full((2,), -(1 + gamma) / 2, dtype=F64), atol=1e-12, rtol=0)


def test_discriminator_cosines():
    def w_on_modes(p, u1, u2):
        w = p["discriminator"]["W"].clone()
        w[:, 1] = -2.0 * u1
        return {**p, "discriminator": {**p["discriminator"], "W": w}}

    m = _env_with(w_on_modes, "correlated_coefficients").metrics()
    torch.testing.assert_close(m["d_cos_u1"][:, 1], -torch.ones(2, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(m["d_cos_u2"][:, 1], torch.zeros(2, dtype=F64), atol=1e-12, rtol=0)


def test_update_speed_ratio():
    env = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=F64, **SMALL)
    obs, _ = env.reset(seed=0)
    assert torch.isnan(env.metrics()["update_speed_ratio"]).all(), "no update yet"
    w, v = obs["discriminator"].params["W"], obs["generator"].params["V"]
    upd = {"generator": {"V": 0.05 * v},
           "discriminator": {"W": 0.2 * w, "a": torch.ones(3, dtype=F64), "b": torch.ones(3, dtype=F64)}}
    env.step(upd)
    torch.testing.assert_close(env.metrics()["update_speed_ratio"], torch.full((3,), 4.0, dtype=F64),
                               atol=1e-10, rtol=0)


# --- arguments -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    ({"case": "collapsed"}, "case"), ({"d": 1}, "d must"), ({"d": 40.0}, "d must"), ({"m_d": 0}, "m_d"),
    ({"m_g": True}, "m_g"), ({"batch_size": 0}, "batch_size"), ({"gamma": 1.0}, "gamma"),
    ({"gamma": -0.1}, "gamma"), ({"d": 2}, "gamma"), ({"trunc": 0.0}, "trunc"), ({"bias_scale": 0}, "bias_scale"),
    ({"w_init_std": -1.0}, "w_init_std"), ({"v_init_std": float("nan")}, "v_init_std"),
    ({"a_init_std": float("inf")}, "a_init_std"), ({"z_pair_prob": 1.5}, "z_pair_prob"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        minmax_envs.make("TwoMode-v0", **{**SMALL, **kw})


# --- dtypes, devices, batching ---------------------------------------------------------------------
def test_float64_and_float32_agree():
    runs = {}
    for dt in (torch.float32, F64):
        env = minmax_envs.make("TwoMode-v0", num_seeds=2, dtype=dt, **SMALL)
        res = minmax_envs.run_episode(env, agents.nsgda(0.02), steps=10, seed=5)
        assert all(v.dtype == dt for pl in PLAYERS for v in env.params[pl].values())
        assert all(v.dtype == dt for v in res.metrics.values())
        runs[dt] = env.params
    for pl in PLAYERS:
        for k, v in runs[F64][pl].items():
            torch.testing.assert_close(runs[torch.float32][pl][k].double(), v, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    out = {}
    for dev in ("cpu", "cuda"):
        env = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=F64, device=dev, **SMALL)
        res = minmax_envs.run_episode(env, agents.nsgda(0.02), steps=10, seed=1)
        out[dev] = (env.params, res.metrics)
    for pl in PLAYERS:
        for k, v in out["cpu"][0][pl].items():
            torch.testing.assert_close(out["cuda"][0][pl][k].cpu(), v, atol=1e-9, rtol=0)
    for k, v in out["cpu"][1].items():
        torch.testing.assert_close(out["cuda"][1][k].cpu(), v, atol=1e-9, rtol=0, equal_nan=True)


@pytest.mark.parametrize("case, extra", [("correlated_modes", {}),
                                         ("correlated_coefficients", {"batch_size": 2, "z_pair_prob": 0.5})])
def test_batched_slice_equals_single_seed_run(case, extra):
    n, s, steps = 4, 11, 12

    def run(num_seeds, seed):
        env = minmax_envs.make("TwoMode-v0", num_seeds=num_seeds, dtype=F64, case=case, **SMALL, **extra)
        res = minmax_envs.run_episode(env, agents.nsgda(0.05), steps=steps, seed=seed, eval_every=6)
        return env, res

    batched, rb = run(n, s)
    for i in range(n):
        single, rs = run(1, s + i)
        for pl in PLAYERS:
            for k, v in single.params[pl].items():
                torch.testing.assert_close(batched.params[pl][k][i], v[0], atol=1e-6, rtol=0)
        for (tb, mb), (ts, ms) in zip(rb.trajectory, rs.trajectory):
            assert tb == ts
            for k in ms:
                torch.testing.assert_close(mb[k][i], ms[k][0], atol=1e-6, rtol=0, equal_nan=True)


# --- behaviour -------------------------------------------------------------------------------------
def test_nsgda_learns_modes_and_sgda_stays_finite_at_small_d():
    """A short sanity check, not the paper's claim (that is a rate over many seeds at d = 1000)."""
    def run(tx):
        env = minmax_envs.make("TwoMode-v0", num_seeds=16, dtype=F64, **SMALL)
        return minmax_envs.run_episode(env, tx, steps=150, seed=0, eval_every=150)

    def d_align(m):
        return torch.maximum(m["d_cos_u1"].abs(), m["d_cos_u2"].abs()).amax(1)

    ns = run({"discriminator": agents.nsgda(0.05), "generator": agents.nsgda(0.02)})
    (_, m0), (_, m1) = ns.trajectory
    assert not ns.diverged.any()
    assert (m1["mode_alignment"] - m0["mode_alignment"]).mean() > 0.25, "the generator moves towards the modes"
    assert (d_align(m1) - d_align(m0)).mean() > 0.25, "the discriminator aligns with the modes"
    assert torch.isfinite(m1["update_speed_ratio"]).all()

    sg = run({"discriminator": agents.sgda(0.05), "generator": agents.sgda(0.01)})
    (_, m0), (_, m1) = sg.trajectory
    assert not sg.diverged.any()
    assert (d_align(m1) - d_align(m0)).mean() > 0.03, "SGDA's discriminator ascends towards the data"
    assert all(torch.isfinite(v).all() for v in m1.values())

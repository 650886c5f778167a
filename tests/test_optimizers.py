"""The agent zoo: parity with torch.optim (random fields and a real game), grafting invariants,
extragradient / optimistic methods on the bilinear game, scale invariances, pair agents, diagnostics
recorded by run_episode, and validation at construction."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import agents
import minmax_envs
from agents.schedules import linear_decay
from minmax_envs import PLAYERS

F64 = torch.float64


# --- helpers ----------------------------------------------------------------------------------------
def _params(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random parameter dict with several shapes, including a per-seed scalar ``(N,)``."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"w": (n, 3, 5), "b": (n, 5), "s": (n,)}
    return {k: torch.randn(s, generator=g, dtype=F64) for k, s in shapes.items()}


_SCALES = {"w": 1.0, "b": 20.0, "s": 0.05}  # very different gradient scales per tensor: adaptivity matters


def _field(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A nonlinear, parameter-dependent gradient field (not a gradient of anything in particular)."""
    return {k: _SCALES[k] * ((p - 1.0) + 0.3 * torch.sin(3.0 * p) + 0.1 * p.roll(1, dims=-1))
            for k, p in params.items()}


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Per-seed Euclidean norm of one tensor, computed plainly."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)


def _global_norm(d: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum(_norms(v) ** 2 for v in d.values()))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return (a * b).sum(dim=1) / (_norms(a) * _norms(b))


def _grad_sequence(steps: int, n: int = 4, seed: int = 10) -> list[dict[str, torch.Tensor]]:
    return [{k: v * _SCALES[k] for k, v in _params(n, seed + i).items()} for i in range(steps)]


def _side_by_side(txs: dict, params: dict, steps: int = 6):
    """Step every agent of ``txs`` on the same gradient sequence; yield ``{name: update}`` at each step."""
    states = {k: t.init(params) for k, t in txs.items()}
    for g in _grad_sequence(steps):
        u = {}
        for k, t in txs.items():
            u[k], states[k] = t.update(g, states[k], params)
        yield u


def _grafted_norm(magnitude: torch.Tensor, direction: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The norm of a grafted step, ``|u_M| |u_D| / (|u_D| + eps)``: ``|u_M|`` up to a relative ``eps / |u_D|``.
    AdaLR / AdaDir take the direction at unit step ("Adam is no better than normalized SGD", eqs. (2), (3), add eps to
    ``||M||`` and ``||A||``):
    pass that norm, ``|step| / lr``."""
    return magnitude * direction / (direction + eps)


def _bilinear(num_seeds: int = 8, n: int = 5):
    return minmax_envs.make("Bilinear-v0", num_seeds=num_seeds, n=n, dtype=F64)


# --- 1. parity with torch.optim -----------------------------------------------------------------------
def _no_schedule(t: int) -> float:
    return 1.0


def _decay20(t: int) -> float:  # the factor of linear_decay(init, 20) at update t (t = 0 first)
    return max(0.0, 1.0 - t / 20)


PARITY = {
    "sgda-nesterov": (lambda: agents.sgda(0.05, momentum=0.9, nesterov=True),
                      lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), _no_schedule),
    "adam-0.5-0.9": (lambda: agents.adam(1e-2, betas=(0.5, 0.9), eps=1e-8),
                     lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.5, 0.9), eps=1e-8), _no_schedule),
    "adam-0.9-0.999": (lambda: agents.adam(1e-2, betas=(0.9, 0.999), eps=1e-8),
                       lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8), _no_schedule),
    # a large eps makes its placement (outside the square root, after bias correction) visible
    "adam-large-eps": (lambda: agents.adam(1e-2, betas=(0.9, 0.999), eps=0.05),
                       lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=0.05), _no_schedule),
    "rmsprop": (lambda: agents.rmsprop(1e-2, alpha=0.9, eps=1e-8),
                lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.9, eps=1e-8), _no_schedule),
    "rmsprop-large-eps": (lambda: agents.rmsprop(1e-2, alpha=0.99, eps=0.05),
                          lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.99, eps=0.05), _no_schedule),
    "adagrad": (lambda: agents.adagrad(0.1, eps=1e-10),
                lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-10), _no_schedule),
    "adagrad-large-eps": (lambda: agents.adagrad(0.1, eps=0.05),
                          lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=0.05), _no_schedule),
    "adam-linear-decay": (lambda: agents.adam(linear_decay(1e-2, 20), betas=(0.5, 0.9)),
                          lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.5, 0.9)), _decay20),
}
STEPS = 25  # past the end of the 20-update decay: the schedule must then stay at 0


@pytest.mark.parametrize("name", list(PARITY))
def test_trajectory_matches_torch_optim_on_a_random_field(name):
    make_ours, make_torch, lr_factor = PARITY[name]
    ours = _params()
    ref = {k: v.clone().requires_grad_(True) for k, v in ours.items()}
    opt = make_torch(list(ref.values()))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    tx = make_ours()
    state = tx.init(ours)
    start = {k: v.clone() for k, v in ours.items()}
    for _ in range(STEPS):
        upd, state = tx.update(_field(ours), state, ours)
        ours = {k: ours[k] + upd[k] for k in ours}
        with torch.no_grad():
            g = _field({k: p.detach() for k, p in ref.items()})
        for k, p in ref.items():
            p.grad = g[k]
        opt.step()
        sched.step()
        for k in ours:
            torch.testing.assert_close(ours[k], ref[k].detach(), atol=1e-9, rtol=1e-9)
    assert all((ours[k] - start[k]).abs().max() > 1e-3 for k in ours)  # the trajectory went somewhere


def _recording_env(**kwargs):
    """TwoMode with the data of every env step recorded, so torch can replay the same batches."""
    env = minmax_envs.make("TwoMode-v0", num_seeds=2, dtype=F64, d=40, m_d=3, m_g=3, **kwargs)
    batches = []
    sample = env.game.sample

    def recording(rng, instance):
        batch = sample(rng, instance)
        batches.append(batch)
        return batch

    env.game.sample = recording
    return env, batches


@pytest.mark.parametrize("name", list(PARITY))
def test_trajectory_matches_torch_optim_on_a_real_game(name):
    make_ours, make_torch, lr_factor = PARITY[name]
    env, batches = _recording_env()
    obs, _ = env.reset(seed=3)
    start = {pl: dict(obs[pl].params) for pl in PLAYERS}
    ref = {pl: {k: v.clone().requires_grad_(True) for k, v in obs[pl].params.items()} for pl in PLAYERS}
    opts = {pl: make_torch(list(ref[pl].values())) for pl in PLAYERS}
    scheds = {pl: torch.optim.lr_scheduler.LambdaLR(opts[pl], lr_factor) for pl in PLAYERS}
    tx = make_ours()
    states = {pl: tx.init(obs[pl].params) for pl in PLAYERS}
    for _ in range(STEPS):
        # torch: the game's gradient at torch's own parameters, on the batch the env drew for this step
        ref_params = {pl: {k: v.detach() for k, v in ref[pl].items()} for pl in PLAYERS}
        _, ref_grads = env.game.grads(ref_params, env._instance, batches[-1])
        for pl in PLAYERS:
            for k, p in ref[pl].items():
                p.grad = ref_grads[pl][k].clone()
            opts[pl].step()
            scheds[pl].step()
        upd = {}
        for pl in PLAYERS:
            upd[pl], states[pl] = tx.update(obs[pl].grads, states[pl], obs[pl].params)
        obs, *_ = env.step(upd)
        for pl in PLAYERS:
            for k in ref[pl]:
                torch.testing.assert_close(obs[pl].params[k], ref[pl][k].detach(), atol=1e-9, rtol=1e-9)
    assert not env.done.any()
    assert len(batches) == STEPS + 1
    for pl in PLAYERS:
        assert max((obs[pl].params[k] - start[pl][k]).abs().max() for k in start[pl]) > 1e-3


def _strided(x: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous tensor."""
    wide = torch.zeros(x.shape + (2,), dtype=x.dtype)
    wide[..., 0] = x
    out = wide[..., 0]
    assert not out.is_contiguous() and torch.equal(out, x)
    return out


@pytest.mark.parametrize("make", [
    lambda: agents.adam(1e-2, betas=(0.5, 0.9)), lambda: agents.adam(linear_decay(1e-2, 5), betas=(0.9, 0.999)),
    lambda: agents.chain(agents.scale_by_adam(0.5, 0.9, eps=1e-3), agents.scale(0.7)),
    lambda: agents.optimistic_adam(1e-2), lambda: agents.adalr(1e-2), lambda: agents.adadir(1e-2, scope="global"),
], ids=["adam", "adam-schedule", "scale_by_adam", "optimistic_adam", "adalr", "adadir"])
@pytest.mark.parametrize("layout", ["strided", "float32", "requires_grad"])
def test_adam_family_is_the_same_for_any_tensor_layout(make, layout):
    # an implementation may take a fast path for some tensors only: the results must not depend on it
    def convert(d):
        if layout == "strided":
            return {k: _strided(v) if k == "s" else v for k, v in d.items()}  # one odd tensor in the dict
        if layout == "float32":
            return {k: v.float() for k, v in d.items()}
        return {k: v.clone().requires_grad_(True) for k, v in d.items()}

    p = _params()
    fast, other = make(), make()
    s_f, s_o = fast.init(p), other.init(convert(p))
    for g in _grad_sequence(6):
        u_f, s_f = fast.update(g, s_f, p)
        with torch.no_grad():
            u_o, s_o = other.update(convert(g), s_o, convert(p))
        for k in p:
            tol = {"rtol": 1e-5, "atol": 1e-7} if layout == "float32" else {"rtol": 1e-12, "atol": 1e-15}
            torch.testing.assert_close(u_o[k].to(F64), u_f[k], **tol)


def test_schedule_gives_lr_t_to_the_t_th_update_counting_from_zero():
    g = {"a": torch.ones(2, 3, dtype=F64)}
    tx = agents.sgda(linear_decay(0.1, 4))
    state = tx.init(g)
    seen = []
    for _ in range(6):
        u, state = tx.update(g, state, g)
        seen.append(-u["a"][0, 0].item())
    assert seen == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0, 0.0], abs=1e-15)
    assert agents.schedules.linear(1.0, 0.5, 2)(1) == pytest.approx(0.75)
    assert agents.schedules.constant(0.3)(1000) == 0.3


# --- 2. grafting -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("betas", [(0.5, 0.9), (0.9, 0.999)])
def test_adalr_has_adam_magnitude_and_momentum_direction_per_tensor(betas):
    lr = 0.1
    p = _params()
    txs = {"adalr": agents.adalr(lr, betas), "adam": agents.adam(lr, betas), "sgdm": agents.sgda(lr, betas[0])}
    for u in _side_by_side(txs, p):
        for name in p:
            torch.testing.assert_close(_norms(u["adalr"][name]),
                                       _grafted_norm(_norms(u["adam"][name]), _norms(u["sgdm"][name]) / lr),
                                       rtol=1e-10, atol=0)
            torch.testing.assert_close(_cosine(u["adalr"][name], u["sgdm"][name]),
                                       torch.ones(4, dtype=F64), rtol=0, atol=1e-12)
        # with momentum and Adam's per-coordinate scaling, Adam's own direction is different
        assert (_cosine(u["adam"]["w"], u["sgdm"]["w"]) < 0.999).all()


def test_adalr_global_scope_has_adam_magnitude_per_player_and_momentum_direction():
    lr = 0.1
    p = _params()
    txs = {"adalr": agents.adalr(lr, scope="global"), "adam": agents.adam(lr), "sgdm": agents.sgda(lr, 0.5)}
    for u in _side_by_side(txs, p):
        torch.testing.assert_close(_global_norm(u["adalr"]),
                                   _grafted_norm(_global_norm(u["adam"]), _global_norm(u["sgdm"]) / lr), rtol=1e-10,
                                   atol=0)
        # one positive factor per seed for the whole player: the player's step is parallel to SGDA's
        factor = u["adalr"]["s"] / u["sgdm"]["s"]
        assert (factor > 0).all()
        for name in p:
            expected = u["sgdm"][name] * factor.reshape((-1,) + (1,) * (p[name].ndim - 1))
            torch.testing.assert_close(u["adalr"][name], expected, rtol=1e-10, atol=1e-14)
        # and per tensor the norms are not Adam's (global grafting is a different agent)
        assert not torch.allclose(_norms(u["adalr"]["b"]), _norms(u["adam"]["b"]), rtol=1e-2)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_adadir_has_momentum_magnitude_and_adam_direction(scope):
    lr = 0.1
    p = _params()
    txs = {"adadir": agents.adadir(lr, (0.5, 0.9), scope=scope), "adam": agents.adam(lr, (0.5, 0.9)),
           "sgdm": agents.sgda(lr, 0.5)}
    for u in _side_by_side(txs, p):
        if scope == "layer":
            for name in p:
                torch.testing.assert_close(_norms(u["adadir"][name]),
                                           _grafted_norm(_norms(u["sgdm"][name]), _norms(u["adam"][name]) / lr),
                                           rtol=1e-10, atol=0)
                torch.testing.assert_close(_cosine(u["adadir"][name], u["adam"][name]),
                                           torch.ones(4, dtype=F64), rtol=0, atol=1e-12)
        else:
            torch.testing.assert_close(_global_norm(u["adadir"]),
                                       _grafted_norm(_global_norm(u["sgdm"]), _global_norm(u["adam"]) / lr),
                                       rtol=1e-10, atol=0)
            flat = {k: torch.cat([v[n].reshape(4, -1) for n in p], dim=1) for k, v in u.items()}
            torch.testing.assert_close(_cosine(flat["adadir"], flat["adam"]), torch.ones(4, dtype=F64),
                                       rtol=0, atol=1e-12)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("make", [lambda: agents.adam(0.05), lambda: agents.sgda(0.1, momentum=0.5)],
                         ids=["adam", "sgda"])
def test_graft_of_an_optimizer_with_itself_is_that_optimizer(make, scope):
    p = _params()
    grafted, plain = agents.graft(make(), make(), scope=scope), make()
    s_g, s_p = grafted.init(p), plain.init(p)
    # gradients bounded away from 0: every step norm is >= ~0.01, so the relative error eps / |u| is <= ~1e-6,
    # and the absolute error is at most eps = 1e-8 in every entry
    for g in _grad_sequence(8):
        g = {k: v + 0.5 * torch.sign(v) for k, v in g.items()}
        u_g, s_g = grafted.update(g, s_g, p)
        u_p, s_p = plain.update(g, s_p, p)
        for k in p:
            torch.testing.assert_close(u_g[k], u_p[k], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_graft_magnitude_ratios_are_adam_step_norms_over_the_first(scope):
    lr = 0.05
    p = _params()
    tx, ref = agents.adalr(lr, scope=scope), agents.adam(lr)
    s, s_ref = tx.init(p), ref.init(p)
    assert agents.graft_magnitude_ratios(s) == {}
    first = None
    for g in _grad_sequence(7):
        _, s = tx.update(g, s, p)
        a, s_ref = ref.update(g, s_ref, p)
        norms = {k: _norms(v) for k, v in a.items()} if scope == "layer" else dict.fromkeys(a, _global_norm(a))
        first = norms if first is None else first
        ratios = agents.graft_magnitude_ratios(s)
        assert set(ratios) == {f"magnitude_ratio/{k}" for k in p}
        for k in p:
            torch.testing.assert_close(ratios[f"magnitude_ratio/{k}"], norms[k] / first[k], rtol=1e-10, atol=0)
    assert not torch.allclose(ratios["magnitude_ratio/w"], torch.ones(4, dtype=F64))  # not trivially 1


# --- 3. extragradient and optimism on the bilinear game -------------------------------------------------
# Measured on Bilinear-v0 (n=5, float64, 8 seeds, reset seed 0), final distance / initial distance:
#   sgda(0.5), 40 steps: 15x to 45x larger (monotone growth, no divergence; 80 steps: all seeds diverge)
#   extragradient(sgda(0.5)), 200 iterations: 8e-6 .. 1.6e-3;   optimistic(0.5), 200: 2e-7 .. 7e-4
#   extragradient(adam(linear_decay(0.3, 400), (0, 0.9))), 200 iterations: 1.3e-3 .. 3.2e-3
#   optimistic_adam(linear_decay(0.3, 200), (0, 0.9)), 200: 4.9e-4 .. 1.1e-3
#   adam(linear_decay(0.3, 200), (0, 0.9)) (simultaneous), 200: 0.48 .. 1.03
# Extragradient's schedule counts gradient evaluations (2 per iteration): its decay spans 2 * steps.
CONVERGENT = {
    "extragradient-sgda": (lambda: agents.extragradient(agents.sgda(0.5)), 2, 0.01),
    "optimistic": (lambda: agents.optimistic(0.5), 1, 0.01),
    "extra-adam": (lambda: agents.extragradient(agents.adam(linear_decay(0.3, 400), (0.0, 0.9))), 2, 0.02),
    "optimistic-adam": (lambda: agents.optimistic_adam(linear_decay(0.3, 200), (0.0, 0.9)), 1, 0.02),
}


def _distances(env, tx, steps, **kw):
    env.reset(seed=0)
    d0 = env.metrics()["distance"]
    res = minmax_envs.run_episode(env, tx, steps=steps, seed=0, **kw)
    return d0, res


def test_simultaneous_sgda_moves_away_from_the_bilinear_equilibrium_at_every_step():
    env = _bilinear()
    d0, res = _distances(env, agents.sgda(0.5), 40, eval_every=1)
    d = torch.stack([m["distance"] for _, m in res.trajectory])  # (41, N)
    assert torch.equal(d[0], d0)
    assert (d[1:] > d[:-1]).all()
    assert (d[-1] > 5 * d0).all()
    assert not res.diverged.any()
    assert res.evaluations == 1 and (env.t == 40).all()


@pytest.mark.parametrize("name", list(CONVERGENT))
def test_extragradient_and_optimistic_methods_converge_on_the_bilinear_game(name):
    make, evaluations, factor = CONVERGENT[name]
    env = _bilinear()
    d0, res = _distances(env, make(), 200)
    assert res.evaluations == evaluations
    assert (env.t == 200 * evaluations).all()
    assert torch.equal(env._info()["step"], env.t)
    assert not res.diverged.any()
    assert (res.metrics["distance"] < factor * d0).all(), res.metrics["distance"] / d0


def test_simultaneous_adam_with_the_same_schedule_does_not_converge_on_the_bilinear_game():
    # the contrast that makes the Adam variants' test meaningful: extrapolation / optimism does the work
    env = _bilinear()
    d0, res = _distances(env, agents.adam(linear_decay(0.3, 200), (0.0, 0.9)), 200)
    assert (res.metrics["distance"] > 0.1 * d0).all()


def _tiny_game():
    """min_x max_y x^T A y on 3 seeds: the generator's gradient A y, the discriminator's -A^T x."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 2, 2, generator=g, dtype=F64)
    x, y = torch.randn(3, 2, generator=g, dtype=F64), torch.randn(3, 2, generator=g, dtype=F64)

    def grads(z):
        return {"x": (a @ z["y"][:, :, None]).squeeze(-1), "y": -(a.transpose(1, 2) @ z["x"][:, :, None]).squeeze(-1)}

    return {"x": x, "y": y}, grads


def _add(p, u):
    return {k: p[k] + u[k] for k in p}


def test_one_extragradient_iteration_by_hand_with_sgda():
    lr = 0.3
    z0, grads = _tiny_game()
    tx = agents.extragradient(agents.sgda(lr))
    assert tx.evaluations == 2
    s = tx.init(z0)
    z = z0
    for _ in range(3):  # phases alternate: check several iterations
        u, s = tx.update(grads(z), s, z)
        half = _add(z, u)
        expected_half = {k: z[k] - lr * grads(z)[k] for k in z}
        u, s = tx.update(grads(half), s, half)
        new = _add(half, u)
        expected = {k: z[k] - lr * grads(expected_half)[k] for k in z}
        for k in z:
            torch.testing.assert_close(half[k], expected_half[k], rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(new[k], expected[k], rtol=1e-12, atol=1e-14)
        z = new


def test_extra_adam_updates_the_moments_in_both_phases_and_steps_from_the_saved_point():
    z0, grads = _tiny_game()
    tx, ref = agents.extragradient(agents.adam(0.1)), agents.adam(0.1)
    s, s_ref = tx.init(z0), ref.init(z0)
    z = z0
    for _ in range(3):
        u, s = tx.update(grads(z), s, z)
        a1, s_ref = ref.update(grads(z), s_ref, z)
        half = _add(z, u)
        u, s = tx.update(grads(half), s, half)
        a2, s_ref = ref.update(grads(half), s_ref, half)
        new = _add(half, u)
        for k in z:
            torch.testing.assert_close(half[k], z[k] + a1[k], rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(new[k], z[k] + a2[k], rtol=1e-12, atol=1e-14)
        z = new


def test_extragradient_needs_params():
    z0, grads = _tiny_game()
    tx = agents.extragradient(agents.sgda(0.1))
    with pytest.raises(ValueError, match="params"):
        tx.update(grads(z0), tx.init(z0), None)


# --- 4. optimism by hand ------------------------------------------------------------------------------
def test_optimistic_first_steps_by_hand():
    lr = 0.1
    gs = _grad_sequence(4)
    tx = agents.optimistic(lr)
    s = tx.init(gs[0])
    for t, g in enumerate(gs):
        u, s = tx.update(g, s, g)
        for k in g:
            expected = -2 * lr * g[k] + (lr * gs[t - 1][k] if t else 0.0)
            torch.testing.assert_close(u[k], expected, rtol=1e-12, atol=1e-15)


def test_optimistic_adam_is_twice_adam_step_minus_the_previous():
    gs = _grad_sequence(4)
    tx, ref = agents.optimistic_adam(0.01, (0.5, 0.9)), agents.adam(0.01, (0.5, 0.9))
    s, s_ref = tx.init(gs[0]), ref.init(gs[0])
    prev = None
    for g in gs:
        u, s = tx.update(g, s, g)
        a, s_ref = ref.update(g, s_ref, g)
        for k in g:
            torch.testing.assert_close(u[k], 2 * a[k] - (prev[k] if prev else 0.0), rtol=1e-12, atol=1e-15)
        prev = a


# --- 5. scale invariance (hypothesis) -------------------------------------------------------------------
def _run_sequence(tx, grads):
    s = tx.init(grads[0])
    out = []
    for g in grads:
        u, s = tx.update(g, s, g)
        out.append(u)
    return out


@settings(max_examples=25, deadline=None)
@given(c=st.floats(min_value=1e-3, max_value=1e3), scope=st.sampled_from(["layer", "global"]),
       momentum=st.sampled_from([0.5, 0.9]))
def test_nsgda_with_momentum_is_invariant_to_gradient_scale_over_several_steps(c, scope, momentum):
    gs = _grad_sequence(4, n=3)
    a = _run_sequence(agents.nsgda(0.1, momentum=momentum, scope=scope), gs)
    b = _run_sequence(agents.nsgda(0.1, momentum=momentum, scope=scope), [{k: c * v for k, v in g.items()} for g in gs])
    for ua, ub in zip(a, b):
        for k in ua:
            torch.testing.assert_close(ua[k], ub[k], rtol=1e-9, atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(c=st.floats(min_value=1e-3, max_value=1e3), betas=st.sampled_from([(0.5, 0.9), (0.9, 0.999), (0.0, 0.5)]))
def test_adam_without_eps_is_invariant_to_gradient_scale(c, betas):
    gs = _grad_sequence(4, n=3)
    a = _run_sequence(agents.adam(0.01, betas, eps=0.0), gs)
    b = _run_sequence(agents.adam(0.01, betas, eps=0.0), [{k: c * v for k, v in g.items()} for g in gs])
    for ua, ub in zip(a, b):
        for k in ua:
            torch.testing.assert_close(ua[k], ub[k], rtol=1e-9, atol=1e-15)


def test_adam_with_a_large_eps_is_not_scale_invariant():
    # the property above is about eps = 0, not a tautology of the test
    gs = _grad_sequence(2, n=3)
    a = _run_sequence(agents.adam(0.01, eps=1.0), gs)
    b = _run_sequence(agents.adam(0.01, eps=1.0), [{k: 10 * v for k, v in g.items()} for g in gs])
    assert not torch.allclose(a[-1]["w"], b[-1]["w"], rtol=1e-3)


# --- 6. pairs ---------------------------------------------------------------------------------------
def _player_grads(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"generator": {"V": torch.randn(n, 3, 4, generator=g, dtype=F64)},
            "discriminator": {"W": 5 * torch.randn(n, 2, 4, generator=g, dtype=F64),
                              "a": torch.randn(n, generator=g, dtype=F64)}}


def test_pair_gives_each_player_its_own_agent():
    grads = _player_grads()
    tx = agents.pair(generator=agents.adam(1e-3), discriminator=agents.adam(4e-3))
    u, _ = tx.update(grads, tx.init(grads), grads)
    # Adam's first step is -lr * g / (|g| + eps) (about -lr sign(g)), with each player's own lr
    for pl, lr in (("generator", 1e-3), ("discriminator", 4e-3)):
        for k, g in grads[pl].items():
            torch.testing.assert_close(u[pl][k], -lr * g / (g.abs() + 1e-8), rtol=1e-12, atol=0)


def test_run_episode_with_a_ttur_pair():
    env = _bilinear(num_seeds=3)
    obs, _ = env.reset(seed=7)
    x0, gx = obs["generator"].params["x"].clone(), obs["generator"].grads["x"].clone()
    y0, gy = obs["discriminator"].params["y"].clone(), obs["discriminator"].grads["y"].clone()
    tx = agents.pair(generator=agents.sgda(0.1), discriminator=agents.sgda(0.4))
    res = minmax_envs.run_episode(env, tx, steps=1, seed=7)
    assert res.evaluations == 1
    torch.testing.assert_close(env.params["generator"]["x"], x0 - 0.1 * gx, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(env.params["discriminator"]["y"], y0 - 0.4 * gy, rtol=1e-12, atol=1e-14)


def test_pair_rejects_agents_with_different_evaluations():
    eg = agents.extragradient(agents.sgda(0.1))
    with pytest.raises(ValueError, match="evaluations"):
        agents.pair(generator=eg, discriminator=agents.sgda(0.1))
    with pytest.raises(ValueError, match="evaluations"):
        minmax_envs.run_episode(_bilinear(num_seeds=1), {"generator": agents.sgda(0.1), "discriminator": eg}, steps=1)
    both = agents.pair(generator=eg, discriminator=agents.extragradient(agents.adam(1e-3)))
    assert both.evaluations == 2


@pytest.mark.parametrize("anchor", ["geometric", "generator", "discriminator"])
@pytest.mark.parametrize("ratio", [0.25, 1.0, 3.0])
def test_balanced_sets_the_norm_ratio_and_keeps_the_anchored_norm(anchor, ratio):
    grads = _player_grads()
    base = agents.pair(generator=agents.sgda(0.1), discriminator=agents.sgda(0.1, momentum=0.5))
    tx = agents.balanced(base, ratio=ratio, anchor=anchor)
    s, s_base = tx.init(grads), base.init(grads)
    for step in range(3):
        g = _player_grads(seed=step)
        u, s = tx.update(g, s, grads)
        b, s_base = base.update(g, s_base, grads)
        ng, nd = _global_norm(u["generator"]), _global_norm(u["discriminator"])
        bg, bd = _global_norm(b["generator"]), _global_norm(b["discriminator"])
        assert not torch.allclose(bd / bg, torch.full_like(bg, ratio))  # the base is not balanced already
        torch.testing.assert_close(nd / ng, torch.full_like(ng, ratio), rtol=1e-10, atol=0)
        kept = {"generator": (ng, bg), "discriminator": (nd, bd), "geometric": (ng * nd, bg * bd)}[anchor]
        torch.testing.assert_close(*kept, rtol=1e-10, atol=0)
        for pl in PLAYERS:  # a positive rescaling of each player's base update
            for k in u[pl]:
                torch.testing.assert_close(_cosine(u[pl][k], b[pl][k]), torch.ones(4, dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ratio", [0.25, 1.0, 3.0])
def test_balanced_with_a_fixed_norm_sets_both_sizes_whatever_the_gradients_scale(ratio):
    grads, c = _player_grads(), 0.07
    tx = agents.balanced(agents.adam(1e-2), ratio=ratio, anchor="fixed", norm=c)
    s = tx.init(grads)
    for step, scale in enumerate((1.0, 1e-6, 1e6)):
        g = {pl: {k: scale * v for k, v in _player_grads(seed=step)[pl].items()} for pl in PLAYERS}
        u, s = tx.update(g, s, grads)
        ng, nd = _global_norm(u["generator"]), _global_norm(u["discriminator"])
        torch.testing.assert_close(nd, torch.full_like(nd, c * ratio**0.5), rtol=1e-10, atol=0)
        torch.testing.assert_close(ng, torch.full_like(ng, c / ratio**0.5), rtol=1e-10, atol=0)


def test_balanced_sgd_with_a_fixed_norm_is_global_nsgda():
    """Eq. 4 of "Adam is no better than normalized SGD" as a balanced update: pace lr_d / lr_g, size sqrt(lr_d lr_g)."""
    lr_d, lr_g = 0.2, 0.05
    env_a, env_b = _bilinear(num_seeds=3), _bilinear(num_seeds=3)
    a = minmax_envs.run_episode(env_a, agents.balanced(agents.pair(agents.sgda(lr_g), agents.sgda(lr_d)),
                                                       ratio=lr_d / lr_g, anchor="fixed", norm=(lr_d * lr_g) ** 0.5),
                                steps=20, seed=1)
    b = minmax_envs.run_episode(env_b, agents.pair(agents.nsgda(lr_g), agents.nsgda(lr_d)), steps=20, seed=1)
    for pl in PLAYERS:
        for k, v in env_b.observation[pl].params.items():
            torch.testing.assert_close(env_a.observation[pl].params[k], v, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.metrics["distance"], b.metrics["distance"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("anchor", ["geometric", "generator", "discriminator"])
def test_balanced_passes_updates_unchanged_where_one_base_update_is_zero(anchor):
    grads = _player_grads()
    grads["generator"]["V"][1] = 0.0  # seed 1: zero generator update
    grads["discriminator"]["W"][2] = 0.0  # seed 2: zero discriminator update
    grads["discriminator"]["a"][2] = 0.0
    base = agents.sgda(0.1)
    u, _ = agents.balanced(base, ratio=2.0, anchor=anchor).update(grads, agents.balanced(base).init(grads), grads)
    for pl in PLAYERS:
        for k, g in grads[pl].items():
            torch.testing.assert_close(u[pl][k][1:3], -0.1 * g[1:3], rtol=1e-12, atol=0)
    ratio = _global_norm(u["discriminator"]) / _global_norm(u["generator"])
    torch.testing.assert_close(ratio[[0, 3]], torch.full((2,), 2.0, dtype=F64), rtol=1e-10, atol=0)
    assert torch.isfinite(ratio[2]) and ratio[2] == 0


def test_run_episode_with_balanced_updates_records_the_ratio():
    env = _bilinear(num_seeds=3)
    res = minmax_envs.run_episode(env, agents.balanced(agents.sgda(0.05), ratio=2.0, anchor="generator"),
                                  steps=5, seed=0, diagnostics_every=1)
    d = res.diagnostics
    torch.testing.assert_close(d["agent/discriminator/update_norm"] / d["agent/generator/update_norm"],
                               torch.full((5, 3), 2.0, dtype=F64), rtol=1e-8, atol=0)


# --- 7. diagnostics through run_episode ----------------------------------------------------------------
def _sum_of_norms(tensors):
    return sum(_norms(v) for v in tensors.values())


def test_diagnostics_match_a_manual_loop_for_adalr_on_two_mode():
    steps, lr = 6, 1e-2
    env = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=F64, d=40, m_d=3, m_g=3)
    res = minmax_envs.run_episode(env, agents.adalr(lr), steps=steps, seed=1, diagnostics_every=1)
    d = res.diagnostics
    names = {"generator": ["V"], "discriminator": ["W", "a", "b"]}
    expected_keys = {"game/grad_ratio", "game/grad_norm/generator", "game/grad_norm/discriminator"}
    for pl, ks in names.items():
        expected_keys |= {f"agent/{pl}/update_norm"} | {f"agent/{pl}/update_norm/{k}" for k in ks}
        expected_keys |= {f"agent/{pl}/magnitude_ratio/{k}" for k in ks}
    assert expected_keys <= set(d)
    assert all(v.shape == (steps, 3) for v in d.values())
    assert res.diagnostic_steps == list(range(1, steps + 1))

    # the same episode by hand: env.step, adalr per player, plain Adam alongside for |A_t|
    obs, _ = env.reset(seed=1)
    tx, adam = agents.adalr(lr), agents.adam(lr)
    s = {pl: tx.init(obs[pl].params) for pl in PLAYERS}
    s_adam = {pl: adam.init(obs[pl].params) for pl in PLAYERS}
    g0 = {pl: _sum_of_norms(obs[pl].grads) for pl in PLAYERS}
    first_adam = {}
    for t in range(steps):
        ratio = sum(_sum_of_norms(obs[pl].grads) / g0[pl] for pl in PLAYERS)
        torch.testing.assert_close(d["game/grad_ratio"][t], ratio, rtol=1e-10, atol=0)
        for pl in PLAYERS:
            torch.testing.assert_close(d[f"game/grad_norm/{pl}"][t], _sum_of_norms(obs[pl].grads), rtol=1e-10, atol=0)
        before = {pl: dict(obs[pl].params) for pl in PLAYERS}
        upd = {}
        for pl in PLAYERS:
            upd[pl], s[pl] = tx.update(obs[pl].grads, s[pl], obs[pl].params)
            a, s_adam[pl] = adam.update(obs[pl].grads, s_adam[pl], obs[pl].params)
            a_norms = {k: _norms(v) for k, v in a.items()}
            first_adam.setdefault(pl, a_norms)
            for k in names[pl]:
                torch.testing.assert_close(d[f"agent/{pl}/magnitude_ratio/{k}"][t], a_norms[k] / first_adam[pl][k],
                                           rtol=1e-9, atol=0)
        obs, *_ = env.step(upd)
        for pl in PLAYERS:
            moved = {k: obs[pl].params[k] - before[pl][k] for k in names[pl]}
            torch.testing.assert_close(d[f"agent/{pl}/update_norm"][t], _global_norm(moved), rtol=1e-10, atol=0)
            for k in names[pl]:
                torch.testing.assert_close(d[f"agent/{pl}/update_norm/{k}"][t], _norms(moved[k]), rtol=1e-10, atol=0)
    torch.testing.assert_close(d["game/grad_ratio"][0], torch.full((3,), 2.0, dtype=F64), rtol=1e-12, atol=0)
    assert not torch.allclose(d["game/grad_ratio"][-1], d["game/grad_ratio"][0])


def test_nsgda_global_update_norm_is_lr_and_diagnostics_every_subsamples():
    lr, steps = 0.05, 6
    env = _bilinear(num_seeds=4)
    every1 = minmax_envs.run_episode(env, agents.nsgda(lr, scope="global"), steps=steps, seed=2, diagnostics_every=1)
    assert not every1.diverged.any()
    for pl in PLAYERS:
        torch.testing.assert_close(every1.diagnostics[f"agent/{pl}/update_norm"], torch.full((steps, 4), lr, dtype=F64),
                                   rtol=1e-9, atol=0)
    assert not any("magnitude_ratio" in k for k in every1.diagnostics)  # no grafting, no magnitude ratio
    every2 = minmax_envs.run_episode(env, agents.nsgda(lr, scope="global"), steps=steps, seed=2, diagnostics_every=2)
    assert every2.diagnostic_steps == [2, 4, 6]
    assert set(every2.diagnostics) == set(every1.diagnostics)
    for k, v in every2.diagnostics.items():
        assert v.shape == (3, 4)
        torch.testing.assert_close(v, every1.diagnostics[k][1::2], rtol=0, atol=0)
    assert minmax_envs.run_episode(env, agents.sgda(lr), steps=2, seed=2).diagnostics == {}


def test_nsgda_layer_update_norm_is_lr_per_tensor_on_two_mode():
    lr, steps = 0.01, 4
    env = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=F64, d=40, m_d=3, m_g=3)
    d = minmax_envs.run_episode(env, agents.nsgda(lr, scope="layer"), steps=steps, seed=0,
                                diagnostics_every=1).diagnostics
    for key in ("agent/generator/update_norm/V", "agent/discriminator/update_norm/W",
                "agent/discriminator/update_norm/a", "agent/discriminator/update_norm/b"):
        torch.testing.assert_close(d[key], torch.full((steps, 3), lr, dtype=F64), rtol=1e-9, atol=0)
    # three tensors of norm lr each: the discriminator's step has norm sqrt(3) lr
    torch.testing.assert_close(d["agent/discriminator/update_norm"], torch.full((steps, 3), 3**0.5 * lr, dtype=F64),
                               rtol=1e-9, atol=0)


def test_extragradient_diagnostics_cover_the_whole_iteration():
    lr, steps = 0.2, 3
    env = _bilinear(num_seeds=2)
    res = minmax_envs.run_episode(env, agents.extragradient(agents.sgda(lr)), steps=steps, seed=4,
                                  diagnostics_every=1)
    obs, _ = env.reset(seed=4)
    z = {pl: obs[pl].params for pl in PLAYERS}
    game, inst = env.game, env._instance
    noise = {"noise": torch.zeros(2, 2, 5, dtype=F64)}
    for t in range(steps):
        _, g = game.grads(z, inst, noise)
        half = {pl: {k: v - lr * g[pl][k] for k, v in z[pl].items()} for pl in PLAYERS}
        _, g_half = game.grads(half, inst, noise)
        new = {pl: {k: v - lr * g_half[pl][k] for k, v in z[pl].items()} for pl in PLAYERS}
        for pl in PLAYERS:
            moved = {k: new[pl][k] - z[pl][k] for k in z[pl]}
            torch.testing.assert_close(res.diagnostics[f"agent/{pl}/update_norm"][t], _global_norm(moved),
                                       rtol=1e-9, atol=0)
        z = new


# --- 8. validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: agents.adam(-1e-3), "lr"),
    (lambda: agents.rmsprop(-1e-3), "lr"),
    (lambda: agents.adagrad(-0.1), "lr"),
    (lambda: agents.adalr(-0.1), "lr"),
    (lambda: agents.adadir(float("inf")), "lr"),
    (lambda: agents.optimistic(-0.1), "lr"),
    (lambda: agents.optimistic_adam(-0.1), "lr"),
    (lambda: agents.nsgda(-0.1), "lr"),
    (lambda: agents.adam(1e-3, betas=(1.0, 0.9)), "betas"),
    (lambda: agents.adam(1e-3, betas=(0.5, 1.0)), "betas"),
    (lambda: agents.adam(1e-3, betas=(-0.1, 0.9)), "betas"),
    (lambda: agents.adam(1e-3, betas=(0.5,)), "betas"),
    (lambda: agents.adam(1e-3, betas=0.9), "betas"),
    (lambda: agents.adam(1e-3, betas=(0.5, 0.9, 0.99)), "betas"),
    (lambda: agents.adalr(1e-3, betas=(0.5, 1.5)), "betas"),
    (lambda: agents.adadir(1e-3, betas=(1.0, 0.9)), "betas"),
    (lambda: agents.optimistic_adam(1e-3, betas=(0.5, 2.0)), "betas"),
    (lambda: agents.adalr(1e-3, scope="tensor"), "scope"),
    (lambda: agents.adadir(1e-3, scope="player"), "scope"),
    (lambda: agents.graft(agents.adam(1e-3), agents.sgda(0.1), scope="all"), "scope"),
    (lambda: agents.normalize("per_tensor"), "scope"),
    (lambda: agents.adam(1e-3, eps=-1e-8), "eps"),
    (lambda: agents.rmsprop(1e-3, eps=-1e-8), "eps"),
    (lambda: agents.adagrad(1e-3, eps=-1e-8), "eps"),
    (lambda: agents.adalr(1e-3, eps=-1e-8), "eps"),
    (lambda: agents.graft(agents.adam(1e-3), agents.sgda(0.1), eps=-1.0), "eps"),
    (lambda: agents.sgda(0.1, momentum=0.0, nesterov=True), "nesterov"),
    (lambda: agents.rmsprop(1e-3, alpha=1.0), "alpha"),
    (lambda: agents.rmsprop(1e-3, alpha=1.5), "alpha"),
    (lambda: agents.rmsprop(1e-3, alpha=-0.1), "alpha"),
    (lambda: agents.balanced(agents.sgda(0.1), ratio=0.0), "ratio"),
    (lambda: agents.balanced(agents.sgda(0.1), ratio=-2.0), "ratio"),
    (lambda: agents.balanced(agents.sgda(0.1), ratio=float("inf")), "ratio"),
    (lambda: agents.balanced(agents.sgda(0.1), anchor="both"), "anchor"),
    (lambda: agents.balanced(agents.sgda(0.1), anchor="fixed"), "norm"),
    (lambda: agents.balanced(agents.sgda(0.1), norm=0.1), "norm"),
    (lambda: agents.balanced(agents.sgda(0.1), anchor="fixed", norm=-1.0), "norm"),
    (lambda: linear_decay(1e-2, 0), "steps"),
    (lambda: agents.schedules.linear(1e-2, 0.0, 2.5), "steps"),
    (lambda: agents.schedules.constant(-1.0), "value"),
])
def test_invalid_hyperparameters_raise_value_error_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: agents.graft(agents.adam(1e-3), "sgda"), "direction"),
    (lambda: agents.graft(agents.adam, agents.sgda(0.1)), "magnitude"),  # the factory, not an agent
    (lambda: agents.extragradient(agents.sgda), "base"),
    (lambda: agents.extragradient(torch.optim.SGD), "base"),
    (lambda: agents.pair(generator=agents.sgda(0.1), discriminator=None), "discriminator"),
    (lambda: agents.pair(generator=agents.adam, discriminator=agents.adam(1e-3)), "generator"),
    (lambda: agents.balanced(lambda g: g), "agents"),
])
def test_non_transform_arguments_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_valid_edge_values_are_accepted():
    agents.adam(0.0, betas=(0.0, 0.0), eps=0.0)
    agents.adam(1e-3, betas=[0.5, 0.9])  # a list is a pair too
    agents.rmsprop(1e-3, alpha=0.0)
    agents.sgda(0.1, momentum=0.9, nesterov=True)
    agents.balanced(agents.sgda(0.1), ratio=1e-6, anchor="discriminator")


# --- named states ---------------------------------------------------------------------------------------------------
def test_the_named_optimizers_states_name_their_parts_and_stay_their_chains_tuples():
    from agents.transforms import AdamState, NSGDAState, ScaleByAdamState, ScaleByScheduleState, SGDAState, TraceState

    p = _params()
    g = _field(p)
    adam = agents.adam(linear_decay(0.1, 4)).init(p)
    assert isinstance(adam, AdamState) and isinstance(adam.moments, ScaleByAdamState)
    assert adam.schedule == ScaleByScheduleState(0) and adam == (adam.moments, adam.schedule)  # the chain's tuple
    _, adam = agents.adam(linear_decay(0.1, 4)).update(g, adam, p)
    assert adam.moments.count == 1 and adam.schedule == ScaleByScheduleState(1)
    sgd = agents.sgda(0.1, momentum=0.5).init(p)
    assert isinstance(sgd, SGDAState) and isinstance(sgd.trace, TraceState) and sgd.schedule == agents.EmptyState()
    plain = agents.sgda(0.1)
    assert plain.init(p).trace is None and isinstance(plain.update(g, plain.init(p), p)[1], SGDAState)
    ns = agents.nsgda(0.1, momentum=0.5).init(p)
    assert isinstance(ns, NSGDAState) and isinstance(ns.trace, TraceState) and agents.nsgda(0.1).init(p).trace is None
    adalr, adadir = agents.adalr(0.1).init(p), agents.adadir(0.1).init(p)
    assert isinstance(adalr.magnitude, AdamState) and isinstance(adalr.direction, SGDAState)
    assert isinstance(adadir.magnitude, SGDAState) and isinstance(adadir.direction, AdamState)


def test_a_named_state_is_restored_into_its_class_from_a_checkpoint_tree():
    from minmax_envs.checkpoint import flatten_state, structure, unflatten_state

    p = _params()
    tx = agents.adadir(0.1, scope="global")
    state = tx.update(_field(p), tx.init(p), p)[1]
    leaves: list = []
    tree = flatten_state(state, leaves)
    assert str(tree).count("'tuple'") == 2 and "'ScaleByAdamState'" in str(tree)  # both parts are tuples
    assert "'AdamState'" not in str(tree) and "'SGDAState'" not in str(tree)  # stored as the tuples they are
    back = unflatten_state(tree, iter(leaves), tx.init(p))
    assert type(back.magnitude) is type(state.magnitude) and type(back.direction) is type(state.direction)
    assert structure(back) == structure(state) and structure(state.direction) == structure(tuple(state.direction))
    assert torch.equal(back.direction.moments.mu["w"], state.direction.moments.mu["w"])


@pytest.mark.parametrize("name", ["sgda", "nsgda", "adam", "adalr", "adadir"])
def test_the_fast_paths_take_a_state_whose_parts_a_tree_map_rebuilt_as_plain_tuples(name):
    """A generic tree map (such as the step-size env's per-slot select) rebuilds tuples as tuples: the named
    agents' pure and in-place fast paths take those as the named states they are, with the same results."""
    from agents import inplace
    from minmax_envs.checkpoint import flatten_state

    def plain(tree):
        if isinstance(tree, tuple) and not hasattr(tree, "_fields"):
            return tuple(plain(v) for v in tree)
        if isinstance(tree, tuple):
            return type(tree)(*(plain(v) for v in tree))
        return tree

    kw = {"momentum": 0.5} if name in ("sgda", "nsgda") else {}
    for tx in (getattr(agents, name)(0.1, **kw), agents.in_place(getattr(agents, name)(0.1, **kw)),
               getattr(inplace, name)(0.1, **kw)):
        p, q = _params(), _params()
        g = _field(p)
        named = tx.init(p)
        step = tx.update if isinstance(tx, agents.GradientTransformation) else tx.step
        a = step(g, named, p)
        b = step(g, plain(tx.init(q)), q)
        if isinstance(tx, agents.GradientTransformation):
            assert all(torch.equal(a[0][k], b[0][k]) for k in p)
            a, b = a[1], b[1]
        assert all(torch.equal(p[k], q[k]) for k in p)
        leaves_a, leaves_b = [], []
        assert flatten_state(a, leaves_a) == flatten_state(b, leaves_b)  # the same tree (tuples stored as tuples)
        assert all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in zip(leaves_a, leaves_b))

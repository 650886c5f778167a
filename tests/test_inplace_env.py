"""The env and run_episode with agents that update parameters in place (torch.optim's contract)."""

from __future__ import annotations

import pytest
import torch

import agents
import minmax_envs
from minmax_envs import PLAYERS
from tests.helpers import PROBE_CALLS, Interrupt, interrupting, small_env

# update_speed_ratio (TwoMode) reads the last update: the env adds a pure agent's update u, and recovers an
# in-place agent's as (p + u) - p, equal to u up to one rounding.
_FROM_UPDATES = {"update_speed_ratio"}


def _play(env_id: str, tx, steps: int = 25, n: int = 4, **kwargs):
    env = small_env(env_id, n, **kwargs)
    result = minmax_envs.run_episode(env, tx, steps=steps, seed=3, eval_every=5)
    return env, result


def _assert_same_episode(a, b) -> None:
    (env_a, res_a), (env_b, res_b) = a, b
    for pl in PLAYERS:
        for k, v in env_a.params[pl].items():
            assert torch.equal(env_b.params[pl][k], v), (pl, k)
    assert torch.equal(res_a.divergence_step, res_b.divergence_step)
    for (t_a, m_a), (t_b, m_b) in zip(res_a.trajectory, res_b.trajectory):
        assert t_a == t_b
        for k, v in m_a.items():
            if k in _FROM_UPDATES:
                torch.testing.assert_close(m_b[k], v, rtol=1e-3, atol=0, equal_nan=True)
            else:
                torch.testing.assert_close(m_b[k], v, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("env_id,kwargs,lr", [
    ("TwoMode-v0", {}, 0.3),
    ("DiracGAN-v0", {"loss": "wgan", "clip": 0.4}, 0.3),  # a projection after every step (clipping)
    ("Bilinear-v0", {}, 0.1),
    ("MoG-Ring-v0", {}, 0.01),
    ("Digits-DCGAN-v0", {}, 2e-3),  # parameters are views of module parameters; the EMA moves
])
def test_an_in_place_agent_plays_the_same_episode_as_its_pure_reference(env_id, kwargs, lr):
    _assert_same_episode(_play(env_id, agents.adam(lr), **kwargs), _play(env_id, agents.in_place(agents.adam(lr)),
                                                                          **kwargs))


def test_mixed_pairs_play_the_same_episode():
    pure = {"generator": agents.sgda(0.2, momentum=0.5), "discriminator": agents.adam(0.1)}
    mixed = {"generator": agents.in_place(agents.sgda(0.2, momentum=0.5)), "discriminator": agents.adam(0.1)}
    _assert_same_episode(_play("TwoMode-v0", pure), _play("TwoMode-v0", mixed))


def test_stopped_seeds_keep_their_parameters_under_an_in_place_agent():
    """A large step size makes some seeds diverge before others: their parameters freeze where they diverged,
    exactly as with the pure agent (the env restores them from its hold)."""
    pure = _play("Bilinear-v0", agents.sgda(0.9), steps=40, n=8)
    fast = _play("Bilinear-v0", agents.in_place(agents.sgda(0.9)), steps=40, n=8)
    steps = pure[1].divergence_step
    assert (steps >= 0).any() and len(set(steps.tolist())) > 1, steps  # seeds stop at different steps
    _assert_same_episode(pure, fast)


def _zeros(env, player: str) -> dict:
    return {k: torch.zeros_like(v) for k, v in env.params[player].items()}


def test_the_writable_door_restores_stopped_slots_on_exit():
    env = small_env("Bilinear-v0", 2)
    env.reset(seed=0)
    env.reset_where(torch.tensor([True, False]), torch.tensor([7, 0]))  # slot 0 restarts: it must not move
    start = {k: v.clone() for k, v in env.params["generator"].items()}
    with env.writable(["generator"]) as params:
        assert params["generator"] is env.params["generator"]  # the env's own tensors
        for p in params["generator"].values():
            p.add_(0.5)  # an in-place agent moves every slot
    for k, v in env.params["generator"].items():  # settled on exit, before the step: no caller can forget it
        assert torch.equal(v[0], start[k][0]) and torch.equal(v[1], start[k][1] + 0.5)
    env.step({"discriminator": _zeros(env, "discriminator")})  # the written player is left out of the updates
    for k, v in env.params["generator"].items():
        assert torch.equal(v[0], start[k][0])  # the restarting slot ignored its update
        assert torch.equal(v[1], start[k][1] + 0.5)


@pytest.mark.parametrize("keep_update", [False, True])
def test_the_writable_door_reports_the_update_to_the_metrics_when_asked(keep_update):
    env = small_env("TwoMode-v0", 2)
    env.reset(seed=0)
    with env.writable(PLAYERS, keep_update=keep_update) as params:
        for ps in params.values():
            for p in ps.values():
                p.mul_(1.5)
    env.step({})
    ratio = env.metrics()["update_speed_ratio"]  # reads the last update of both players
    assert bool(torch.isfinite(ratio).all()) if keep_update else bool(torch.isnan(ratio).all())
    if keep_update:  # each player moved by half its parameters: the same relative speed
        torch.testing.assert_close(ratio, torch.ones_like(ratio))


def test_the_writable_door_refuses_what_the_step_could_not_settle():
    env = small_env("Bilinear-v0", 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="unknown player 'critic'"):
        env.writable(["critic"])
    with pytest.raises(ValueError, match=r"updates\['generator'\] is None: an agent that writes its parameters in "
                                         r"place does so inside `with env.writable\(\['generator'\]\):`"):
        env.step({"generator": None, "discriminator": _zeros(env, "discriminator")})  # the old protocol
    for old in ("hold", "needs_hold"):  # the protocol the door replaced
        with pytest.raises(AttributeError, match=rf"BatchedEnv.{old} was replaced by .*`with env.writable\(players\)"):
            getattr(env, old)
    with env.writable(["generator"]):
        pass
    with pytest.raises(ValueError, match="already written at this step; call step"):
        env.writable(["generator"])
    with pytest.raises(ValueError, match=r"keys \['discriminator'\] \(the generator's parameters were written in "
                                         r"place: env.writable\), got \['discriminator', 'generator'\]"):
        env.step({"generator": _zeros(env, "generator"), "discriminator": _zeros(env, "discriminator")})
    env.step({"discriminator": _zeros(env, "discriminator")})
    with pytest.raises(RuntimeError, match="the agent failed"), env.writable(["generator"]):
        raise RuntimeError("the agent failed")
    with pytest.raises(ValueError, match=r"keys \['generator', 'discriminator'\]"):  # a failed block wrote nothing
        env.step({"discriminator": _zeros(env, "discriminator")})


def test_only_a_mover_is_writable():
    env = small_env("Digits-DCGAN-v0", 2)  # alternating: n_critic discriminator steps, then one generator step
    env.reset(seed=0)
    assert env.movers == ("discriminator",)
    with pytest.raises(ValueError, match=r"the generator does not move at this step \(movers: \['discriminator'\]\)"):
        env.writable(["generator"])


def test_the_parameters_an_in_place_agent_holds_stay_the_envs_tensors():
    """Projection (Dirac clipping) and settling write into the same tensors: an optimizer bound to them at
    init keeps acting on the env's parameters."""
    env = small_env("DiracGAN-v0", 3, loss="wgan", clip=0.2)
    seen = {}

    def init(params):
        seen.update(params)
        return agents.EmptyState()

    def step(grads, state, params):
        for k, p in params.items():
            assert p is seen[k]
            p.sub_(0.5 * grads[k])
        return state

    tx = agents.InPlaceTransformation(init, step)
    minmax_envs.run_episode(env, {"generator": agents.sgda(0.1), "discriminator": tx}, steps=10, seed=0)
    assert env.params["discriminator"]["psi"] is seen["psi"]
    assert env.params["discriminator"]["psi"].abs().max() <= 0.2


def test_an_in_place_episode_resumes_bit_for_bit(tmp_path):
    tx = agents.in_place(agents.adam(0.05))
    kw = {"steps": 12, "seed": 1, "eval_every": 4}
    ref_env = small_env("MoG-Ring-v0", 2, dtype=torch.float64)
    ref = minmax_envs.run_episode(ref_env, tx, **kw)
    killer = interrupting(tx, PROBE_CALLS + 7)
    ckpt = tmp_path / "ep.pt"
    with pytest.raises(Interrupt):
        minmax_envs.run_episode(small_env("MoG-Ring-v0", 2, dtype=torch.float64),
                                {"generator": killer, "discriminator": tx}, checkpoint=ckpt, checkpoint_every=3, **kw)
    env = small_env("MoG-Ring-v0", 2, dtype=torch.float64)
    resumed = minmax_envs.run_episode(env, tx, checkpoint=ckpt, checkpoint_every=3, **kw)
    _assert_same_episode((ref_env, ref), (env, resumed))
    for k, v in ref.metrics.items():
        torch.testing.assert_close(resumed.metrics[k], v, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("make_base", [lambda: agents.in_place(agents.adam(1e-2)),
                                       lambda: agents.from_torch("torch.optim.Adam", lr=1e-2, betas=(0.5, 0.9))],
                         ids=["in_place", "from_torch"])
def test_balanced_over_an_in_place_base_plays_as_over_its_pure_twin(make_base):
    """The step an in-place base writes is read back, undone and rescaled: the episode is the pure base's, up to
    the rounding of reading the step back (and torch's Adam kernel against ours)."""
    kw = {"steps": 30, "seed": 3}
    pure = minmax_envs.run_episode(e1 := small_env("Bilinear-v0", 4, dtype=torch.float64),
                                   agents.balanced(agents.adam(1e-2), 2.0), **kw)
    played = minmax_envs.run_episode(e2 := small_env("Bilinear-v0", 4, dtype=torch.float64),
                                     agents.balanced(make_base(), 2.0), **kw)
    for pl in PLAYERS:
        for k, v in e1.observation[pl].params.items():
            torch.testing.assert_close(e2.observation[pl].params[k], v, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(played.metrics["distance"], pure.metrics["distance"], rtol=1e-9, atol=0)


def test_balanced_over_from_torch_resumes_from_a_checkpoint(tmp_path):
    def tx():
        return agents.balanced(agents.from_torch("torch.optim.SGD", lr=0.05, momentum=0.9), 0.5, "generator")

    kw = {"steps": 12, "seed": 1, "eval_every": 4}
    ref = minmax_envs.run_episode(ref_env := small_env("Bilinear-v0", 3, dtype=torch.float64), tx(), **kw)
    ckpt = tmp_path / "ep.pt"
    with pytest.raises(Interrupt):
        minmax_envs.run_episode(small_env("Bilinear-v0", 3, dtype=torch.float64), interrupting(tx(), PROBE_CALLS + 7),
                                checkpoint=ckpt, checkpoint_every=3, **kw)
    env = small_env("Bilinear-v0", 3, dtype=torch.float64)
    resumed = minmax_envs.run_episode(env, tx(), checkpoint=ckpt, checkpoint_every=3, **kw)
    _assert_same_episode((ref_env, ref), (env, resumed))



"""Agents and envs pickle (spawned workers, Ray actors, multiprocessing), and a pickled-and-restored one continues
bit for bit like the original: every agent the package builds (the builders of ``agents``, ``agents.inplace``, pairs,
``agents.from_torch`` before and after init), every registered env before and after ``reset`` and mid-episode, and
the Gymnasium env of ``gym.make``."""

import functools
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
from agents import inplace
from agents.schedules import constant, linear, linear_decay
from minmax_envs import PLAYERS
from tests.helpers import ENV_IDS, small_env

F32 = torch.float32
N = 3
BEFORE, AFTER = 4, 5  # steps before the pickle round trip, steps compared after it


def _halve(g, p):
    return {k: 0.5 * v for k, v in g.items()}


def _round_trip(obj):
    return pickle.loads(pickle.dumps(obj))


#: every builder of one player's pure agent, with a schedule where it takes a learning rate
PURE = {
    "sgda": lambda: agents.sgda(linear_decay(1e-2, 6), momentum=0.9, nesterov=True),
    "nsgda": lambda: agents.nsgda(1e-2, momentum=0.5, scope="layer"),
    "adam": lambda: agents.adam(linear(1e-2, 1e-3, 5)),
    "rmsprop": lambda: agents.rmsprop(1e-2),
    "adagrad": lambda: agents.adagrad(constant(1e-2)),
    "adalr": lambda: agents.adalr(linear_decay(1e-2, 6), scope="global"),
    "adadir": lambda: agents.adadir(1e-2),
    "graft": lambda: agents.graft(agents.adam(1e-2), agents.sgda(1e-2, momentum=0.9), scope="global"),
    "extragradient": lambda: agents.extragradient(agents.adam(1e-2)),
    "optimistic": lambda: agents.optimistic(1e-2, momentum=0.5),
    "optimistic_adam": lambda: agents.optimistic_adam(1e-2),
    "chain": lambda: agents.chain(agents.trace(0.9), agents.normalize("global"), agents.scale(-1e-2)),
    "stateless": lambda: agents.stateless(_halve),
    "scale": lambda: agents.scale(-1e-2),
    "scale_by_learning_rate": lambda: agents.scale_by_learning_rate(linear_decay(1e-2, 6)),
    "trace": lambda: agents.chain(agents.trace(0.5), agents.scale(-1e-2)),
    "normalize": lambda: agents.chain(agents.normalize("layer"), agents.scale(-1e-2)),
    "scale_by_adam": lambda: agents.chain(agents.scale_by_adam(0.5, 0.9), agents.scale(-1e-2)),
    "transforms.scale_by_adam": lambda: agents.chain(agents.transforms.scale_by_adam(), agents.scale(-1e-2)),
    "scale_by_rms": lambda: agents.chain(agents.scale_by_rms(), agents.scale(-1e-2)),
    "scale_by_adagrad": lambda: agents.chain(agents.scale_by_adagrad(), agents.scale(-1e-2)),
    "optimism": lambda: agents.optimism(agents.rmsprop(1e-2)),
}

#: every in-place agent: the built-ins of agents.inplace, in_place(<pure>) and from_torch (whole tensors, per seed,
#: schedules, schedulers)
IN_PLACE = {
    "inplace.sgda": lambda: inplace.sgda(linear_decay(1e-2, 6), momentum=0.9),
    "inplace.nsgda": lambda: inplace.nsgda(1e-2, momentum=0.5),
    "inplace.adam": lambda: inplace.adam(1e-2),
    "inplace.adalr": lambda: inplace.adalr(1e-2, scope="global"),
    "inplace.adadir": lambda: inplace.adadir(linear_decay(1e-2, 6)),
    "in_place": lambda: agents.in_place(agents.adam(1e-2)),
    "from_torch(Adam)": lambda: agents.from_torch(torch.optim.Adam, lr=1e-2, betas=(0.5, 0.9)),
    "from_torch(SGD, per seed, schedule)": lambda: agents.from_torch("torch.optim.SGD", lr=linear_decay(1e-2, 6),
                                                                     momentum=0.9, per_seed=True),
    "from_torch(Adafactor, scheduler)": lambda: agents.from_torch(
        torch.optim.Adafactor, lr=1e-2, scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2)),
}

#: agents for both players
PAIRS = {
    "pair": lambda: agents.pair(generator=agents.adam(1e-2), discriminator=inplace.nsgda(1e-2)),
    "pair(from_torch)": lambda: agents.pair(agents.from_torch(torch.optim.RMSprop, lr=1e-2), agents.sgda(1e-2)),
    "as_pair": lambda: agents.as_pair(agents.adalr(1e-2)),
    "balanced": lambda: agents.balanced(agents.pair(agents.sgda(1e-2), agents.adam(1e-2)), ratio=2.0),
}

_NOT_BUILDERS = {"Agent", "ChainState", "EmptyState", "GradientTransformation", "InPlaceTransformation",
                 "PairTransformation", "Schedule", "allow_optimizer_modules", "gradient_ratio",
                 "graft_magnitude_ratios", "per_seed_norms", "schedules", "sum_of_norms", "update_norms"}


def test_the_tables_cover_every_builder_of_the_package():
    covered = {name.split("(")[0] for name in (*PURE, *IN_PLACE, *PAIRS)}
    builders = set(agents.__all__) - _NOT_BUILDERS
    assert builders <= covered, sorted(builders - covered)
    assert {f"inplace.{n}" for n in inplace.__all__ if n != "in_place"} <= covered


# --- agents on synthetic gradients ---------------------------------------------------------------------
def _params(players: bool) -> dict:
    gen = torch.Generator().manual_seed(0)

    def one():
        return {"w": torch.randn(N, 4, 3, generator=gen, dtype=F32), "b": torch.randn(N, 5, generator=gen, dtype=F32)}

    return {pl: one() for pl in PLAYERS} if players else one()


def _grads(params: dict, t: int) -> dict:
    """The gradient of ``0.5 ||p||^2`` plus noise drawn from step ``t``: a fixed function of the parameters and t."""
    gen = torch.Generator().manual_seed(1000 + t)
    return {k: v + 0.1 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}


def _play(kind: str, tx, state, params, start: int, steps: int):
    """``steps`` updates from step ``start``; in-place agents write into ``params``. The parameters and state."""
    for t in range(start, start + steps):
        if kind == "pair":
            grads = {pl: _grads(params[pl], t) for pl in PLAYERS}
            updates, state = tx.update(grads, state, params)
            params = {pl: params[pl] if updates[pl] is None else {k: v + updates[pl][k] for k, v in params[pl].items()}
                      for pl in PLAYERS}
        elif kind == "in_place":
            state = tx.step(_grads(params, t), state, params)
        else:
            updates, state = tx.update(_grads(params, t), state, params)
            params = {k: v + updates[k] for k, v in params.items()}
    return params, state


def _flat(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update({f"{k}/{n}": x for n, x in _flat(v).items()})
        else:
            out[k] = v
    return out


def _assert_equal(a: dict, b: dict):
    a, b = _flat(a), _flat(b)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


AGENTS = [(n, "pure", f) for n, f in PURE.items()] + [(n, "in_place", f) for n, f in IN_PLACE.items()] + [
    (n, "pair", f) for n, f in PAIRS.items()]


@pytest.mark.parametrize("name, kind, make", AGENTS, ids=[a[0] for a in AGENTS])
def test_an_agent_pickles_before_init_and_plays_as_the_original(name, kind, make):
    tx = make()
    restored = _round_trip(tx)
    assert type(restored) is type(tx) and restored.evaluations == tx.evaluations
    want, _ = _play(kind, tx, tx.init(p := _params(kind == "pair")), p, 0, BEFORE + AFTER)
    got, _ = _play(kind, restored, restored.init(q := _params(kind == "pair")), q, 0, BEFORE + AFTER)
    _assert_equal(got, want)


@pytest.mark.parametrize("name, kind, make", AGENTS, ids=[a[0] for a in AGENTS])
def test_an_agent_pickled_mid_run_with_its_state_continues_bit_for_bit(name, kind, make):
    tx = make()
    params = _params(kind == "pair")
    params, state = _play(kind, tx, tx.init(params), params, 0, BEFORE)
    # one pickle for the agent, its state and the parameters: an in-place agent's state (torch optimizers) holds
    # the parameter tensors or views of them, and must hold the restored ones after the round trip
    tx2, state2, params2 = _round_trip((tx, state, params))
    want, _ = _play(kind, tx, state, params, BEFORE, AFTER)
    got, _ = _play(kind, tx2, state2, params2, BEFORE, AFTER)
    _assert_equal(got, want)  # for an in-place agent: it wrote into the restored tensors, as the original into its own


# --- envs ------------------------------------------------------------------------------------------------
def _env(env_id: str, **kwargs):
    return small_env(env_id, N, **kwargs)  # the image games alternate (n_critic discriminator steps)


def _env_play(env, tx, state, steps: int):
    """``steps`` env steps of the pair agent ``tx`` (only the players that move; in-place agents write through
    ``env.writable``)."""
    for _ in range(steps):
        obs = env.observation
        movers = env.movers
        writers = [pl for pl in tx.in_place if pl in movers]
        with env.writable(writers):
            updates, state = tx.update({pl: obs[pl].grads for pl in movers}, state,
                                       {pl: obs[pl].params for pl in movers})
        env.step({pl: updates[pl] for pl in movers if pl not in writers})
    return state


def _env_record(env) -> dict:
    obs = env.observation
    out = {"t": env.t, "diverged": env.diverged, "divergence_step": env.divergence_step, "metrics": env.metrics()}
    for pl in PLAYERS:
        out[pl] = {"params": obs[pl].params, **({"grads": obs[pl].grads, "loss": obs[pl].loss} if obs[pl].moving
                                                 else {})}
    return out


def _assert_same_env(a, b):
    _assert_equal({k: v for k, v in _env_record(a).items() if k != "metrics"},
                  {k: v for k, v in _env_record(b).items() if k != "metrics"})
    ma, mb = _env_record(a)["metrics"], _env_record(b)["metrics"]
    assert ma.keys() == mb.keys()
    for k in ma:
        assert torch.equal(ma[k], mb[k]) or (ma[k].isnan() == mb[k].isnan()).all() and torch.equal(
            ma[k].nan_to_num(), mb[k].nan_to_num()), k


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_an_env_pickles_before_reset_and_plays_the_same_episode(env_id):
    env = _env(env_id)
    restored = _round_trip(env)
    assert restored.make_kwargs == env.make_kwargs
    tx = agents.as_pair(agents.adam(1e-2))
    for e in (env, restored):
        e.reset(seed=7)
        _env_play(e, tx, tx.init({pl: e.params[pl] for pl in PLAYERS}), 3)
    _assert_same_env(restored, env)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_an_env_pickled_mid_episode_continues_bit_for_bit(env_id):
    env = _env(env_id)
    env.reset(seed=11)
    restored_at_reset = _round_trip(env)
    _assert_same_env(restored_at_reset, env)
    tx = agents.as_pair(agents.adalr(1e-2))
    state = _env_play(env, tx, tx.init(env.params), BEFORE)
    env2, tx2, state2 = _round_trip((env, tx, state))
    _env_play(env, tx, state, AFTER)
    _env_play(env2, tx2, state2, AFTER)
    _assert_same_env(env2, env)


@pytest.mark.parametrize("env_id, make", [
    ("TwoMode-v0", lambda: agents.pair(inplace.adam(1e-2), agents.from_torch(torch.optim.SGD, lr=1e-2, momentum=0.9,
                                                                             per_seed=True))),
    ("MoG-Ring-v0", lambda: agents.as_pair(agents.from_torch(torch.optim.Adam, lr=1e-3, fused=True))),
    ("Digits-DCGAN-v0", lambda: agents.as_pair(inplace.nsgda(1e-2))),
    ("Digits-ResNetWGANGP-v0", lambda: agents.pair(agents.from_torch(torch.optim.Adam, lr=1e-3), inplace.adalr(1e-3))),
], ids=["TwoMode-inplace-and-per-seed-torch", "MoG-Ring-fused-torch-Adam", "Digits-DCGAN-inplace-nsgda",
        "Digits-ResNet-torch-Adam"])
def test_an_env_pickled_with_its_in_place_agent_continues_bit_for_bit(env_id, make):
    # in-place agents hold the env's own tensors (or per-seed views of them): pickled together with the env they
    # hold the restored env's tensors, which they go on updating
    env = _env(env_id)
    env.reset(seed=3)
    tx = make()
    state = _env_play(env, tx, tx.init(env.params), BEFORE)
    env2, tx2, state2 = _round_trip((env, tx, state))
    before = {k: v.clone() for k, v in _flat(env2.params).items()}
    _env_play(env, tx, state, AFTER)
    _env_play(env2, tx2, state2, AFTER)
    _assert_same_env(env2, env)
    assert any(not torch.equal(v, before[k]) for k, v in _flat(env2.params).items())


@pytest.mark.parametrize("kwargs", [{"regularizer": "nk"}, {"regularizer": "consensus", "reg_weight": 0.3}],
                         ids=["nk", "consensus"])
def test_an_env_with_a_regularizer_pickles_and_continues_bit_for_bit(kwargs):
    # the gradient field of a regularizer is a closure of the game: rebuilt from the game on unpickling
    env = _env("MoG-Ring-v0", **kwargs)
    env.reset(seed=2)
    tx = agents.as_pair(agents.sgda(1e-2))
    state = _env_play(env, tx, tx.init(env.params), BEFORE)
    env2, state2 = _round_trip((env, state))
    assert (env2.regularizer, env2.reg_weight) == (env.regularizer, env.reg_weight)
    _env_play(env, tx, state, AFTER)
    _env_play(env2, tx, state2, AFTER)
    _assert_same_env(env2, env)


def test_a_compiled_env_pickles_and_its_restored_copy_is_compiled_again():
    env = _env("DiracGAN-v0", compile=True)
    env.reset(seed=0)
    tx = agents.as_pair(agents.sgda(1e-1))
    state = _env_play(env, tx, tx.init(env.params), 2)
    env2, state2 = _round_trip((env, state))
    assert env2.compiled
    _env_play(env, tx, state, 2)
    _env_play(env2, tx, state2, 2)
    _assert_same_env(env2, env)


# --- Gymnasium -------------------------------------------------------------------------------------------
def test_gym_make_env_pickles_before_reset_and_mid_episode_and_continues_bit_for_bit():
    env = gym.make("minmax_envs/DiracGAN-v0")
    fresh = _round_trip(env)
    space = env.action_space
    space.seed(0)
    actions = [space.sample() for _ in range(BEFORE + AFTER)]
    first = [e.reset(seed=5)[0] for e in (env, fresh)]
    np.testing.assert_array_equal(first[0], first[1])
    for a in actions[:BEFORE]:
        env.step(a)
        fresh.step(a)
    restored = _round_trip(env)
    for a in actions[BEFORE:]:
        outs = [e.step(a) for e in (env, restored, fresh)]
        for out in outs[1:]:
            np.testing.assert_array_equal(out[0], outs[0][0])
            assert out[1:4] == outs[0][1:4] and out[4] == outs[0][4]

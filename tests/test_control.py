"""The control core (minmax_envs/step_size_control.py): its configurations, the one step rule every face shares, the
memory of the waiting player in an alternating game, and the chart the faces render."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import minmax_envs
from minmax_envs.charts import chart
from minmax_envs.games._base import PLAYERS
from minmax_envs.gym_env import StepSizeEnv
from minmax_envs.step_size_control import (
    OBS_NAMES,
    OBSERVATION,
    ControlConfig,
    ControlledGame,
    GameConfig,
    StepSizeCore,
    Transition,
    configs,
)
from minmax_envs.vector_env import StepSizeVectorEnv
from tests.helpers import SMALL_KWARGS

ALTERNATING = "Digits-ResNetWGANGP-v0"  # n_critic = 2 in SMALL_KWARGS: D, D, G, D, D, G, ...


def test_configs_are_frozen_validated_and_split_the_flat_keywords():
    game, control = configs("DiracGAN-v0", base="nsgda", base_lr=0.2, horizon=7, dtype=torch.float64,
                            regularizer="nk", init_std=0.5)
    assert game == GameConfig("DiracGAN-v0", dtype=torch.float64, regularizer="nk", game_kwargs={"init_std": 0.5})
    assert control == ControlConfig(base="nsgda", base_lr={"generator": 0.2, "discriminator": 0.2}, horizon=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        control.base = "adam"  # type: ignore[misc]
    assert GameConfig("minmax_envs/DiracGAN-v0").env_id == "DiracGAN-v0"  # canonical id
    for kwargs, match in [({"base": "rmsprop"}, "unknown base 'rmsprop'"), ({"split": "test"}, "unknown split"),
                          ({"base_lr": {"generator": 0.1}}, "base_lr as a dict must have exactly the keys"),
                          ({"horizon": 0}, "horizon"), ({"steps_per_action": 1.5}, "steps_per_action"),
                          ({"log10_range": -1.0}, "log10_range"), ({"divergence_penalty": np.nan}, "divergence_pen")]:
        with pytest.raises(ValueError, match=match):
            ControlConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown environment id"):
        GameConfig("Nope-v0")


def test_every_face_builds_its_configs_from_its_keywords_in_one_place():
    kw = {"base": "nsgda", "base_lr": 0.2, "log10_range": 2.0, "dtype": torch.float64, "regularizer": "nk",
          "init_std": 0.5}
    game, control = configs("DiracGAN-v0", horizon=7, **kw)
    single = StepSizeEnv("DiracGAN-v0", horizon=7, **kw)
    vector = StepSizeVectorEnv(2, "DiracGAN-v0", max_episode_steps=7, **kw)
    assert (single.game, single.control) == (vector.game, vector.control) == (game, control)
    parallel = minmax_envs.parallel_env("DiracGAN-v0", max_cycles=7, **kw)
    assert parallel.game == game  # one game step per env step, nSGDA per tensor by default
    assert parallel.control == dataclasses.replace(control, scope="layer", steps_per_action=1)


def test_the_observation_is_declared_once_and_names_bounds_and_transitions_follow_it():
    assert OBS_NAMES == tuple(name for name, _, _ in OBSERVATION) and len(set(OBS_NAMES)) == len(OBSERVATION)
    core = StepSizeCore(*configs("TwoMode-v0", base_lr=0.3, horizon=4, **SMALL_KWARGS["TwoMode-v0"]), 3)
    space = core.observation_space()
    assert space.shape == (len(OBSERVATION),)
    assert space.low.tolist() == [low for _, low, _ in OBSERVATION]
    assert space.high.tolist() == [high for _, _, high in OBSERVATION]
    first = dict(zip(OBS_NAMES, core.reset([0, 1, 2]).obs[0]))
    tr = core.step(torch.tensor([[0.5, -0.5]] * 3))
    assert isinstance(tr, Transition) and tr.obs.shape == (3, len(OBSERVATION)) and tr.obs.dtype == np.float32
    assert tr.lr.shape == (3, len(PLAYERS)) and tr.game_step.tolist() == [1, 1, 1] and tr.env_steps.tolist() == [1] * 3
    assert tr.terminated.dtype == tr.diverged.dtype == np.bool_ and tr.reward.shape == tr.quality.shape == (3,)
    entry = dict(zip(OBS_NAMES, tr.obs[0]))
    assert entry["progress"] == pytest.approx(0.25)
    assert entry["quality"] == pytest.approx(tr.quality[0], rel=1e-6)
    assert entry["log10_grad_ratio"] == pytest.approx(
        entry["generator/log10_grad_norm"] - entry["discriminator/log10_grad_norm"], abs=1e-5)
    for pl, a in zip(PLAYERS, (0.5, -0.5)):  # sgda: the update is the step size times the gradient observed before
        np.testing.assert_allclose(tr.lr[:, PLAYERS.index(pl)], 0.3 * 10**a)
        assert entry[f"{pl}/log10_update_norm"] == pytest.approx(math.log10(0.3) + a + first[f"{pl}/log10_grad_norm"],
                                                                 abs=1e-5)


def test_the_gymnasium_and_pettingzoo_faces_step_by_the_same_rule():
    """One step size per player (StepSizeEnv) and the same step size for every tensor of that player
    (MinMaxParallelEnv) move the parameters alike."""
    kw = {"base": "nsgda", "momentum": 0.5, "scope": "layer", "base_lr": {"generator": 0.03, "discriminator": 0.05},
          "log10_range": 2.0, "n": 4}
    single = StepSizeEnv("Bilinear-v0", **kw)
    parallel = minmax_envs.parallel_env("Bilinear-v0", **kw)
    single.reset(seed=4)
    parallel.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, 2).astype(np.float32)  # [a_G, a_D]
        single.step(a)
        parallel.step({pl: np.full(parallel.action_space(pl).shape, a[j], dtype=np.float32)
                       for j, pl in enumerate(PLAYERS)})
    for pl in PLAYERS:
        for k, p in single.batched_env.params[pl].items():
            torch.testing.assert_close(parallel.batched_env.params[pl][k], p)


def test_the_waiting_player_shows_its_last_move_in_an_alternating_game():
    core = StepSizeCore(*configs(ALTERNATING, steps_per_action=1, **SMALL_KWARGS[ALTERNATING]), 1)
    g, d = OBS_NAMES.index("generator/log10_grad_norm"), OBS_NAMES.index("discriminator/log10_grad_norm")
    g_loss = OBS_NAMES.index("generator/loss")
    tr = core.reset([0])
    movers = [core.env.movers]
    observations = [tr.obs[0]]
    for _ in range(4):
        tr = core.step(torch.zeros(1, 2))
        movers.append(core.env.movers)
        observations.append(tr.obs[0])
    assert movers[:4] == [("discriminator",), ("discriminator",), ("generator",), ("discriminator",)]
    assert observations[0][g] == observations[0][g_loss] == 0.0  # before the generator's first move: NaN -> 0
    assert observations[2][g] != 0.0  # it is about to move: its gradient is seen
    # while it waits again, it shows the gradient and loss it had when it last moved
    assert observations[3][g] == observations[4][g] == observations[2][g]
    assert observations[3][g_loss] == observations[2][g_loss]
    assert observations[3][d] != observations[2][d]


def test_controlled_game_scales_the_unit_update_per_player_or_per_tensor():
    game, control = configs("TwoMode-v0", base_lr={"generator": 0.1, "discriminator": 0.2}, log10_range=1.0,
                            dtype=torch.float64, d=20, m_d=2, m_g=2)
    core = ControlledGame(game, control, 2)
    obs, _ = core.env.reset(seed=0)
    core.begin(obs)
    names = list(obs["generator"].params)
    lr = {"generator": core.step_sizes(torch.tensor([[1.0] * len(names), [0.0] * len(names)]), "generator"),
          "discriminator": core.step_sizes(torch.tensor([[0.0, -1.0]]), None)[:, 1].expand(2)}
    updates = core.moves(lr)
    for k in names:  # SGDA: the unit update is minus the gradient
        g = obs["generator"].grads[k]
        scale = torch.tensor([1.0, 0.1], dtype=torch.float64).reshape(-1, *[1] * (g.ndim - 1))
        torch.testing.assert_close(updates["generator"][k], -g * scale, rtol=1e-12, atol=0)
    for k, g in obs["discriminator"].grads.items():
        torch.testing.assert_close(updates["discriminator"][k], -0.02 * g, rtol=1e-12, atol=0)


def test_chart_draws_each_series_in_its_color_within_the_image():
    img = chart([(np.array([[0.0], [1.0], [np.nan], [0.5]]), [(0, 200, 0)]),
                 (np.array([[1.0, 2.0], [3.0, 4.0]]), [(0, 0, 200), (200, 0, 0)])], width=64, panel_height=32)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    top, bottom = img[:32], img[32:]
    assert ((top == (0, 200, 0)).all(axis=2)).any() and not ((bottom == (0, 200, 0)).all(axis=2)).any()
    assert ((bottom == (0, 0, 200)).all(axis=2)).any() and ((bottom == (200, 0, 0)).all(axis=2)).any()
    # larger values are drawn higher: the quality rises from step 0 to step 1
    cols = np.flatnonzero(((top == (0, 200, 0)).all(axis=2)).any(axis=0))
    rows_at = [np.flatnonzero((top[:, c] == (0, 200, 0)).all(axis=1)).mean() for c in (cols[0], cols[-1] // 3)]
    assert rows_at[0] > rows_at[1]
    blank = chart([(np.full((3, 1), np.nan), [(0, 0, 0)])], width=16, panel_height=8)
    assert blank.shape == (8, 16, 3) and (blank[:7] == 255).all()


# --- action="balance": the pace ratio and the overall scale ---------------------------------------------------
def _core(action: str, n: int = 3, **kw) -> StepSizeCore:
    kw = {"base": "sgda", "base_lr": {"generator": 0.02, "discriminator": 0.08}, **kw}
    return StepSizeCore(GameConfig("TwoMode-v0", dtype=torch.float64, game_kwargs={"d": 30}),
                        ControlConfig(action=action, **kw), n)


def _update_norms(core: StepSizeCore, before: dict) -> dict[str, torch.Tensor]:
    return {pl: torch.sqrt(sum((core.obs[pl].params[k] - before[pl][k]).pow(2).reshape(len(before[pl][k]), -1).sum(1)
                               for k in before[pl])) for pl in PLAYERS}


def test_balance_action_zero_plays_balanced_updates_at_the_base_step_sizes():
    """Action 0 of ``action="balance"`` is ``agents.balanced(base, b_D / b_G)``: the same episode."""
    core = _core("balance")
    core.reset([5, 6, 7])
    for _ in range(10):
        core.step(torch.zeros(3, 2, dtype=torch.float64))
    env = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=torch.float64, d=30)
    import agents

    minmax_envs.run_episode(env, agents.balanced(agents.pair(agents.sgda(0.02), agents.sgda(0.08)), 4.0),
                            steps=10, seed=5)
    for pl in PLAYERS:
        for k, v in env.params[pl].items():
            torch.testing.assert_close(core.env.params[pl][k], v, rtol=1e-12, atol=1e-15)


def test_balance_actions_set_the_pace_and_the_scale_of_the_updates():
    a = torch.tensor([[0.5, 0.0], [-1.0, 0.3], [0.2, -0.7]], dtype=torch.float64)
    core, plain = _core("balance", log10_range=2.0), _core("balance", log10_range=2.0)
    core.reset([1, 2, 3])
    plain.reset([1, 2, 3])
    for _ in range(3):
        before = {pl: {k: v.clone() for k, v in core.obs[pl].params.items()} for pl in PLAYERS}
        tr = core.step(a)
        plain.step(torch.zeros(3, 2, dtype=torch.float64))
        n = _update_norms(core, before)
        pace = 4.0 * 10 ** (2.0 * a[:, 0])  # b_D / b_G = 4
        torch.testing.assert_close(n["discriminator"] / n["generator"], pace, rtol=1e-9, atol=0)
        assert np.isfinite(tr.lr).all() and (tr.lr > 0).all()
    # the scale multiplies both step sizes: with the pace held, lr_G * lr_D grows by 10 ** (2 R a_scale)
    one = _core("balance", n=1)
    two = _core("balance", n=1)
    one.reset([4])
    two.reset([4])
    t1 = one.step(torch.tensor([[0.3, 0.0]], dtype=torch.float64))
    t2 = two.step(torch.tensor([[0.3, 0.5]], dtype=torch.float64))
    np.testing.assert_allclose(t2.lr / t1.lr, 10 ** 0.5, rtol=1e-12)


def test_balance_action_is_refused_for_an_alternating_game_and_an_unknown_action():
    with pytest.raises(ValueError, match="action='balance' holds both players' updates at a pace"):
        StepSizeEnv(ALTERNATING, action="balance", **SMALL_KWARGS[ALTERNATING])
    with pytest.raises(ValueError, match="unknown action 'pace'; choose one of step_sizes, balance"):
        ControlConfig(action="pace")
    env = StepSizeEnv("DiracGAN-v0", action="balance", base_lr=0.1)  # the Gymnasium face takes it as a keyword
    env.reset(seed=0)
    assert env.step(np.array([0.5, -0.5], dtype=np.float32))[0].shape == (len(OBS_NAMES),)

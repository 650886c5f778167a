"""The two-independent-learner example (baselines/multi_agent_step_sizes.py) on tiny runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines import multi_agent_step_sizes as ma
from minmax_envs.pettingzoo_env import MinMaxParallelEnv

TINY = ["--episodes", "4", "--horizon", "5", "--batch-episodes", "2", "--eval-seeds", "3",
        "--train-seed-start", "10", "--log-every", "2", "--hidden", "8"]


def tiny_args(tmp_path, *extra: str) -> ma.Args:
    return ma.parse(ma.Args, [*TINY, "--out", str(tmp_path), *extra])


@pytest.fixture
def reset_seeds(monkeypatch) -> list[int | None]:
    """Every seed any MinMaxParallelEnv is reset with, in order."""
    seen: list[int | None] = []
    original = MinMaxParallelEnv.reset

    def recording_reset(self, seed=None, options=None):
        seen.append(seed)
        return original(self, seed=seed, options=options)

    monkeypatch.setattr(MinMaxParallelEnv, "reset", recording_reset)
    return seen


def test_tiny_run_trains_saves_and_evaluates(tmp_path, capsys):
    result = ma.main([*TINY, "--out", str(tmp_path)])
    assert set(result["policies"]) == {"generator", "discriminator"}
    assert {p.name for p in tmp_path.iterdir()} == {"generator.pt", "discriminator.pt"}
    for curve in result["curves"].values():
        assert len(curve) == 2 and all(np.isfinite(curve))
    report = result["eval"]
    assert [r["seed"] for r in report["rows"]] == [0, 1, 2] and report["n"] == 3
    assert 0 <= report["improved"] <= 3
    out = capsys.readouterr().out
    assert "median: base" in out and "held-out seeds" in out


def test_both_learners_update_their_own_separate_parameters(tmp_path):
    policies = ma.train(tiny_args(tmp_path))["policies"]
    gen, disc = policies["generator"], policies["discriminator"]
    assert gen is not disc
    gen_ptrs = {p.data_ptr() for p in gen.parameters()}
    assert gen_ptrs.isdisjoint(p.data_ptr() for p in disc.parameters())  # no parameter sharing
    for policy in (gen, disc):  # the output layer starts at zero and log_std at -1: both moved
        assert policy.mean[-1].weight.abs().sum() > 0
        assert not torch.allclose(policy.log_std, torch.full_like(policy.log_std, -1.0))


def test_one_learners_update_leaves_the_other_unchanged(tmp_path):
    args = tiny_args(tmp_path)
    torch.manual_seed(0)
    gen, disc = ma.Learner(4, 1, args), ma.Learner(4, 1, args)
    disc_before = {k: v.clone() for k, v in disc.policy.state_dict().items()}
    gen_before = {k: v.clone() for k, v in gen.policy.state_dict().items()}
    obs = np.array([0.1, -0.5, 0.3, -0.3], dtype=np.float32)
    episodes = []
    for rewards in ([1.0, 0.0, 2.0], [0.0, -1.0, 0.5]):
        logps = [gen.policy.act(obs)[1] for _ in rewards]
        episodes.append((logps, rewards))
    gen.update(episodes)
    assert any(not torch.equal(v, gen_before[k]) for k, v in gen.policy.state_dict().items())
    assert all(torch.equal(v, disc_before[k]) for k, v in disc.policy.state_dict().items())
    assert not np.array_equal(gen.baseline, disc.baseline)


def test_saved_policies_load_back_with_the_same_deterministic_actions(tmp_path):
    args = tiny_args(tmp_path)
    policies = ma.train(args)["policies"]
    paths = ma.save(policies, args)
    rng = np.random.default_rng(0)
    for agent, path in paths.items():
        loaded, loaded_args = ma.load(path)
        assert loaded_args == args
        for _ in range(5):
            obs = rng.normal(size=4).astype(np.float32)
            a, _ = policies[agent].act(obs, deterministic=True)
            b, _ = loaded.act(obs, deterministic=True)
            np.testing.assert_array_equal(a, b)
            assert a.shape == (1,) and np.all(np.abs(a) <= 1)


def test_training_and_evaluation_seeds_are_disjoint(tmp_path, reset_seeds):
    args = tiny_args(tmp_path)
    result = ma.train(args)
    train_seen = list(reset_seeds)
    reset_seeds.clear()
    ma.evaluate(result["policies"], args)
    assert train_seen == result["train_seeds"] == [10, 11, 12, 13]
    assert sorted(reset_seeds) == [0, 0, 1, 1, 2, 2]  # each held-out seed: learned policies, then base
    assert set(result["train_seeds"]).isdisjoint(range(args.eval_seeds))


def test_overlapping_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="overlaps the evaluation seeds"):
        ma.train(tiny_args(tmp_path, "--train-seed-start", "2"))


def test_untrained_policies_evaluate_exactly_as_the_base_step_size(tmp_path):
    args = tiny_args(tmp_path)
    torch.manual_seed(0)
    fresh = {a: ma.Policy(4, 1, args.hidden) for a in ("generator", "discriminator")}  # mean action tanh(0) = 0
    report = ma.evaluate(fresh, args)
    assert all(r["learned"] == r["base"] for r in report["rows"])
    assert report["improved"] == 0 and report["median_learned"] == report["median_base"]


def test_help_and_bad_arguments_exit_cleanly(capsys):
    with pytest.raises(SystemExit) as e:
        ma.main(["--help"])
    assert e.value.code == 0 and "--train-seed-start" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        ma.main(["--episodes", "many"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        ma.main(["--no-such-flag", "1"])
    assert e.value.code == 2

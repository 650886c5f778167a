"""Instance families: deterministic, disjoint train and test sets that key every record; per-seed game arguments that
give a seed the same episode alone or in a batch; the faces and the protocol playing a family's instances."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

import agents
import minmax_envs
from minmax_envs.evaluation import ResultStore, Suite, Task, bench, get_suite, report
from minmax_envs.evaluation.agent_names import make_agent
from minmax_envs.evaluation.protocol import Unit, run_unit
from minmax_envs.families import Family, Param, get_family, list_families
from minmax_envs.step_size_control import ControlConfig, GameConfig, StepSizeCore
from minmax_envs.vector_env import StepSizeVectorEnv

SMALL_TWO_MODE = Family("t-two-mode", "TwoMode-v0",
                        (Param("gamma", "uniform", 0.1, 0.4, per_seed=True),
                         Param("case", "choice", choices=("correlated_modes", "correlated_coefficients")),
                         Param("m_g", "choice", choices=(2, 3))),
                        {"d": 30, "m_d": 3}, train=8, test=8, group=4, seed=3)


def _key(instance: dict) -> tuple:
    return tuple(sorted(instance.items()))


# --- instance sets ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list_families())
def test_registered_families_have_disjoint_deterministic_splits_of_the_declared_sizes(name):
    family = get_family(name)
    train, test = family.instances("train"), family.instances("test")
    assert len(train) == family.train and len(test) == family.test
    assert not {_key(x) for x in train} & {_key(x) for x in test}
    again = Family.from_dict(family.to_dict())  # rebuilt from its definition: the same instances, the same digest
    assert again == family and again.instances("train") == train and again.instances("test") == test
    assert again.digest == family.digest
    for split, instances in (("train", train), ("test", test)):
        span = family.span(split)
        for g in range(len(instances) // span):  # a group shares the values drawn per batch
            members = instances[g * span:(g + 1) * span]
            assert len({_key({p.name: x[p.name] for p in family.batch_params}) for x in members}) == 1
        for x in instances:  # every value within its distribution
            for p in family.params:
                v = x[p.name]
                assert v in p.choices if p.distribution == "choice" else p.low <= v <= p.high, (p, v)
    if family.seed_params:  # per-seed values vary within a group
        assert len({train[i][family.seed_params[0].name] for i in range(family.span("train"))}) > 1


def test_instance_i_is_a_function_of_the_family_its_split_and_i_alone():
    small = SMALL_TWO_MODE
    bigger = Family.from_dict({**small.to_dict(), "train": 16, "test": 12})
    assert bigger.instances("train")[:8] == small.instances("train")
    assert bigger.instances("test")[:8] == small.instances("test")
    reseeded = Family.from_dict({**small.to_dict(), "seed": 4})
    assert reseeded.instances("train") != small.instances("train")
    assert reseeded.digest != small.digest
    assert Family.from_dict({**small.to_dict(), "description": "another text"}).digest == small.digest


def test_a_test_instance_equal_to_a_train_instance_is_drawn_again_and_a_too_small_space_is_refused():
    # six sizes, two train groups: the test groups avoid the train sizes
    family = Family("sizes", "Bilinear-v0", (Param("n", "choice", choices=(3, 4, 5, 6, 7, 8)),), train=4, test=4,
                    group=2, seed=0)
    train_sizes = {x["n"] for x in family.instances("train")}
    assert train_sizes and not train_sizes & {x["n"] for x in family.instances("test")}
    with pytest.raises(ValueError, match="family 'one': cannot draw 2 test instances that differ from every train"):
        Family("one", "Bilinear-v0", (Param("n", "choice", choices=(3,)),), train=2, test=2, group=1)


def test_seeds_play_instance_seed_mod_n_and_a_batch_plays_the_group_of_its_first_seed():
    f = SMALL_TWO_MODE
    test = f.instances("test")
    assert f.instance("test", 13) == test[13 % 8]
    assert f.runs("test", 2, 8) == [(2, 2), (4, 4), (8, 2)]  # groups of 4: instances 2-3, 4-7, 0-1
    assert f.slots("test", [2, 3, 4, 5]) == [2, 3, 0, 1]  # the group of seed 2: members seed mod 4
    args = f.arguments("test", range(4, 8))
    assert args["gamma"] == [x["gamma"] for x in test[4:8]] and args["case"] == test[4]["case"]
    assert args["d"] == 30 and args["m_d"] == 3


# --- per-seed arguments: one seed's episode alone or in a batch ------------------------------------------------------

def _final(family: Family, split: str, start: int, count: int, steps: int = 15) -> dict[str, torch.Tensor]:
    env = minmax_envs.make(family.env_id, num_seeds=count, dtype=torch.float64,
                           **family.arguments(split, range(start, start + count)))
    result = minmax_envs.run_episode(env, agents.sgda(0.05), steps=steps, seed=start)
    return result.metrics


@pytest.mark.parametrize("name", ["two-mode-small", "dirac-r1", "dirac-wgan", "bilinear-cond", "mog-ring-small"])
def test_a_seed_plays_the_same_episode_alone_or_in_a_batch_of_other_instances(name):
    family = get_family(name)
    (start, count), *_ = family.runs("train", 0, family.span("train"))
    count = min(count, 4)
    batch = _final(family, "train", start, count, steps=5 if name == "mog-ring-small" else 15)
    for i in range(count):
        alone = _final(family, "train", start + i, 1, steps=5 if name == "mog-ring-small" else 15)
        for k, v in batch.items():
            torch.testing.assert_close(v[i], alone[k][0], rtol=1e-9, atol=1e-12, equal_nan=True, msg=f"{k} slot {i}")
    # and the instances differ: the per-seed values reach the game
    metric = minmax_envs.spec(family.env_id).game_class().quality_metric
    if name != "mog-ring-small":  # too few steps to cover any mode
        assert len(set(batch[metric].tolist())) > 1


def test_per_seed_arguments_follow_restarted_slots_and_survive_a_checkpoint():
    env = minmax_envs.make("DiracGAN-v0", num_seeds=3, loss="gan", penalty="r1", penalty_weight=[0.5, 1.0, 2.0])
    env.reset(seed=0)
    env.game.set_per_seed(penalty_weight=[9.0, 3.0, 9.0])
    env.reset_where(torch.tensor([False, True, False]), torch.tensor([0, 7, 0]))
    assert env.state_dict()["instance"]["penalty_weight"].tolist() == [0.5, 3.0, 2.0]
    again = minmax_envs.make("DiracGAN-v0", num_seeds=3, loss="gan", penalty="r1", penalty_weight=[1.0, 1.0, 1.0])
    again.load_state_dict(env.state_dict())
    step = {"generator": {"theta": torch.zeros(3)}, "discriminator": {"psi": torch.zeros(3)}}
    for e in (env, again):
        e.step(step)
    torch.testing.assert_close(again.observation["discriminator"].grads["psi"],
                               env.observation["discriminator"].grads["psi"])
    with pytest.raises(ValueError, match=r"penalty_weight\[1\] must be a finite number in \[0, inf\), got -1"):
        env.game.set_per_seed(penalty_weight=[1.0, -1, 1.0])
    with pytest.raises(ValueError, match="'theta0' was not given per seed when the game was made"):
        env.game.set_per_seed(theta0=[1.0, 1.0, 1.0])


def test_numbers_and_per_seed_values_that_are_all_equal_play_the_same_game():
    plain = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=torch.float64, d=30, m_d=3, m_g=3, gamma=0.25)
    per_seed = minmax_envs.make("TwoMode-v0", num_seeds=3, dtype=torch.float64, d=30, m_d=3, m_g=3,
                                gamma=[0.25] * 3)
    a = minmax_envs.run_episode(plain, agents.nsgda(0.05), steps=10, seed=1).metrics
    b = minmax_envs.run_episode(per_seed, agents.nsgda(0.05), steps=10, seed=1).metrics
    for k in a:
        torch.testing.assert_close(a[k], b[k], equal_nan=True)
    assert per_seed.make_kwargs["gamma"] == [0.25] * 3  # JSON-able: make(**make_kwargs) makes it again
    assert minmax_envs.make(**per_seed.make_kwargs).game.seed_args["gamma"].tolist() == [0.25] * 3


# --- the faces -------------------------------------------------------------------------------------------------------

def _seed_values(batched_env) -> dict[str, list[float]]:
    return {k: v.tolist() for k, v in batched_env.game.seed_args.items()}


@pytest.mark.parametrize("family", ["two-mode-small", get_family("dirac-r1")])
def test_the_gymnasium_env_plays_the_instance_of_its_seed_from_the_chosen_split(family):
    f = get_family(family) if isinstance(family, str) else family
    for split, part in (("train", "train"), ("eval", "test")):
        env = gymnasium.make(f"minmax_envs/{f.env_id}", family=family, split=split)
        for seed in (3, 21):
            env.reset(seed=seed)
            game = env.unwrapped.batched_env.game
            want = f.instance(part, seed)
            assert {p.name: [want[p.name]] for p in f.seed_params} == _seed_values(env.unwrapped.batched_env)
            for p in f.batch_params:
                assert getattr(game, p.name) == want[p.name]
        env.reset()  # a drawn seed of the split's range plays its instance of the family's split
        drawn = int(env.unwrapped.batched_env.seeds[0])
        want = f.instance(part, drawn)
        assert {p.name: [want[p.name]] for p in f.seed_params} == _seed_values(env.unwrapped.batched_env)
        env.step(np.zeros(2, dtype=np.float32))


def test_the_vector_env_restarts_sub_envs_on_their_seeds_members_of_the_batchs_group():
    f = get_family("two-mode-small")
    env = StepSizeVectorEnv(6, "TwoMode-v0", family="two-mode-small", split="eval", max_episode_steps=2)
    env.reset(seed=4)
    test = f.instances("test")
    assert _seed_values(env.batched_env)["gamma"] == [test[i]["gamma"] for i in f.slots("test", range(4, 10))]
    group = f.index("test", 4) // f.span("test")
    for _ in range(6):  # two autoresets of every sub-env
        env.step(np.zeros((6, 2), dtype=np.float32))
        seeds = env.batched_env.seeds.tolist()
        members = [group * f.span("test") + s % f.span("test") for s in seeds]
        assert env.batched_env.state_dict()["instance"]["gamma"].tolist() == [test[m]["gamma"] for m in members]
        assert env.batched_env.game.m_d == test[members[0]]["m_d"]


def test_the_trainers_core_plays_train_instances_only_and_draws_a_group_per_batch():
    f = get_family("two-mode-small")
    core = StepSizeCore(GameConfig("TwoMode-v0", family="two-mode-small"), ControlConfig(split="train"), 4)
    train = {_key(x) for x in f.instances("train")}
    rng = np.random.default_rng(0)
    groups = set()
    for _ in range(6):
        seeds = [core.draw_seed(rng) for _ in range(4)]
        core.reset(seeds)
        game = core.env.game
        played = [{"gamma": g, "case": game.case, "m_d": game.m_d, "m_g": game.m_g}
                  for g in core.env.state_dict()["instance"]["gamma"].tolist()]
        assert all(_key(x) in train for x in played)
        groups.add((game.case, game.m_d, game.m_g))
    assert len(groups) > 1  # new per-batch arguments at full resets: a new game


def test_the_pettingzoo_env_takes_a_family_and_refuses_one_that_changes_its_action_shapes():
    f = get_family("dirac-r1")
    env = minmax_envs.parallel_env("DiracGAN-v0", family="dirac-r1", split="eval")
    for seed in (0, 9):
        env.reset(seed=seed)
        assert env.env.game.seed_args["penalty_weight"].tolist() == [f.instance("test", seed)["penalty_weight"]]
        assert env.env.game.loss == f.instance("test", seed)["loss"]
    with pytest.raises(ValueError, match=r"action_mode='update' needs fixed parameter shapes; family 'bilinear-cond' "
                                         r"draws \['n'\] per batch"):
        minmax_envs.parallel_env("Bilinear-v0", family="bilinear-cond", action_mode="update")


# --- suites and the protocol -----------------------------------------------------------------------------------------

FAMILY_TASK = Task("tm", "TwoMode-v0", 20, 10, "mode_alignment", True, 2.0, {}, "modes_recovered",
                   (0.01, 0.1), (0.5,), family=SMALL_TWO_MODE)
SUITE = Suite("fam", 1, (FAMILY_TASK,), budget=2, tune_seeds=4, eval_seeds=8, agents=("sgda", "nsgda"))


def test_the_family_is_part_of_the_suite_definition_and_of_every_record_key():
    assert Suite.from_dict(SUITE.to_dict()) == SUITE
    assert SUITE.to_dict()["tasks"][0]["family"] == SMALL_TWO_MODE.to_dict()
    unit = Unit("fam", 1, FAMILY_TASK, "sgda", {"lr_d": 0.1, "lr_g": 0.05}, 0, "eval", (0,), 8)
    assert unit.identity(0)["family"] == {"name": "t-two-mode", "digest": SMALL_TWO_MODE.digest, "split": "test"}
    tune = Unit("fam", 1, FAMILY_TASK, "sgda", {"lr_d": 0.1, "lr_g": 0.05}, 0, "tune", (10_000,), 4)
    assert tune.identity(10_000)["family"]["split"] == "train"
    other = Family.from_dict({**SMALL_TWO_MODE.to_dict(), "seed": 9})
    moved = Unit("fam", 1, Task(**{**FAMILY_TASK.__dict__, "family": other}), "sgda", unit.config, 0, "eval", (0,), 8)
    assert moved.key(0) != unit.key(0)
    plain = Unit("quick", 1, get_suite("quick").task("bilinear"), "sgda", unit.config, 0, "eval", (0,), 16)
    assert "family" not in plain.identity(0)  # tasks without a family keep the keys they had
    assert "family" not in get_suite("quick").to_dict()["tasks"][0]


def test_the_protocol_tunes_on_train_instances_and_judges_every_agent_on_the_same_test_instances(tmp_path):
    summary = bench(SUITE, out=tmp_path, progress=False)
    assert summary.failed == 0
    records = list(ResultStore(tmp_path).records())
    evals = [r for r in records if r["phase"] == "eval"]
    assert {r["agent"] for r in evals} == {"sgda", "nsgda"} and len(evals) == 16
    for r in records:
        split = "train" if r["phase"] == "tune" else "test"
        assert r["family"] == SMALL_TWO_MODE.key(split)
        assert r["instance"] == SMALL_TWO_MODE.instance(split, r["seed"])
    by_seed = {}
    for r in evals:
        by_seed.setdefault(r["seed"], []).append(r["instance"])
    assert all(a == b for a, b in by_seed.values()) and len(by_seed) == 8
    # a record is the episode of its seed on its instance: what a batch of one plays with that instance's arguments
    for r in [r for r in evals if r["agent"] == "nsgda"]:
        env = minmax_envs.make("TwoMode-v0", num_seeds=1, **SMALL_TWO_MODE.arguments("test", [r["seed"]]))
        direct = minmax_envs.run_episode(env, make_agent("nsgda", r["config"]["lr_d"], r["config"]["lr_g"]),
                                         steps=20, seed=r["seed"]).metrics
        assert direct["mode_alignment"].item() == pytest.approx(r["final"]["mode_alignment"], abs=1e-5)
    # and the same when it is requested alone
    alone = run_unit(Unit("fam", 1, FAMILY_TASK, evals[0]["agent"], evals[0]["config"], evals[0]["config_index"],
                          "eval", (5,), 8))
    (stored,) = [r for r in evals if r["agent"] == evals[0]["agent"] and r["seed"] == 5]
    assert alone[0]["key"] == stored["key"] and alone[0]["final"] == stored["final"]
    # the leaderboard says which family the task played
    assert (f"Instance family `t-two-mode` (digest `{SMALL_TWO_MODE.digest}`): tuning on its train instances, "
            "held-out seeds on its test instances.") in report(tmp_path, plots=False)


def test_the_families_suite_plays_the_quick_suites_tasks_on_families():
    suite = get_suite("families")
    quick = {t.name for t in get_suite("quick").tasks}
    assert quick <= {t.name for t in suite.tasks}
    for task in suite.tasks:
        assert task.family is not None and task.family.name in list_families()
        env = minmax_envs.make(task.env_id, num_seeds=2, **Unit(
            "families", 1, task, "sgda", {"lr_d": 0.1, "lr_g": 0.1}, 0, "eval", (0,), 2).env_kwargs(0, 2))
        env.reset(seed=0)
        metrics = env.metrics()
        assert task.metric in metrics and task.success_metric in metrics

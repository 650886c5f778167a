import dataclasses
import json

import pytest
import torch

import minmax_envs
from minmax_envs.games.dirac import DiracGAN, DiracGANConfig
from minmax_envs.games.mog import MixtureOfGaussiansConfig
from minmax_envs.games.two_mode import TwoModeConfig
from tests.helpers import SMALL_KWARGS, small_env


def test_every_registered_env_has_small_test_arguments():
    assert sorted(SMALL_KWARGS) == minmax_envs.list_envs()


def test_list_envs_names_the_games_of_the_papers():
    assert {"TwoMode-v0", "DiracGAN-v0", "Bilinear-v0", "MoG-Ring-v0", "MoG-Grid-v0"} <= set(minmax_envs.list_envs())


def test_unknown_id_names_the_registered_ones():
    with pytest.raises(ValueError) as e:
        minmax_envs.make("NoSuchGame-v0")
    for env_id in minmax_envs.list_envs():
        assert env_id in str(e.value)


def test_namespace_prefix_is_accepted():
    env = minmax_envs.make("minmax_envs/DiracGAN-v0")
    assert env.env_id == "DiracGAN-v0"


def test_unknown_game_argument_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unexpected keyword argument 'lr'; allowed: loss"):
        minmax_envs.make("DiracGAN-v0", lr=0.1)


def test_unknown_keywords_are_a_type_error_worded_as_pythons():
    """Python's wording for an unknown keyword (what TorchRL's GymEnv recognizes to drop an optional one), as a
    TypeError that is also the suite's ValueError for a bad argument."""
    with pytest.raises(TypeError, match=r"^DiracGAN-v0 got an unexpected keyword argument 'frameskip'; allowed: "):
        minmax_envs.make("DiracGAN-v0", frameskip=4)
    with pytest.raises(TypeError, match=r"got unexpected keyword arguments 'a', 'b'; allowed: loss"):
        minmax_envs.make("DiracGAN-v0", b=1, a=2)
    with pytest.raises(ValueError, match=r"dtype") as bad_value:  # a bad value stays a plain ValueError
        minmax_envs.make("DiracGAN-v0", dtype="float16")
    assert not isinstance(bad_value.value, TypeError)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_seeds": 0}, "num_seeds"), ({"num_seeds": 2.5}, "num_seeds"), ({"dtype": torch.int32}, "dtype"),
    ({"dtype": "float16"}, "dtype"), ({"device": "nonsense"}, "device"), ({"max_steps": 0}, "max_steps"),
    ({"divergence_threshold": -1.0}, "divergence_threshold"), ({"regularizer": "l2"}, "regularizer"),
    ({"regularizer": "nk", "reg_weight": -1.0}, "reg_weight"), ({"reg_weight": 1.0}, "reg_weight"),
])
def test_bad_make_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        minmax_envs.make("DiracGAN-v0", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is absent")
def test_cuda_without_gpu_says_so():
    with pytest.raises(ValueError, match="CUDA is not available"):
        minmax_envs.make("DiracGAN-v0", device="cuda")


def test_dtype_names_are_accepted():
    assert minmax_envs.make("DiracGAN-v0", dtype="float64").dtype == torch.float64


#: the keys of ``env.make_kwargs`` that are make()'s own, before the game's config
ENV_KEYS = ["env_id", "num_seeds", "device", "dtype", "regularizer", "reg_weight", "max_steps", "divergence_threshold",
            "compile", "update", "n_critic"]


def test_make_builds_the_game_config_from_the_registry_defaults_and_the_keywords():
    env = minmax_envs.make("MoG-Grid-v0", hidden=8, loss="wgan-gp")
    assert env.game.config == MixtureOfGaussiansConfig(layout="grid", hidden=8, loss="wgan-gp")
    assert env.game.gp_weight == 0.1 and env.game.std == 0.05  # defaults that depend on other fields, resolved
    assert env.game.config.gp_weight is None  # the config keeps what was given


@pytest.mark.parametrize("env_id", ["DiracGAN-v0", "TwoMode-v0", "MoG-Ring-v0", "Digits-ResNetWGANGP-v0"])
def test_make_kwargs_are_the_env_arguments_then_the_game_config_as_a_dict(env_id):
    env = small_env(env_id)
    kw = env.make_kwargs
    config = dataclasses.asdict(env.game.config)
    assert list(kw) == ENV_KEYS + sorted(config)
    assert {k: kw[k] for k in config} == json.loads(json.dumps(config))
    assert (kw["update"], kw["n_critic"]) == (env.game.schedule.update, env.game.schedule.n_critic)
    again = minmax_envs.make(**kw)
    assert again.game.config == env.game.config and again.game.schedule == env.game.schedule


def test_a_game_takes_its_config_whole_and_the_config_is_frozen_and_validated():
    game = DiracGAN(DiracGANConfig(loss="wgan"), num_seeds=2)
    assert game.loss == "wgan" and game.num_seeds == 2 and game.cycle == 1
    with pytest.raises(TypeError, match=r"DiracGAN takes its settings as a DiracGANConfig \(DiracGAN.Config"):
        DiracGAN(TwoModeConfig())
    with pytest.raises(dataclasses.FrozenInstanceError):
        game.config.loss = "gan"
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        DiracGANConfig(loss="hinge")
    with pytest.raises(ValueError, match=r"gamma must be .* \(the default 1/log\(d\) for d=2\); pass gamma"):
        TwoModeConfig(d=2)
    assert DiracGAN.Config is DiracGANConfig and TwoModeConfig(d=100, gamma=0.1).resolved().trunc == 100 ** 0.2


def test_a_config_holds_per_seed_values_as_floats_and_the_game_checks_their_count():
    config = DiracGANConfig(penalty="r1", penalty_weight=torch.tensor([0.5, 2.0]), theta0=[1, 3])
    assert config.penalty_weight == (0.5, 2.0) and config.theta0 == (1.0, 3.0) and config.psi0 == 1.0
    assert hash(config) == hash(DiracGANConfig(penalty="r1", penalty_weight=(0.5, 2.0), theta0=(1.0, 3.0)))
    game = DiracGAN(config, num_seeds=2)
    assert game.seed_args["theta0"].tolist() == [1.0, 3.0] and game.theta0 is game.seed_args["theta0"]
    with pytest.raises(ValueError, match=r"penalty_weight\[1\] must be a finite number in \[0, inf\), got -1"):
        DiracGANConfig(penalty_weight=[1.0, -1])
    with pytest.raises(ValueError, match=r"penalty_weight per seed must have one value per seed \(num_seeds=3\)"):
        DiracGAN(config, num_seeds=3)
    with pytest.raises(ValueError, match=r"num_modes applies to layout='ring' only .* got num_modes=5"):
        MixtureOfGaussiansConfig(layout="grid", num_modes=5)
    assert minmax_envs.make("MoG-Ring-v0", num_modes=5, **SMALL_KWARGS["MoG-Ring-v0"]).game.num_modes == 5

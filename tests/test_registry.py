import pytest
import torch

import minmax_envs
from tests.conftest import SMALL_KWARGS


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

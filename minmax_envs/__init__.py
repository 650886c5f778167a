"""minmax_envs: GAN training as two-player environments.

Every GAN setup of the papers is a game whose two players (generator, discriminator) each minimize
their own loss; optimizers are agents (see the ``agents`` package) acting on gradient observations.
"""

from minmax_envs import _agents_check  # noqa: F401  (first: stops unless `agents` is this project's)
from minmax_envs._alloc import tune_cpu_allocator
from minmax_envs._gym_registration import register_gymnasium_envs
from minmax_envs.env import BatchedEnv, Observation, PlayerObservation
from minmax_envs.episode import EpisodeResult, run_episode
from minmax_envs.games._base import Game
from minmax_envs.pettingzoo_env import parallel_env
from minmax_envs.registry import EnvSpec, list_envs, make, make_game, register, spec
from minmax_envs.types import PLAYERS

__version__ = "0.1.0"

__all__ = [
    "PLAYERS",
    "BatchedEnv",
    "EnvSpec",
    "EpisodeResult",
    "Game",
    "Observation",
    "PlayerObservation",
    "list_envs",
    "make",
    "make_game",
    "parallel_env",
    "register",
    "register_gymnasium_envs",
    "run_episode",
    "spec",
    "tune_cpu_allocator",
]

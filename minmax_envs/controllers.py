"""Learned step-size controllers as agents of the evaluation: a saved policy drives both players' step sizes.

A controller is a stable-baselines3 policy trained on the step-size control env
(:class:`~minmax_envs.gym_env.StepSizeEnv`, e.g. by ``baselines/train_controller.py``), saved as
``NAME.zip`` with ``NAME.json`` next to it: the control settings it was trained with (base direction
agent, momentum, scope, ``log10_range``, ``steps_per_action``, the game it was trained on). In a suite it
is the agent ``learned:PATH``: the protocol's step sizes ``(lr_d, lr_g)`` are its base step sizes, around
which it acts, and its episode runs every seed of a batch at once through
:class:`~minmax_envs.gym_env.StepSizeCore` (one policy call per action for the whole batch).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from minmax_envs.episode import EpisodeResult
from minmax_envs.gym_env import StepSizeCore

SB3_ALGORITHMS = ("PPO", "A2C", "SAC", "TD3", "DDPG")


@dataclass(frozen=True)
class ControllerConfig:
    """How a controller acts: the step-size control settings it was trained with (see ``StepSizeEnv``)."""

    algorithm: str = "PPO"
    base: str = "sgda"
    momentum: float = 0.0
    scope: str = "global"
    log10_range: float = 1.0
    steps_per_action: int | None = None
    trained_on: dict[str, Any] = field(default_factory=dict)  # env id, arguments, base_lr, horizon, timesteps


def sidecar(path: str | os.PathLike) -> Path:
    """The ``.json`` settings file of a controller ``.zip``."""
    return Path(path).with_suffix(".json")


def save_controller(model: Any, config: ControllerConfig, path: str | os.PathLike) -> Path:
    """Save an SB3 ``model`` and its settings: ``path`` (``.zip``) and its ``.json`` sidecar."""
    path = Path(path).with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    sidecar(path).write_text(json.dumps(asdict(config), indent=1))
    return path


@dataclass
class LearnedController:
    """A loaded controller with the base step sizes it acts around."""

    path: Path
    model: Any
    config: ControllerConfig
    lr_d: float
    lr_g: float
    last_env: Any = None  # the batched env of the last run (its final parameters)

    @classmethod
    def load(cls, path: str | os.PathLike, lr_d: float = 1.0, lr_g: float = 1.0) -> LearnedController:
        """Load ``path`` (a ``.zip`` saved by :func:`save_controller`); a ``ValueError`` says what is missing."""
        zip_path, config = check_controller(path)
        import stable_baselines3

        try:
            model = getattr(stable_baselines3, config.algorithm).load(str(zip_path), device="cpu")
        except Exception as e:  # noqa: BLE001 - any failure to read the file is a bad controller file
            raise ValueError(f"controller {str(zip_path)!r} could not be loaded by stable-baselines3 "
                             f"{config.algorithm}: {type(e).__name__}: {e}") from None
        return cls(zip_path, model, config, float(lr_d), float(lr_g))

    def run(self, env_id: str, steps: int, seed: int, count: int, eval_every: int | None = None,
            device: Any = "cpu", **env_kwargs: Any) -> EpisodeResult:
        """Play ``steps`` actions on ``count`` seeds ``seed, seed + 1, ...`` of ``env_id`` as one batch, the
        policy acting deterministically; metrics every ``eval_every`` actions, as :func:`run_episode` records
        them (an action is one update cycle of the game unless the controller says otherwise)."""
        c = self.config
        core = StepSizeCore(env_id, count, base=c.base, momentum=c.momentum, scope=c.scope,
                            base_lr={"discriminator": self.lr_d, "generator": self.lr_g}, log10_range=c.log10_range,
                            steps_per_action=c.steps_per_action, horizon=steps, device=device, **env_kwargs)
        expected = self.model.observation_space.shape
        if expected != core.observation_space().shape:
            raise ValueError(f"controller {str(self.path)!r} expects observations of shape {expected}, the "
                             f"step-size env gives {core.observation_space().shape}")
        env = core.env
        tr = core.reset(range(seed, seed + count))
        trajectory = [(0, env.metrics())] if eval_every else []
        for t in range(1, steps + 1):
            action, _ = self.model.predict(tr.obs, deterministic=True)
            tr = core.step(torch.as_tensor(action, device=env.device).clamp(-1.0, 1.0))
            if eval_every and t % eval_every == 0:
                trajectory.append((t, env.metrics()))
        final = trajectory[-1][1] if trajectory and trajectory[-1][0] == steps else env.metrics()
        self.last_env = env
        return EpisodeResult(metrics=final, steps=steps, divergence_step=env._divergence_step.clone(),
                             evaluations=core.steps_per_action, trajectory=trajectory)


def check_controller(path: str | os.PathLike) -> tuple[Path, ControllerConfig]:
    """The ``.zip`` path and settings of a saved controller, or a ``ValueError`` naming what is wrong."""
    zip_path = Path(path)
    if zip_path.suffix != ".zip":
        zip_path = zip_path.with_suffix(".zip")
    if not zip_path.is_file():
        raise ValueError(f"controller file {str(zip_path)!r} does not exist; expected a .zip saved by "
                         "baselines/train_controller.py (or save_controller) with its .json next to it")
    meta = sidecar(zip_path)
    if not meta.is_file():
        raise ValueError(f"controller {str(zip_path)!r} has no settings file {str(meta)!r} next to it")
    try:
        config = ControllerConfig(**json.loads(meta.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"controller settings {str(meta)!r} are not valid: {e}") from None
    if config.algorithm not in SB3_ALGORITHMS:
        raise ValueError(f"controller {str(zip_path)!r}: unknown algorithm {config.algorithm!r}; "
                         f"choose one of {', '.join(SB3_ALGORITHMS)}")
    return zip_path, config

"""Run a whole episode of a batched env with a pair of agents: the fast path of evaluations."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from agents import GradientTransformation
from minmax_envs._checks import check_int
from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import PLAYERS


@dataclass
class EpisodeResult:
    """What an episode produced.

    Attributes:
        metrics: per-seed final metrics (``env.metrics()`` after the last step), tensors with a leading
            seed dimension; ``metrics["diverged"]`` is 1.0 for diverged seeds.
        steps: the number of steps run.
        divergence_step: per seed, the step at which it diverged (-1 if it did not).
        trajectory: ``(step, metrics)`` pairs every ``eval_every`` steps (step 0 included), if asked for.
    """

    metrics: dict[str, torch.Tensor]
    steps: int
    divergence_step: torch.Tensor
    trajectory: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)

    @property
    def diverged(self) -> torch.Tensor:
        return self.divergence_step >= 0


def _agent_pair(agents) -> dict[str, GradientTransformation]:
    if isinstance(agents, GradientTransformation):
        return {pl: agents for pl in PLAYERS}
    if isinstance(agents, dict) and set(agents) == set(PLAYERS) and all(
            isinstance(a, GradientTransformation) for a in agents.values()):
        return dict(agents)
    raise TypeError("agents must be a GradientTransformation (used by both players) or a dict "
                    f"{{'generator': tx, 'discriminator': tx}} of them, got {agents!r}")


def run_episode(env: BatchedEnv, agents, steps: int, seed: int | None = None,
                eval_every: int | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and let each player's agent act for ``steps`` simultaneous steps.

    Each agent sees only its own player's gradients and parameters. A seed that diverges — including
    through a non-finite update from its agent — is terminated and recorded, never raised: a sweep
    always finishes. Metrics are computed only at the evaluation points (every ``eval_every`` steps and
    at the end), so the loop does no host-device synchronisation in between.
    """
    check_int("steps", steps, low=0)
    check_int("eval_every", eval_every, allow_none=True)
    pair = _agent_pair(agents)
    obs, _ = env.reset(seed=seed)
    states = {pl: pair[pl].init(obs[pl].params) for pl in PLAYERS}
    trajectory = [(0, env.metrics())] if eval_every else []
    for t in range(1, steps + 1):
        updates = {}
        for pl in PLAYERS:
            updates[pl], states[pl] = pair[pl].update(obs[pl].grads, states[pl], obs[pl].params)
        obs, _, _, _, info = env._step(updates, check_values=False)
        if eval_every and t % eval_every == 0:
            trajectory.append((t, env.metrics()))
    final = trajectory[-1][1] if trajectory and trajectory[-1][0] == steps else env.metrics()
    return EpisodeResult(metrics=final, steps=steps, divergence_step=env._divergence_step.clone(),
                         trajectory=trajectory)

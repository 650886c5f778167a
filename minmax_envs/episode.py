"""Run a whole episode of a batched env with a pair of agents: the fast path of evaluations."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from agents import as_pair, gradient_ratio, graft_magnitude_ratios, sum_of_norms, update_norms
from minmax_envs._checks import check_int
from minmax_envs.env import BatchedEnv
from minmax_envs.games._base import PLAYERS


@dataclass
class EpisodeResult:
    """What an episode produced.

    Attributes:
        metrics: per-seed final metrics (``env.metrics()`` after the last iteration), tensors with a
            leading seed dimension; ``metrics["diverged"]`` is 1.0 for diverged seeds.
        steps: the number of iterations run.
        evaluations: gradient evaluations (env steps) per iteration: 2 for extragradient, else 1.
        divergence_step: per seed, the env step at which it diverged (-1 if it did not).
        trajectory: ``(iteration, metrics)`` pairs every ``eval_every`` iterations (0 included), if asked for.
        diagnostics: per-iteration diagnostics, each a tensor ``(K, N)`` over the ``K`` recorded iterations
            ``diagnostic_steps`` (see :func:`run_episode`).
    """

    metrics: dict[str, torch.Tensor]
    steps: int
    divergence_step: torch.Tensor
    evaluations: int = 1
    trajectory: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    diagnostic_steps: list[int] = field(default_factory=list)

    @property
    def diverged(self) -> torch.Tensor:
        return self.divergence_step >= 0


def _diagnostics(before: dict, after: dict, grads: dict, states: dict, initial_grad_norms: dict):
    out = {"game/grad_ratio": gradient_ratio(grads, initial_grad_norms)}
    for pl in PLAYERS:
        moved = {k: after[pl][k] - before[pl][k] for k in before[pl]}
        out.update({f"agent/{pl}/{k}": v for k, v in update_norms(moved).items()})
    ratios = graft_magnitude_ratios(states)
    out.update({f"agent/{k}": v for k, v in ratios.items()})
    return out


def run_episode(env: BatchedEnv, agents, steps: int, seed: int | None = None, eval_every: int | None = None,
                diagnostics_every: int | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and let the agents play ``steps`` iterations of simultaneous updates.

    Args:
        env: a batched env (:func:`minmax_envs.make`).
        agents: one :class:`~agents.GradientTransformation` for both players, a dict
            ``{"generator": tx, "discriminator": tx}`` (see also :func:`agents.pair`), or a
            :class:`~agents.PairTransformation` such as :func:`agents.balanced`.
        steps: iterations. An iteration of an agent with ``evaluations = k`` (extragradient: 2) is ``k`` env
            steps, each with a fresh gradient evaluation.
        seed: slot ``i`` plays seed ``seed + i``.
        eval_every: record ``env.metrics()`` every this many iterations (and at 0) in ``trajectory``.
        diagnostics_every: record, every this many iterations, per seed: ``agent/<player>/update_norm``
            (and ``.../update_norm/<tensor>``) of the iteration's parameter change, ``game/grad_ratio``
            (seed 001, Figure 1) and, for grafted agents, ``agent/<player>/magnitude_ratio/<tensor>``
            (``|A_t| / |A_0|``, Figure 2(b, c)). Recorded into preallocated tensors: no host sync.

    Each agent sees only its own player's gradients and parameters. A seed that diverges — including
    through a non-finite update from its agent — is terminated and recorded, never raised: a sweep
    always finishes. Metrics are computed only at the evaluation points, so the loop does no host-device
    synchronisation in between.
    """
    check_int("steps", steps, low=0)
    check_int("eval_every", eval_every, allow_none=True)
    check_int("diagnostics_every", diagnostics_every, allow_none=True)
    agent = as_pair(agents)
    k = agent.evaluations
    obs, _ = env.reset(seed=seed)
    params = {pl: obs[pl].params for pl in PLAYERS}
    state = agent.init(params)
    trajectory = [(0, env.metrics())] if eval_every else []
    diag: dict[str, torch.Tensor] = {}
    diag_steps = list(range(diagnostics_every, steps + 1, diagnostics_every)) if diagnostics_every else []
    initial = {pl: sum_of_norms(obs[pl].grads) for pl in PLAYERS} if diag_steps else {}
    for t in range(1, steps + 1):
        before = {pl: obs[pl].params for pl in PLAYERS}
        grads0 = {pl: obs[pl].grads for pl in PLAYERS}
        for _ in range(k):
            updates, state = agent.update({pl: obs[pl].grads for pl in PLAYERS}, state,
                                          {pl: obs[pl].params for pl in PLAYERS})
            obs, *_ = env._step(updates, check_values=False)
        if diag_steps and t % diagnostics_every == 0:
            values = _diagnostics(before, {pl: obs[pl].params for pl in PLAYERS}, grads0, state, initial)
            row = t // diagnostics_every - 1
            for name, v in values.items():
                if name not in diag:
                    diag[name] = torch.full((len(diag_steps), env.num_seeds), float("nan"), dtype=v.dtype,
                                            device=v.device)
                diag[name][row] = v
        if eval_every and t % eval_every == 0:
            trajectory.append((t, env.metrics()))
    final = trajectory[-1][1] if trajectory and trajectory[-1][0] == steps else env.metrics()
    return EpisodeResult(metrics=final, steps=steps, divergence_step=env._divergence_step.clone(), evaluations=k,
                         trajectory=trajectory, diagnostics=diag, diagnostic_steps=diag_steps)

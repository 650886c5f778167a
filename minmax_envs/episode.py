"""Run a whole episode of a batched env with a pair of agents: the fast path of evaluations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        evaluations: env steps (gradient evaluations) per iteration: the game's update cycle (e.g.
            ``n_critic + 1`` for alternating updates) times the agent's evaluations (2 for extragradient).
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


def _diagnostics(before: dict, after: dict, grads: dict, states, initial_grad_norms: dict):
    out = {"game/grad_ratio": gradient_ratio(grads, initial_grad_norms)}
    for pl in PLAYERS:
        moved = {k: after[pl][k] - before[pl][k] for k in before[pl]}
        out.update({f"agent/{pl}/{k}": v for k, v in update_norms(moved).items()})
    out.update({f"agent/{k}": v for k, v in graft_magnitude_ratios(states).items()})
    return out


def _save(path: Path, payload: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def run_episode(env: BatchedEnv, agents: Any, steps: int, seed: int | None = None, eval_every: int | None = None,
                diagnostics_every: int | None = None, checkpoint: str | os.PathLike | None = None,
                checkpoint_every: int | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and let the agents play ``steps`` iterations.

    Args:
        env: a batched env (:func:`minmax_envs.make`).
        agents: one :class:`~agents.GradientTransformation` for both players, a dict
            ``{"generator": tx, "discriminator": tx}`` (see also :func:`agents.pair`), or a
            :class:`~agents.PairTransformation` such as :func:`agents.balanced`.
        steps: iterations. An iteration is one cycle of the game's update schedule (one step with both
            players moving; or ``n_critic`` discriminator steps and one generator step for an alternating
            image game), each step repeated for every gradient evaluation of the agent (2 for
            extragradient). Only the players that move at a step get their agent called.
        seed: slot ``i`` plays seed ``seed + i``.
        eval_every: record ``env.metrics()`` every this many iterations (and at 0) in ``trajectory``.
        diagnostics_every: record, every this many iterations, per seed: ``agent/<player>/update_norm``
            (and ``.../update_norm/<tensor>``) of the iteration's parameter change, ``game/grad_ratio``
            (seed 001, Figure 1; the gradients the iteration started from, so the first is 2) and, for grafted agents,
            ``agent/<player>/magnitude_ratio/<tensor>`` (``|A_t| / |A_0|``, Figure 2(b, c)). Recorded into
            preallocated tensors: no host sync.
        checkpoint: a file to save the whole episode state to (env, agents, trajectory, diagnostics) every
            ``checkpoint_every`` iterations and at the end, atomically. If it exists when the episode starts,
            the episode resumes from it instead of resetting: an interrupted and resumed episode ends with
            the same parameters as an uninterrupted one (bit-for-bit with deterministic kernels).

    Each agent sees only its own player's gradients and parameters. A seed that diverges — including
    through a non-finite update from its agent — is terminated and recorded, never raised: a sweep
    always finishes. Metrics are computed only at the evaluation points, so the loop does no host-device
    synchronisation in between.
    """
    check_int("steps", steps, low=0)
    check_int("eval_every", eval_every, allow_none=True)
    check_int("diagnostics_every", diagnostics_every, allow_none=True)
    check_int("checkpoint_every", checkpoint_every, allow_none=True)
    if checkpoint_every is not None and checkpoint is None:
        raise ValueError("checkpoint_every needs a checkpoint path")
    agent = as_pair(agents)
    if agent.evaluations > 1 and env.game.cycle > 1:
        raise ValueError("agents with several gradient evaluations per iteration (extragradient) need a game "
                         "whose players move simultaneously (e.g. update='simultaneous' for image games)")
    inner = env.game.cycle * agent.evaluations
    path = None if checkpoint is None else Path(checkpoint)
    diag_steps = list(range(diagnostics_every, steps + 1, diagnostics_every)) if diagnostics_every else []
    fingerprint = {"env_id": env.env_id, "num_seeds": env.num_seeds, "steps": steps, "seed": seed,
                   "eval_every": eval_every, "diagnostics_every": diagnostics_every}
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=False)
        if saved["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint {path} belongs to another episode: {saved['fingerprint']} != {fingerprint}")
        env.load_state_dict(saved["env"])
        state, start, trajectory = saved["agent"], saved["t"] + 1, saved["trajectory"]
        diag, seen, initial = saved["diagnostics"], saved["seen_grads"], saved["initial_grad_norms"]
        obs = env.observation
    else:
        obs, _ = env.reset(seed=seed)
        state = agent.init({pl: obs[pl].params for pl in PLAYERS})
        start, trajectory, diag = 1, ([(0, env.metrics())] if eval_every else []), {}
        seen = {pl: obs[pl].grads for pl in PLAYERS if obs[pl].moving}
        initial = {pl: sum_of_norms(g) for pl, g in seen.items()} if diag_steps else {}

    def save(t: int) -> None:
        _save(path, {"fingerprint": fingerprint, "env": env.state_dict(), "agent": state, "t": t,
                     "trajectory": trajectory, "diagnostics": diag, "seen_grads": seen,
                     "initial_grad_norms": initial})

    for t in range(start, steps + 1):
        record = bool(diag_steps) and t % diagnostics_every == 0
        before = {pl: {k: v.clone() for k, v in obs[pl].params.items()} for pl in PLAYERS} if record else None
        acted_on = dict(seen) if record else None  # the gradients this iteration starts from
        for _ in range(inner):
            movers = [pl for pl in PLAYERS if obs[pl].moving]
            updates, state = agent.update({pl: obs[pl].grads for pl in movers}, state,
                                          {pl: obs[pl].params for pl in movers})
            obs, *_ = env._step(updates, check_values=False)
            if diag_steps:
                for pl in PLAYERS:
                    if obs[pl].moving:
                        seen[pl] = obs[pl].grads
                        if pl not in initial:
                            initial[pl] = sum_of_norms(obs[pl].grads)
        if record:
            acted_on = {**seen, **acted_on}  # a player first seen during this iteration: its first gradient
            values = _diagnostics(before, {pl: obs[pl].params for pl in PLAYERS}, acted_on, state, initial)
            row = t // diagnostics_every - 1
            for name, v in values.items():
                if name not in diag:
                    diag[name] = torch.full((len(diag_steps), env.num_seeds), float("nan"), dtype=v.dtype,
                                            device=v.device)
                diag[name][row] = v
        if eval_every and t % eval_every == 0:
            trajectory.append((t, env.metrics()))
        if path is not None and checkpoint_every and t % checkpoint_every == 0 and t < steps:
            save(t)
    if path is not None:
        save(steps)
    final = trajectory[-1][1] if trajectory and trajectory[-1][0] == steps else env.metrics()
    return EpisodeResult(metrics=final, steps=steps, divergence_step=env._divergence_step.clone(),
                         evaluations=inner, trajectory=trajectory, diagnostics=diag, diagnostic_steps=diag_steps)

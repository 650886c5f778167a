"""Run a whole episode of a batched env with a pair of agents: the fast path of evaluations."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents import PairTransformation, as_pair, gradient_ratio, graft_magnitude_ratios, sum_of_norms, update_norms
from minmax_envs._checks import check_int
from minmax_envs.checkpoint import (
    EpisodeProgress,
    check_fingerprint,
    episode_fingerprint,
    read_checkpoint,
    restore,
    save_checkpoint,
)
from minmax_envs.env import BatchedEnv, Observation
from minmax_envs.types import PLAYERS, PlayerParams


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
        samples: generator samples at the end, ``(N, K, d)``, if asked for (``samples=K``; games with
            :attr:`~minmax_envs.Game.has_samples`), else ``None`` (see :func:`final_samples`).
        plots: the game's figure descriptions (:meth:`~minmax_envs.Game.plots`) as JSON dicts, for whoever
            stores the episode: reports draw them from stored records.
    """

    metrics: dict[str, torch.Tensor]
    steps: int
    divergence_step: torch.Tensor
    evaluations: int = 1
    trajectory: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    diagnostic_steps: list[int] = field(default_factory=list)
    samples: torch.Tensor | None = None
    plots: tuple[dict[str, Any], ...] = ()

    @property
    def diverged(self) -> torch.Tensor:
        return self.divergence_step >= 0


@dataclass(frozen=True)
class EpisodeTask:
    """One batched episode to play, whoever plays it: what a
    :class:`~minmax_envs.evaluation.agent_names.Runner` takes.

    Attributes:
        env_id: the registered id of the game.
        steps: iterations (agent updates; a controller's actions) to play.
        seed: the first seed; the batch plays seeds ``seed, seed + 1, ..., seed + count - 1``.
        count: the number of seeds, one batched env.
        eval_every: metrics every ``eval_every`` iterations (``None``: at the end only).
        device: where the env lives.
        samples: generator samples per seed at the end (games with :attr:`~minmax_envs.Game.has_samples`).
        env_kwargs: the game's other arguments (as :func:`minmax_envs.make` takes them).
    """

    env_id: str
    steps: int
    seed: int = 0
    count: int = 1
    eval_every: int | None = None
    device: Any = "cpu"
    samples: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    @classmethod
    def of(cls, task: EpisodeTask | str, *args: Any, **kwargs: Any) -> EpisodeTask:
        """``task`` itself, or, for the positional form ``run(env_id, steps, seed, count, eval_every, device,
        samples=0, **env_kwargs)`` of a runner, the task it spells (with a ``DeprecationWarning``).

        Args:
            task: an :class:`EpisodeTask`, or an env id followed by the other values in ``args`` / ``kwargs``.

        Returns:
            The episode task.
        """
        if isinstance(task, EpisodeTask):
            if args or kwargs:
                raise TypeError("a runner takes one EpisodeTask, nothing else")
            return task
        if not isinstance(task, str):
            raise TypeError(f"a runner takes an EpisodeTask, got {type(task).__name__}")
        warnings.warn("run(env_id, steps, seed, count, ...) is deprecated; pass one "
                      "minmax_envs.episode.EpisodeTask(env_id, steps, seed, count, ...)", DeprecationWarning,
                      stacklevel=3)
        names = ("steps", "seed", "count", "eval_every", "device", "samples")
        if len(args) > len(names):
            raise TypeError(f"run takes at most {len(names) + 1} positional values, got {len(args) + 1}")
        own = {**dict(zip(names, args)), **{k: kwargs.pop(k) for k in names if k in kwargs}}
        return cls(task, **own, env_kwargs=kwargs)


def check_samples(env: BatchedEnv, samples: int) -> int:
    """``samples`` if ``env``'s game can draw that many generator samples (0 always), else a ``ValueError``."""
    check_int("samples", samples, low=0)
    if samples and not env.game.has_samples:
        raise ValueError(f"samples={samples}: {type(env.game).__name__} draws no generator samples "
                         "(Game.has_samples is False); pass samples=0")
    return samples


def final_samples(env: BatchedEnv, n: int) -> torch.Tensor:
    """``n`` generator samples of every seed of ``env`` at its current parameters, ``(N, n, d)``.

    Each seed's samples are drawn on their own (a batch of one) from the same latents, a torch generator seeded
    0 that is independent of the env's streams: a seed's samples depend on its parameters alone, never on the
    seeds that shared its batch."""
    game, params = env.game, env.params["generator"]
    return torch.cat([game.generator_samples({k: v[i:i + 1] for k, v in params.items()}, n,
                                             torch.Generator().manual_seed(0)) for i in range(env.num_seeds)])


def episode_result(env: BatchedEnv, steps: int, trajectory: list, evaluations: int = 1, samples: int = 0,
                   diagnostics: dict | None = None, diagnostic_steps: list[int] | None = None) -> EpisodeResult:
    """The :class:`EpisodeResult` of an episode of ``steps`` iterations that ended on ``env``: its final metrics
    (the trajectory's last entry when it was recorded at ``steps``), divergence steps, ``samples`` generator
    samples per seed if asked for (:func:`final_samples`) and the game's figure descriptions."""
    final = trajectory[-1][1] if trajectory and trajectory[-1][0] == steps else env.metrics()
    return EpisodeResult(metrics=final, steps=steps, divergence_step=env.divergence_step.clone(),
                         evaluations=evaluations, trajectory=trajectory, diagnostics=diagnostics or {},
                         diagnostic_steps=diagnostic_steps or [],
                         samples=final_samples(env, samples) if check_samples(env, samples) else None,
                         plots=tuple(p.as_dict() for p in env.game.plots()))


def _diagnostics(before: dict, after: dict, grads: dict, states, initial_grad_norms: dict):
    out = {"game/grad_ratio": gradient_ratio(grads, initial_grad_norms)}
    out.update({f"game/grad_norm/{pl}": sum_of_norms(g) for pl, g in grads.items()})
    for pl in PLAYERS:
        moved = {k: after[pl][k] - before[pl][k] for k in before[pl]}
        out.update({f"agent/{pl}/{k}": v for k, v in update_norms(moved).items()})
    out.update({f"agent/{k}": v for k, v in graft_magnitude_ratios(states).items()})
    return out


def run_episode(env: BatchedEnv, agents: Any, steps: int, seed: int | None = None, eval_every: int | None = None,
                diagnostics_every: int | None = None, checkpoint: str | os.PathLike | None = None,
                checkpoint_every: int | None = None, samples: int = 0) -> EpisodeResult:
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
            ("Adam is no better than normalized SGD", Figure 1; the gradients the iteration started from, so
            the first is 2), ``game/grad_norm/<player>`` (the sum of that player's per-tensor gradient norms, the
            two terms of the ratio before normalization by their first values) and, for grafted agents,
            ``agent/<player>/magnitude_ratio/<tensor>`` (``|A_t| / |A_0|``, Figure 2(b, c)). Recorded into
            preallocated tensors: no host sync.
        checkpoint: a file to save the whole episode state to (env, agents, trajectory, diagnostics) every
            ``checkpoint_every`` iterations and at the end, atomically. If it exists when the episode starts,
            the episode resumes from it instead of resetting: an interrupted and resumed episode ends with
            the same parameters as an uninterrupted one (bit-for-bit with deterministic kernels).
            See "Checkpoints" below.
        samples: draw this many generator samples per seed at the end into ``result.samples`` ``(N, samples, d)``
            (:func:`final_samples`); only for games that draw samples (:attr:`~minmax_envs.Game.has_samples`),
            else a ``ValueError`` before the episode starts.

    Returns:
        The :class:`EpisodeResult`: final per-seed metrics, divergence steps, and the trajectory, diagnostics and
        samples asked for.

    Each agent sees only its own player's gradients and parameters (an agent that writes its parameters in
    place does so through :meth:`~minmax_envs.env.BatchedEnv.writable`). A seed that diverges — including
    through a non-finite update from its agent — is terminated and recorded, never raised: a sweep
    always finishes. Metrics are computed only at the evaluation points, so the loop does no host-device
    synchronisation in between.

    Checkpoints:
        A checkpoint holds only tensors and plain containers (dicts, lists, tuples, numbers, strings, ``None``):
        the env's :meth:`~minmax_envs.env.BatchedEnv.state_dict` (parameters, random streams, counters, the
        game's module weights, data generator and EMA), the agent state as its leaves and tree definition (its
        NamedTuples rebuilt on resume into the classes of a fresh ``agent.init``), the trajectory and the
        diagnostics (the format: :mod:`minmax_envs.checkpoint`). It is written atomically and read with the
        suite's safe loader (:func:`~minmax_envs.checkpoint.load_tensors`: a regular file, no link followed,
        ``torch.load(weights_only=True)``), so loading a file never runs code; an empty, truncated, corrupt,
        foreign or linked file, or one of another layout, raises a ``ValueError`` that names it and what is
        wrong.

        It is resumed only by the same episode, checked by a fingerprint before anything is restored: the env's
        construction arguments (``env.make_kwargs``: id, seeds, device, dtype, regularizer, the game's
        arguments...), ``steps``, ``seed``, ``eval_every``, ``diagnostics_every`` and the agent. Agents are
        closures whose hyperparameters are not recorded, so the agent is fingerprinted by behaviour: the
        structure of its initial state, its ``evaluations`` and, per tensor, the norms of three probe updates
        from a fresh init on the episode's first observation (gradients ``g, g/2, 2g``; a player that does
        not move at the first step probes with its parameters) and their cosines with those gradients, compared
        to 0.1% (norms) and 0.001 (cosines), so that other thread counts do not false-alarm. Hyperparameters
        that change none of the first three updates are not told apart. A mismatch raises a ``ValueError``
        naming every field that differs, with both values. The probe runs on copies (the env is untouched)
        when a checkpoint is given: three extra agent calls, and on resume one extra ``env.reset``.
    """
    check_int("steps", steps, low=0)
    check_int("eval_every", eval_every, allow_none=True)
    check_int("diagnostics_every", diagnostics_every, allow_none=True)
    check_int("checkpoint_every", checkpoint_every, allow_none=True)
    check_samples(env, samples)
    if checkpoint_every is not None and checkpoint is None:
        raise ValueError("checkpoint_every needs a checkpoint path")
    agent = as_pair(agents)
    if agent.evaluations > 1 and env.game.cycle > 1:
        raise ValueError("agents with several gradient evaluations per iteration (extragradient) need a game "
                         "whose players move simultaneously (e.g. update='simultaneous' for image games)")
    inner = env.game.cycle * agent.evaluations
    path = None if checkpoint is None else Path(checkpoint)
    diag_steps = list(range(diagnostics_every, steps + 1, diagnostics_every)) if diagnostics_every else []
    saved = read_checkpoint(path) if path is not None and path.exists() else None
    # a resumed episode of a random seed resets with the seed it drew, to probe the agent on its first observation
    obs, _ = env.reset(seed=seed if saved is None or seed is not None else saved["base_seed"])
    if path is not None:
        base_seed = int(env.seeds[0]) if seed is None else seed
        identity = episode_fingerprint(env, agent, obs, steps=steps, seed=seed, eval_every=eval_every,
                                       diagnostics_every=diagnostics_every)
    if saved is not None:
        check_fingerprint(path, saved["fingerprint"], identity)
        run = restore(path, saved, env, agent, steps, len(diag_steps))
        obs = env.observation
    else:
        run = _start(env, agent, obs, eval_every, bool(diag_steps))
    diag_shape = (len(diag_steps), env.num_seeds)

    for t in range(run.t + 1, steps + 1):
        recorded = bool(diag_steps) and t % diagnostics_every == 0
        before = _params(obs, copy=True) if recorded else None
        acted_on = dict(run.seen_grads) if recorded else None  # the gradients this iteration starts from
        evaluated = t == steps or bool(eval_every) and t % eval_every == 0  # metrics read this iteration's update
        for i in range(inner):
            obs, run.state = _play(env, agent, obs, run.state, keep_update=evaluated and i == inner - 1)
            if diag_steps:
                _remember_gradients(run, obs)
        if recorded:
            _record_diagnostics(run, t // diagnostics_every - 1, diag_shape, before, obs, acted_on)
        if eval_every and t % eval_every == 0:
            run.trajectory.append((t, env.metrics()))
        run.t = t
        if path is not None and checkpoint_every and t % checkpoint_every == 0 and t < steps:
            save_checkpoint(path, identity, base_seed, env, agent, run)
    if path is not None:
        save_checkpoint(path, identity, base_seed, env, agent, run)
    return episode_result(env, steps, run.trajectory, inner, samples, run.diagnostics, diag_steps)


def _params(obs: Observation, copy: bool = False) -> PlayerParams:
    """Both players' parameters in ``obs`` (copies if asked for)."""
    return {pl: {k: v.clone() for k, v in obs[pl].params.items()} if copy else obs[pl].params for pl in PLAYERS}


def _start(env: BatchedEnv, agent: PairTransformation, obs: Observation, eval_every: int | None,
           diagnosed: bool) -> EpisodeProgress:
    """The progress of a fresh episode at its first observation ``obs``: a fresh agent state, the metrics at 0 if
    they are recorded, the movers' first gradients (and, for the diagnostics, their norms)."""
    seen = {pl: obs[pl].grads for pl in PLAYERS if obs[pl].moving}
    return EpisodeProgress(t=0, state=agent.init(_params(obs)), trajectory=[(0, env.metrics())] if eval_every else [],
                           seen_grads=seen,
                           initial_grad_norms={pl: sum_of_norms(g) for pl, g in seen.items()} if diagnosed else {})


def _play(env: BatchedEnv, agent: PairTransformation, obs: Observation, state: Any,
          keep_update: bool) -> tuple[Observation, Any]:
    """One env step: the agent updates the players that move, each from its own gradients and parameters; those
    whose agents write in place do so through :meth:`~minmax_envs.env.BatchedEnv.writable` (``keep_update``:
    report their update to the game's metrics); the new observation and agent state."""
    movers = [pl for pl in PLAYERS if obs[pl].moving]
    writers = [pl for pl in agent.in_place if pl in movers]
    with env.writable(writers, keep_update=keep_update):
        updates, state = agent.update({pl: obs[pl].grads for pl in movers}, state,
                                      {pl: obs[pl].params for pl in movers})
    obs, *_ = env.step({pl: updates[pl] for pl in movers if pl not in writers}, validate=False)
    return obs, state


def _remember_gradients(run: EpisodeProgress, obs: Observation) -> None:
    """Keep the movers' latest gradients (and a player's first gradient norms when it first moves)."""
    for pl in PLAYERS:
        if obs[pl].moving:
            run.seen_grads[pl] = obs[pl].grads
            if pl not in run.initial_grad_norms:
                run.initial_grad_norms[pl] = sum_of_norms(obs[pl].grads)


def _record_diagnostics(run: EpisodeProgress, row: int, shape: tuple[int, int], before: PlayerParams,
                        obs: Observation, acted_on: dict) -> None:
    """Write the diagnostics of an iteration into row ``row`` of the preallocated tensors of ``shape`` (recorded
    iterations, seeds; made at their first row, NaN where not reached): no host sync."""
    acted_on = {**run.seen_grads, **acted_on}  # a player first seen during this iteration: its first gradient
    values = _diagnostics(before, _params(obs), acted_on, run.state, run.initial_grad_norms)
    for name, v in values.items():
        if name not in run.diagnostics:
            run.diagnostics[name] = torch.full(shape, float("nan"), dtype=v.dtype, device=v.device)
        run.diagnostics[name][row] = v

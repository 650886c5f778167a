"""Run a whole episode of a batched env with a pair of agents: the fast path of evaluations."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents import PairTransformation, as_pair, gradient_ratio, graft_magnitude_ratios, sum_of_norms, update_norms
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


# --- checkpoints ---------------------------------------------------------------------------------
_FORMAT = "minmax_envs.run_episode/2"
#: the probe of an agent's fingerprint: from a fresh init, updates on these multiples of the first gradients
_PROBE = (1.0, 0.5, 2.0)  # no cancellation of first moments for any beta1 or momentum >= 0
_PROBE_RTOL = 1e-3  # relative tolerance on the probe's update norms (threads reorder sums; bf16 autocast)
_PROBE_ATOL = 1e-3  # absolute tolerance on the cosines of the probe's updates with their gradients
_START_OVER = "Delete it (or pass another checkpoint path) to start the episode over."
_LEAVES = (torch.Tensor, bool, int, float, str, type(None))


def _structure(x: Any) -> str:
    """A short description of a state's structure: NamedTuple types and fields, containers, leaf types (a dict
    of tensors is shown by its size)."""
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return f"{type(x).__name__}({', '.join(f'{f}={_structure(v)}' for f, v in zip(x._fields, x))})"
    if isinstance(x, (tuple, list)):
        inner = ", ".join(_structure(v) for v in x)
        return f"({inner}{',' if len(x) == 1 else ''})" if isinstance(x, tuple) else f"[{inner}]"
    if isinstance(x, dict):
        if x and all(isinstance(v, torch.Tensor) for v in x.values()):
            return f"{{{len(x)} tensor{'s' if len(x) > 1 else ''}}}"
        return "{" + ", ".join(f"{k}: {_structure(v)}" for k, v in x.items()) + "}"
    return "None" if x is None else "Tensor" if isinstance(x, torch.Tensor) else type(x).__name__


def _flatten(x: Any, leaves: list, where: str = "state") -> list:
    """The tree definition of an agent state (nested lists of names) and, appended to ``leaves``, its leaves:
    what a checkpoint stores instead of the state's NamedTuple classes."""
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return ["namedtuple", type(x).__name__, list(x._fields),
                [_flatten(v, leaves, f"{where}.{f}") for f, v in zip(x._fields, x)]]
    if type(x) in (tuple, list):
        return [type(x).__name__, [_flatten(v, leaves, f"{where}[{i}]") for i, v in enumerate(x)]]
    if isinstance(x, dict):
        if not all(isinstance(k, (str, int)) for k in x):
            raise TypeError(f"cannot checkpoint the agent state: {where} has keys that are not str or int")
        return ["dict", list(x), [_flatten(v, leaves, f"{where}[{k!r}]") for k, v in x.items()]]
    if isinstance(x, _LEAVES):
        leaves.append(x)
        return ["leaf"]
    raise TypeError(f"cannot checkpoint the agent state: {where} is a {type(x).__qualname__}; checkpoints hold "
                    "agent states made of tensors, numbers, strings, None and tuples, lists, dicts or NamedTuples "
                    "of them")


def _unflatten(tree: list, leaves: Any, like: Any, where: str = "state") -> Any:
    """Rebuild a state from :func:`_flatten`'s output into the structure of ``like``, a fresh ``agent.init``:
    NamedTuples take ``like``'s classes, tensors must have its shapes and dtypes; where ``like`` holds ``None``
    (a slot filled by the first updates, such as a graft's first norms) any plain containers are taken."""
    kind = tree[0]
    is_nt = isinstance(like, tuple) and hasattr(like, "_fields")
    if kind == "leaf":
        value = next(leaves)
        if like is None:
            return value
        if isinstance(like, torch.Tensor):
            if not isinstance(value, torch.Tensor) or value.shape != like.shape or value.dtype != like.dtype:
                got = (f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                       else type(value).__name__)
                raise ValueError(f"agent {where} is {got}, a fresh agent.init() has {like.dtype} of shape "
                                 f"{tuple(like.shape)}")
        elif isinstance(like, (tuple, list, dict)) or type(value) is not type(like):
            raise ValueError(f"agent {where} is a {type(value).__name__}, a fresh agent.init() has "
                             f"{_structure(like)}")
        return value
    if kind == "namedtuple":
        _, name, fields, children = tree
        if not (is_nt and type(like).__name__ == name and list(like._fields) == list(fields)):
            raise ValueError(f"agent {where} is a {name}({', '.join(fields)}), a fresh agent.init() has "
                             f"{_structure(like)}")
        return type(like)(*(_unflatten(c, leaves, v, f"{where}.{f}") for c, v, f in zip(children, like, fields)))
    if kind in ("tuple", "list"):
        children = tree[1]
        if like is not None and (is_nt or type(like).__name__ != kind or len(like) != len(children)):
            raise ValueError(f"agent {where} is a {kind} of {len(children)}, a fresh agent.init() has "
                             f"{_structure(like)}")
        subs = [None] * len(children) if like is None else list(like)
        out = [_unflatten(c, leaves, v, f"{where}[{i}]") for i, (c, v) in enumerate(zip(children, subs))]
        return tuple(out) if kind == "tuple" else out
    if kind == "dict":
        _, keys, children = tree
        if like is not None and (not isinstance(like, dict) or list(like) != list(keys)):
            raise ValueError(f"agent {where} has the keys {list(keys)}, a fresh agent.init() has "
                             f"{_structure(like)}")
        return {k: _unflatten(c, leaves, None if like is None else like[k], f"{where}[{k!r}]")
                for k, c in zip(keys, children)}
    raise ValueError(f"agent {where}: unknown node {kind!r}")


def _restore_agent_state(saved: dict, like: Any) -> Any:
    leaves = iter(saved["leaves"])
    state = _unflatten(saved["treedef"], leaves, like)
    if next(leaves, _END) is not _END:
        raise ValueError("the agent state has more leaves than its tree definition")
    return state


_END = object()


def _device(obs: dict) -> torch.device:
    return next(iter(obs[PLAYERS[0]].params.values())).device


def _clone(params: dict) -> dict:
    return {pl: {k: v.detach().clone() for k, v in ps.items()} for pl, ps in params.items()}


def _agent_fingerprint(agent: PairTransformation, obs: dict) -> dict:
    """The agent, fingerprinted by behaviour (agents are closures: their hyperparameters are not recorded).

    From a fresh ``agent.init`` on the episode's first observation, the agent makes ``len(_PROBE)`` updates, on
    the first gradients times ``1, 1/2, 2`` (parameters held fixed; a player that does not move at the first
    step gets its parameters as a stand-in gradient), on copies: the env is not touched. Kept per tensor: the
    norms of these updates and their cosines with the gradients they answered; with the structure of the
    initial state and the number of gradient evaluations per iteration."""
    params = {pl: obs[pl].params for pl in PLAYERS}
    first = {pl: obs[pl].grads if obs[pl].moving else obs[pl].params for pl in PLAYERS}
    work = _clone(params)  # what the agent acts on; set back to params after every update (held fixed)
    state = agent.init(work)
    out = {"evaluations": agent.evaluations, "state": _structure(state)}
    names = [(pl, k) for pl in PLAYERS for k in first[pl]]
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=_device(obs))
    rows = []
    for factor in _PROBE:
        grads = {pl: {k: g.detach() * factor for k, g in gs.items()} for pl, gs in first.items()}
        updates, state = agent.update(grads, state, work)
        for pl in agent.in_place:  # an in-place agent's update: what it wrote, minus where it started
            updates[pl] = {k: w - params[pl][k] for k, w in work[pl].items()}
        for pl, ps in work.items():
            for k, w in ps.items():
                w.copy_(params[pl][k])
        row = [nan.reshape(1)[:0]]  # an empty start: torch.cat of no tensors fails
        for pl, k in names:
            u = updates.get(pl, {}).get(k)
            if u is None:  # the agent made no update for this tensor
                row += [nan.reshape(1), nan.reshape(1)]
                continue
            u, g = u.detach().reshape(-1).double(), grads[pl][k].reshape(-1).double()
            nu, ng = torch.linalg.vector_norm(u), torch.linalg.vector_norm(g)
            cos = torch.where((nu > 0) & (ng > 0), (u @ g) / (nu * ng), torch.zeros_like(nu))
            row += [nu.reshape(1), cos.reshape(1)]
        rows.append(torch.cat(row))
    table = torch.stack(rows).T.tolist()  # one host sync
    out["updates"] = {f"{pl}/{k}": {"norm": table[2 * i], "cos": table[2 * i + 1]} for i, (pl, k) in enumerate(names)}
    return out


def _env_fingerprint(env: BatchedEnv) -> dict:
    """The arguments :func:`minmax_envs.make` made the env with; for an env built by hand, its game class and
    the env's own arguments (a hand-built game's arguments are not known)."""
    if env.make_kwargs is not None:
        return dict(env.make_kwargs)
    return {"env_id": env.env_id, "game": f"{type(env.game).__module__}.{type(env.game).__qualname__}",
            "num_seeds": env.num_seeds, "device": str(env.device), "dtype": str(env.dtype).removeprefix("torch."),
            "regularizer": env.regularizer, "max_steps": env.max_steps,
            "divergence_threshold": env.divergence_threshold, "compile": env.compiled}


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _floats(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, float) for x in v)


def _same(key: str, a: Any, b: Any) -> bool:
    """Whether two fingerprint entries agree: exactly, but for the agent's probe (within the tolerances)."""
    if key.startswith("agent.updates.") and _floats(a) and _floats(b) and len(a) == len(b):
        rel, tol = (_PROBE_RTOL, 0.0) if key.endswith(".norm") else (0.0, _PROBE_ATOL)
        return all(x == y or (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rel, abs_tol=tol)
                   for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _show(v: Any) -> str:
    if isinstance(v, list) and v and all(isinstance(x, float) for x in v):
        return "[" + ", ".join(f"{x:.6g}" for x in v) + "]"
    text = repr(v)
    return text if len(text) <= 300 else text[:300] + "..."


def _check_fingerprint(path: Path, saved: dict, now: dict) -> None:
    old, new = _flat(saved), _flat(now)
    missing = object()
    diffs = [f"{k}: {'absent' if old.get(k, missing) is missing else _show(old[k])} in the checkpoint, "
             f"{'absent' if new.get(k, missing) is missing else _show(new[k])} now"
             for k in [*new, *(k for k in old if k not in new)]
             if not _same(k, old.get(k, missing), new.get(k, missing))]
    if diffs:
        more = f"; and {len(diffs) - 8} more" if len(diffs) > 8 else ""
        raise ValueError(f"checkpoint {path} belongs to another episode: {'; '.join(diffs[:8])}{more}. Resume with "
                         f"the arguments it was made with, or delete it (or pass another checkpoint path) to start "
                         f"this episode.")


def _why_unreadable(path: Path, e: BaseException) -> str:
    try:
        if path.is_dir():
            return "it is a directory"
        if path.stat().st_size == 0:
            return "the file is empty"
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    msg = str(e)
    if m := re.search(r"GLOBAL ([\w.]+)", msg):
        return (f"it refers to {m.group(1)}, which is neither a tensor nor a plain container, so it is not loaded "
                "(a file of another program or of an older version, or one crafted to run code)")
    if "zip archive" in msg or "central directory" in msg:
        return "it is truncated or corrupt (not a complete torch zip archive)"
    if m := re.search(r"Unsupported operand \d+", msg):
        return f"it is not a torch checkpoint ({m.group(0)})"
    if isinstance(e, OSError):
        return f"{type(e).__name__}: {e}"
    first = next((line.strip() for line in msg.splitlines() if line.strip()), "")
    return f"it is not a torch checkpoint ({type(e).__name__}{': ' + first[:120] if first else ''})"


#: the entries of a checkpoint and their types
_LAYOUT: dict[str, tuple[type, ...]] = {
    "fingerprint": (dict,), "base_seed": (int,), "t": (int,), "env": (dict,), "agent": (dict,), "trajectory": (list,),
    "diagnostics": (dict,), "seen_grads": (dict,), "initial_grad_norms": (dict,),
}


def _read_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (nothing but tensors and plain containers: no code runs) and
    check its layout; every failure is a ``ValueError`` that names the file and what to do."""
    try:
        with warnings.catch_warnings():  # torch warns of a foreign pickle's protocol; the error below says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - empty, truncated, corrupt or foreign files: one clear error
        raise ValueError(f"checkpoint {path} cannot be read: {_why_unreadable(path, e)}. Checkpoints load with "
                         f"torch.load(weights_only=True): tensors and plain containers only, never code. "
                         f"{_START_OVER}") from None

    def wrong(what: str) -> ValueError:
        return ValueError(f"checkpoint {path} is not a run_episode checkpoint of this version: {what}. {_START_OVER}")

    if not isinstance(payload, dict):
        raise wrong(f"it holds a {type(payload).__name__}, not a dict")
    if payload.get("format") != _FORMAT:
        raise wrong("it has no 'format' entry" if "format" not in payload
                    else f"its format is {payload['format']!r}, this version reads {_FORMAT!r}")
    missing = [k for k in _LAYOUT if k not in payload]
    if missing:
        raise wrong(f"it is missing {missing}")
    for k, types in _LAYOUT.items():
        if not isinstance(payload[k], types) or (isinstance(payload[k], bool) and int in types):
            raise wrong(f"its entry {k!r} is a {type(payload[k]).__name__}, expected {types[0].__name__}")
    if not 0 <= payload["base_seed"] < 2**63:
        raise wrong(f"its base seed {payload['base_seed']} is outside [0, 2**63)")
    agent = payload["agent"]
    if not (isinstance(agent.get("treedef"), list) and isinstance(agent.get("leaves"), list)):
        raise wrong("its entry 'agent' must hold the lists 'treedef' and 'leaves'")
    return payload


def _check_plain(x: Any, where: str) -> None:
    """Refuse to write what ``torch.load(weights_only=True)`` would not read back."""
    if type(x) in (dict, OrderedDict):
        for k, v in x.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"cannot checkpoint {where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}[{k!r}]")
    elif type(x) in (list, tuple):
        for i, v in enumerate(x):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(x, _LEAVES):
        raise TypeError(f"cannot checkpoint {where}: a {type(x).__qualname__}; checkpoints hold tensors, numbers, "
                        "strings, None and lists, tuples and dicts of them (what torch.load(weights_only=True) reads)")


def _save(path: Path, payload: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint."""
    _check_plain(payload, "checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _restore(path: Path, saved: dict, env: BatchedEnv, agent: PairTransformation, steps: int,
             diag_steps: list[int]) -> tuple:
    """Load a checked checkpoint into ``env`` and rebuild the agent state into the structure of a fresh init."""
    try:
        env.load_state_dict(saved["env"])
        obs = env.observation
        fresh = agent.init({pl: obs[pl].params for pl in PLAYERS})
        if agent.state_dict is None:
            state = _restore_agent_state(saved["agent"], fresh)
        else:  # a tree part restored into the fresh structure, a plain part taken as plain containers
            like = (agent.state_dict(fresh)[0], None)
            state = agent.load_state_dict(fresh, _restore_agent_state(saved["agent"], like))
        t, trajectory, diag = saved["t"], saved["trajectory"], saved["diagnostics"]
        seen, initial = saved["seen_grads"], saved["initial_grad_norms"]
        if not 0 <= t <= steps:
            raise ValueError(f"it stopped at iteration {t}, outside [0, {steps}]")
        for entry in trajectory:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], int)
                    and isinstance(entry[1], dict)):
                raise ValueError("its trajectory must hold (iteration, metrics) pairs")
        for name, v in diag.items():
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != (len(diag_steps), env.num_seeds):
                raise ValueError(f"its diagnostic {name!r} must be a tensor of shape "
                                 f"{(len(diag_steps), env.num_seeds)}")
        for name, d in (("seen_grads", seen), ("initial_grad_norms", initial)):
            if not set(d) <= set(PLAYERS):
                raise ValueError(f"its entry {name!r} must be keyed by players, got {sorted(map(str, d))}")
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError, StopIteration) as e:
        raise ValueError(f"checkpoint {path} holds an episode state that cannot be restored here: {e}. "
                         f"{_START_OVER}") from None
    return state, t + 1, trajectory, diag, seen, initial


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

    Each agent sees only its own player's gradients and parameters. A seed that diverges — including
    through a non-finite update from its agent — is terminated and recorded, never raised: a sweep
    always finishes. Metrics are computed only at the evaluation points, so the loop does no host-device
    synchronisation in between.

    Checkpoints:
        A checkpoint holds only tensors and plain containers (dicts, lists, tuples, numbers, strings, ``None``):
        the env's :meth:`~minmax_envs.env.BatchedEnv.state_dict` (parameters, random streams, counters, the
        game's module weights, data generator and EMA), the agent state as its leaves and tree definition (its
        NamedTuples rebuilt on resume into the classes of a fresh ``agent.init``), the trajectory and the
        diagnostics. It is read with ``torch.load(weights_only=True)``, so loading a file never runs code; an
        empty, truncated, corrupt or foreign file, or one of another layout, raises a ``ValueError`` that names
        it and what is wrong.

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
    saved = _read_checkpoint(path) if path is not None and path.exists() else None
    # a resumed episode of a random seed resets with the seed it drew, to probe the agent on its first observation
    obs, _ = env.reset(seed=seed if saved is None or seed is not None else saved["base_seed"])
    if path is not None:
        base_seed = int(env.seeds[0]) if seed is None else seed
        fingerprint = {"env": _env_fingerprint(env), "episode": {"steps": steps, "seed": seed, "eval_every": eval_every,
                       "diagnostics_every": diagnostics_every}, "agent": _agent_fingerprint(agent, obs)}
    if saved is not None:
        _check_fingerprint(path, saved["fingerprint"], fingerprint)
        state, start, trajectory, diag, seen, initial = _restore(path, saved, env, agent, steps, diag_steps)
        obs = env.observation
    else:
        state = agent.init({pl: obs[pl].params for pl in PLAYERS})
        start, trajectory, diag = 1, ([(0, env.metrics())] if eval_every else []), {}
        seen = {pl: obs[pl].grads for pl in PLAYERS if obs[pl].moving}
        initial = {pl: sum_of_norms(g) for pl, g in seen.items()} if diag_steps else {}

    def save(t: int) -> None:
        leaves: list = []
        tree = _flatten(state if agent.state_dict is None else agent.state_dict(state), leaves)
        _save(path, {"format": _FORMAT, "fingerprint": fingerprint, "base_seed": base_seed, "t": t,
                     "env": env.state_dict(), "agent": {"treedef": tree, "leaves": leaves},
                     "trajectory": trajectory, "diagnostics": diag, "seen_grads": seen, "initial_grad_norms": initial})

    for t in range(start, steps + 1):
        record = bool(diag_steps) and t % diagnostics_every == 0
        before = {pl: {k: v.clone() for k, v in obs[pl].params.items()} for pl in PLAYERS} if record else None
        acted_on = dict(seen) if record else None  # the gradients this iteration starts from
        for i in range(inner):
            movers = [pl for pl in PLAYERS if obs[pl].moving]
            if agent.in_place:  # keep what stopped seeds must get back, and at an evaluation point the updates
                held = [pl for pl in agent.in_place if pl in movers]
                metrics_next = i == inner - 1 and (t == steps or bool(eval_every) and t % eval_every == 0)
                if held and (env.needs_hold or metrics_next):
                    env.hold(held)
            updates, state = agent.update({pl: obs[pl].grads for pl in movers}, state,
                                          {pl: obs[pl].params for pl in movers})
            obs, *_ = env.step(updates, validate=False)
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
    return episode_result(env, steps, trajectory, inner, samples, diag, diag_steps)

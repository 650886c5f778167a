"""The checkpoint of an episode of :func:`~minmax_envs.run_episode`: what it holds, how it is written, read, checked
and restored; and the one safe reader of files of tensors (:func:`load_tensors`).

A checkpoint (format :data:`FORMAT`) is one ``torch.save`` file of tensors and plain containers only (dicts,
lists, tuples, numbers, strings, ``None``), with the entries of :data:`LAYOUT`:

* ``format``, ``fingerprint`` (:func:`episode_fingerprint`: the env's construction arguments, the episode's
  arguments and the agent's behaviour), ``base_seed`` and ``t`` (the iterations done);
* ``env``: the env's :meth:`~minmax_envs.env.BatchedEnv.state_dict` (its layout checked by
  :func:`check_env_state` before anything is restored);
* ``agent``: the agent state as its leaves and tree definition (:func:`flatten_state`), rebuilt on resume into the
  classes of a fresh ``agent.init`` (:func:`unflatten_state`), so no class is ever named in the file;
* ``trajectory``, ``diagnostics``, ``seen_grads``, ``initial_grad_norms``: the rest of :class:`EpisodeProgress`.

It is written atomically (:func:`save_tensors`: a temporary file, then a rename; a link is never written through) and
read with :func:`load_tensors` (``torch.load(weights_only=True)`` on a regular file, never through a link): reading
a file never runs code, and an empty, truncated, corrupt, foreign or crafted file, or one of another layout, is a
``ValueError`` that names it and what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agents import ChainState
from agents._tensor_files import (
    PLAIN_LEAVES,
    UnreadableTensorFile,
    load_tensors,
    read_regular_file,
    save_tensors,
    write_bytes,
)
from minmax_envs.types import PLAYERS

if TYPE_CHECKING:
    from agents import PairTransformation
    from minmax_envs.env import BatchedEnv, Observation

FORMAT = "minmax_envs.run_episode/2"
#: the largest checkpoint read (a guard against a file that would exhaust memory)
MAX_BYTES = 64 << 30
#: the probe of an agent's fingerprint: from a fresh init, updates on these multiples of the first gradients
_PROBE = (1.0, 0.5, 2.0)  # no cancellation of first moments for any beta1 or momentum >= 0
_PROBE_RTOL = 1e-3  # relative tolerance on the probe's update norms (threads reorder sums; bf16 autocast)
_PROBE_ATOL = 1e-3  # absolute tolerance on the cosines of the probe's updates with their gradients
_START_OVER = "Delete it (or pass another checkpoint path) to start the episode over."
_LEAVES = PLAIN_LEAVES

#: the entries of a checkpoint and their types
LAYOUT: dict[str, tuple[type, ...]] = {
    "fingerprint": (dict,), "base_seed": (int,), "t": (int,), "env": (dict,), "agent": (dict,), "trajectory": (list,),
    "diagnostics": (dict,), "seen_grads": (dict,), "initial_grad_norms": (dict,),
}

#: the entries of :meth:`~minmax_envs.env.BatchedEnv.state_dict` and their types
ENV_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "env_id": (str, type(None)), "num_seeds": (int,), "params": (dict,), "instance": (dict,),
    "seeds": (torch.Tensor,), "rng": (dict,), "steps": (int,), "t": (torch.Tensor,), "terminated": (torch.Tensor,),
    "truncated": (torch.Tensor,), "diverged": (torch.Tensor,), "divergence_step": (torch.Tensor,),
    "last_updates": (dict, type(None)), "obs": (dict,), "np_random": (dict, type(None)), "game": (dict,),
}


@dataclass
class EpisodeProgress:
    """Where an episode stands after ``t`` iterations, besides the env: what :func:`~minmax_envs.run_episode`
    carries from one iteration to the next and a checkpoint stores.

    Attributes:
        t: iterations done (0 before the first).
        state: the agent's state.
        trajectory: ``(iteration, metrics)`` pairs recorded so far.
        diagnostics: the preallocated diagnostic tensors, ``(K, N)`` each (rows not reached yet are NaN).
        seen_grads: each player's latest gradients (what the next iteration acts on), kept for the diagnostics.
        initial_grad_norms: each player's first gradient norms (the denominators of ``game/grad_ratio``).
    """

    t: int
    state: Any
    trajectory: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    seen_grads: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    initial_grad_norms: dict[str, torch.Tensor] = field(default_factory=dict)


# --- the agent state as a tree of plain data -------------------------------------------------------------------------
def structure(x: Any) -> str:
    """A short description of a state's structure: NamedTuple types and fields, containers, leaf types (a dict
    of tensors is shown by its size)."""
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return f"{type(x).__name__}({', '.join(f'{f}={structure(v)}' for f, v in zip(x._fields, x))})"
    if isinstance(x, (tuple, list)):
        inner = ", ".join(structure(v) for v in x)
        return f"({inner}{',' if len(x) == 1 else ''})" if isinstance(x, tuple) else f"[{inner}]"
    if isinstance(x, dict):
        if x and all(isinstance(v, torch.Tensor) for v in x.values()):
            return f"{{{len(x)} tensor{'s' if len(x) > 1 else ''}}}"
        return "{" + ", ".join(f"{k}: {structure(v)}" for k, v in x.items()) + "}"
    return "None" if x is None else "Tensor" if isinstance(x, torch.Tensor) else type(x).__name__


def flatten_state(x: Any, leaves: list, where: str = "state") -> list:
    """The tree definition of an agent state (nested lists of names) and, appended to ``leaves``, its leaves:
    what a checkpoint stores instead of the state's NamedTuple classes. A named chain state
    (:class:`~agents.ChainState`) is stored as the tuple it is."""
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return ["namedtuple", type(x).__name__, list(x._fields),
                [flatten_state(v, leaves, f"{where}.{f}") for f, v in zip(x._fields, x)]]
    if type(x) in (tuple, list) or isinstance(x, ChainState):
        kind = "tuple" if isinstance(x, tuple) else "list"
        return [kind, [flatten_state(v, leaves, f"{where}[{i}]") for i, v in enumerate(x)]]
    if isinstance(x, dict):
        if not all(isinstance(k, (str, int)) for k in x):
            raise TypeError(f"cannot checkpoint the agent state: {where} has keys that are not str or int")
        return ["dict", list(x), [flatten_state(v, leaves, f"{where}[{k!r}]") for k, v in x.items()]]
    if isinstance(x, _LEAVES):
        leaves.append(x)
        return ["leaf"]
    raise TypeError(f"cannot checkpoint the agent state: {where} is a {type(x).__qualname__}; checkpoints hold "
                    "agent states made of tensors, numbers, strings, None and tuples, lists, dicts or NamedTuples "
                    "of them")


def unflatten_state(tree: list, leaves: Any, like: Any, where: str = "state") -> Any:
    """Rebuild a state from :func:`flatten_state`'s output into the structure of ``like``, a fresh ``agent.init``:
    NamedTuples take ``like``'s classes, tensors must have its shapes and dtypes; where ``like`` holds ``None``
    (a slot filled by the first updates, such as a graft's first norms) any plain containers are taken. A tuple
    takes ``like``'s class where that is a named chain state (:class:`~agents.ChainState`)."""
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
                             f"{structure(like)}")
        return value
    if kind == "namedtuple":
        _, name, fields, children = tree
        if not (is_nt and type(like).__name__ == name and list(like._fields) == list(fields)):
            raise ValueError(f"agent {where} is a {name}({', '.join(fields)}), a fresh agent.init() has "
                             f"{structure(like)}")
        return type(like)(*(unflatten_state(c, leaves, v, f"{where}.{f}") for c, v, f in zip(children, like, fields)))
    if kind in ("tuple", "list"):
        children = tree[1]
        fits = type(like) is list if kind == "list" else type(like) is tuple or isinstance(like, ChainState)
        if like is not None and (not fits or len(like) != len(children)):
            raise ValueError(f"agent {where} is a {kind} of {len(children)}, a fresh agent.init() has "
                             f"{structure(like)}")
        subs = [None] * len(children) if like is None else list(like)
        out = [unflatten_state(c, leaves, v, f"{where}[{i}]") for i, (c, v) in enumerate(zip(children, subs))]
        if kind == "list":
            return out
        return type(like)(out) if isinstance(like, ChainState) else tuple(out)
    if kind == "dict":
        _, keys, children = tree
        if like is not None and (not isinstance(like, dict) or list(like) != list(keys)):
            raise ValueError(f"agent {where} has the keys {list(keys)}, a fresh agent.init() has "
                             f"{structure(like)}")
        return {k: unflatten_state(c, leaves, None if like is None else like[k], f"{where}[{k!r}]")
                for k, c in zip(keys, children)}
    raise ValueError(f"agent {where}: unknown node {kind!r}")


def _restore_agent_state(saved: dict, like: Any) -> Any:
    leaves = iter(saved["leaves"])
    state = unflatten_state(saved["treedef"], leaves, like)
    if next(leaves, _END) is not _END:
        raise ValueError("the agent state has more leaves than its tree definition")
    return state


_END = object()


# --- fingerprints: which episode a checkpoint belongs to ------------------------------------------------------------
def _device(obs: Observation) -> torch.device:
    return next(iter(obs[PLAYERS[0]].params.values())).device


def _clone(params: dict) -> dict:
    return {pl: {k: v.detach().clone() for k, v in ps.items()} for pl, ps in params.items()}


def agent_fingerprint(agent: PairTransformation, obs: dict) -> dict:
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
    out = {"evaluations": agent.evaluations, "state": structure(state)}
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



def env_fingerprint(env: BatchedEnv) -> dict:
    """The arguments :func:`minmax_envs.make` made the env with; for an env built by hand, its game class and
    the env's own arguments (a hand-built game's arguments are not known)."""
    if env.make_kwargs is not None:
        return dict(env.make_kwargs)
    return {"env_id": env.env_id, "game": f"{type(env.game).__module__}.{type(env.game).__qualname__}",
            "num_seeds": env.num_seeds, "device": str(env.device), "dtype": str(env.dtype).removeprefix("torch."),
            "regularizer": env.regularizer, "max_steps": env.max_steps,
            "divergence_threshold": env.divergence_threshold, "compile": env.compiled}



def episode_fingerprint(env: BatchedEnv, agent: PairTransformation, obs: Observation, **episode: Any) -> dict:
    """What identifies an episode (see "Checkpoints" in :func:`~minmax_envs.run_episode`): ``{"env":``
    :func:`env_fingerprint` ``, "episode": episode, "agent":`` :func:`agent_fingerprint` ``}``, with ``episode`` the
    episode's arguments (steps, seed, evaluation and diagnostic periods) and ``obs`` its first observation."""
    return {"env": env_fingerprint(env), "episode": episode, "agent": agent_fingerprint(agent, obs)}



# --- comparing fingerprints -----------------------------------------------------------------------------------------
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


def check_fingerprint(path: Path, saved: dict, now: dict) -> None:
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


# --- reading, writing, restoring -------------------------------------------------------------------------------------
def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint with :func:`load_tensors` (a regular file, no link followed, ``weights_only=True``: no code
    runs) and check its layout (:data:`LAYOUT`); every failure is a ``ValueError`` that names the file and what to
    do."""
    try:
        payload = load_tensors(path, max_bytes=MAX_BYTES)
    except UnreadableTensorFile as e:
        raise ValueError(f"checkpoint {path} cannot be read: {e.reason}. Checkpoints load with "
                         f"torch.load(weights_only=True): tensors and plain containers only, never code. "
                         f"{_START_OVER}") from None

    def wrong(what: str) -> ValueError:
        return ValueError(f"checkpoint {path} is not a run_episode checkpoint of this version: {what}. {_START_OVER}")

    if not isinstance(payload, dict):
        raise wrong(f"it holds a {type(payload).__name__}, not a dict")
    if payload.get("format") != FORMAT:
        raise wrong("it has no 'format' entry" if "format" not in payload
                    else f"its format is {payload['format']!r}, this version reads {FORMAT!r}")
    missing = [k for k in LAYOUT if k not in payload]
    if missing:
        raise wrong(f"it is missing {missing}")
    for k, types in LAYOUT.items():
        if not isinstance(payload[k], types) or (isinstance(payload[k], bool) and int in types):
            raise wrong(f"its entry {k!r} is a {type(payload[k]).__name__}, expected {types[0].__name__}")
    if not 0 <= payload["base_seed"] < 2**63:
        raise wrong(f"its base seed {payload['base_seed']} is outside [0, 2**63)")
    agent = payload["agent"]
    if not (isinstance(agent.get("treedef"), list) and isinstance(agent.get("leaves"), list)):
        raise wrong("its entry 'agent' must hold the lists 'treedef' and 'leaves'")
    return payload


def save_checkpoint(path: Path, fingerprint: dict, base_seed: int, env: BatchedEnv, agent: PairTransformation,
                    progress: EpisodeProgress) -> None:
    """Write the checkpoint of ``env`` and ``progress`` at ``path`` atomically (:func:`save_tensors`).

    Raises:
        TypeError: the agent state holds something a checkpoint cannot (named by its place in the state).
    """
    leaves: list = []
    tree = flatten_state(progress.state if agent.state_dict is None else agent.state_dict(progress.state), leaves)
    save_tensors(path, {"format": FORMAT, "fingerprint": fingerprint, "base_seed": base_seed, "t": progress.t,
                        "env": env.state_dict(), "agent": {"treedef": tree, "leaves": leaves},
                        "trajectory": progress.trajectory, "diagnostics": progress.diagnostics,
                        "seen_grads": progress.seen_grads, "initial_grad_norms": progress.initial_grad_norms},
                 what="checkpoint")


def restore(path: Path, saved: dict, env: BatchedEnv, agent: PairTransformation, steps: int,
            diagnostic_rows: int) -> EpisodeProgress:
    """Load a checked checkpoint (:func:`read_checkpoint`) into ``env`` and rebuild the agent state into the structure
    of a fresh ``agent.init``: the episode's progress, to go on from iteration ``progress.t + 1``.

    Args:
        path: the checkpoint's file, for messages.
        saved: what :func:`read_checkpoint` read from it (its fingerprint already checked).
        env: the episode's env (reset with the episode's seed); its state is replaced.
        agent: the episode's agent.
        steps: the episode's iterations (the checkpoint's ``t`` must be within them).
        diagnostic_rows: the number of recorded diagnostic iterations (each diagnostic is ``(rows, N)``).

    Raises:
        ValueError: something in the checkpoint does not fit this env or agent, naming it.
    """
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
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != (diagnostic_rows, env.num_seeds):
                raise ValueError(f"its diagnostic {name!r} must be a tensor of shape "
                                 f"{(diagnostic_rows, env.num_seeds)}")
        for name, d in (("seen_grads", seen), ("initial_grad_norms", initial)):
            if not set(d) <= set(PLAYERS):
                raise ValueError(f"its entry {name!r} must be keyed by players, got {sorted(map(str, d))}")
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError, StopIteration) as e:
        raise ValueError(f"checkpoint {path} holds an episode state that cannot be restored here: {e}. "
                         f"{_START_OVER}") from None
    return EpisodeProgress(t, state, trajectory, diag, seen, initial)


# --- the env's state ------------------------------------------------------------------------------------------------
def check_env_state(state: Any, params: dict[str, dict[str, torch.Tensor]] | None) -> None:
    """The layout of :meth:`~minmax_envs.env.BatchedEnv.state_dict` (:data:`ENV_STATE_TYPES`), checked before
    anything is restored: a ``ValueError`` naming the first entry that is missing or of another type or shape.

    Args:
        state: what is about to be restored.
        params: the env's current parameters (after a reset), whose names, shapes and dtypes the state's must
            have; ``None`` before the first reset.
    """
    if not isinstance(state, dict):
        raise ValueError(f"env state must be a dict made by BatchedEnv.state_dict(), got {type(state).__name__}")
    missing = [k for k in ENV_STATE_TYPES if k not in state]
    if missing:
        raise ValueError(f"env state is missing {missing}")
    for k, types in ENV_STATE_TYPES.items():
        v = state[k]
        if not isinstance(v, types) or (isinstance(v, bool) and int in types):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"env state[{k!r}] must be {names}, got {type(v).__name__}")
    n = state["num_seeds"]
    rng = state["rng"]
    per_seed = {k: state[k] for k in ("seeds", "t", "terminated", "truncated", "diverged", "divergence_step")}
    per_seed.update({f"rng/{k}": rng.get(k) for k in ("keys", "counters")})
    for k, v in per_seed.items():
        if not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[0] != n:
            got = f"shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else f"a {type(v).__name__}"
            raise ValueError(f"env state[{k!r}] must be a tensor with a leading dimension of {n} seeds, got {got}")
    obs = state["obs"]
    if set(obs) != set(PLAYERS) or not all(isinstance(o, tuple) and len(o) == 2 for o in obs.values()):
        raise ValueError(f"env state['obs'] must map {list(PLAYERS)} to (grads, loss) pairs")
    saved = state["params"]
    if set(saved) != set(PLAYERS) or not all(isinstance(ps, dict) for ps in saved.values()):
        raise ValueError(f"env state['params'] must map {list(PLAYERS)} to dicts of tensors")
    for pl, ps in saved.items():
        for k, v in ps.items():
            if not isinstance(v, torch.Tensor):
                raise ValueError(f"env state['params'][{pl!r}][{k!r}] must be a tensor, got {type(v).__name__}")
        if params is None:
            continue
        if set(ps) != set(params[pl]):
            raise ValueError(f"env state['params'][{pl!r}] has the tensors {sorted(ps)}, this env "
                             f"{sorted(params[pl])}")
        for k, v in ps.items():
            if v.shape != params[pl][k].shape or v.dtype != params[pl][k].dtype:
                raise ValueError(f"env state['params'][{pl!r}][{k!r}] is {v.dtype} of shape {tuple(v.shape)}, "
                                 f"this env's {params[pl][k].dtype} of shape {tuple(params[pl][k].shape)}")


__all__ = [
    "ENV_STATE_TYPES", "FORMAT", "LAYOUT", "MAX_BYTES", "EpisodeProgress", "UnreadableTensorFile", "agent_fingerprint",
    "check_env_state", "check_fingerprint", "env_fingerprint", "episode_fingerprint", "flatten_state", "load_tensors",
    "read_checkpoint", "read_regular_file", "restore", "save_checkpoint", "save_tensors", "structure",
    "unflatten_state", "write_bytes",
]

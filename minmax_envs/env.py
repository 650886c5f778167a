"""The torch-native batched environment: the fast path that episodes and evaluations use."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from minmax_envs._checks import check_int, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.checkpoint import check_env_state
from minmax_envs.games._base import Game, all_true
from minmax_envs.games.regularizers import gradient_field
from minmax_envs.types import PLAYERS, Params, PlayerParams

_MAX_SEED = 2**63 - 1
_EVAL_SALT = 0x5EED_E7A1


class PlayerObservation(NamedTuple):
    """What one player observes: its parameters, its gradient and its loss.

    ``params`` and ``grads`` are dicts of tensors with the leading seed dimension; ``loss`` has shape
    ``(N,)``. They are the env's own tensors, not copies: treat them as read-only and change the
    parameters only through :meth:`BatchedEnv.step`. ``moving`` says whether this player's update is
    applied at the next step; a player that does not move (the generator during the ``n_critic``
    discriminator steps of an alternating schedule) has ``grads`` and ``loss`` set to ``None``.
    """

    params: Params
    grads: Params | None
    loss: torch.Tensor | None
    moving: bool = True


Observation = dict[str, PlayerObservation]


def _peaks(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Largest magnitude per seed over all ``tensors`` (each ``(N, ...)``), NaN if any entry is NaN: ``(N,)``.

    A fixed handful of kernels whatever the number of tensors: two foreach kernels for one seed, else one
    concatenation and two row reductions (``amax`` / ``amin``; ``aminmax`` over a dimension takes a path ~20x
    slower on long rows)."""
    if tensors[0].shape[0] == 1 and hasattr(torch, "_foreach_max"):
        return torch.stack(torch._foreach_max(torch._foreach_abs(tensors))).amax().reshape(1)
    flat = torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)
    return torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))


_SMALL = 1 << 18  # elements: below this, one concatenation costs less than a reduction launched per tensor


def _range(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest and largest entry over all ``tensors`` (NaN if any entry is NaN), each tensor read once: one
    concatenation and one ``aminmax`` when they are small in all, else one ``aminmax`` per tensor."""
    if sum(t.numel() for t in tensors) <= _SMALL:
        return torch.aminmax(torch.cat([t.reshape(-1) for t in tensors]))
    lo, hi = zip(*(torch.aminmax(t) for t in tensors))
    return torch.stack(lo).min(), torch.stack(hi).max()


def _all_within(values: list[torch.Tensor], gradients: list[torch.Tensor], threshold: float) -> bool:
    """Whether every value is finite and at most ``threshold`` in magnitude and every gradient is finite, from
    whole-tensor reductions (NaN propagates). Answered on the CPU only, where it costs no synchronization; on an
    accelerator it returns ``False`` and the per-seed check runs (no sync)."""
    if values[0].device.type != "cpu":
        return False
    lo, hi, g_lo, g_hi = torch.stack([*_range(values), *_range(gradients)]).tolist()  # four numbers to Python
    return all(map(math.isfinite, (lo, hi, g_lo, g_hi))) and -lo <= threshold and hi <= threshold


def _ndim_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


class BatchedEnv:
    """A game as a two-player environment over a batch of ``N`` independent seeds.

    ``reset(seed=s)`` gives slot ``i`` the seed ``s + i``: slot ``i`` then follows exactly the episode a
    batch of one reset with seed ``s + i`` would follow. ``step(updates)`` adds each player's updates to
    its parameters (``updates[player][name]`` has the shape and dtype of ``obs[player].params[name]``),
    draws the next data and returns the new observation.

    A seed whose parameters, losses or gradients become non-finite, or whose parameters exceed
    ``divergence_threshold`` in absolute value, *diverges*: it is terminated, its parameters freeze, and
    ``info["diverged"]`` / ``info["divergence_step"]`` record it; the other seeds go on. A seed also stops
    (truncated) after ``max_steps`` steps when that is set. Stopped seeds ignore their updates, also the ones an
    agent writes in place through :meth:`writable`, the one door for such agents.

    Rewards are ``-loss`` per player (each player minimizes its own loss).

    With ``compile=True`` the gradient field (losses and gradients, regularizer included) runs through
    ``torch.compile`` (inductor: fused C++ loops on the CPU, Triton kernels on CUDA): the same values up to
    floating-point reassociation, compiled at the first :meth:`reset` (seconds to a minute; cached on disk by
    torch for later processes). Batched games without a regularizer only (torch.compile does not differentiate
    twice); the eager path is the default.

    Updates are data, never part of a graph: an update that requires grad (computed with autograd, say) is
    applied detached, so the parameters never require grad and never hold an autograd graph.

    Attributes:
        make_kwargs: the arguments :func:`~minmax_envs.make` made this env with (canonical and JSON-able:
            ``make(**env.make_kwargs)`` makes the same env again), ``None`` for an env built by hand; checkpoints
            of :func:`~minmax_envs.run_episode` are fingerprinted with them.
    """

    def __init__(self, game: Game, *, regularizer: str | None = None, reg_weight: float | None = None,
                 max_steps: int | None = None, divergence_threshold: float = 1e6, env_id: str | None = None,
                 compile: bool = False):
        self.max_steps = check_int("max_steps", max_steps, allow_none=True)
        self.divergence_threshold = check_real("divergence_threshold", divergence_threshold, low=0,
                                               low_inclusive=False)
        self.game = game
        self.env_id = env_id
        self.regularizer = regularizer
        self.reg_weight = reg_weight
        self._field = gradient_field(game, regularizer, reg_weight)
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        if compile and not game.batched:
            raise ValueError(f"compile=True is for batched games; {env_id or type(game).__name__} runs one seed "
                             "per env on torch modules (compile those yourself if needed)")
        if compile and regularizer is not None:
            raise ValueError(f"compile=True cannot be combined with regularizer={regularizer!r}: the regularizers "
                             "differentiate twice, which torch.compile does not support; use compile=False")
        self.compiled = compile
        if compile:
            self._field = torch.compile(self._field, dynamic=False)
        self._np_random: np.random.Generator | None = None
        self._rng: SeedStreams | None = None
        self.make_kwargs: dict[str, Any] | None = None

    # --- pickling ------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the gradient field (a closure of the game, or a ``torch.compile`` wrapper), which
        :meth:`__setstate__` builds again from the game, the regularizer and ``compile``: a pickled env (spawned
        workers, Ray actors) continues its episode exactly where it was."""
        state = self.__dict__.copy()
        del state["_field"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore :meth:`__getstate__`: the gradient field built again, and the parameters adopted by the game
        (:meth:`~minmax_envs.games.Game.restore_params`, as for a checkpoint): pickle copies a view apart from
        its base, so a module-backed game's parameter views are made again on its restored modules."""
        self.__dict__.update(state)
        self._field = gradient_field(self.game, self.regularizer, self.reg_weight)
        if self.compiled:
            self._field = torch.compile(self._field, dynamic=False)
        if self._rng is not None:
            self._params = self.game.restore_params(self._params)
            self._obs = {pl: o._replace(params=self._params[pl]) for pl, o in self._obs.items()}

    # --- properties ---------------------------------------------------------------------------
    @property
    def num_seeds(self) -> int:
        return self.game.num_seeds

    @property
    def device(self) -> torch.device:
        return self.game.device

    @property
    def dtype(self) -> torch.dtype:
        return self.game.dtype

    @property
    def players(self) -> tuple[str, str]:
        return PLAYERS

    @property
    def params(self) -> PlayerParams:
        self._require_reset()
        return self._params

    @property
    def seeds(self) -> torch.Tensor:
        """The seed of every slot, shape ``(N,)``."""
        self._require_reset()
        return self._seeds

    @property
    def movers(self) -> tuple[str, ...]:
        """The players whose updates the next :meth:`step` applies (both, unless the game alternates)."""
        return self.game.movers(self._steps)

    @property
    def done(self) -> torch.Tensor:
        """Slots that are terminated or truncated, shape ``(N,)``."""
        self._require_reset()
        return self._terminated | self._truncated

    @property
    def t(self) -> torch.Tensor:
        """Env steps each slot has taken in its episode (stopped slots stop counting), shape ``(N,)``."""
        self._require_reset()
        return self._t

    @property
    def diverged(self) -> torch.Tensor:
        """Slots that diverged, shape ``(N,)`` (bool)."""
        self._require_reset()
        return self._diverged

    @property
    def divergence_step(self) -> torch.Tensor:
        """Per slot, the env step at which it diverged, ``-1`` if it did not, shape ``(N,)``."""
        self._require_reset()
        return self._divergence_step

    def _require_reset(self) -> None:
        if self._rng is None:
            raise RuntimeError("call reset() before using the environment")

    # --- episode ------------------------------------------------------------------------------
    def _base_seed(self, seed: int | None) -> int:
        if seed is None:
            if self._np_random is None:
                self._np_random = np.random.default_rng()
            return int(self._np_random.integers(0, 2**62))
        check_int("seed", seed, low=0, allow_none=True)
        if seed + self.num_seeds - 1 > _MAX_SEED:
            raise ValueError(f"seed + num_seeds - 1 must be below 2**63, got seed={seed}")
        self._np_random = np.random.default_rng(int(seed))
        return int(seed)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        """Start a new episode on every slot; slot ``i`` gets seed ``seed + i``."""
        base = self._base_seed(seed)
        n, dev = self.num_seeds, self.device
        self._seeds = base + torch.arange(n, device=dev, dtype=torch.int64)
        self._rng = SeedStreams(self._seeds)
        self._params, self._instance = self.game.init(self._rng)
        self._steps = 0
        self._t = torch.zeros(n, dtype=torch.int64, device=dev)
        self._terminated = torch.zeros(n, dtype=torch.bool, device=dev)
        self._truncated = torch.zeros(n, dtype=torch.bool, device=dev)
        self._diverged = torch.zeros(n, dtype=torch.bool, device=dev)
        self._divergence_step = torch.full((n,), -1, dtype=torch.int64, device=dev)
        self._last_updates: PlayerParams | None = None
        self._pending_reset: torch.Tensor | None = None
        self._written: dict[str, Params | None] = {}  # players written in place since the last step
        self._evaluate(advance=None)
        return self._obs, self._info()

    def reset_where(self, mask: torch.Tensor, seeds: torch.Tensor) -> None:
        """Start new episodes on the slots where ``mask`` is true, with the given per-slot ``seeds``.

        The other slots keep their state. The next :meth:`step` gives the reset slots their first
        observation (their updates are ignored in that step), exactly as a fresh ``reset``.
        """
        self._require_reset()
        if not self.game.batched or self.game.cycle != 1:
            raise ValueError("reset_where needs a batched game whose players move simultaneously")
        self._rng.reseed(mask, seeds)
        with self._rng.advancing(mask) as rng:
            params, instance = self.game.init(rng)
        self._params = {pl: {k: torch.where(_ndim_mask(mask, v), params[pl][k], v) for k, v in ps.items()}
                        for pl, ps in self._params.items()}
        self._instance = {k: torch.where(_ndim_mask(mask, v), instance[k], v) for k, v in self._instance.items()}
        self._seeds = torch.where(mask, seeds, self._seeds)
        zero = torch.zeros_like(mask)
        self._t = torch.where(mask, torch.zeros_like(self._t), self._t)
        self._terminated = torch.where(mask, zero, self._terminated)
        self._truncated = torch.where(mask, zero, self._truncated)
        self._diverged = torch.where(mask, zero, self._diverged)
        self._divergence_step = torch.where(mask, torch.full_like(self._divergence_step, -1), self._divergence_step)
        self._pending_reset = mask

    def restart_where(self, mask: torch.Tensor, seeds: torch.Tensor) -> Observation:
        """:meth:`reset_where`, carried out now instead of at the next :meth:`step`: the slots where ``mask`` is
        true start new episodes with ``seeds`` and the returned observation holds their first observation, exactly
        as a fresh ``reset``; the other slots do not move (same parameters, step counts and data streams, their
        observation and flags kept as they were). What an autoreset in the same step needs (Gymnasium's
        ``AutoresetMode.SAME_STEP``, stable-baselines3's ``VecEnv``)."""
        before, flags = self._obs, (self._terminated, self._diverged, self._divergence_step)
        self.reset_where(mask, seeds)
        self._pending_reset = None
        if self._last_updates is not None:  # a restarted slot has made no update yet
            self._last_updates = {pl: {k: torch.where(_ndim_mask(mask, u), torch.zeros_like(u), u)
                                       for k, u in upd.items()} for pl, upd in self._last_updates.items()}
        self._evaluate(advance=mask)  # the other slots drew their next data here: their old observation stays
        self._obs = {pl: o._replace(grads={k: torch.where(_ndim_mask(mask, g), g, before[pl].grads[k])
                                           for k, g in o.grads.items()},
                                    loss=torch.where(mask, o.loss, before[pl].loss))
                     for pl, o in self._obs.items()}
        now = (self._terminated, self._diverged, self._divergence_step)  # a restarted slot may diverge at once
        self._terminated, self._diverged, self._divergence_step = (
            torch.where(mask, new, old) for new, old in zip(now, flags))
        return self._obs

    def _running(self) -> torch.Tensor:
        """Slots whose updates the next :meth:`step` applies: neither stopped nor restarting, ``(N,)``."""
        running = ~(self._terminated | self._truncated)
        return running if self._pending_reset is None else running & ~self._pending_reset

    def __getattr__(self, name: str) -> Any:
        """Only for attributes that do not exist: the removed in-place protocol names its replacement."""
        if name in ("hold", "needs_hold"):
            raise AttributeError(f"BatchedEnv.{name} was replaced by one door for in-place agents: `with "
                                 "env.writable(players) as params:` keeps what it needs and restores stopped seeds "
                                 "on exit; step() then takes the other players' updates only")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def writable(self, players: Sequence[str], *, keep_update: bool = False) -> Writable:
        """The one door for agents that write their players' new parameters in place (an
        :class:`~agents.InPlaceTransformation`, torch.optim's contract)::

            with env.writable(["generator"]) as params:
                state = tx.step(obs["generator"].grads, state, params["generator"])  # writes into params
            obs, *_ = env.step({"discriminator": d_update})  # the other movers' updates only

        On exit the env settles what was written: stopped seeds (diverged, truncated or restarting) get their
        parameters back, since stopped seeds ignore their updates, and the next :meth:`step` takes the written
        players as updated (they are left out of its ``updates``) and applies the game's projection (and EMA) to
        them. A copy of the parameters is kept on entering only where it is needed: when some seed is stopped
        (always on an accelerator, where finding out would synchronize), or with ``keep_update``.

        Args:
            players: the players whose parameters are written, each one of :attr:`movers` (none: a door that does
                nothing, so that a loop over mixed agents needs no branch).
            keep_update: also report the update (new minus old parameters) to the game's metrics after the next
                step, as a pure agent's update is (:func:`~minmax_envs.run_episode` asks for it where metrics are
                computed); without it those metrics see no last update (e.g. TwoMode's ``update_speed_ratio`` is
                NaN).

        Returns:
            A context manager whose value is ``{player: params}``, the env's own tensors of ``players``: write
            into them (``p.add_(u)``, ``p.copy_(x)``), never rebind them. If the block raises, nothing is marked
            written (the stopped seeds are still restored where a copy was kept).
        """
        self._require_reset()
        players = tuple(players)
        movers = self.movers if players else ()
        for pl in players:
            if pl not in PLAYERS:
                raise ValueError(f"unknown player {pl!r}; players are {list(PLAYERS)}")
            if pl not in movers:
                raise ValueError(f"the {pl} does not move at this step (movers: {list(movers)}); only a mover's "
                                 "parameters are writable")
            if pl in self._written:
                raise ValueError(f"the {pl}'s parameters were already written at this step; call step() first")
        return Writable(self, players, keep_update)

    def _settle(self, players: tuple[str, ...], held: PlayerParams | None, written: bool) -> None:
        """After ``players``' parameters were written in place: restore their stopped seeds from ``held`` (the copy
        kept on entering :meth:`writable`) and, if ``written``, mark them written with their update (new minus
        held; ``None`` without a copy). Without a copy every seed was running on entering: nothing to restore."""
        active = None if held is None else self._running()
        restore = active is not None and not all_true(active)
        for pl in players:
            ps = self._params[pl]
            if restore:
                for k, p in ps.items():
                    p.copy_(torch.where(_ndim_mask(active, p), p, held[pl][k]))
            if written:
                self._written[pl] = None if held is None else {k: ps[k] - held[pl][k] for k in ps}

    def step(self, updates: dict[str, Params], *, validate: bool = True):
        """Apply both players' updates simultaneously and observe the next gradients.

        Returns ``(obs, rewards, terminated, truncated, info)``; rewards, terminated and truncated are
        dicts by player of ``(N,)`` tensors (the reward of a player that did not get a loss this step,
        see :attr:`PlayerObservation.moving`, is ``None``). ``updates`` has one entry per player of
        :attr:`movers` whose parameters were not written in place at this step (see :meth:`writable`): its update
        tensors. Raises ``ValueError`` on a malformed update (missing or extra players or tensors, wrong
        shape, dtype or device) and, with ``validate=True``, on a non-finite update for a seed that is still
        running (one host sync); with ``validate=False`` (what :func:`~minmax_envs.run_episode` uses) such an
        update makes its seed diverge, which is recorded.
        """
        self._require_reset()
        written = self._written
        if self._validate(updates, written):  # some update requires grad: apply it as data, no graph on the params
            updates = {pl: {k: u.detach() for k, u in upd.items()} for pl, upd in updates.items()}
        self._written = {}
        active = self._running()
        pending = self._pending_reset
        self._pending_reset = None
        if validate:
            self._check_finite(updates, active)
        bound = {pl: self._params[pl] for pl in written}
        self._params = self.game.apply_updates(self._params, updates, active, tuple(written))
        for pl, ps in bound.items():  # in-place agents keep references to these tensors: never rebind them
            for k, p in ps.items():
                if self._params[pl][k] is not p:
                    p.copy_(self._params[pl][k])
            self._params[pl] = ps
        self._last_updates = ({**updates, **written} if all(v is not None for v in written.values())
                              else None)
        self._steps += 1
        self._t = self._t + active.to(torch.int64)
        self._evaluate(advance=active if pending is None else active | pending)
        if self.max_steps is not None:
            self._truncated = self._truncated | (self._t >= self.max_steps)
        rewards = {pl: None if self._obs[pl].loss is None else -self._obs[pl].loss for pl in PLAYERS}
        term = {pl: self._terminated for pl in PLAYERS}
        trunc = {pl: self._truncated for pl in PLAYERS}
        return self._obs, rewards, term, trunc, self._info()

    def _evaluate(self, advance: torch.Tensor | None) -> None:
        """Draw the next data and compute losses and gradients at the current parameters."""
        with self._rng.advancing(advance) as rng:
            batch = self.game.sample(rng, self._instance)
        movers = self.movers
        losses, grads = self._field(self._params, self._instance, batch, movers)
        self._obs = {pl: PlayerObservation(self._params[pl], grads[pl], losses[pl]) if pl in movers
                     else PlayerObservation(self._params[pl], None, None, False) for pl in PLAYERS}
        # divergence: any non-finite loss / parameter / gradient, or a parameter beyond the threshold
        values = [losses[pl] for pl in movers] + [p for pl in PLAYERS for p in self._params[pl].values()]
        gradients = [g for pl in movers for g in grads[pl].values()]
        if _all_within(values, gradients, self.divergence_threshold):
            return  # the common case, answered with whole-tensor reductions: no seed diverges at this step
        worst, g_worst = _peaks(values), _peaks(gradients)
        bad = ~(worst <= self.divergence_threshold) | ~torch.isfinite(g_worst)
        running = ~(self._terminated | self._truncated)
        new_div = bad & running
        self._divergence_step = torch.where(new_div, self._t, self._divergence_step)
        self._diverged = self._diverged | new_div
        self._terminated = self._terminated | new_div

    def _info(self) -> dict[str, torch.Tensor]:
        return {"step": self._t, "diverged": self._diverged, "divergence_step": self._divergence_step}

    # --- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the episode exactly: parameters, instance, random streams,
        counters, divergence records, the current observation and the game's own state."""
        self._require_reset()
        return {
            "env_id": self.env_id, "num_seeds": self.num_seeds, "params": self._params, "instance": self._instance,
            "seeds": self._seeds, "rng": self._rng.state(), "steps": self._steps, "t": self._t,
            "terminated": self._terminated, "truncated": self._truncated, "diverged": self._diverged,
            "divergence_step": self._divergence_step, "last_updates": self._last_updates,
            "obs": {pl: (o.grads, o.loss) for pl, o in self._obs.items()},
            "np_random": None if self._np_random is None else self._np_random.bit_generator.state,
            "game": self.game.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (from the same env id, number of seeds and game arguments).

        Raises ``ValueError`` on a state of another layout (missing entries, wrong types or shapes; after a
        :meth:`reset`, parameters with other names, shapes or dtypes than this env's)."""
        check_env_state(state, self._params if self._rng is not None else None)
        if state["env_id"] != self.env_id or state["num_seeds"] != self.num_seeds:
            raise ValueError(f"checkpoint is for {state['env_id']} with {state['num_seeds']} seeds, "
                             f"not {self.env_id} with {self.num_seeds}")
        self.game.load_state_dict(state["game"])
        self._params = self.game.restore_params(state["params"])
        self._instance, self._seeds = state["instance"], state["seeds"]
        self._rng = SeedStreams(self._seeds)
        self._rng.keys, self._rng.counters = state["rng"]["keys"], state["rng"]["counters"]
        self._steps, self._t = state["steps"], state["t"]
        self._terminated, self._truncated = state["terminated"], state["truncated"]
        self._diverged, self._divergence_step = state["diverged"], state["divergence_step"]
        self._last_updates = state["last_updates"]
        movers = self.movers
        self._obs = {pl: PlayerObservation(self._params[pl], *state["obs"][pl], pl in movers) for pl in PLAYERS}
        self._np_random = None
        if state["np_random"] is not None:
            self._np_random = np.random.default_rng()
            self._np_random.bit_generator.state = state["np_random"]
        self._pending_reset = None
        self._written = {}

    @property
    def observation(self) -> Observation:
        """The current observation (what the last ``reset`` or ``step`` returned)."""
        self._require_reset()
        return self._obs

    def metrics(self) -> dict[str, torch.Tensor]:
        """Per-seed game metrics at the current parameters, plus ``diverged`` (1.0 for a diverged seed)."""
        self._require_reset()
        with torch.no_grad():
            out = self.game.metrics(self._params, self._instance, self._last_updates,
                                    SeedStreams(self._seeds, salt=_EVAL_SALT))
        out["diverged"] = self._diverged.to(self.dtype)
        return out

    def quality(self, metrics: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The game's quality metric, signed so that larger is better: shape ``(N,)`` (from ``metrics`` if given,
        else computed alone: :meth:`Game.quality <minmax_envs.games._base.Game.quality>`)."""
        if metrics is not None:
            return self.game.quality_sign * metrics[self.game.quality_metric]
        self._require_reset()
        with torch.no_grad():
            q = self.game.quality(self._params, self._instance, self._last_updates,
                                  SeedStreams(self._seeds, salt=_EVAL_SALT))
        return self.game.quality_sign * q

    # --- validation ---------------------------------------------------------------------------
    def _validate(self, updates: Any, written: dict[str, Any]) -> bool:
        """Check the updates' players (the movers not ``written`` in place), names, shapes, dtypes and devices;
        return whether any requires grad."""
        requires_grad = False
        expected = [pl for pl in self.movers if pl not in written]
        if not isinstance(updates, dict) or set(updates) != set(expected):
            got = sorted(updates) if isinstance(updates, dict) else type(updates).__name__
            why = "" if len(self.movers) == 2 else " (this game alternates: only these players move at this step)"
            if written:
                why += f" (the {' and '.join(written)}'s parameters were written in place: env.writable)"
            raise ValueError(f"updates must be a dict with keys {expected}{why}, got {got}")
        for pl in expected:
            ref, upd = self._params[pl], updates[pl]
            if upd is None:
                raise ValueError(f"updates[{pl!r}] is None: an agent that writes its parameters in place does so "
                                 f"inside `with env.writable([{pl!r}]):`, and step() then takes the other players' "
                                 "updates only")
            if not isinstance(upd, dict) or set(upd) != set(ref):
                got = sorted(upd) if isinstance(upd, dict) else type(upd).__name__
                raise ValueError(f"updates[{pl!r}] must have the tensors {sorted(ref)}, got {got}")
            for k, p in ref.items():
                u = upd[k]
                if not isinstance(u, torch.Tensor):
                    raise ValueError(f"updates[{pl!r}][{k!r}] must be a torch.Tensor, got {type(u).__name__}")
                if u.shape != p.shape:
                    raise ValueError(f"updates[{pl!r}][{k!r}] has shape {tuple(u.shape)}, "
                                     f"expected {tuple(p.shape)} (leading dimension = num_seeds)")
                if u.dtype != p.dtype:
                    raise ValueError(f"updates[{pl!r}][{k!r}] has dtype {u.dtype}, expected {p.dtype}")
                if u.device != p.device:
                    raise ValueError(f"updates[{pl!r}][{k!r}] is on {u.device}, expected {p.device}")
                requires_grad = requires_grad or u.requires_grad
        return requires_grad

    def _check_finite(self, updates: dict[str, Params], active: torch.Tensor) -> None:
        bad = {f"{pl}/{k}": (~torch.isfinite(u).reshape(u.shape[0], -1).all(dim=1)) & active
               for pl in updates for k, u in updates[pl].items()}
        if not bad:
            return
        flags = torch.stack(list(bad.values())).any(dim=1).tolist()  # one host sync for all tensors
        if any(flags):
            name = [n for n, f in zip(bad, flags) if f][0]
            seeds = torch.nonzero(bad[name]).flatten().tolist()
            raise ValueError(f"update {name} is not finite (NaN or Inf) for running seed slots {seeds[:10]}; "
                             "fix the agent, or use run_episode, which records such seeds as diverged")

    def __repr__(self) -> str:
        return (f"BatchedEnv({self.env_id or type(self.game).__name__}, num_seeds={self.num_seeds}, "
                f"device={self.device}, dtype={self.dtype}{', compiled' if self.compiled else ''})")


class Writable:
    """The context of :meth:`BatchedEnv.writable` (one use): keeps a copy of the players' parameters where needed
    on entering, and settles them on exit."""

    __slots__ = ("env", "held", "keep_update", "players")

    def __init__(self, env: BatchedEnv, players: tuple[str, ...], keep_update: bool):
        self.env, self.players, self.keep_update = env, players, keep_update
        self.held: PlayerParams | None = None

    def __enter__(self) -> PlayerParams:
        env = self.env
        if self.players and (self.keep_update or not all_true(env._running())):
            self.held = {pl: {k: v.clone() for k, v in env._params[pl].items()} for pl in self.players}
        return {pl: env._params[pl] for pl in self.players}

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if self.players:
            self.env._settle(self.players, self.held, written=exc_type is None)
        return False

"""The batched game core: both players' parameters with a leading seed dimension, data, losses, gradients.

A game is the physics of a GAN setup and knows nothing of optimizers or RL. Every tensor has a leading
seed dimension ``N``; seeds never interact, so one set of tensor ops advances all of them on any device.
Both players *minimize* their own loss: for a zero-sum game with payoff $f$ (generator minimizes,
discriminator maximizes) the generator's loss is $f$ and the discriminator's is $-f$.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from minmax_envs._checks import check_choice, check_int
from minmax_envs._rng import SeedStreams
from minmax_envs.games._per_seed import is_per_seed, number_or_per_seed, seed_values
from minmax_envs.types import PLAYERS, Params, PlayerParams  # noqa: F401 - also imported from here

_FLOAT_DTYPES = (torch.float32, torch.float64)


def all_true(mask: torch.Tensor) -> bool:
    """Whether every entry of a boolean mask is true, answered only where that is free: on the CPU.
    On an accelerator it returns ``False`` (callers take their masked path) to avoid a host-device sync."""
    return mask.device.type == "cpu" and bool(mask.all())


def per_seed_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the leading seed dimension: ``(N, ...) -> (N,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def per_seed_sq_norm(tensors: Params) -> torch.Tensor:
    """Squared Euclidean norm per seed over all tensors of a dict: ``(N,)``."""
    return sum(per_seed_sum(t * t) for t in tensors.values())


UPDATES = ("simultaneous", "alternating")


@dataclass(frozen=True)
class Schedule:
    r"""The update schedule: which players move at each env step. An env-level setting, the same for every game
    (``make(id, update=..., n_critic=...)``); each game only has a default (:meth:`Game.default_schedule`).

    * ``update="simultaneous"``: both players move at every step (simultaneous gradient play); ``n_critic``
      must be 1.
    * ``update="alternating"``: ``n_critic`` discriminator steps, then one generator step, each on a fresh batch
      and each observing its gradient at the parameters the other player's last move left (only the moving
      player observes a gradient); the cycle repeats every ``n_critic + 1`` env steps.

    Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually converge?", analyse both
    schedules on the Dirac GAN.
    """

    update: str = "simultaneous"
    n_critic: int = 1

    def __post_init__(self) -> None:
        check_choice("update", self.update, UPDATES)
        check_int("n_critic", self.n_critic)
        if self.update == "simultaneous" and self.n_critic != 1:
            raise ValueError(f"update='simultaneous' moves both players at every step: n_critic must be 1, "
                             f"got {self.n_critic}")

    @property
    def cycle(self) -> int:
        """Env steps of one update cycle (one iteration of ``run_episode``): 1, or ``n_critic + 1``."""
        return 1 if self.update == "simultaneous" else self.n_critic + 1

    def movers(self, step: int) -> tuple[str, ...]:
        """The players whose updates the env applies at env step ``step`` (0 first)."""
        if self.update == "simultaneous":
            return PLAYERS
        return ("discriminator",) if step % self.cycle < self.n_critic else ("generator",)


@dataclass(frozen=True)
class GameSettings:
    """Base of the games' frozen ``Config`` dataclasses (gymnax's ``EnvParams``): the arguments of a game, passed
    whole, validated in ``__post_init__``. A field may default to ``None`` for a default computed from the others
    (``1/log(d)``, the architecture's width...): :meth:`resolved` fills those in.

    The fields of :attr:`per_seed_args` may hold one value per seed (:mod:`minmax_envs.games._per_seed`): a
    sequence, array or 1-D tensor of ``num_seeds`` numbers, kept as a tuple of floats (the game made from the
    config checks the length)."""

    #: the fields that may hold one value per seed (none of them changes a tensor's shape), each with the interval
    #: of its values (:func:`~minmax_envs._checks.check_real`'s keywords)
    per_seed_args: ClassVar[dict[str, dict[str, Any]]] = {}

    def _store(self, **values: Any) -> None:
        """Set fields to their checked, canonical values (``float`` for a real, ``int`` for an integer), in
        ``__post_init__`` (the dataclass is frozen)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _store_per_seed(self, *names: str) -> None:
        """Check and store fields of :attr:`per_seed_args` (all of them if no name is given; a ``None`` is left for
        :meth:`resolved`): a number as a float, one value per seed as a tuple of floats, each within the field's
        interval."""
        for name in names or tuple(self.per_seed_args):
            value = getattr(self, name)
            if value is not None:
                self._store(**{name: number_or_per_seed(name, value, **self.per_seed_args[name])})

    def resolved(self) -> GameSettings:
        """This config with every ``None`` that stands for a computed default replaced by that default (itself
        when it has none)."""
        return self


PLOT_KINDS = ("points", "trajectory", "samples")


@dataclass(frozen=True)
class PlotSpec:
    r"""A figure of a game's episodes beyond its metric curves, described as data: games hold no plotting code.

    The protocol stores a game's specs in each record (``record["plots"]``, :meth:`as_dict`) and reports draw
    them from the records alone, one panel per evaluated agent (:mod:`minmax_envs.evaluation.plots`).

    Attributes:
        kind: ``"points"``: the pairs ``(x[j], y[j])`` of two vector final metrics, every element of every
            evaluation seed (e.g. each neuron's cosines to two directions), a seed's points coloured by its
            success; ``"trajectory"``: scalar metric ``x`` against scalar metric ``y`` over the evaluation
            points of the first evaluation seeds; ``"samples"``: the generator samples stored with the record
            (``record["samples"]``, :attr:`Game.has_samples`).
        name: the figure's file name suffix (``plots/<task>_<name>.png``).
        caption: what the figure shows, for its link.
        x, y: metric names of the two axes (unused for ``"samples"``).
        marks: reference points drawn on every panel (an equilibrium, the modes of a mixture).
        mark_label: the legend label of :attr:`marks`.
        lines: reference values $v$ drawn as the lines $x = v$ and $y = v$ (a threshold).
        limit: the half-width of the square window $[-\text{limit}, \text{limit}]^2$ (``None``: from the data).
    """

    kind: str
    name: str
    caption: str
    x: str = ""
    y: str = ""
    marks: tuple[tuple[float, float], ...] = ()
    mark_label: str = ""
    lines: tuple[float, ...] = ()
    limit: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"plot kind must be one of {', '.join(PLOT_KINDS)}, got {self.kind!r}")
        if self.kind != "samples" and not (self.x and self.y):
            raise ValueError(f"a {self.kind!r} plot needs the metric names x and y")

    def as_dict(self) -> dict[str, Any]:
        """The spec as JSON values (what a record stores)."""
        d = asdict(self)
        d["marks"] = [list(m) for m in self.marks]
        d["lines"] = list(self.lines)
        return d


class Game:
    """Base class of a batched two-player game.

    A game is made from its ``Config`` (a frozen :class:`GameSettings` dataclass, :attr:`Config`) passed whole,
    the number of seeds, the device, the dtype and the update :class:`Schedule` (the game's default if ``None``):
    ``TwoMode(TwoMode.Config(d=100), num_seeds=8)``; :func:`minmax_envs.make` builds the config from the
    registry's defaults and its keywords. The game keeps the config as given (:attr:`config`) and each of its
    fields, defaults resolved (:meth:`GameSettings.resolved`), as an attribute of the same name (``game.std``),
    unless the class defines that name itself (a method); a field given one value per seed
    (:attr:`GameSettings.per_seed_args`) is checked to hold ``num_seeds`` values and kept, as its attribute, as
    the float64 tensor ``(N,)`` of :attr:`seed_args`.

    Subclasses set the class attributes and implement :meth:`init`, :meth:`sample`, :meth:`losses` and
    :meth:`metrics`; they may override :meth:`grads` with closed forms (tested against autograd),
    :meth:`project` with a projection applied after every update (weight clipping, for instance),
    :meth:`default_schedule` and :meth:`apply_updates` to update parameters in place (module-backed games). For
    reports, a game may draw generator samples (:attr:`has_samples`, :meth:`generator_samples`) and describe
    figures of its episodes (:meth:`plots`).

    Attributes:
        config: the game's arguments, as given.
        schedule: the update schedule (:class:`Schedule`): which players move at each env step.
        zero_sum: the discriminator's loss is exactly minus the generator's, so one backward pass serves both.
        quality_metric: name of the metric (in :meth:`metrics`) that measures how well the game is solved.
        quality_sign: ``+1`` if a larger quality metric is better, ``-1`` if smaller is better.
    """

    #: the frozen dataclass of the game's arguments
    Config: ClassVar[type[GameSettings]] = GameSettings
    zero_sum: ClassVar[bool] = True
    #: the papers the game comes from (shown on its environment card)
    citation: ClassVar[str] = ""
    quality_metric: ClassVar[str]
    #: the metrics of :meth:`metrics` that are one number per seed (what a task may score and target; ``()``: not
    #: declared); :meth:`metrics` may leave out some (an optional one) and return others of more dimensions
    scalar_metrics: ClassVar[tuple[str, ...]] = ()
    quality_sign: ClassVar[float] = 1.0
    #: whether slots can be batched (``num_seeds > 1``) and restarted individually
    batched: ClassVar[bool] = True
    #: whether :meth:`generator_samples` draws samples of the generator (``run_episode(..., samples=K)``)
    has_samples: ClassVar[bool] = False
    #: whether the ``"nk"`` gradient field may run at steps where one player moves (alternating updates: the
    #: generator's steps see the regularized gradient, the discriminator's its plain one); if not, it needs
    #: both players to move at every step
    nk_alternates: ClassVar[bool] = False

    def __init__(self, config: GameSettings | None = None, num_seeds: int = 1, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, schedule: Schedule | None = None):
        cls = type(self)
        config = cls.Config() if config is None else config
        if not isinstance(config, cls.Config):
            raise TypeError(f"{cls.__name__} takes its settings as a {cls.Config.__name__} "
                            f"({cls.__name__}.Config(...)), got {type(config).__name__}")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule or None, got {type(schedule).__name__}")
        check_int("num_seeds", num_seeds)
        if dtype not in _FLOAT_DTYPES:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.config = config
        self.schedule = cls.default_schedule(config) if schedule is None else schedule
        self.num_seeds = num_seeds
        self.device = torch.device(device)
        self.dtype = dtype
        #: the arguments given per seed, each a float64 tensor ``(N,)``: what the next :meth:`init` copies into
        #: the instance of every slot it draws
        self.seed_args: dict[str, torch.Tensor] = {}
        resolved = config.resolved()
        for f in fields(resolved):
            value = getattr(resolved, f.name)
            if f.name in config.per_seed_args and is_per_seed(value):
                value = self.seed_args[f.name] = seed_values(f.name, value, num_seeds, self.device,
                                                             **config.per_seed_args[f.name])
            if not hasattr(cls, f.name):
                setattr(self, f.name, value)
        self._check_seed_args()

    # --- arguments given per seed -------------------------------------------------------------------
    def _check_seed_args(self) -> None:
        """Checks across the arguments given per seed (e.g. one bound below another), when the game is made and
        after :meth:`set_per_seed`."""

    def set_per_seed(self, *, check: bool = True, **values: Any) -> None:
        """New values of arguments given per seed when the game was made, for the slots the next :meth:`init` draws
        (:meth:`~minmax_envs.env.BatchedEnv.reset`, :meth:`~minmax_envs.env.BatchedEnv.reset_where`: the slots
        that are not restarted keep the values of their instance).

        Args:
            check: validate every value (one host transfer); ``False`` for values validated before, which then
                stay on the device (``(N,)`` tensors).
            **values: per argument, ``num_seeds`` values (a sequence, array or tensor).
        """
        for name, value in values.items():
            if name not in self.seed_args:
                given = ", ".join(self.seed_args) or "none"
                raise ValueError(f"{type(self).__name__}: {name!r} was not given per seed when the game was made; "
                                 f"arguments given per seed here: {given}")
            if check:
                self.seed_args[name] = seed_values(name, value, self.num_seeds, self.device,
                                                   **self.config.per_seed_args[name])
            else:
                t = torch.as_tensor(value, dtype=torch.float64, device=self.device)
                if t.shape != (self.num_seeds,):
                    raise ValueError(f"{name} per seed must have shape ({self.num_seeds},), got {tuple(t.shape)}")
                self.seed_args[name] = t
        if check:
            self._check_seed_args()

    def _seed_instance(self) -> dict[str, torch.Tensor]:
        """The per-seed arguments as instance entries (copies), for :meth:`init`."""
        return {name: t.clone() for name, t in self.seed_args.items()}

    @classmethod
    def default_schedule(cls, config: GameSettings) -> Schedule:
        """The update schedule of a game made with ``config`` when none is chosen: simultaneous by default."""
        return Schedule()

    @property
    def cycle(self) -> int:
        """Env steps in one iteration of the update schedule (1: both players move at every step)."""
        return self.schedule.cycle

    def movers(self, step: int) -> tuple[str, ...]:
        """The players whose updates the env applies at env step ``step`` (0 first), by :attr:`schedule`."""
        return self.schedule.movers(step)

    # --- to implement -------------------------------------------------------------------------
    def init(self, rng: SeedStreams) -> tuple[PlayerParams, dict[str, torch.Tensor]]:
        """Draw the initial parameters of both players and the per-seed game instance.

        Returns ``(params, instance)``: ``params[player][name]`` and ``instance[name]`` are tensors with a
        leading seed dimension; the instance holds what is fixed for an episode (modes, matrices...).
        """
        raise NotImplementedError

    def sample(self, rng: SeedStreams, instance: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Draw the data of one step (real samples, latents); an empty dict for deterministic games."""
        return {}

    def losses(self, params: PlayerParams, instance: dict[str, torch.Tensor],
               batch: dict[str, torch.Tensor], players: tuple[str, ...] = PLAYERS) -> dict[str, torch.Tensor]:
        """Each player's loss, shape ``(N,)``, differentiable in ``params`` (at least those of ``players``)."""
        raise NotImplementedError

    def metrics(self, params: PlayerParams, instance: dict[str, torch.Tensor],
                last_updates: PlayerParams | None, eval_rng: SeedStreams) -> dict[str, torch.Tensor]:
        """Game metrics, each a tensor with a leading seed dimension. ``eval_rng`` is a fresh stream
        reserved for evaluation samples, so computing metrics never perturbs training."""
        raise NotImplementedError

    # --- defaults -------------------------------------------------------------------------------
    def quality(self, params: PlayerParams, instance: dict[str, torch.Tensor], last_updates: PlayerParams | None,
                eval_rng: SeedStreams) -> torch.Tensor:
        """The metric ``quality_metric`` alone, ``(N,)``: what :meth:`metrics` gives for it, bit for bit (a game
        may compute it without the other metrics, as the control envs' rewards ask for it at every step)."""
        return self.metrics(params, instance, last_updates, eval_rng)[self.quality_metric]

    def grads(self, params: PlayerParams, instance: dict[str, torch.Tensor],
              batch: dict[str, torch.Tensor], players: tuple[str, ...] = PLAYERS
              ) -> tuple[dict[str, torch.Tensor], PlayerParams]:
        """Losses and gradients of each player in ``players`` (at least), each of its own loss, by autograd."""
        return autograd_grads(self, params, instance, batch, players)

    def project(self, params: PlayerParams) -> PlayerParams:
        """Map parameters back to the feasible set after an update (identity by default)."""
        return params

    def apply_updates(self, params: PlayerParams, updates: PlayerParams, active: torch.Tensor,
                      in_place: tuple[str, ...] = ()) -> PlayerParams:
        """New parameters: ``params`` plus ``updates`` for the players in ``updates`` on the ``active`` seeds, then
        :meth:`project`. Functional by default (new tensors; an observation never changes afterwards).
        ``in_place``: players whose agent already wrote their new parameters into ``params`` (the env has
        restored their stopped seeds); they get the game's after-update work only (projection here).

        The env passes updates detached from any autograd graph (:class:`~minmax_envs.env.BatchedEnv` detaches
        those that require grad), so the parameters never require grad nor hold a graph."""
        new = dict(params)
        everyone = all_true(active)
        for pl, upd in updates.items():
            names = list(params[pl])
            olds, deltas = [params[pl][k] for k in names], [upd[k] for k in names]
            if everyone:  # one foreach kernel, no masking
                news = torch._foreach_add(olds, deltas)
            else:
                news = [torch.where(active.reshape(active.shape + (1,) * (p.ndim - 1)), p + d, p)
                        for p, d in zip(olds, deltas)]
            new[pl] = dict(zip(names, news))
        return self.project(new)

    def generator_samples(self, params: Params, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples of the generator with parameters ``params`` (the generator's, leading seed dimension),
        shape ``(N, n, d)``, from latents drawn from ``generator`` (torch's own RNG, never the game's training or
        evaluation streams), without autograd. Games with :attr:`has_samples` implement it."""
        raise NotImplementedError(f"{type(self).__name__} draws no generator samples (has_samples is False)")

    def plots(self) -> tuple[PlotSpec, ...]:
        """The figures reports can draw of this game's episodes beyond the metric curves (none by default)."""
        return ()

    def restore_params(self, params: PlayerParams) -> PlayerParams:
        """Adopt parameters loaded from a checkpoint (module-backed games copy them into their modules)."""
        return params

    def state_dict(self) -> dict:
        """State the game keeps beyond params and instance (EMA weights, normalization statistics...), for
        checkpoints; empty by default."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""


def leaf_params(params: PlayerParams) -> PlayerParams:
    """Fresh autograd leaves sharing storage with ``params``."""
    return {pl: {k: v.detach().requires_grad_(True) for k, v in ps.items()} for pl, ps in params.items()}


def autograd_grads(game: Game, params: PlayerParams, instance: dict[str, torch.Tensor],
                   batch: dict[str, torch.Tensor], players: tuple[str, ...] = PLAYERS
                   ) -> tuple[dict[str, torch.Tensor], PlayerParams]:
    """Per-seed gradients by autograd: seeds are independent, so the gradient of the sum over seeds
    is, slot by slot, the gradient of each seed's own loss. Only ``players`` get gradients."""
    with torch.enable_grad():
        leaves = leaf_params(params)
        losses = game.losses(leaves, instance, batch, players)
        grads: PlayerParams = {}
        if game.zero_sum and len(players) == 2:
            names = [(pl, k) for pl in PLAYERS for k in leaves[pl]]
            g = torch.autograd.grad(losses["generator"].sum(), [leaves[pl][k] for pl, k in names])
            for (pl, k), gk in zip(names, g):
                grads.setdefault(pl, {})[k] = gk if pl == "generator" else -gk
        else:
            for i, pl in enumerate(players):
                ks = list(leaves[pl])
                g = torch.autograd.grad(losses[pl].sum(), [leaves[pl][k] for k in ks],
                                        retain_graph=i < len(players) - 1)
                grads[pl] = dict(zip(ks, g))
    return {pl: losses[pl].detach() for pl in players}, grads

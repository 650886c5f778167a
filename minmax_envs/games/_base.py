"""The batched game core: both players' parameters with a leading seed dimension, data, losses, gradients.

A game is the physics of a GAN setup and knows nothing of optimizers or RL. Every tensor has a leading
seed dimension ``N``; seeds never interact, so one set of tensor ops advances all of them on any device.
Both players *minimize* their own loss: for a zero-sum game with payoff $f$ (generator minimizes,
discriminator maximizes) the generator's loss is $f$ and the discriminator's is $-f$.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from minmax_envs._checks import check_int
from minmax_envs._rng import SeedStreams
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

    Subclasses set the class attributes and implement :meth:`init`, :meth:`sample`, :meth:`losses` and
    :meth:`metrics`; they may override :meth:`grads` with closed forms (tested against autograd),
    :meth:`project` with a projection applied after every update (weight clipping, for instance),
    :meth:`movers` with an update schedule (alternating updates, ``n_critic`` discriminator steps per
    generator step) and :meth:`apply_updates` to update parameters in place (module-backed games). For reports,
    a game may draw generator samples (:attr:`has_samples`, :meth:`generator_samples`) and describe figures of
    its episodes (:meth:`plots`).

    Attributes:
        zero_sum: the discriminator's loss is exactly minus the generator's, so one backward pass serves both.
        quality_metric: name of the metric (in :meth:`metrics`) that measures how well the game is solved.
        quality_sign: ``+1`` if a larger quality metric is better, ``-1`` if smaller is better.
    """

    zero_sum: ClassVar[bool] = True
    #: the papers the game comes from (shown on its environment card)
    citation: ClassVar[str] = ""
    quality_metric: ClassVar[str]
    quality_sign: ClassVar[float] = 1.0
    #: length of the update schedule: env steps in one iteration (1: both players move at every step)
    cycle: int = 1
    #: whether slots can be batched (``num_seeds > 1``) and restarted individually
    batched: ClassVar[bool] = True
    #: whether :meth:`generator_samples` draws samples of the generator (``run_episode(..., samples=K)``)
    has_samples: ClassVar[bool] = False
    #: whether the ``"nk"`` gradient field may run at steps where one player moves (alternating updates: the
    #: generator's steps see the regularized gradient, the discriminator's its plain one); if not, it needs
    #: both players to move at every step
    nk_alternates: ClassVar[bool] = False

    def __init__(self, num_seeds: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        check_int("num_seeds", num_seeds)
        if dtype not in _FLOAT_DTYPES:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.num_seeds = num_seeds
        self.device = torch.device(device)
        self.dtype = dtype

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
    def grads(self, params: PlayerParams, instance: dict[str, torch.Tensor],
              batch: dict[str, torch.Tensor], players: tuple[str, ...] = PLAYERS
              ) -> tuple[dict[str, torch.Tensor], PlayerParams]:
        """Losses and gradients of each player in ``players`` (at least), each of its own loss, by autograd."""
        return autograd_grads(self, params, instance, batch, players)

    def project(self, params: PlayerParams) -> PlayerParams:
        """Map parameters back to the feasible set after an update (identity by default)."""
        return params

    def movers(self, step: int) -> tuple[str, ...]:
        """The players whose updates the env applies at env step ``step`` (0 first): both by default
        (simultaneous gradient play)."""
        return PLAYERS

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

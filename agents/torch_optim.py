"""Any ``torch.optim.Optimizer`` as an agent: :func:`from_torch`.

The optimizer plays as it ships (torch's own, pytorch-optimizer's, a user's class): its ``step()`` writes the new
parameters into the env's tensors (an :class:`~agents.InPlaceTransformation`), and every batched seed behaves as
its own optimizer on its own parameters.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from agents._base import InPlaceTransformation, Params, Schedule
from agents._tensor_files import is_plain

SchedulerFactory = Callable[[torch.optim.Optimizer], LRScheduler]
"""Builds a learning-rate scheduler for an optimizer, e.g. ``lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10)``."""

#: torch.optim classes whose update of an entry depends only on that entry's gradient and state and on scalars
#: that are equal across seeds (hyperparameters, the step count): one optimizer over the whole ``(N, ...)``
#: tensors is then the same as one optimizer per seed. Exact classes only (a subclass may override ``step``).
#: Read in torch 2.13's sources (``torch/optim/<name>.py``; single-tensor, foreach and fused implementations):
ELEMENTWISE: dict[type[torch.optim.Optimizer], str] = {
    torch.optim.SGD: "momentum buffer, Nesterov, dampening, weight decay: entry-wise; no state scalar",
    torch.optim.Adam: "moments, AMSGrad's running max, (decoupled) weight decay: entry-wise; bias corrections "
                      "from the step count",
    torch.optim.AdamW: "Adam with decoupled weight decay (p <- p (1 - lr wd)): entry-wise",
    torch.optim.Adamax: "u_t = max(beta2 u_{t-1}, |g_t| + eps): a max over two numbers of one entry (the 'norm' "
                        "is the infinity norm through time, not across entries); bias correction from the step",
    torch.optim.NAdam: "entry-wise moments; the momentum-schedule product mu_product is a per-tensor scalar of "
                       "the step count alone",
    torch.optim.RAdam: "entry-wise moments; the rectification rho_t is a scalar of the step count alone",
    torch.optim.RMSprop: "square average, centered mean, momentum buffer: entry-wise",
    torch.optim.Adagrad: "sum of squares entry-wise; the lr decay is a scalar of the step count (dense gradients: "
                         "the env's)",
    torch.optim.Adadelta: "square averages of gradients and of updates: entry-wise",
    torch.optim.Rprop: "per-entry step sizes from the sign of g_t g_{t-1}, clamped entry-wise",
    torch.optim.ASGD: "entry-wise decay, step and average; eta and mu are per-tensor scalars of the step count",
}

_TRIED_SHAPE = (2, 3)  # the dummy tensor from_torch() builds the optimizer on, for torch's eager checks


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve(optimizer: Any) -> tuple[type[torch.optim.Optimizer], str]:
    """The optimizer class (a class or its dotted name) and the name to show in messages."""
    if isinstance(optimizer, str):
        obj, name = _import_dotted(optimizer), optimizer
    else:
        obj, name = optimizer, getattr(optimizer, "__qualname__", type(optimizer).__name__)
        if isinstance(obj, type):
            name = _qualname(obj)
    if isinstance(obj, torch.optim.Optimizer):
        raise ValueError(f"from_torch() takes an optimizer class, got an instance of {_qualname(type(obj))}: pass "
                         f"the class and its hyperparameters, e.g. from_torch({type(obj).__name__}, lr=1e-3); the "
                         "agent builds its own optimizers on the env's tensors (one per seed)")
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        what = f"the class {_qualname(obj)}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise ValueError(f"from_torch() takes a torch.optim.Optimizer subclass or its dotted name; {name!r} is {what}")
    if obj is torch.optim.Optimizer:
        raise ValueError("torch.optim.Optimizer is the abstract base class; pass an optimizer such as "
                         "torch.optim.Adam or 'pytorch_optimizer.Lion'")
    return obj, name


def _import_dotted(name: str) -> Any:
    """``"package.module.Attribute"``: import the longest importable module prefix, then look the rest up."""
    parts = name.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"optimizer name {name!r} is not a dotted name such as 'torch.optim.AdamW' or "
                         "'pytorch_optimizer.Lion' (module, then class)")
    tried = []
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        tried.append(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue  # no such module: try a shorter prefix
            raise ValueError(f"importing {module_name!r} (for the optimizer {name!r}) failed: {e}") from e
        except Exception as e:  # noqa: BLE001 - any failure while importing the user's module: one clear error
            raise ValueError(f"importing {module_name!r} (for the optimizer {name!r}) failed: "
                             f"{type(e).__name__}: {e}") from e
        obj, where = module, module_name
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                choices = [a for a in dir(obj) if not a.startswith("_")]
                close = difflib.get_close_matches(attr, choices, n=3)
                hint = f"; did you mean {', '.join(repr(f'{where}.{c}') for c in close)}?" if close else ""
                raise ValueError(f"optimizer {name!r}: {where!r} has no attribute {attr!r} (imported the module "
                                 f"{module_name!r}){hint}")
            obj, where = getattr(obj, attr), f"{where}.{attr}"
        return obj
    raise ValueError(f"optimizer {name!r}: no module to import (tried {', '.join(map(repr, tried))}); is the "
                     "package installed? (pytorch-optimizer: pip install 'minmax-envs[optimizers]')")


def _refuse_closures(cls: type, name: str) -> None:
    try:
        sig = inspect.signature(cls.step)
    except (TypeError, ValueError):  # a C implementation without a signature: the dummy step decides
        return
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY)
    required = [p.name for p in list(sig.parameters.values())[1:] if p.kind in kinds and p.default is p.empty]
    if required:
        raise _closure_error(name, f"its step() requires {', '.join(map(repr, required))}")


def _closure_error(name: str, why: str) -> ValueError:
    return ValueError(f"{name} cannot play as an agent: it needs a closure that re-evaluates the loss and its "
                      f"gradients ({why}). The env computes the gradients itself, one evaluation per step, and the "
                      "agent only sees them; optimizers that re-evaluate the loss within a step (LBFGS, line "
                      "searches, SAM) are not supported")


class TorchOptimizerState(NamedTuple):
    """State of a :func:`from_torch` agent.

    Attributes:
        optimizers: one optimizer per seed (its parameters the seed's views ``p[i]`` of the env's tensors), or,
            on the element-wise path, one optimizer over the whole ``(N, ...)`` tensors.
        schedulers: the learning-rate scheduler of each optimizer (``scheduler=``), else ``None``.
        count: updates made so far (what a schedule ``lr`` is called with).
        names: the parameter names, in the order of the optimizers' parameter lists.
        pending: after a pickle round trip, the :meth:`TorchOptimizer.state_dict` of the pickled state (and no
            optimizers yet); else ``None``.

    Pickling: the optimizers hold the env's tensors, or per-seed views of them, and pickle copies a view apart from
    its base (the restored optimizers would step copies, not the env's tensors). So the state pickles as its
    ``state_dict`` (``pending``), and the agent's next ``step`` builds the optimizers on the tensors it is given
    (the env's own: the restored ones) and loads it, the resume of a checkpoint: the episode continues bit for bit.
    """

    optimizers: list[torch.optim.Optimizer]
    schedulers: list[LRScheduler] | None
    count: int
    names: tuple[str, ...]
    pending: dict[str, Any] | None = None

    def __reduce__(self):
        return _pending_state, (self.names, _state_dict(self))


def _state_dict(state: TorchOptimizerState) -> dict[str, Any]:
    """:meth:`TorchOptimizer.state_dict`."""
    if state.pending is not None:
        return state.pending
    opts = []
    for opt in state.optimizers:
        sd = opt.state_dict()
        opts.append({"state": sd["state"],
                     "param_groups": [{k: v for k, v in g.items() if is_plain(v)} for g in sd["param_groups"]]})
    scheds = None if state.schedulers is None else [s.state_dict() for s in state.schedulers]
    return {"count": state.count, "optimizers": opts, "schedulers": scheds}


def _pending_state(names: tuple[str, ...], saved: dict[str, Any]) -> TorchOptimizerState:
    """A :class:`TorchOptimizerState` restored from a pickle: its state dict, loaded at the next step."""
    return TorchOptimizerState([], None, saved["count"], names, saved)


# Whole-tensor optimizers whose fused kernel (``fused=True``) reads the gradients and never writes them
# (torch._fused_adam_ / _fused_adamw_ without a grad scaler): no copy of the gradients is needed.
_READS_GRADS_ONLY = (torch.optim.Adam, torch.optim.AdamW)


class TorchOptimizer:
    """The agent behind :func:`from_torch` (a plain class, so that the agent pickles when its class, its
    hyperparameters and its schedule do). ``init``, ``step``, ``state_dict`` and ``load_state_dict`` make the
    :class:`~agents.InPlaceTransformation` that :func:`from_torch` returns."""

    def __init__(self, cls: type[torch.optim.Optimizer], name: str, hyperparameters: dict[str, Any],
                 lr: Schedule | None, scheduler: SchedulerFactory | None, whole: bool):
        self.cls, self.name, self.hyperparameters = cls, name, hyperparameters
        self.lr, self.scheduler, self.whole = lr, scheduler, whole

    def __repr__(self) -> str:
        args = [self.name, *(f"{k}={v!r}" for k, v in self.hyperparameters.items())]
        if self.lr is not None:
            args.append(f"lr={self.lr!r}")
        if self.scheduler is not None:
            args.append(f"scheduler={self.scheduler!r}")
        return f"from_torch({', '.join(args)}, per_seed={not self.whole})"

    def _build(self, leaves: list[torch.Tensor]) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
        kwargs = self.hyperparameters if self.lr is None else {**self.hyperparameters, "lr": float(self.lr(0))}
        opt = self.cls(leaves, **kwargs)
        return opt, None if self.scheduler is None else self.scheduler(opt)

    def init(self, params: Params) -> TorchOptimizerState:
        names = tuple(params)
        tensors = [params[k] for k in names]
        if self.whole:
            built = [self._build(tensors)]
        else:
            n = {p.shape[0] if p.ndim else None for p in tensors}
            if len(n) != 1 or None in n:
                raise ValueError(f"{self.name} per seed: every parameter needs the same leading seed dimension N, "
                                 f"got the shapes {[tuple(p.shape) for p in tensors]}")
            built = [self._build([p[i] for p in tensors]) for i in range(n.pop())]
        opts = [o for o, _ in built]
        return TorchOptimizerState(opts, None if self.scheduler is None else [s for _, s in built], 0, names)

    def step(self, grads: Params, state: TorchOptimizerState, params: Params) -> TorchOptimizerState:
        if state.pending is not None:  # unpickled: build the optimizers on the tensors given now, then resume
            state = self.load_state_dict(self.init(params), state.pending)
        # the optimizer gets fresh gradient tensors of its own, as autograd makes them after zero_grad(): some
        # optimizers write into p.grad (torch's foreach SGD with Nesterov momentum), and the observation must not
        # change; torch's fused Adam / AdamW kernels only read the gradients, so they get the env's own
        if self.whole and self.cls in _READS_GRADS_ONLY and self.hyperparameters.get("fused") is True:
            copies = [grads[k].detach() for k in state.names]
        else:
            copies = [grads[k].detach().clone() for k in state.names]
        lr = None if self.lr is None else float(self.lr(state.count))
        for i, opt in enumerate(state.optimizers):
            group = opt.param_groups[0]
            leaves = group["params"]
            for leaf, g in zip(leaves, copies):
                leaf.grad = g if self.whole else g[i]
            if lr is not None:
                group["lr"] = lr
            try:
                opt.step()
            except Exception:
                if self.whole or all(bool(torch.isfinite(g[i]).all()) and bool(torch.isfinite(leaf).all())
                                     for leaf, g in zip(leaves, copies)):
                    raise
                # seed i saw non-finite values: the env stopped it there (divergence) and restores its parameters;
                # an optimizer that fails on them (e.g. an eigendecomposition) sits out for that seed
            finally:
                for leaf in leaves:
                    leaf.grad = None
        if state.schedulers is not None:
            for s in state.schedulers:
                s.step()
        if state.count == 0:
            self._check_written_in_place(state, params)
        return state._replace(count=state.count + 1)

    def _check_written_in_place(self, state: TorchOptimizerState, params: Params) -> None:
        """An optimizer that rebinds its parameters (``p.data = ...``) would leave the env's tensors behind."""
        for i, opt in enumerate(state.optimizers):
            for k, leaf in zip(state.names, opt.param_groups[0]["params"]):
                own = params[k] if self.whole else params[k][i]
                if leaf.data_ptr() != own.data_ptr() or leaf.shape != own.shape:
                    raise RuntimeError(f"{self.name}'s parameter {k!r} is no longer the tensor given to init(): "
                                       "either step() got other tensors than init() (an in-place agent is bound to "
                                       "the tensors it was initialized on), or the optimizer replaced the storage "
                                       "(p.data = ...) instead of writing into it, and the env's tensors would not "
                                       "move")

    def state_dict(self, state: TorchOptimizerState) -> dict[str, Any]:
        """Plain containers and tensors: every optimizer's ``state_dict()`` (param-group entries that are not plain
        data, such as a ``torch.dtype``, left out: a fresh init has them), every scheduler's, and the count."""
        return _state_dict(state)

    def load_state_dict(self, state: TorchOptimizerState, saved: dict[str, Any]) -> TorchOptimizerState:
        """Restore :meth:`state_dict`'s output into ``state``, a fresh :meth:`init` on the same tensors."""
        if not (isinstance(saved, dict) and {"count", "optimizers", "schedulers"} <= set(saved)):
            raise ValueError(f"{self.name}: a saved state must be a dict with 'count', 'optimizers' and 'schedulers'")
        if len(saved["optimizers"]) != len(state.optimizers):
            raise ValueError(f"{self.name}: the saved state holds {len(saved['optimizers'])} optimizers, this agent "
                             f"has {len(state.optimizers)} (one per seed, or one on the whole tensors)")
        if (saved["schedulers"] is None) != (state.schedulers is None):
            raise ValueError(f"{self.name}: the saved state {'has no' if saved['schedulers'] is None else 'has'} "
                             f"schedulers, this agent {'has' if saved['schedulers'] is None else 'has none'}")
        for opt, sd in zip(state.optimizers, saved["optimizers"]):
            groups = [{**fresh, **old} for fresh, old in zip(opt.state_dict()["param_groups"], sd["param_groups"])]
            opt.load_state_dict({"state": sd["state"], "param_groups": groups})
        if state.schedulers is not None:
            for s, sd in zip(state.schedulers, saved["schedulers"]):
                s.load_state_dict(sd)
        return state._replace(count=saved["count"])


def from_torch(optimizer: type[torch.optim.Optimizer] | str, *, scheduler: SchedulerFactory | None = None,
               per_seed: bool | None = None, **hyperparameters: Any) -> InPlaceTransformation:
    r"""Any ``torch.optim.Optimizer`` as an agent: it writes the new parameters into the env's tensors with its own
    ``step()`` (torch.optim's contract; https://pytorch.org/docs/stable/optim.html), and every batched seed behaves
    exactly as its own optimizer on its own parameters.

    ``from_torch("torch.optim.AdamW", lr=1e-3, weight_decay=0.01)``, ``from_torch(pytorch_optimizer.Prodigy)``,
    ``pair(from_torch("pytorch_optimizer.Lion", lr=1e-4), adam(4e-4))``: one optimizer per player (each player's
    agent gets its own ``init``), all its tensors in one parameter group.

    Args:
        optimizer: a ``torch.optim.Optimizer`` subclass, or its dotted name (``"torch.optim.AdamW"``,
            ``"pytorch_optimizer.Lion"``; the module is imported by name). Not an instance: the agent builds its
            own optimizers on the env's tensors.
        scheduler: a factory ``optimizer -> torch.optim.lr_scheduler.LRScheduler``, e.g.
            ``lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10)``, stepped after every optimizer step
            (https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate); its state is checkpointed.
            ``ReduceLROnPlateau`` needs a metric per step, which the agent does not see: refused.
        per_seed: ``None`` (automatic): one optimizer over the whole ``(N, ...)`` tensors for the element-wise
            optimizers below, one per seed otherwise; ``True`` forces one per seed; ``False`` forces the whole
            tensors, and raises a ``ValueError`` for an optimizer that is not element-wise.
        **hyperparameters: passed to the optimizer's constructor. ``lr`` may also be a schedule, a callable of the
            number ``t`` of updates made so far (as :mod:`agents.schedules`): ``param_group["lr"] = lr(t)`` before
            each step (not with ``scheduler``).

    The optimizer (and the scheduler) is built once here, on a dummy ``(2, 3)`` tensor, so that the constructors'
    eager errors come now (``from_torch("torch.optim.Adam", lr=-1)`` raises torch's ``ValueError``). Optimizers
    whose step needs a closure are refused here with a ``ValueError``: the env computes the gradients itself, one
    evaluation per step. Found by the signature (LBFGS: ``step(closure)``) or by one step of the dummy (optimizers
    such as pytorch-optimizer's AliG and SAM, whose ``closure=None`` default raises); any other failure of that
    dummy step is ignored (a ``(2, 3)`` tensor may not suit the optimizer; the env's tensors decide).

    Per seed (the default): seed ``i``'s optimizer has as parameters the views ``p[i]`` of the env's tensors (leaf
    tensors that do not require grad, the env's own storage), gets ``p[i].grad`` set to seed ``i``'s gradients and
    runs ``opt.step()``. So everything an optimizer computes beyond one entry is per seed, as it would be on the
    seed's own model: per-tensor norms (LAMB's trust ratio), factored moments (Adafactor), matrix preconditioners
    (Shampoo, SOAP), group-level scalars (Prodigy's and D-Adaptation's ``d``, schedule-free weight sums), step
    counters. That is ``N`` ``step()`` calls per env step: a Python loop over seeds.

    Element-wise (the fast path, automatic): one optimizer over the whole ``(N, ...)`` tensors when the update of
    an entry depends only on that entry's gradient and state and on scalars equal across seeds: hyperparameters
    and the step count (all seeds step together), for these exact classes, read in torch 2.13's sources (the
    single-tensor, ``foreach`` and ``fused`` implementations; every hyperparameter allowed, ``foreach`` and
    ``fused`` included, as none adds a reduction across entries):

    - ``SGD``: momentum buffer, Nesterov, dampening, weight decay: entry-wise; no state scalar.
    - ``Adam``, ``AdamW``: both moments, AMSGrad's running max, (decoupled) weight decay: entry-wise; the bias
      corrections are scalars of the step count.
    - ``Adamax``: $u_t = \max(\beta_2 u_{t-1}, \lvert g_t \rvert + \epsilon)$, the infinity norm through time of
      one entry, not a norm across entries.
    - ``NAdam``: entry-wise moments; ``mu_product`` is a scalar of the step count.
    - ``RAdam``: entry-wise moments; the rectification $\rho_t$ is a scalar of the step count.
    - ``RMSprop`` (``centered``, ``momentum``), ``Adadelta``: entry-wise averages and buffers.
    - ``Adagrad``: entry-wise sum of squares; ``lr_decay`` acts through the step count (the env's gradients are
      dense).
    - ``Rprop``: per-entry step sizes driven by the sign of $g_t\, g_{t-1}$, clamped entry-wise.
    - ``ASGD``: entry-wise decay, step and average; ``eta`` and ``mu`` are scalars of the step count.

    Not element-wise, hence per seed: ``torch.optim.Adafactor`` (factored moments and a relative step from the
    parameter's norm), ``torch.optim.Muon`` (orthogonalizes each matrix), subclasses of the classes above (their
    ``step`` may differ), and every other class. The element-wise path gives the same numbers as the per-seed
    one, bit for bit on the CPU (the same entry-wise kernels; tested).

    Each step, the optimizer gets its own copy of the gradients (fresh tensors, as autograd's after
    ``zero_grad()``: some optimizers write into ``p.grad``, and the observation must not change), and ``.grad`` is
    set back to ``None`` after. A seed whose gradients or parameters are not finite has been stopped by the env
    (divergence), which restores its parameters; if its optimizer raises on them it sits out that step.
    Optimizers that draw random numbers from torch's global generator (e.g. PSGD-Kron's preconditioner updates)
    are not reproducible per seed. Schedule-free optimizers play their training iterate (``train()`` mode, as
    shipped): the env's metrics are measured there, not at the averaged point.

    Returns:
        An :class:`~agents.InPlaceTransformation` whose state is a :class:`TorchOptimizerState`; ``state_dict`` /
        ``load_state_dict`` hold every optimizer's and scheduler's ``state_dict()`` (checkpoints of
        :func:`minmax_envs.run_episode`; a resumed episode continues bit for bit). It pickles when the optimizer
        class, the hyperparameters, a schedule ``lr`` and ``scheduler`` do (a ``functools.partial`` of a scheduler
        class, not a lambda); its state pickles too, as its ``state_dict``, and is rebuilt at the next ``step`` on the
        tensors that step gets (pickle it together with the env: :class:`TorchOptimizerState`).
    """
    cls, name = _resolve(optimizer)
    if per_seed is not None and not isinstance(per_seed, bool):
        raise ValueError(f"per_seed must be None (automatic), True or False, got {per_seed!r}")
    if "params" in hyperparameters:
        raise ValueError("from_torch() passes the env's tensors as the optimizer's params; do not give params=")
    _refuse_closures(cls, name)
    lr = hyperparameters.get("lr")
    schedule = lr if callable(lr) else None
    if schedule is not None:
        if scheduler is not None:
            raise ValueError("give either a schedule lr (a callable of the update count) or scheduler=, not both")
        hyperparameters = {k: v for k, v in hyperparameters.items() if k != "lr"}
        first = schedule(0)
        if not isinstance(first, numbers.Real) or isinstance(first, bool) or not math.isfinite(first):
            raise ValueError(f"a schedule lr must return a finite number of the update count, lr(0) = {first!r}")
    if scheduler is not None and not callable(scheduler):
        raise ValueError(f"scheduler must be a factory optimizer -> torch.optim.lr_scheduler.LRScheduler (e.g. "
                         f"lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10)), got {scheduler!r}")
    elementwise = cls in ELEMENTWISE
    if per_seed is False and not elementwise:
        allowed = ", ".join(c.__name__ for c in ELEMENTWISE)
        raise ValueError(f"per_seed=False acts on the whole (N, ...) tensors with one optimizer, the same as one "
                         f"optimizer per seed only for the element-wise optimizers of torch.optim ({allowed}); "
                         f"{name} may compute across entries (norms, factored moments, group scalars): leave "
                         "per_seed=None")
    agent = TorchOptimizer(cls, name, hyperparameters, schedule, scheduler, whole=elementwise and not per_seed)
    _dry_run(agent)
    return InPlaceTransformation(agent.init, agent.step, 1, agent.state_dict, agent.load_state_dict)


def _dry_run(agent: TorchOptimizer) -> None:
    """Build the optimizer (and scheduler) on a dummy tensor for torch's eager errors, and step it once to find
    optimizers that need a closure although their signature does not say so."""
    dummy = torch.zeros(_TRIED_SHAPE)
    opt, sched = agent._build([dummy])
    if sched is not None:
        if isinstance(sched, ReduceLROnPlateau):
            raise ValueError("scheduler: ReduceLROnPlateau steps on a metric, which the agent does not see; use a "
                             "scheduler of the step count (StepLR, CosineAnnealingLR, LambdaLR...) or a schedule lr")
        if not isinstance(sched, LRScheduler):
            raise ValueError(f"scheduler must return a torch.optim.lr_scheduler.LRScheduler, got "
                             f"{type(sched).__name__}")
    dummy.grad = torch.full_like(dummy, 0.5)
    try:
        opt.step()
    except Exception as e:  # noqa: BLE001 - a dummy tensor may not suit the optimizer; only closures matter here
        if "closure" in f"{type(e).__name__} {e}".lower():
            raise _closure_error(agent.name, f"its step() raised {type(e).__name__}: {e}") from e


__all__ = ["ELEMENTWISE", "TorchOptimizer", "TorchOptimizerState", "from_torch"]

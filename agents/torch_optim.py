"""Any ``torch.optim.Optimizer`` as an agent: :func:`from_torch`.

The optimizer plays as it ships (torch's own, pytorch-optimizer's, a user's class): its ``step()`` writes the new
parameters into the env's tensors (an :class:`~agents.InPlaceTransformation`), and every batched seed behaves as
its own optimizer on its own parameters.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import math
import numbers
import re
import site
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
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

#: The modules optimizers are imported from by name (``from_torch("pytorch_optimizer.Lion")``, the agent names
#: ``torch:MODULE.CLASS`` of suites and the ``minmax`` command), each with what ``pip`` installs it as. A package
#: counts only as installed: the file Python would import must lie in an installed-packages directory
#: (``site-packages``), never in the working directory (which ``python -m`` puts first on ``sys.path``) or beside a
#: suite file. Any other module (your own optimizer in ``my_optim.py``) is imported only when you name it
#: yourself: :func:`allow_optimizer_modules`, ``from_torch(..., allow_modules=[...])`` or ``minmax --allow-module``.
OPTIMIZER_PACKAGES: dict[str, str] = {
    "torch.optim": "torch",
    "pytorch_optimizer": "pytorch-optimizer",
    "torch_optimizer": "torch-optimizer",
    "schedulefree": "schedulefree",
    "heavyball": "heavyball",
    "dadaptation": "dadaptation",
    "prodigyopt": "prodigyopt",
    "lion_pytorch": "lion-pytorch",
}
OPT_IN = "minmax --allow-module {m}; Python: from_torch(..., allow_modules=[{m!r}]) or allow_optimizer_modules({m!r})"

_OPTED_IN: list[str] = []  # modules opted in to by allow_optimizer_modules (a list: nested opt-ins of one name)


class _OptIn:
    """What :func:`allow_optimizer_modules` returns: the opt-in holds for the process, or until the ``with`` block
    it opens ends."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        _OPTED_IN.extend(names)

    def __enter__(self) -> _OptIn:
        return self

    def __exit__(self, *exc: object) -> None:
        for n in self.names:
            if n in _OPTED_IN:
                _OPTED_IN.remove(n)


def allow_optimizer_modules(*names: str) -> _OptIn:
    """Opt in to importing optimizers from the modules ``names`` (``"my_optim"``, ``"lab.optimizers"``) by name,
    from wherever Python finds them (your working directory included): for the rest of the process, or within
    ``with allow_optimizer_modules("my_optim"): bench(...)``. The packages of :data:`OPTIMIZER_PACKAGES` need no
    opt-in. A module opted in to that is not an installed package has its source files in every record's key
    (:func:`optimizer_digest`): edit it, and a resumed sweep runs its episodes again."""
    for n in names:
        _check_module_name(n)
    return _OptIn(tuple(names))


def opted_in_modules() -> tuple[str, ...]:
    """The modules :func:`allow_optimizer_modules` holds open now, in the order they were opted in to (what a sweep
    hands to its Ray workers, which are other processes)."""
    return tuple(dict.fromkeys(_OPTED_IN))


def _check_module_name(name: Any) -> str:
    if not isinstance(name, str) or not name or not all(p.isidentifier() for p in name.split(".")):
        raise ValueError(f"a module to allow optimizers from is a dotted module name such as 'my_optim' or "
                         f"'lab.optimizers', got {name!r}")
    return name


def _under(dotted: str, module: str) -> bool:
    return dotted.startswith(module + ".")


def _site_dirs() -> list[Path]:
    """The directories installed packages live in (``site-packages``, the user's, the interpreter's)."""
    dirs = set(site.getsitepackages()) if hasattr(site, "getsitepackages") else set()
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    dirs |= {user} if user else set()
    paths = sysconfig.get_paths()
    dirs |= {paths[k] for k in ("purelib", "platlib") if paths.get(k)}
    return [Path(d).resolve() for d in dirs]


def _origin(top: str) -> Path | None:
    """Where the top-level module ``top`` would be imported from, found without importing anything (a module
    already imported: where it was imported from); ``None`` if Python finds no such module."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin not in (None, "built-in", "frozen"):
        return Path(spec.origin).resolve()
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]).resolve() if locations else None


def _installed(path: Path | None) -> bool:
    """Whether the top-level module at ``path`` is an installed package: under this interpreter's site directories,
    or found directly in another ``site-packages`` (``dist-packages``) directory that a ``.pth`` file put on the path
    (an environment layered on another's packages); never a module of the working directory or a script's."""
    if path is None:
        return False
    if any(path.is_relative_to(d) for d in _site_dirs()):
        return True
    entry = path.parent.parent if path.name == "__init__.py" else path.parent  # the sys.path entry it comes from
    return entry.name in ("site-packages", "dist-packages")


def _allowed_prefix(name: str, allow_modules: tuple[str, ...] = ()) -> str:
    """The module prefix under which the optimizer ``name`` may be imported, or a ``ValueError`` naming the module
    and the opt-in. Imports nothing (``importlib.util.find_spec`` of a top-level name only reads directories)."""
    parts = name.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"optimizer name {name!r} is not a dotted name such as 'torch.optim.AdamW' or "
                         "'pytorch_optimizer.Lion' (module, then class)")
    opted = [m for m in (*allow_modules, *_OPTED_IN) if _under(name, m)]
    if opted:
        return max(opted, key=len)
    packages = [m for m in OPTIMIZER_PACKAGES if _under(name, m)]
    module = ".".join(parts[:-1])
    if not packages:
        raise ValueError(f"optimizer {name!r}: the module {module!r} is not an optimizer package this program "
                         f"imports by name ({', '.join(OPTIMIZER_PACKAGES)}); to import your own, opt in: "
                         + OPT_IN.format(m=parts[0]))
    package = packages[0]
    top = package.split(".")[0]
    origin = _origin(top)
    if origin is None:
        extra = " or pip install 'minmax-envs[optimizers]'" if top == "pytorch_optimizer" else ""
        raise ValueError(f"optimizer {name!r}: no module to import, the package {top!r} is not installed (pip install "
                         f"{OPTIMIZER_PACKAGES[package]}{extra})")
    if not _installed(origin):
        raise ValueError(f"optimizer {name!r}: {top!r} would be imported from {str(origin)!r}, which is not an "
                         f"installed package (not in site-packages: a file of that name in the working directory "
                         f"or on the path); to import it anyway, opt in: " + OPT_IN.format(m=top))
    return package


def optimizer_digest(name: str) -> str:
    """What identifies the code of the optimizer ``name`` (a dotted name) beyond its name, for record keys: the
    installed package's version (``"torch==2.13.0"``), or, for a module that is not an installed package (your
    ``my_optim.py``, opted in to), a hash of its source files (``"my_optim@sha1:..."``): editing the file changes
    the key. Imports nothing."""
    import hashlib
    import importlib.metadata

    top = name.split(".", 1)[0]
    origin = _origin(top)
    if origin is None or _installed(origin):
        try:
            return f"{top}=={importlib.metadata.version(top.replace('_', '-'))}"
        except importlib.metadata.PackageNotFoundError:
            return top
    root = origin.parent if origin.name == "__init__.py" else origin
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts) if root.is_dir() else [root]
    h = hashlib.sha1()
    for f in files:
        h.update(str(f.relative_to(root.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return f"{top}@sha1:{h.hexdigest()}"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve(optimizer: Any, allow_modules: tuple[str, ...] = ()) -> tuple[type[torch.optim.Optimizer], str]:
    """The optimizer class (a class or its dotted name) and the name to show in messages."""
    if isinstance(optimizer, str):
        obj, name = _import_dotted(optimizer, _allowed_prefix(optimizer, allow_modules)), optimizer
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


def optimizer_class(name: str, allow_modules: Sequence[str] = ()) -> type[torch.optim.Optimizer]:
    """The optimizer class a dotted ``name`` refers to, imported as :func:`from_torch` imports it (only from
    :data:`OPTIMIZER_PACKAGES` as installed or from ``allow_modules``), or a ``ValueError``."""
    return _resolve(name, tuple(_check_module_name(m) for m in allow_modules))[0]


def _json_text(value: Any) -> str:
    import json

    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _expected(p: inspect.Parameter) -> tuple[str, Callable[[Any], bool]] | None:
    """What a hyperparameter of this signature takes, from its default (and its annotation where the default says
    little: ``None``, or an ``int`` for a ``float``): ``(what, check)``, or ``None`` when it cannot be told."""
    default = p.default
    hint = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
    words = set(re.findall(r"[A-Za-z_]+", hint)) if p.annotation is not p.empty else set()
    nullable = "None" in words or "Optional" in words
    if default is None:
        kinds = words - {"None", "Optional", "Union"}
        if kinds == {"bool"}:
            return "true, false or null", lambda v: v is None or isinstance(v, bool)
        if kinds and kinds <= {"float", "int"}:
            return "a number or null", lambda v: v is None or _is_number(v)
        if kinds == {"str"}:
            return 'a "string" or null', lambda v: v is None or isinstance(v, str)
        return None
    if isinstance(default, bool):
        if nullable:
            return "true, false or null", lambda v: v is None or isinstance(v, bool)
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int) and words and "int" in words and not words & {"float", "Tensor"}:
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if _is_number(default):
        return "a number", _is_number
    if isinstance(default, str) and not words - {"str", "Literal"}:
        return 'a "string"', lambda v: isinstance(v, str)
    if isinstance(default, (tuple, list)) and default and all(_is_number(x) for x in default):
        n = len(default)
        return f"a list of {n} numbers", lambda v: isinstance(v, (tuple, list)) and len(v) == n and all(
            _is_number(x) for x in v)
    return None


def check_hyperparameter_types(cls: type[torch.optim.Optimizer], name: str, hyperparameters: dict[str, Any]) -> None:
    """Each hyperparameter typed by the optimizer's own signature, for values read from text (JSON): a
    ``ValueError`` for a name the constructor does not take (when it takes no ``**kwargs``) and for a value of
    another type than the parameter's default says (a ``bool`` takes ``true`` or ``false`` only: ``"false"``, a
    non-empty string, would turn the option on; a number takes a number; a tuple of numbers a list of as many).
    Parameters whose type cannot be told (no default, an object default) are passed as given."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - a constructor without a signature: torch decides
        return
    taken = {k: p for k, p in list(params.items())[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and k != "params"}
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key, value in hyperparameters.items():
        if key not in taken:
            if open_ended:
                continue
            raise ValueError(f"{name} has no hyperparameter {key!r}; it takes {', '.join(sorted(taken))}")
        expected = _expected(taken[key])
        if expected is not None and not expected[1](value):
            raise ValueError(f"{key} of {name} takes {expected[0]} (its default is "
                             f"{_json_text(taken[key].default)}), got {_json_text(value)}")


def _import_dotted(name: str, prefix: str) -> Any:
    """``"package.module.Attribute"``: import the longest importable module prefix that lies under the allowed
    module ``prefix`` (:func:`_allowed_prefix`; never a shorter one), then look the rest up."""
    parts = name.split(".")
    tried = []
    for i in range(len(parts) - 1, len(prefix.split(".")) - 1, -1):
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
        names: the parameter names (the keys of the params given to ``init``).
        pending: after a pickle round trip, the :meth:`TorchOptimizer.state_dict` of the pickled state (and no
            optimizers yet); else ``None``.
        index: for each optimizer, the parameter name of every tensor of every parameter group, group by group
            (matched by identity at ``init``): each tensor gets its own gradient, whatever groups the optimizer
            made and in whatever order.
        scales: with a schedule ``lr``, for each optimizer and parameter group, the factor its step size keeps to
            the schedule (``None``: the schedule's value itself; a group given its own ``lr`` keeps
            ``lr_group / lr(0)``); else empty.

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
    index: tuple[tuple[tuple[str, ...], ...], ...] = ()
    scales: tuple[tuple[float | None, ...], ...] = ()

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

ParamGroups = Callable[[tuple[str, ...]], Sequence[dict[str, Any]]]
"""Parameter groups by name: ``param_groups(names) -> [{"params": [name, ...], **options}, ...]`` (torch.optim's
parameter groups with parameter names in place of tensors), e.g. ``lambda names: [{"params": [n for n in names if
n.endswith("weight")], "use_muon": True}, {"params": [n for n in names if not n.endswith("weight")], "use_muon":
False}]`` for pytorch-optimizer's Muon."""


def _capturable_devices() -> list[str]:
    """The device types torch's ``capturable=True`` optimizers step on (torch's own list)."""
    try:
        from torch.optim.optimizer import _get_capturable_supported_devices

        return list(_get_capturable_supported_devices())
    except ImportError:  # pragma: no cover - another torch version
        return ["cuda", "xpu", "hpu"]


class TorchOptimizer:
    """The agent behind :func:`from_torch` (a plain class, so that the agent pickles when its class, its
    hyperparameters and its schedule do). ``init``, ``step``, ``state_dict`` and ``load_state_dict`` make the
    :class:`~agents.InPlaceTransformation` that :func:`from_torch` returns."""

    def __init__(self, cls: type[torch.optim.Optimizer], name: str, hyperparameters: dict[str, Any],
                 lr: Schedule | None, scheduler: SchedulerFactory | None, whole: bool,
                 param_groups: ParamGroups | None = None):
        self.cls, self.name, self.hyperparameters = cls, name, hyperparameters
        self.lr, self.scheduler, self.whole = lr, scheduler, whole
        self.param_groups = param_groups

    def __repr__(self) -> str:
        args = [self.name, *(f"{k}={v!r}" for k, v in self.hyperparameters.items())]
        if self.lr is not None:
            args.append(f"lr={self.lr!r}")
        if self.scheduler is not None:
            args.append(f"scheduler={self.scheduler!r}")
        if self.param_groups is not None:
            args.append(f"param_groups={self.param_groups!r}")
        return f"from_torch({', '.join(args)}, per_seed={not self.whole})"

    def _groups(self, leaves: list[torch.Tensor], names: tuple[str, ...]) -> list[dict[str, Any]]:
        """``param_groups(names)`` with each name replaced by its tensor, checked: every name in exactly one group."""
        made = self.param_groups(names)
        form = ("param_groups(names) must return a list of dicts {'params': [parameter names], **options}, every "
                f"name of {list(names)} in exactly one group")
        if not isinstance(made, (list, tuple)) or not made or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) for g in made):
            raise ValueError(f"{self.name}: {form}; got {made!r}")
        by_name = dict(zip(names, leaves))
        listed = [n for g in made for n in g["params"]]
        unknown = [n for n in listed if n not in by_name]
        twice = sorted({n for n in listed if listed.count(n) > 1}, key=str)
        left = [n for n in names if n not in listed]
        for problem, found in (("unknown names", unknown), ("names in more than one group", twice),
                               ("names in no group", left)):
            if found:
                raise ValueError(f"{self.name}: {form}; {problem}: {found}")
        return [{**g, "params": [by_name[n] for n in g["params"]]} for g in made]

    def _build(self, leaves: list[torch.Tensor], names: tuple[str, ...] | None = None
               ) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
        kwargs = self.hyperparameters if self.lr is None else {**self.hyperparameters, "lr": float(self.lr(0))}
        params: list = leaves if self.param_groups is None or names is None else self._groups(leaves, names)
        opt = self.cls(params, **kwargs)
        if self.scheduler is None:
            return opt, None
        sched = self.scheduler(opt)
        if isinstance(sched, ReduceLROnPlateau):
            raise ValueError("scheduler: ReduceLROnPlateau steps on a metric, which the agent does not see; use a "
                             "scheduler of the step count (StepLR, CosineAnnealingLR, LambdaLR...) or a schedule lr")
        if not isinstance(sched, LRScheduler):
            raise ValueError(f"scheduler must return a torch.optim.lr_scheduler.LRScheduler, got "
                             f"{type(sched).__name__}")
        return opt, sched

    def _index(self, opt: torch.optim.Optimizer, leaves: list[torch.Tensor], names: tuple[str, ...]
               ) -> tuple[tuple[str, ...], ...]:
        """The parameter name of each tensor of each of the optimizer's groups, found by identity; each tensor
        given must be held exactly once."""
        given = {id(leaf): n for leaf, n in zip(leaves, names)}
        held = [id(p) for g in opt.param_groups for p in g["params"]]
        foreign = [i for i in held if i not in given]
        if foreign or len(held) != len(set(held)) or set(held) != set(given):
            missing = sorted(n for i, n in given.items() if i not in held)
            raise ValueError(f"{self.name}'s parameter groups do not hold each tensor it was given exactly once "
                             f"({len(held)} held, {len(foreign)} of them other tensors, {len(given)} given; not held: "
                             f"{missing}): the agent writes the env's tensors through the optimizer's own")
        return tuple(tuple(given[id(p)] for p in g["params"]) for g in opt.param_groups)

    def _scales(self, opt: torch.optim.Optimizer) -> tuple[float | None, ...]:
        first = float(self.lr(0))
        return tuple(None if g["lr"] == first or first == 0 else float(g["lr"]) / first for g in opt.param_groups)

    def _check_device(self, tensors: list[torch.Tensor]) -> None:
        if self.hyperparameters.get("capturable") is True:
            supported = _capturable_devices()
            bad = sorted({t.device.type for t in tensors} - set(supported))
            if bad:
                raise ValueError(f"{self.name} with capturable=True steps tensors on {', '.join(supported)} only "
                                 f"(for CUDA graphs); the env's tensors are on {', '.join(bad)}: leave capturable out")

    def init(self, params: Params) -> TorchOptimizerState:
        names = tuple(params)
        tensors = [params[k] for k in names]
        self._check_device(tensors)
        if self.whole:
            sets = [tensors]
        else:
            n = {p.shape[0] if p.ndim else None for p in tensors}
            if len(n) != 1 or None in n:
                raise ValueError(f"{self.name} per seed: every parameter needs the same leading seed dimension N, "
                                 f"got the shapes {[tuple(p.shape) for p in tensors]}")
            sets = [[p[i] for p in tensors] for i in range(n.pop())]
        built = [self._build(leaves, names) for leaves in sets]
        opts = [o for o, _ in built]
        index = tuple(self._index(o, leaves, names) for o, leaves in zip(opts, sets))
        scales = () if self.lr is None else tuple(self._scales(o) for o in opts)
        return TorchOptimizerState(opts, None if self.scheduler is None else [s for _, s in built], 0, names,
                                   index=index, scales=scales)

    def step(self, grads: Params, state: TorchOptimizerState, params: Params) -> TorchOptimizerState:
        if state.pending is not None:  # unpickled: build the optimizers on the tensors given now, then resume
            state = self.load_state_dict(self.init(params), state.pending)
        # the optimizer gets fresh gradient tensors of its own, as autograd makes them after zero_grad(): some
        # optimizers write into p.grad (torch's foreach SGD with Nesterov momentum), and the observation must not
        # change; torch's fused Adam / AdamW kernels only read the gradients, so they get the env's own
        if self.whole and self.cls in _READS_GRADS_ONLY and self.hyperparameters.get("fused") is True:
            copies = {k: grads[k].detach() for k in state.names}
        else:
            copies = {k: grads[k].detach().clone() for k in state.names}
        lr = None if self.lr is None else float(self.lr(state.count))
        for i, opt in enumerate(state.optimizers):
            leaves = [(p, k) for group, names in zip(opt.param_groups, state.index[i])
                      for p, k in zip(group["params"], names)]
            for leaf, k in leaves:
                leaf.grad = copies[k] if self.whole else copies[k][i]
            if lr is not None:
                for group, scale in zip(opt.param_groups, state.scales[i]):
                    group["lr"] = lr if scale is None else scale * lr
            try:
                opt.step()
            except Exception:
                if self.whole or all(bool(torch.isfinite(copies[k][i]).all()) and bool(torch.isfinite(leaf).all())
                                     for leaf, k in leaves):
                    raise
                # seed i saw non-finite values: the env stopped it there (divergence) and restores its parameters;
                # an optimizer that fails on them (e.g. an eigendecomposition) sits out for that seed
            finally:
                for leaf, _ in leaves:
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
            leaves = [(p, k) for g, names in zip(opt.param_groups, state.index[i]) for p, k in zip(g["params"], names)]
            for leaf, k in leaves:
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
               per_seed: bool | None = None, param_groups: ParamGroups | None = None,
               allow_modules: Sequence[str] = (), **hyperparameters: Any) -> InPlaceTransformation:
    r"""Any ``torch.optim.Optimizer`` as an agent: it writes the new parameters into the env's tensors with its own
    ``step()`` (torch.optim's contract; https://pytorch.org/docs/stable/optim.html), and every batched seed behaves
    exactly as its own optimizer on its own parameters.

    ``from_torch("torch.optim.AdamW", lr=1e-3, weight_decay=0.01)``, ``from_torch(pytorch_optimizer.Prodigy)``,
    ``pair(from_torch("pytorch_optimizer.Lion", lr=1e-4), adam(4e-4))``: one optimizer per player (each player's
    agent gets its own ``init``), all its tensors in one parameter group unless ``param_groups`` says otherwise or
    the optimizer makes groups itself (every group's tensors get their gradients, matched by identity).

    Args:
        optimizer: a ``torch.optim.Optimizer`` subclass, or its dotted name (``"torch.optim.AdamW"``,
            ``"pytorch_optimizer.Lion"``). A name is imported only from :data:`OPTIMIZER_PACKAGES` as installed,
            or from a module in ``allow_modules`` (or :func:`allow_optimizer_modules`); any other name is refused
            with a ``ValueError`` before anything is imported. Not an instance: the agent builds its own
            optimizers on the env's tensors.
        scheduler: a factory ``optimizer -> torch.optim.lr_scheduler.LRScheduler``, e.g.
            ``lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10)``, stepped after every optimizer step
            (https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate); its state is checkpointed.
            ``ReduceLROnPlateau`` needs a metric per step, which the agent does not see: refused.
        per_seed: ``None`` (automatic): one optimizer over the whole ``(N, ...)`` tensors for the element-wise
            optimizers below, one per seed otherwise; ``True`` forces one per seed; ``False`` forces the whole
            tensors, and raises a ``ValueError`` for an optimizer that is not element-wise.
        param_groups: parameter groups by name (:data:`ParamGroups`): ``param_groups(names)`` (the player's
            parameter names) returns torch.optim's groups with names in place of tensors, ``[{"params": [name,
            ...], **options}, ...]``, every name in exactly one group; the agent puts in each seed's tensors. For
            optimizers that need flagged groups (pytorch-optimizer's ``Muon``: ``use_muon``) or per-group options
            (no weight decay on biases). The optimizer is then first built at ``init`` (no dummy build here).
        allow_modules: modules a dotted ``optimizer`` name may be imported from beyond :data:`OPTIMIZER_PACKAGES`
            (``["my_optim"]``), from wherever Python finds them: your explicit opt-in.
        **hyperparameters: passed to the optimizer's constructor. ``lr`` may also be a schedule, a callable of the
            number ``t`` of updates made so far (as :mod:`agents.schedules`): ``param_group["lr"] = lr(t)`` before
            each step (not with ``scheduler``); a group given its own ``lr`` keeps its ratio to the schedule,
            ``lr_group * lr(t) / lr(0)``.

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
    if isinstance(allow_modules, str) or not isinstance(allow_modules, (list, tuple)):
        raise ValueError(f"allow_modules must be a list of module names, got {allow_modules!r}")
    cls, name = _resolve(optimizer, tuple(_check_module_name(m) for m in allow_modules))
    if issubclass(cls, torch.optim.SparseAdam):
        raise ValueError(f"{name} steps sparse gradients only (embeddings with sparse=True); the env's gradients are "
                         "dense: use torch.optim.Adam")
    if hyperparameters.get("capturable") is True and not any(
            getattr(torch, d, None) is not None and getattr(torch, d).is_available() for d in _capturable_devices()
            if d in ("cuda", "xpu")):
        raise ValueError(f"{name} with capturable=True steps tensors on {', '.join(_capturable_devices())} only "
                         "(for CUDA graphs), and none is available here: leave capturable out")
    if param_groups is not None and not callable(param_groups):
        raise ValueError(f"param_groups must be a callable names -> [{{'params': [names], **options}}, ...], got "
                         f"{param_groups!r}")
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
    agent = TorchOptimizer(cls, name, hyperparameters, schedule, scheduler, whole=elementwise and not per_seed,
                           param_groups=param_groups)
    if param_groups is None:
        _dry_run(agent)
    return InPlaceTransformation(agent.init, agent.step, 1, agent.state_dict, agent.load_state_dict)


def _dry_run(agent: TorchOptimizer) -> None:
    """Build the optimizer (and scheduler) on a dummy tensor for torch's eager errors, and step it once to find
    optimizers that need a closure although their signature does not say so."""
    dummy = torch.zeros(_TRIED_SHAPE)
    opt, _ = agent._build([dummy])
    dummy.grad = torch.full_like(dummy, 0.5)
    try:
        opt.step()
    except Exception as e:  # noqa: BLE001 - a dummy tensor may not suit the optimizer; only closures matter here
        if "closure" in f"{type(e).__name__} {e}".lower():
            raise _closure_error(agent.name, f"its step() raised {type(e).__name__}: {e}") from e


__all__ = ["ELEMENTWISE", "OPTIMIZER_PACKAGES", "ParamGroups", "TorchOptimizer", "TorchOptimizerState",
           "allow_optimizer_modules", "check_hyperparameter_types", "from_torch", "optimizer_class",
           "optimizer_digest"]

"""Learned step-size controllers as agents of the evaluation: a saved policy drives both players' step sizes.

A controller is a stable-baselines3 policy trained on the step-size control env
(:class:`~minmax_envs.gym_env.StepSizeEnv`, e.g. by ``baselines/train_controller.py``). In a suite it is the
agent ``learned:PATH``: the protocol's step sizes ``(lr_d, lr_g)`` are its base step sizes, around which it
acts, and its episode runs every seed of a batch at once through :class:`~minmax_envs.step_size_control.StepSizeCore`
(one policy call per action for the whole batch).

**Format.** A saved controller is two files that cannot carry code:

- ``NAME.pt``, its weights: the policy's ``state_dict`` (a dict ``{parameter name: tensor}``) written by
  ``torch.save`` and read back with ``torch.load(..., weights_only=True)``, torch's restricted unpickler that
  builds tensors, numbers, strings, lists and dicts and refuses every other object;
- ``NAME.json``, its description (``"format": "minmax_envs.controller"``, ``"format_version": 1``): how it
  acts (:class:`ControllerConfig`: the ``"algorithm"``, the ``"control"`` settings it was trained with, a
  :class:`~minmax_envs.step_size_control.ControlConfig` as a JSON object, and what it was ``"trained_on"``; a
  description without ``"control"`` holds six of those settings, ``base``, ``momentum``, ``scope``,
  ``log10_range``, ``steps_per_action`` and ``action``, at the top level instead, :data:`LEGACY_CONTROL_KEYS`)
  and its ``"policy"``:
  the class (``MlpPolicy``), its constructor arguments (``net_arch``, the activation function by name, ...:
  each from an allow-list, see :data:`POLICY_KWARGS`) and its observation and action spaces (``Box``: shape,
  dtype, bounds);
- and its ``"layout"`` (:class:`Layout`): the order of the policy's action entries (player names) and
  observation entries (:data:`~minmax_envs.step_size_control.OBS_NAMES`), written by :func:`save_controller`. A
  description without it is in :data:`LEGACY_LAYOUT` (discriminator first); the controller maps the env's
  entries to its own order by name, so it acts the same whatever order the env has;
- and, optionally, its ``"observation_normalization"`` (:class:`ObservationNormalization`): the running mean and
  variance a trainer that normalizes observations (``baselines/ppo_step_size.py``) ended with, in the policy's
  order, so that the loaded policy sees exactly the inputs the trained one saw.

Loading rebuilds the policy with stable-baselines3's own class from the description, checks every weight's
name, shape and dtype against it and loads them strictly; whatever does not fit is a ``ValueError`` naming the
file and what is allowed. ``learned:PATH`` takes ``NAME``, ``NAME.pt`` or ``NAME.json``.

**stable-baselines3 ``.zip`` files are refused**: ``PPO.load`` unpickles their ``:serialized:`` entries, so a
crafted zip runs any code it holds. :func:`convert_sb3_zip` turns a zip you trust into the format above, once,
behind an explicit ``allow_pickle=True``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from minmax_envs import _json
from minmax_envs._checks import check_int, check_real
from minmax_envs.checkpoint import UnreadableTensorFile, load_tensors
from minmax_envs.episode import EpisodeResult, EpisodeTask, check_samples, episode_result
from minmax_envs.games._base import PLAYERS
from minmax_envs.step_size_control import ACTIONS, OBS_NAMES, ControlConfig, GameConfig, StepSizeCore

FORMAT = "minmax_envs.controller"
FORMAT_VERSION = 1
SB3_ALGORITHMS = ("PPO", "A2C", "SAC", "TD3", "DDPG")
POLICIES = ("MlpPolicy",)  # resolved as ALGORITHM.policy_aliases[name]
ACTIVATIONS = ("Tanh", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Softplus", "Identity")  # torch.nn
FEATURES_EXTRACTORS = ("FlattenExtractor",)  # stable_baselines3.common.torch_layers
SPACE_DTYPES = ("float32", "float64")

_BOOL_KWARGS = ("normalize_images", "use_sde", "ortho_init", "share_features_extractor")
_OPTIONAL_BOOL_KWARGS = ("squash_output", "full_std", "use_expln")  # None where SB3's ActorCriticPolicy has no value
_REAL_KWARGS = ("log_std_init", "clip_mean")
_INT_KWARGS = ("n_critics",)
#: The constructor arguments of a policy that a description may hold (anything else is refused).
POLICY_KWARGS = ("net_arch", "activation_fn", "features_extractor_class", "features_extractor_kwargs",
                 *_BOOL_KWARGS, *_OPTIONAL_BOOL_KWARGS, *_REAL_KWARGS, *_INT_KWARGS)
# Constructor arguments not written: the spaces have their own entries; the optimizer and its learning-rate
# schedule only serve training (a loaded policy gets SB3's default optimizer and a constant schedule).
_NOT_DESCRIBED = ("observation_space", "action_space", "lr_schedule", "optimizer_class", "optimizer_kwargs")
_NET_ARCH_KEYS = ("pi", "vf", "qf")
_FILES = "a controller is NAME.pt (its weights) with NAME.json (its description) next to it, as " \
         "baselines/train_controller.py (save_controller) writes them"


@dataclass(frozen=True)
class ControllerConfig:
    """How a controller acts: the ``algorithm`` that trained it, the step-size ``control`` settings it was trained
    with (:class:`~minmax_envs.step_size_control.ControlConfig`, see ``StepSizeEnv``; it plays with them, around the
    base step sizes and for the horizon of its episode) and what it was ``trained_on`` (suite, task, env id and
    arguments, timesteps...)."""

    algorithm: str = "PPO"
    control: ControlConfig = field(default_factory=ControlConfig)
    trained_on: dict[str, Any] = field(default_factory=dict)


#: The control settings a description without ``"control"`` holds at its top level (``action`` optional).
LEGACY_CONTROL_KEYS = ("base", "momentum", "scope", "log10_range", "steps_per_action", "action")


@dataclass(frozen=True)
class Layout:
    """The order of a controller policy's entries, by name: ``action`` the entries of its action vector (the
    players for ``action="step_sizes"``, ``pace`` and ``scale`` for ``"balance"``:
    :data:`~minmax_envs.step_size_control.ACTIONS`), ``observation`` the step-size env's observation entries
    (:data:`~minmax_envs.step_size_control.OBS_NAMES`) as the policy takes them. ``Layout()`` is the order of the
    step-size env (``PLAYERS`` order, generator first)."""

    action: tuple[str, ...] = PLAYERS
    observation: tuple[str, ...] = OBS_NAMES

    def to_json(self) -> dict[str, list[str]]:
        return {"action": list(self.action), "observation": list(self.observation)}

    @classmethod
    def from_json(cls, d: Any, where: str, action: tuple[str, ...] = PLAYERS) -> Layout:
        """A layout from a description's ``"layout"`` entry: permutations of the ``action`` names (``PLAYERS`` for
        a step-size controller) and of ``OBS_NAMES``."""
        if not isinstance(d, dict) or set(d) != {"action", "observation"}:
            raise ValueError(f"{where}: layout must be an object with exactly the keys action, observation, "
                             f"got {d!r}")
        for key, names in (("action", action), ("observation", OBS_NAMES)):
            entries = d[key]
            if not isinstance(entries, list) or not all(isinstance(n, str) for n in entries) \
                    or sorted(entries) != sorted(names):
                raise ValueError(f"{where}: layout {key} must list each of {', '.join(names)} once, in the "
                                 f"policy's order, got {d[key]!r}")
        return cls(tuple(d["action"]), tuple(d["observation"]))


#: The layout of a description without one: discriminator first (the layout of the committed
#: ``docs/controllers/*``).
LEGACY_LAYOUT = Layout(action=("discriminator", "generator"), observation=(
    "discriminator/log10_grad_norm", "discriminator/log10_param_norm", "discriminator/loss",
    "generator/log10_grad_norm", "generator/log10_param_norm", "generator/loss",
    "log10_grad_ratio", "progress", "quality",
    "discriminator/log10_update_norm", "generator/log10_update_norm"))

@dataclass(frozen=True)
class ObservationNormalization:
    r"""What a policy trained on normalized observations sees: with $\mu$ = ``mean``, $\sigma^2$ = ``var`` (per
    observation entry, in the policy's order), $\epsilon$ = ``epsilon`` and $c$ = ``clip``,

    $$\hat o = \operatorname{clip}\big((o - \mu) / \sqrt{\sigma^2 + \epsilon},\; -c,\; c\big),$$

    computed in float64 from the float32 observation the envs give, then rounded to float32 (the running
    normalization of gymnasium's ``NormalizeObservation`` and stable-baselines3's ``VecNormalize``). The trainer
    that learns with it (``baselines/ppo_step_size.py``) calls :func:`normalize_observation` too, so that a saved
    policy acts exactly as the trained one."""

    mean: tuple[float, ...]
    var: tuple[float, ...]
    epsilon: float = 1e-8
    clip: float = 10.0

    def apply(self, obs: torch.Tensor) -> torch.Tensor:
        """The normalized observations ``(N, k)`` float32 of observations ``(N, k)`` in the policy's order."""
        mean = torch.tensor(self.mean, dtype=torch.float64, device=obs.device)
        var = torch.tensor(self.var, dtype=torch.float64, device=obs.device)
        return normalize_observation(obs, mean, var, self.epsilon, self.clip)

    def to_json(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "var": list(self.var), "epsilon": self.epsilon, "clip": self.clip}

    @classmethod
    def from_json(cls, d: Any, where: str, size: int) -> ObservationNormalization:
        """The normalization of a description's ``"observation_normalization"`` entry for ``size`` observation
        entries, validated (a ``ValueError`` naming ``where`` and what is allowed)."""
        ctx = f"{where}: observation_normalization"
        keys = ("mean", "var", "epsilon", "clip")
        if not isinstance(d, dict) or set(d) != set(keys):
            raise ValueError(f"{ctx} must be an object with exactly the keys {', '.join(keys)}, got {d!r}")
        stats = {}
        for key, low in (("mean", -math.inf), ("var", 0.0)):
            values = d[key]
            if not isinstance(values, list) or len(values) != size or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= low
                    for v in values):
                what = "finite numbers" if key == "mean" else "finite numbers >= 0"
                raise ValueError(f"{ctx}: {key} must be a list of {size} {what} (one per observation entry, in the "
                                 f"policy's order), got {values!r}")
            stats[key] = tuple(float(v) for v in values)
        try:
            epsilon = check_real("epsilon", d["epsilon"], low=0.0, low_inclusive=False)
            clip = check_real("clip", d["clip"], low=0.0, low_inclusive=False)
        except ValueError as e:
            raise ValueError(f"{ctx}: {e}") from None
        return cls(stats["mean"], stats["var"], epsilon, clip)


def normalize_observation(obs: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, epsilon: float,
                          clip: float) -> torch.Tensor:
    """:class:`ObservationNormalization`'s formula on tensors: ``obs`` ``(N, k)`` (rounded to float32 first, as
    the envs give it), ``mean`` and ``var`` ``(k,)`` float64; returns float32."""
    x = obs.to(torch.float32).to(torch.float64)
    return ((x - mean) / torch.sqrt(var + epsilon)).clamp(-clip, clip).to(torch.float32)


_CONFIG_KEYS = tuple(f.name for f in fields(ControllerConfig))
_CONTROL_KEYS = tuple(f.name for f in fields(ControlConfig))
_DESCRIPTION_KEYS = ("format", "format_version", *_CONFIG_KEYS, "layout", "policy", "observation_normalization",
                     "saved_with")
_POLICY_KEYS = ("class", "kwargs", "observation_space", "action_space")
_SPACE_KEYS = ("type", "shape", "dtype", "low", "high")


#: ``pkg:NAME`` names a controller shipped inside the package: ``minmax_envs/controllers_data/NAME.pt`` with
#: ``NAME.json`` (read through :mod:`importlib.resources`, so from any directory and from an installed wheel).
PACKAGED = "pkg:"


def packaged_controllers() -> list[str]:
    """The names of the controllers shipped with the package (``learned:pkg:NAME``)."""
    return sorted(f.name[:-3] for f in _packaged_dir().iterdir() if f.name.endswith(".pt"))


def _packaged_dir() -> Path:
    from importlib.resources import files

    return Path(os.fspath(files("minmax_envs") / "controllers_data"))


def _packaged(name: str) -> Path:
    """The stem of the shipped controller ``name`` (``pkg:NAME``), or a ``ValueError`` listing the shipped ones."""
    shipped = packaged_controllers()
    if name not in shipped:
        raise ValueError(f"controller {PACKAGED + name!r} is not shipped with minmax_envs; shipped: "
                         f"{', '.join(PACKAGED + n for n in shipped)}")
    return _packaged_dir() / name


def controller_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """The weights (``.pt``) and description (``.json``) files of the controller ``path`` (``NAME``, ``NAME.pt``
    or ``NAME.json``, or ``pkg:NAME`` for a controller shipped with the package); a ``.zip`` is refused with a
    ``ValueError`` that says how to convert it."""
    if isinstance(path, str) and path.startswith(PACKAGED):
        stem = _packaged(path[len(PACKAGED):])
        return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")
    p = Path(path)
    if p.suffix == ".zip":
        raise _zip_refused(p)
    stem = p.with_suffix("") if p.suffix in (".pt", ".json") else p
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def sidecar(path: str | os.PathLike) -> Path:
    """The ``.json`` description file of a controller."""
    return controller_files(path)[1]


def _zip_refused(zip_path: Path) -> ValueError:
    pt = zip_path.with_suffix(".pt")
    what = (f"a converted controller {str(pt)!r} is next to it: use learned:{pt}" if pt.is_file() else
            "convert a .zip you trust once with minmax_envs.controller_files.convert_sb3_zip("
            f"{str(zip_path)!r}, allow_pickle=True) and use learned:{pt}")
    return ValueError(
        f"controller {str(zip_path)!r} is a stable-baselines3 .zip, which is not loaded: reading it unpickles its "
        "':serialized:' entries, which can run any code a crafted file holds. Controllers are read from NAME.pt "
        f"(weights) and NAME.json (description), which hold no code; {what}")


# --- description <-> JSON ---------------------------------------------------------------------------------
def _space_to_json(space: Any, name: str) -> dict[str, Any]:
    if not isinstance(space, spaces.Box):
        raise ValueError(f"the policy's {name} is a {type(space).__name__}; a controller description holds Box "
                         "spaces only")

    def bound(x: float) -> float | str:
        return x if math.isfinite(x) else str(x)  # "inf" / "-inf": the file stays standard JSON

    return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
            "low": [bound(x) for x in space.low.ravel().tolist()],
            "high": [bound(x) for x in space.high.ravel().tolist()]}


def _space_from_json(d: Any, name: str, where: str) -> spaces.Box:
    ctx = f"{where}: policy {name}"
    if not isinstance(d, dict) or set(d) != set(_SPACE_KEYS):
        raise ValueError(f"{ctx} must be an object with exactly the keys {', '.join(_SPACE_KEYS)}, got {d!r}")
    if d["type"] != "Box":
        raise ValueError(f"{ctx}: unknown space type {d['type']!r}; choose one of Box")
    if not isinstance(d["shape"], list) or not d["shape"]:
        raise ValueError(f"{ctx}: shape must be a non-empty list of ints >= 1, got {d['shape']!r}")
    shape = tuple(check_int(f"{ctx} shape entry", n) for n in d["shape"])
    if d["dtype"] not in SPACE_DTYPES:
        raise ValueError(f"{ctx}: unknown dtype {d['dtype']!r}; choose one of {', '.join(SPACE_DTYPES)}")
    bounds = []
    for key in ("low", "high"):
        values = d[key]
        if not isinstance(values, list) or len(values) != math.prod(shape):
            raise ValueError(f"{ctx}: {key} must be a list of {math.prod(shape)} numbers (the shape {list(shape)} "
                             f"flattened), got {values!r}")
        for v in values:
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
            if not (number or v in ("inf", "-inf")):
                raise ValueError(f"{ctx}: {key} entries must be numbers or 'inf' / '-inf', got {v!r}")
        bounds.append(np.asarray([float(v) for v in values], dtype=d["dtype"]).reshape(shape))
    if np.any(bounds[0] > bounds[1]):
        raise ValueError(f"{ctx}: low must be <= high everywhere")
    return spaces.Box(bounds[0], bounds[1], shape=shape, dtype=d["dtype"])


def _kwargs_to_json(policy: Any) -> dict[str, Any]:
    """The constructor arguments of an SB3 ``policy`` in JSON (classes by name); refuses what it cannot name."""
    from stable_baselines3.common import torch_layers

    params = dict(policy._get_constructor_parameters())
    if hasattr(policy, "share_features_extractor"):  # an ActorCriticPolicy argument its parameters leave out
        params.setdefault("share_features_extractor", policy.share_features_extractor)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in _NOT_DESCRIBED:
            continue
        if key == "activation_fn":
            name = getattr(value, "__name__", None)
            if name not in ACTIVATIONS or getattr(torch.nn, name) is not value:
                raise ValueError(f"the policy's activation_fn {value!r} is not one of torch.nn's "
                                 f"{', '.join(ACTIVATIONS)}")
            value = name
        elif key == "features_extractor_class":
            name = getattr(value, "__name__", None)
            if name not in FEATURES_EXTRACTORS or getattr(torch_layers, name) is not value:
                raise ValueError(f"the policy's features_extractor_class {value!r} is not one of stable-baselines3's "
                                 f"{', '.join(FEATURES_EXTRACTORS)}")
            value = name
        elif key not in POLICY_KWARGS:
            raise ValueError(f"the policy argument {key!r} of {type(policy).__name__} cannot be described; a "
                             f"controller description holds {', '.join(POLICY_KWARGS)}")
        out[key] = value if key != "features_extractor_kwargs" else dict(value or {})
    return out


def _net_arch(value: Any, ctx: str) -> Any:
    def widths(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v)

    if value is None or widths(value):
        return value
    if isinstance(value, dict) and set(value) <= set(_NET_ARCH_KEYS) and all(map(widths, value.values())):
        return value
    raise ValueError(f"{ctx}: net_arch must be a list of layer widths (ints >= 1) or an object with keys among "
                     f"{', '.join(_NET_ARCH_KEYS)} holding such lists, got {value!r}")


def _refuse_unknown(d: dict[str, Any], allowed: Sequence[str], what: str) -> None:
    """A ``ValueError`` ``"WHAT 'a', 'b'; allowed: ..."`` when ``d`` holds keys outside ``allowed``."""
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{what} {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _kwargs_from_json(d: Any, where: str) -> dict[str, Any]:
    """The constructor arguments of a description, validated, classes resolved from the allow-lists."""
    from stable_baselines3.common import torch_layers

    ctx = f"{where}: policy kwargs"
    if not isinstance(d, dict):
        raise ValueError(f"{ctx} must be a JSON object, got {d!r}")
    _refuse_unknown(d, POLICY_KWARGS, f"{ctx}: unknown argument(s)")
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key == "activation_fn":
            if value not in ACTIVATIONS:
                raise ValueError(f"{ctx}: unknown activation_fn {value!r}; choose one of {', '.join(ACTIVATIONS)}")
            value = getattr(torch.nn, value)
        elif key == "features_extractor_class":
            if value not in FEATURES_EXTRACTORS:
                raise ValueError(f"{ctx}: unknown features_extractor_class {value!r}; choose one of "
                                 f"{', '.join(FEATURES_EXTRACTORS)}")
            value = getattr(torch_layers, value)
        elif key == "features_extractor_kwargs":
            if value not in (None, {}):
                raise ValueError(f"{ctx}: features_extractor_kwargs must be {{}} ({', '.join(FEATURES_EXTRACTORS)} "
                                 f"takes no arguments), got {value!r}")
        elif key == "net_arch":
            value = _net_arch(value, ctx)
        elif key in _BOOL_KWARGS or key in _OPTIONAL_BOOL_KWARGS:
            if not isinstance(value, bool) and not (value is None and key in _OPTIONAL_BOOL_KWARGS):
                raise ValueError(f"{ctx}: {key} must be true or false, got {value!r}")
        elif key in _REAL_KWARGS:
            value = check_real(f"{ctx}: {key}", value)
        else:
            value = check_int(f"{ctx}: {key}", value)
        out[key] = value
    return out


def _parse_description(data: Any, file: Path) -> tuple[ControllerConfig, Layout, dict[str, Any],
                                                       ObservationNormalization | None]:
    """The settings, the layout, the policy description and the observation normalization (``None`` without one)
    of a description's JSON ``data``, validated."""
    where = f"controller description {str(file)!r}"
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ValueError(f"{where} is not a minmax_envs controller description: its 'format' is "
                         f"{data.get('format')!r}, expected {FORMAT!r} (the settings file of an old stable-baselines3 "
                         ".zip? convert that zip with minmax_envs.controller_files.convert_sb3_zip)")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{where} has format_version {data.get('format_version')!r}; this minmax_envs reads "
                         f"{FORMAT_VERSION}")
    legacy = {k: data[k] for k in LEGACY_CONTROL_KEYS if k in data}
    unknown = sorted(set(data) - set(_DESCRIPTION_KEYS) - set(legacy))
    form = () if "control" in data else LEGACY_CONTROL_KEYS[:-1] if legacy else ("control",)
    required = ("algorithm", "trained_on", "policy", *form)
    missing = [k for k in required if k not in data]
    if unknown or missing:
        raise ValueError(f"{where}: " + "; ".join(
            ([f"unknown key(s) {', '.join(map(repr, unknown))}"] if unknown else [])
            + ([f"missing key(s) {', '.join(map(repr, missing))}"] if missing else []))
            + f"; a description has the keys {', '.join(_DESCRIPTION_KEYS)}")
    if "control" in data:
        if legacy:  # each value named wherever it is wrong, then the mix of the two forms
            _control(legacy, where)
            raise ValueError(f"{where}: the control settings are in 'control'; the top-level "
                             f"{', '.join(map(repr, legacy))} of descriptions written before it cannot be given too")
        control = _control(data["control"], where)
    else:  # the settings at the top level (LEGACY_CONTROL_KEYS)
        control = _control(legacy, where)
    config = ControllerConfig(algorithm=data["algorithm"], control=control, trained_on=data["trained_on"])
    if config.algorithm not in SB3_ALGORITHMS:
        raise ValueError(f"{where}: unknown algorithm {config.algorithm!r}; choose one of {', '.join(SB3_ALGORITHMS)}")
    if not isinstance(config.trained_on, dict):
        raise ValueError(f"{where}: trained_on must be a JSON object, got {config.trained_on!r}")
    action = config.control.action
    if "layout" in data:
        layout = Layout.from_json(data["layout"], where, ACTIONS[action])
    elif action == "step_sizes":
        layout = LEGACY_LAYOUT
    else:
        raise ValueError(f"{where}: a controller with action {action!r} needs its layout")
    policy = data["policy"]
    if not isinstance(policy, dict) or set(policy) != set(_POLICY_KEYS):
        raise ValueError(f"{where}: policy must be an object with exactly the keys {', '.join(_POLICY_KEYS)}")
    if policy["class"] not in POLICIES:
        raise ValueError(f"{where}: unknown policy class {policy['class']!r} for {config.algorithm}; choose one of "
                         f"{', '.join(POLICIES)}")
    parsed = {"class": policy["class"], "kwargs": _kwargs_from_json(policy["kwargs"], where),
              "observation_space": _space_from_json(policy["observation_space"], "observation_space", where),
              "action_space": _space_from_json(policy["action_space"], "action_space", where)}
    normalization = None
    if "observation_normalization" in data:
        shape = parsed["observation_space"].shape
        if len(shape) != 1:
            raise ValueError(f"{where}: observation_normalization needs a flat observation space, got shape "
                             f"{list(shape)}")
        normalization = ObservationNormalization.from_json(data["observation_normalization"], where, shape[0])
    return config, layout, parsed, normalization


def _control(d: Any, where: str) -> ControlConfig:
    """The :class:`~minmax_envs.step_size_control.ControlConfig` of a description's control settings, validated (a
    ``ValueError`` naming the file)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: control must be a JSON object of control settings, got {d!r}")
    _refuse_unknown(d, _CONTROL_KEYS, f"{where}: control: unknown setting(s)")
    try:
        return ControlConfig(**d)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _no_schedule(_progress_remaining: float) -> float:
    return 0.0  # a loaded policy is never trained


def _build_policy(config: ControllerConfig, policy: dict[str, Any], file: Path) -> Any:
    """The SB3 policy a parsed description describes (random weights; global RNG state untouched)."""
    import stable_baselines3

    cls = getattr(stable_baselines3, config.algorithm).policy_aliases[policy["class"]]
    with torch.random.fork_rng(devices=[]):  # SB3 initializes the weights from torch's global generator
        try:
            built = cls(policy["observation_space"], policy["action_space"], lr_schedule=_no_schedule,
                        **policy["kwargs"])
        except Exception as e:  # noqa: BLE001 - any argument SB3 rejects makes a bad description
            raise ValueError(f"controller description {str(file)!r}: stable-baselines3's {cls.__name__} cannot be "
                             f"built from it: {type(e).__name__}: {e}") from None
    built.set_training_mode(False)
    return built


# --- weights ----------------------------------------------------------------------------------------------
#: the largest weights file read (a policy of a few small layers is kilobytes; a guard against exhausting memory)
WEIGHTS_MAX_BYTES = 256 << 20


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read with the suite's safe loader (:func:`~minmax_envs.checkpoint.load_tensors`:
    a regular file, no link followed, torch's restricted unpickler); nothing but tensors accepted."""
    where = f"controller weights {str(file)!r}"
    try:
        state = load_tensors(file, max_bytes=WEIGHTS_MAX_BYTES)
    except UnreadableTensorFile as e:  # whatever torch cannot read safely is a bad weights file
        if e.detail is None:  # the file itself was refused (a link, a special file, too large)
            raise ValueError(f"{where} cannot be read: {e.reason}") from None
        raise ValueError(f"{where} are not a torch file of plain tensors (read with torch.load(weights_only=True), "
                         f"which builds tensors, numbers, strings, lists and dicts and nothing else): "
                         f"{e.detail}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{where} must hold a dict {{parameter name: tensor}} (a policy's state_dict), found a "
                         f"{type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: parameter names must be str, found {key!r}")
        if type(value) not in (torch.Tensor, torch.nn.Parameter) or value.layout != torch.strided:
            raise ValueError(f"{where} hold a {type(value).__name__} under {key!r}; only dense tensors are allowed")
    return state


def _load_weights(policy: Any, state: dict[str, torch.Tensor], weights: Path, description: Path) -> None:
    """Check ``state`` against ``policy`` (names, shapes, dtypes, finite values) and load it strictly."""
    where = f"controller weights {str(weights)!r}"
    expected = policy.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{where} do not fit the {type(policy).__name__} described in {str(description)!r}: "
                         f"missing {missing or 'nothing'}; unexpected {unexpected or 'nothing'}")
    for key, want in expected.items():
        got = state[key]
        if got.shape != want.shape:
            raise ValueError(f"{where}: {key!r} has shape {tuple(got.shape)}, the policy described in "
                             f"{str(description)!r} needs {tuple(want.shape)}")
        if got.dtype != want.dtype:
            raise ValueError(f"{where}: {key!r} has dtype {got.dtype}, the policy needs {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ValueError(f"{where}: {key!r} holds non-finite values")
    policy.load_state_dict(state, strict=True)


def _read(path: str | os.PathLike) -> tuple[Path, ControllerConfig, Layout, Any, ObservationNormalization | None]:
    weights, description = controller_files(path)
    legacy = weights.with_suffix(".zip")
    if not weights.is_file() and legacy.is_file():  # the stem of an unconverted SB3 controller
        raise _zip_refused(legacy)
    missing = [f"{what} file {str(file)!r}" for file, what in ((weights, "weights"), (description, "description"))
               if not file.is_file()]
    if missing:
        raise ValueError(f"controller {' and '.join(missing)} {'do' if len(missing) > 1 else 'does'} not exist; "
                         f"{_FILES}")
    try:
        data = _json.loads(description.read_text())  # nesting bounded
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"controller description {str(description)!r} is not valid JSON: {e}") from None
    config, layout, policy_description, normalization = _parse_description(data, description)
    policy = _build_policy(config, policy_description, description)
    _load_weights(policy, _read_weights(weights), weights, description)
    return weights, config, layout, policy, normalization


def check_controller(path: str | os.PathLike) -> tuple[Path, ControllerConfig]:
    """The weights path and settings of a saved controller after reading and checking all of it (description,
    policy, weights), or a ``ValueError`` naming the file and what is wrong."""
    weights, config, *_ = _read(path)
    return weights, config


# --- saving -----------------------------------------------------------------------------------------------
def save_controller(model: Any, config: ControllerConfig, path: str | os.PathLike, *,
                    layout: Layout | None = None) -> Path:
    """Save the policy of an SB3 ``model`` (``MlpPolicy`` of PPO, A2C, SAC, TD3 or DDPG) and its settings as
    ``NAME.pt`` (weights) and ``NAME.json`` (description) for ``path`` = ``NAME`` (or ``NAME.pt``); returns the
    ``.pt`` path, which ``learned:PATH`` takes. ``layout`` is the order of the policy's entries: by default
    that of the step-size env (:class:`Layout` with ``config.action``'s entries), on which ``model`` was trained.
    What it writes is read back (:func:`check_controller`)."""
    if Path(path).suffix == ".zip" or str(path).startswith(PACKAGED):
        raise ValueError(f"save_controller writes NAME.pt and NAME.json; pass NAME or NAME.pt, not {str(path)!r}")
    algorithm = type(model).__name__
    if algorithm not in SB3_ALGORITHMS or not hasattr(model, "policy"):
        raise ValueError(f"save_controller needs a stable-baselines3 {', '.join(SB3_ALGORITHMS)} model, got "
                         f"{type(model).__name__}")
    if config.algorithm != algorithm:
        raise ValueError(f"config.algorithm is {config.algorithm!r} but the model is {algorithm}")
    return save_policy(model.policy, config, path, layout=layout)


def save_policy(policy: Any, config: ControllerConfig, path: str | os.PathLike, *, layout: Layout | None = None,
                observation_normalization: ObservationNormalization | None = None) -> Path:
    """Save an SB3 ``policy`` (the ``MlpPolicy`` of ``config.algorithm``) as :func:`save_controller` does, with the
    ``observation_normalization`` its inputs went through in training, if any (the loaded controller applies it
    before the policy). For a trainer of its own whose network has the policy's layout (``baselines/
    ppo_step_size.py`` loads its weights into stable-baselines3's ``MlpPolicy`` and saves that). Both files are
    written atomically (a temporary file, then a rename) and read back (:func:`check_controller`)."""
    if Path(path).suffix == ".zip":
        raise ValueError(f"save_policy writes NAME.pt and NAME.json; pass NAME or NAME.pt, not {str(path)!r}")
    weights, description = controller_files(path)
    import stable_baselines3

    if layout is None:
        layout = Layout(action=ACTIONS.get(config.control.action, PLAYERS))
    if config.algorithm not in SB3_ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.algorithm!r}; choose one of {', '.join(SB3_ALGORITHMS)}")
    aliases = getattr(stable_baselines3, config.algorithm).policy_aliases
    name = next((n for n in POLICIES if type(policy) is aliases.get(n)), None)
    if name is None:
        raise ValueError(f"a controller holds the {' or '.join(POLICIES)} of stable-baselines3's "
                         f"{config.algorithm}; the policy is a {type(policy).__name__}")
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(config), "layout": layout.to_json(),
            "policy": {"class": name, "kwargs": _kwargs_to_json(policy),
                       "observation_space": _space_to_json(policy.observation_space, "observation_space"),
                       "action_space": _space_to_json(policy.action_space, "action_space")},
            "saved_with": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__}}
    if observation_normalization is not None:
        data["observation_normalization"] = observation_normalization.to_json()
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    _parse_description(json.loads(text), description)  # never write what loading would refuse
    state = {k: v.detach().to("cpu").clone() for k, v in policy.state_dict().items()}
    weights.parent.mkdir(parents=True, exist_ok=True)
    for file, write in ((weights, lambda f: torch.save(state, f)), (description, lambda f: f.write_text(text))):
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        try:
            write(tmp)
            os.replace(tmp, file)
        finally:
            tmp.unlink(missing_ok=True)
    check_controller(weights)
    return weights


def convert_sb3_zip(src: str | os.PathLike, dst: str | os.PathLike | None = None, *, allow_pickle: bool = False,
                    config: ControllerConfig | None = None, layout: Layout = Layout()) -> Path:
    """Convert a stable-baselines3 ``.zip`` controller into ``dst`` (default: ``src`` as ``.pt`` + ``.json``).

    This **unpickles** ``src`` (``ALGORITHM.load``): a crafted zip runs any code it holds. Only for a file you
    trust (one you trained yourself), hence the explicit ``allow_pickle=True``; the result holds no code.
    ``config`` defaults to the settings file beside ``src`` (its ``.json``). ``layout`` is the order of the zip
    policy's entries: by default that of the step-size env (:class:`Layout`); pass :data:`LEGACY_LAYOUT` for a
    zip whose policy takes the discriminator first. Returns the ``.pt`` path.
    """
    src = Path(src)
    if not allow_pickle:
        raise ValueError(f"convert_sb3_zip unpickles {str(src)!r} (stable-baselines3's ':serialized:' entries), "
                         "which runs any code a crafted file holds; pass allow_pickle=True only for a file you trust")
    if src.suffix != ".zip" or not src.is_file():
        raise ValueError(f"convert_sb3_zip needs an existing stable-baselines3 .zip, got {str(src)!r}")
    if config is None:
        settings = src.with_suffix(".json")
        if not settings.is_file():
            raise ValueError(f"{str(src)!r} has no settings file {str(settings)!r}; pass config=ControllerConfig(...)")
        try:
            data = json.loads(settings.read_text())
            control = _control({k: data[k] for k in LEGACY_CONTROL_KEYS if k in data}, f"settings {str(settings)!r}")
            config = ControllerConfig(algorithm=data.get("algorithm", "PPO"), control=control,
                                      trained_on=data.get("trained_on", {}))
        except (json.JSONDecodeError, TypeError, AttributeError) as e:
            raise ValueError(f"settings {str(settings)!r} are not valid: {e}") from None
    if config.algorithm not in SB3_ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.algorithm!r}; choose one of {', '.join(SB3_ALGORITHMS)}")
    import stable_baselines3

    model = getattr(stable_baselines3, config.algorithm).load(str(src), device="cpu")
    return save_controller(model, config, src.with_suffix("") if dst is None else dst, layout=layout)


@dataclass
class LearnedController:
    """A loaded controller (its SB3 policy, rebuilt from its files) with the base step sizes it acts around.

    ``layout`` is the order of the policy's entries (:class:`Layout`); :meth:`actions` hands the policy the env's
    observation entries in that order (normalized by ``normalization`` if the controller was trained on
    normalized observations) and maps its actions back to the env's entries by name."""

    path: Path
    policy: Any
    config: ControllerConfig
    lr_d: float
    lr_g: float
    layout: Layout = Layout()
    normalization: ObservationNormalization | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, lr_d: float = 1.0, lr_g: float = 1.0) -> LearnedController:
        """Load the controller ``path`` (``NAME``, ``NAME.pt`` or ``NAME.json``, as :func:`save_controller` writes
        it); a ``ValueError`` names the file and what is wrong."""
        weights, config, layout, policy, normalization = _read(path)
        return cls(weights, policy, config, float(lr_d), float(lr_g), layout, normalization)

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """The policy's deterministic actions ``(N, 2)`` (in ``[-1, 1]``, the entries of ``ACTIONS[action]`` in the
        env's order) for observations ``(N, 11)`` float32 of the step-size env (entries in ``OBS_NAMES`` order)."""
        observed = [OBS_NAMES.index(name) for name in self.layout.observation]  # policy entry i <- env entry
        # env column j <- policy entry
        acted = [self.layout.action.index(name) for name in ACTIONS[self.config.control.action]]
        # C-contiguous, as the env's own arrays: a transposed layout would take another matmul path
        x = np.ascontiguousarray(obs[:, observed])
        if self.normalization is not None:
            x = self.normalization.apply(torch.from_numpy(x)).numpy()
        action, _ = self.policy.predict(x, deterministic=True)
        return np.ascontiguousarray(action[:, acted])

    def run(self, task: EpisodeTask, *args: Any, **kwargs: Any) -> EpisodeResult:
        """Play the batched episode ``task``, the policy acting deterministically: the
        :class:`~minmax_envs.evaluation.agent_names.Runner` interface.

        ``task.steps`` actions on the seeds ``task.seed, task.seed + 1, ...`` (``task.count`` of them), metrics every
        ``task.eval_every`` actions and ``task.samples`` generator samples per seed at the end, as
        :func:`~minmax_envs.run_episode` records them (an action is one update cycle of the game unless the
        controller says otherwise).

        Args:
            task: the episode (:class:`~minmax_envs.episode.EpisodeTask`; the positional form
                ``run(env_id, steps, seed, count, ...)`` is deprecated).

        Returns:
            What the episode produced.
        """
        task = EpisodeTask.of(task, *args, **kwargs)
        steps, seed, count, eval_every, samples = task.steps, task.seed, task.count, task.eval_every, task.samples
        control = replace(self.config.control, base_lr={"discriminator": self.lr_d, "generator": self.lr_g},
                          horizon=steps)
        core = StepSizeCore(GameConfig.from_kwargs(task.env_id, device=task.device, **task.env_kwargs), control,
                            count)
        for name, mine, env_space in (("observations", self.policy.observation_space, core.observation_space()),
                                      ("actions", self.policy.action_space, core.action_space())):
            if mine.shape != env_space.shape:
                raise ValueError(f"controller {str(self.path)!r} expects {name} of shape {mine.shape}, the "
                                 f"step-size env has {env_space.shape}")
        env = core.env
        check_samples(env, samples)  # before the episode, as run_episode
        tr = core.reset(range(seed, seed + count))
        trajectory = [(0, env.metrics())] if eval_every else []
        for t in range(1, steps + 1):
            tr = core.step(torch.as_tensor(self.actions(tr.obs), device=env.device).clamp(-1.0, 1.0))
            if eval_every and t % eval_every == 0:
                trajectory.append((t, env.metrics()))
        return episode_result(env, steps, trajectory, core.steps_per_action, samples)

"""In-place fast paths of the built-in optimizers (agents.inplace.sgda, nsgda, adam, adalr, adadir): the pure
agents' signatures, validation and state, and the parameters of ``in_place(<pure agent>)`` step for step, on
every kind of game (batched small games, an image game whose parameters are views of module weights), through
run_episode (divergence, checkpoints).

Equality: ``adam`` is bit for bit the reference on every CPU (torch's fused kernel on the parameters rounds as
adding the pure step's update). The others fuse a product and the following sum into one pass; on CPUs with
FMA (AVX2, AVX-512) that is one rounding instead of two, so they match to float rounding here (float64: a
relative 1e-12 over 20+ steps); with torch's scalar kernels (``ATEN_CPU_CAPABILITY=default``, no FMA) they are
bit for bit the reference, which a subprocess test checks.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

import agents
import minmax_envs
from agents import inplace
from minmax_envs import PLAYERS
from tests.helpers import PROBE_CALLS, Interrupt, interrupting, simultaneous_kwargs, small_env

NAMES = ("sgda", "nsgda", "adam", "adalr", "adadir")
PURE = {name: getattr(agents, name) for name in NAMES}
FAST = {name: getattr(inplace, name) for name in NAMES}


def _decay(t: int) -> float:
    return 0.03 / (1.0 + 0.1 * t)


# (optimizer, keyword arguments): every branch of every fast path (momentum or none, Nesterov, scopes, schedules)
CONFIGS = [
    ("sgda", {"lr": 0.05}), ("sgda", {"lr": 0.05, "momentum": 0.9}),
    ("sgda", {"lr": 0.05, "momentum": 0.5, "nesterov": True}), ("sgda", {"lr": _decay, "momentum": 0.5}),
    ("nsgda", {"lr": 0.05}), ("nsgda", {"lr": 0.05, "scope": "layer"}),
    ("nsgda", {"lr": 0.05, "momentum": 0.5}), ("nsgda", {"lr": _decay, "momentum": 0.5, "scope": "layer"}),
    ("adam", {"lr": 0.01}), ("adam", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-6}), ("adam", {"lr": _decay}),
    ("adalr", {"lr": 0.01}), ("adalr", {"lr": 0.01, "scope": "global"}), ("adalr", {"lr": 0.01, "betas": (0.0, 0.9)}),
    ("adalr", {"lr": _decay, "scope": "global"}),
    ("adadir", {"lr": 0.01}), ("adadir", {"lr": 0.01, "scope": "global"}),
    ("adadir", {"lr": 0.01, "betas": (0.0, 0.9)}),
    ("adadir", {"lr": _decay, "scope": "global"}),
]
CONFIG_IDS = [f"{n}-" + "-".join(f"{k}={getattr(v, '__name__', v)}" for k, v in kw.items()) for n, kw in CONFIGS]
GAMES = ["Bilinear-v0", "TwoMode-v0", "MoG-Ring-v0", "Digits-DCGAN-v0"]
STEPS = 24

# with FMA (one rounding where the pure chain rounds twice): the relative distance allowed after STEPS steps
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _bitwise_here(name: str) -> bool:
    """Whether a fast path is bit for bit its reference on this CPU (see the module docstring)."""
    return name == "adam" or torch.backends.cpu.get_cpu_capability() == "DEFAULT"


def _env(env_id: str, dtype: torch.dtype, **kw) -> minmax_envs.BatchedEnv:
    return small_env(env_id, 3, dtype=dtype, **kw)


def _play(env: minmax_envs.BatchedEnv, agent, steps: int, seed: int):
    """Yield ``(params, state)`` (copies) after every env step of ``agent``, driven as run_episode drives an
    in-place agent (through ``env.writable``)."""
    pair = agents.as_pair(agent)
    obs, _ = env.reset(seed=seed)
    state = pair.init({pl: obs[pl].params for pl in PLAYERS})
    for _ in range(steps):
        movers = [pl for pl in PLAYERS if obs[pl].moving]
        with env.writable(movers) as params:
            _, state = pair.update({pl: obs[pl].grads for pl in movers}, state, params)
        obs, *_ = env.step({})
        yield {pl: {k: v.clone() for k, v in obs[pl].params.items()} for pl in PLAYERS}, _copy(state)


def _copy(tree):
    if isinstance(tree, torch.Tensor):
        return tree.clone()
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_copy(v) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(_copy(v) for v in tree)
    if isinstance(tree, dict):
        return {k: _copy(v) for k, v in tree.items()}
    return tree


def _assert_same_tree(a, b, exact: bool, rtol: float, where: str = "state", scale: float | None = None) -> None:
    """The same structure (NamedTuple classes, dict keys in order, ints, None) and equal tensors: bit for bit
    (``exact``) or to ``rtol`` of ``scale``: the largest magnitude among the tensors of the dict that holds them
    (one player's parameters, one moment of one player...), so that a tensor of rounding noise (a bias before a
    batch norm, whose gradient is zero up to rounding) is compared at the scale of its neighbours."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if exact:
            assert torch.equal(a, b), f"{where}: max |diff| {(a - b).abs().max().item():.3g}"
        else:
            scale = max(a.abs().max().item(), b.abs().max().item()) if scale is None else scale
            torch.testing.assert_close(a, b, rtol=0, atol=rtol * scale, msg=lambda m: f"{where}: {m}")
    elif isinstance(a, tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, exact, rtol, f"{where}[{getattr(a, '_fields', range(len(a)))[i]}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        tensors = [v for v in [*a.values(), *b.values()] if isinstance(v, torch.Tensor) and v.numel()]
        group = max((v.abs().max().item() for v in tensors), default=0.0) if tensors else None
        for k in a:
            _assert_same_tree(a[k], b[k], exact, rtol, f"{where}[{k!r}]", group)
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def compare(name: str, kw: dict, env_id: str, dtype: torch.dtype, steps: int, exact: bool, seed: int = 1,
            simultaneous: bool = False) -> None:
    """Step the fast path and ``in_place(<pure agent>)`` side by side on two copies of a game; parameters and
    states equal after every step (bit for bit with ``exact``, else to ``RTOL``). Image games alternate their
    players unless ``simultaneous``."""
    extra = simultaneous_kwargs(env_id) if simultaneous else {}
    fast = _play(_env(env_id, dtype, **extra), FAST[name](**kw), steps, seed)
    ref = _play(_env(env_id, dtype, **extra), agents.in_place(PURE[name](**kw)), steps, seed)
    for t, ((p_fast, s_fast), (p_ref, s_ref)) in enumerate(zip(fast, ref, strict=True), start=1):
        _assert_same_tree(p_fast, p_ref, exact, RTOL[dtype], f"step {t} params")
        _assert_same_tree(s_fast, s_ref, exact, RTOL[dtype], f"step {t} state")


# --- API: the pure agents' signatures, defaults, validation and initial state ---------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fast_paths_take_the_pure_agents_arguments_and_defaults(name):
    assert list(inspect.signature(FAST[name]).parameters.values()) == \
        list(inspect.signature(PURE[name]).parameters.values())
    tx = FAST[name](0.1)
    assert isinstance(tx, agents.InPlaceTransformation) and tx.evaluations == 1
    assert tx.state_dict is None and tx.load_state_dict is None  # the state is a tree: checkpointed as a pure agent's


BAD = [
    ("sgda", {"lr": -1.0}), ("sgda", {"lr": 0.1, "momentum": 1.0}), ("sgda", {"lr": 0.1, "nesterov": True}),
    ("sgda", {"lr": float("nan")}), ("nsgda", {"lr": 0.1, "scope": "tensor"}), ("nsgda", {"lr": 0.1, "momentum": -0.1}),
    ("nsgda", {"lr": "0.1"}), ("adam", {"lr": 0.1, "betas": (0.9,)}), ("adam", {"lr": 0.1, "betas": (0.9, 1.0)}),
    ("adam", {"lr": 0.1, "eps": -1.0}), ("adalr", {"lr": 0.1, "scope": "all"}), ("adalr", {"lr": 0.1, "eps": True}),
    ("adalr", {"lr": 0.1, "betas": (1.5, 0.9)}), ("adadir", {"lr": -0.1}), ("adadir", {"lr": 0.1, "scope": None}),
    ("adadir", {"lr": 0.1, "betas": [0.5, float("inf")]}),
]


@pytest.mark.parametrize("name, kw", BAD, ids=[f"{n}-{kw}" for n, kw in BAD])
def test_bad_hyperparameters_fail_eagerly_with_the_pure_agents_errors(name, kw):
    with pytest.raises(ValueError) as pure_error:
        PURE[name](**kw)
    with pytest.raises(ValueError) as fast_error:
        FAST[name](**kw)
    assert str(fast_error.value) == str(pure_error.value)


@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_initial_state_is_the_pure_agents(name, kw):
    params = _env("MoG-Ring-v0", torch.float64).reset(seed=0)[0]["generator"].params
    _assert_same_tree(FAST[name](**kw).init(params), PURE[name](**kw).init(params), exact=True, rtol=0.0)


def test_a_step_checks_its_state_and_tensor_names():
    params = {"w": torch.zeros(2, 3)}
    grads = {"w": torch.ones(2, 3)}
    tx = inplace.adam(0.1)
    with pytest.raises(ValueError, match="chain state must be the tuple of 2 states"):
        tx.step(grads, (), params)
    with pytest.raises(ValueError, match="must name the same tensors"):
        tx.step({"v": torch.ones(2, 3)}, tx.init(params), params)


# --- the same parameters and state, step for step, as in_place(<pure agent>) ----------------------------------
@pytest.mark.parametrize("env_id", GAMES)
@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_fast_path_equals_in_place_of_the_pure_agent(name, kw, env_id):
    """float64, 24 env steps (the image game alternates its players, as by default).

    One exception where FMA makes the trajectories part: the image game's generator has a bias before a batch
    norm, whose gradient is rounding noise (1e-20); an agent that normalizes per tensor (layer scope) or follows
    Adam's direction (AdaDir) turns that noise into steps of size ``lr`` in its direction, so a last-bit difference
    anywhere changes that bias entirely (the pure agent's trajectory itself moves so with the thread count).
    There, with FMA, only the first step (from the same inputs) is compared here; the subprocess test below
    compares all 24 steps bit for bit without FMA."""
    steps = STEPS
    if env_id == "Digits-DCGAN-v0" and _amplifies_noise(name, kw) and not _bitwise_here(name):
        steps = 1
    compare(name, kw, env_id, torch.float64, steps, exact=_bitwise_here(name))


def _amplifies_noise(name: str, kw: dict) -> bool:
    """Whether the agent's step on a tensor of rounding-noise gradients is of size ``lr`` in the noise's direction."""
    return name == "adadir" or kw.get("scope", inspect.signature(PURE[name]).parameters.get("scope")
                                      and inspect.signature(PURE[name]).parameters["scope"].default) == "layer"


CONSTANT = [(c, i) for c, i in zip(CONFIGS, CONFIG_IDS) if not callable(c[1]["lr"])]


@pytest.mark.parametrize("name, kw", [c for c, _ in CONSTANT], ids=[i for _, i in CONSTANT])
@pytest.mark.parametrize("env_id", ["TwoMode-v0", "Digits-DCGAN-v0"])
def test_fast_path_equals_in_place_of_the_pure_agent_in_float32(name, kw, env_id):
    """float32 (the dtype of the benchmarks), the image game with both players moving at every step.

    The image game's float32 trajectories part exponentially from about step 20 (a last-bit difference grows
    2-5x a step there, between any two runs that round differently, the pure agent's included), so with FMA
    it is compared over 12 steps (and the exception above applies); bit for bit over 24 without FMA."""
    steps = STEPS
    if env_id == "Digits-DCGAN-v0" and not _bitwise_here(name):
        steps = 1 if _amplifies_noise(name, kw) else 12
    compare(name, kw, env_id, torch.float32, steps, exact=_bitwise_here(name), seed=2, simultaneous=True)


# whose state after one step from the same inputs is bit for bit the reference's also with FMA: Adam's moments come
# from the same fused kernel, AdaLR's momentum from the pure agent's own kernel (an add with alpha); the others'
# momentum ``mu m + g`` is one FMA where the pure trace rounds twice
_STATE_EXACT = {"adam", "adalr"}  # and any agent without momentum


@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_one_step_from_the_same_inputs_differs_by_a_few_ulps_at_most(name, kw):
    """From the same parameters, gradients and (non-trivial) state: with FMA, ``p + f g`` is rounded once
    instead of ``p + round(f g)`` (and ``mu m + g`` so): the parameters differ by a few units in the last place
    of the larger of ``|p|`` and ``|u|`` at most; the state is the reference's (bit for bit where no FMA enters
    it)."""
    env = _env("MoG-Ring-v0", torch.float32)
    obs, _ = env.reset(seed=0)
    grads = obs["discriminator"].grads
    params = {k: v.clone() for k, v in obs["discriminator"].params.items()}
    ref = agents.in_place(PURE[name](**kw))
    state = ref.init(params)
    for c in (1.0, -0.5, 2.0):  # a state with momentum, moments and norms in it
        state = ref.step({k: c * g for k, g in grads.items()}, state, params)
    fast = FAST[name](**kw)
    p_fast, p_ref = {k: v.clone() for k, v in params.items()}, {k: v.clone() for k, v in params.items()}
    s_fast = fast.step(grads, _copy(state), p_fast)
    s_ref = ref.step(grads, _copy(state), p_ref)
    for k in params:
        ulp = 4 * torch.finfo(torch.float32).eps * torch.maximum(params[k].abs(), (p_ref[k] - params[k]).abs())
        assert ((p_fast[k] - p_ref[k]).abs() <= ulp).all(), k
        if _bitwise_here(name):
            assert torch.equal(p_fast[k], p_ref[k]), k
    momentum = kw.get("momentum", 0.0) if name in ("sgda", "nsgda") else kw.get("betas", (0.5,))[0]
    exact = _bitwise_here(name) or name in _STATE_EXACT or not momentum
    _assert_same_tree(s_fast, s_ref, exact, RTOL[torch.float32])


_BITWISE_SCRIPT = """
import torch
torch.set_num_threads(1)
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", torch.backends.cpu.get_cpu_capability()
from tests import test_inplace_agents as t
for name, kw in t.CONFIGS:
    for env_id in t.GAMES:
        t.compare(name, kw, env_id, torch.float64, t.STEPS, exact=True)
    for env_id in ("TwoMode-v0", "Digits-DCGAN-v0"):
        t.compare(name, kw, env_id, torch.float32, t.STEPS, exact=True, seed=2, simultaneous=True)
for name, kw in t.CONFIGS[::3]:
    t.check_run_episode(name, kw, exact=True)
print("bitwise")
"""


def test_without_fma_every_fast_path_is_bit_for_bit_the_reference():
    """torch's scalar CPU kernels (``ATEN_CPU_CAPABILITY=default``) never fuse a multiply and an add: there every
    fast path, every optimizer, every game, is bit for bit ``in_place(<pure agent>)``, parameters and state,
    directly and through run_episode (divergence included). So the arithmetic is the reference's, up to FMA."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _BITWISE_SCRIPT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0 and done.stdout.strip().endswith("bitwise"), done.stderr[-4000:]


# --- through run_episode: divergence, frozen seeds, checkpoints --------------------------------------------------
def _diverging_env() -> minmax_envs.BatchedEnv:
    """Bilinear seeds spiral out at rates set by their own matrices: with this threshold and the step sizes of
    ``LARGE`` they stop at different steps, and some never (checked below)."""
    return small_env("Bilinear-v0", 6, dtype=torch.float64, divergence_threshold=5.0)


EPISODE = {"steps": 30, "seed": 1, "eval_every": 10}
LARGE = {"sgda": 0.1, "nsgda": 0.3, "adam": 0.15, "adalr": 0.15, "adadir": 0.05}  # step sizes that make seeds diverge


def check_run_episode(name: str, kw: dict, exact: bool) -> None:
    """run_episode with the fast path and with ``in_place(<pure agent>)``: the same divergence steps and the same
    final parameters; the fast path's stopped seeds keep, to the bit, the parameters they stopped with."""
    kw = {**kw, "lr": LARGE[name] if not callable(kw["lr"]) else kw["lr"]}
    env_fast, env_ref = _diverging_env(), _diverging_env()
    r_fast = minmax_envs.run_episode(env_fast, FAST[name](**kw), **EPISODE)
    r_ref = minmax_envs.run_episode(env_ref, agents.in_place(PURE[name](**kw)), **EPISODE)
    assert torch.equal(r_fast.divergence_step, r_ref.divergence_step)
    _assert_same_tree(env_fast.params, env_ref.params, exact, RTOL[torch.float64], "params")
    stopped = (r_fast.divergence_step > 0) & (r_fast.divergence_step < 20)
    shorter = _diverging_env()
    minmax_envs.run_episode(shorter, FAST[name](**kw), **{**EPISODE, "steps": 20})
    for pl in PLAYERS:
        for k, v in env_fast.params[pl].items():
            assert torch.equal(v[stopped], shorter.params[pl][k][stopped]), (pl, k)  # frozen from step 20 on


@pytest.mark.parametrize("name, kw", [c for c in CONFIGS if not callable(c[1]["lr"])], ids=[
    i for c, i in zip(CONFIGS, CONFIG_IDS) if not callable(c[1]["lr"])])
def test_run_episode_with_diverging_seeds(name, kw):
    check_run_episode(name, kw, exact=_bitwise_here(name))


@pytest.mark.parametrize("name", NAMES)
def test_the_diverging_env_has_seeds_that_stop_and_seeds_that_run(name):
    result = minmax_envs.run_episode(_diverging_env(), FAST[name](LARGE[name]), **EPISODE)
    step = result.divergence_step
    assert ((step > 0) & (step < 20)).any() and (step == -1).any(), step.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_stopped_seeds_match_the_pure_agent(name):
    """Against the pure agent itself (the env adds its updates and masks the stopped seeds): the same divergence
    steps, and the same frozen parameters (to the bit for adam)."""
    kw = {"lr": LARGE[name]}
    env_fast, env_pure = _diverging_env(), _diverging_env()
    r_fast = minmax_envs.run_episode(env_fast, FAST[name](**kw), **EPISODE)
    r_pure = minmax_envs.run_episode(env_pure, PURE[name](**kw), **EPISODE)
    assert torch.equal(r_fast.divergence_step, r_pure.divergence_step)
    _assert_same_tree(env_fast.params, env_pure.params, _bitwise_here(name), RTOL[torch.float64], "params")




class _Resume(NamedTuple):
    writer: str  # who ran (and was interrupted) first
    reader: str  # who resumed


RESUMED = [("adam", {"lr": 0.01}), ("adalr", {"lr": _decay}), ("nsgda", {"lr": 0.05, "momentum": 0.5}),
           ("adadir", {"lr": 0.01, "scope": "global"})]
HOW = [_Resume("fast", "fast"), _Resume("pure", "fast"), _Resume("fast", "pure")]
# the image game's noise bias (see test_fast_path_equals_in_place_of_the_pure_agent) parts trajectories that differ
# by rounding: there only the resumes that are bit for bit (the same agent, or adam) are compared
RESUME_CASES = [(env_id, name, kw, how) for env_id in ("MoG-Ring-v0", "TwoMode-v0", "Digits-DCGAN-v0")
                for name, kw in RESUMED for how in HOW
                if env_id != "Digits-DCGAN-v0" or how.writer == how.reader or name == "adam"]


@pytest.mark.parametrize("env_id, name, kw, how", RESUME_CASES, ids=[
    f"{e}-{n}-{h.writer}-then-{h.reader}" for e, n, _, h in RESUME_CASES])
def test_checkpoints_resume_across_the_fast_and_the_pure_agent(env_id, name, kw, how, tmp_path):
    """Killed mid-episode and resumed: by the same fast agent, bit for bit an uninterrupted run; a checkpoint of
    the pure agent resumed by the fast one and the converse (the same state), that agent's uninterrupted run
    (to the bit for adam, else to rounding)."""
    make = {"fast": lambda: FAST[name](**kw), "pure": lambda: agents.in_place(PURE[name](**kw))}
    episode = {"steps": 9, "seed": 2, "eval_every": 3, "diagnostics_every": 3}
    ckpt = tmp_path / "episode.pt"
    killer = interrupting(make[how.writer](), PROBE_CALLS + 6)  # the generator moves once per iteration
    with pytest.raises(Interrupt):  # killed in iteration 7: the checkpoint holds 6
        minmax_envs.run_episode(_env(env_id, torch.float64), {"generator": killer, "discriminator": make[how.writer]()},
                                checkpoint=ckpt, checkpoint_every=3, **episode)
    assert torch.load(ckpt, weights_only=True)["t"] == 6
    resumed_env = _env(env_id, torch.float64)
    resumed = minmax_envs.run_episode(resumed_env, make[how.reader](), checkpoint=ckpt, **episode)
    whole_env = _env(env_id, torch.float64)
    whole = minmax_envs.run_episode(whole_env, make[how.reader](), **episode)
    exact = how.writer == how.reader or _bitwise_here(name)
    _assert_same_tree(resumed_env.params, whole_env.params, exact, RTOL[torch.float64], "params")
    assert resumed.diagnostics.keys() == whole.diagnostics.keys()
    # AdaLR/AdaDir magnitude ratios read the rebuilt GraftState
    _assert_same_tree(resumed.diagnostics, whole.diagnostics, exact, 1e-9, "diagnostics")

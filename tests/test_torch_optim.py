"""agents.from_torch: any torch.optim.Optimizer as an agent, each batched seed its own optimizer."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch

import agents
import minmax_envs
from agents.torch_optim import ELEMENTWISE, TorchOptimizerState
from minmax_envs import PLAYERS
from tests.helpers import PROBE_CALLS, Interrupt, interrupting, small_env

po = pytest.importorskip("pytorch_optimizer")



def _play(tx, env_id: str = "MoG-Ring-v0", n: int = 3, steps: int = 8, seed: int = 3, **kwargs):
    env = small_env(env_id, n, **kwargs)
    result = minmax_envs.run_episode(env, tx, steps=steps, seed=seed, eval_every=steps)
    return env, result


def _params(env) -> dict:
    return {pl: {k: v.clone() for k, v in env.params[pl].items()} for pl in PLAYERS}


def _assert_equal_params(a: dict, b: dict) -> None:
    for pl in PLAYERS:
        for k, v in a[pl].items():
            assert torch.equal(b[pl][k], v), (pl, k, (b[pl][k] - v).abs().max())


def _assert_close_params(a: dict, b: dict, rtol: float, atol: float) -> None:
    for pl in PLAYERS:
        for k, v in a[pl].items():
            torch.testing.assert_close(b[pl][k], v, rtol=rtol, atol=atol, msg=lambda m, pl=pl, k=k: f"{pl}/{k}: {m}")


# --- the element-wise fast path == one optimizer per seed -------------------------------------------------
ELEMENTWISE_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "foreach": True, "maximize": False}),
    ("Adam", {"lr": 1e-2, "betas": (0.5, 0.9)}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-2, "fused": True}),
    ("Adam", {"lr": 1e-2, "foreach": True, "decoupled_weight_decay": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    ("Adamax", {"lr": 1e-2}),
    ("NAdam", {"lr": 1e-2, "momentum_decay": 4e-3, "decoupled_weight_decay": True, "weight_decay": 1e-2}),
    ("RAdam", {"lr": 1e-2}),  # the rectified branch starts at step 6: 8 steps see both
    ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.5}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("Adadelta", {"lr": 1.0}),
    ("Rprop", {"lr": 1e-2, "foreach": True}),
    ("ASGD", {"lr": 1e-2, "t0": 3}),
]


def test_the_allow_list_is_the_documented_one():
    names = {c.__name__ for c in ELEMENTWISE}
    assert names == {"SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "Rprop",
                     "ASGD"}
    assert names == {name for name, _ in ELEMENTWISE_CASES}
    assert all(c.__module__.startswith("torch.optim") for c in ELEMENTWISE)


@pytest.mark.parametrize("env_id", ["MoG-Ring-v0", "TwoMode-v0"])  # TwoMode: (N,) tensors, 0-d views per seed
@pytest.mark.parametrize("name,hyper", ELEMENTWISE_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(ELEMENTWISE_CASES)])
def test_one_optimizer_on_the_whole_tensors_equals_one_per_seed_bit_for_bit(name, hyper, env_id):
    """Same env, same seeds: the entry-wise kernels give the same bits whether they run over (N, ...) or over a
    seed's slice, so slot i of the fast path is bitwise slot i of N separate optimizers."""
    fast = agents.from_torch(f"torch.optim.{name}", **hyper)
    slow = agents.from_torch(f"torch.optim.{name}", per_seed=True, **hyper)
    env_f, res_f = _play(fast, env_id)
    env_s, res_s = _play(slow, env_id)
    assert not res_f.diverged.any()
    _assert_equal_params(_params(env_f), _params(env_s))
    state_f = fast.init(env_f.params["generator"])
    state_s = slow.init(env_s.params["generator"])
    assert len(state_f.optimizers) == 1 and len(state_s.optimizers) == 3


def test_per_seed_optimizers_act_on_views_of_the_envs_tensors():
    env = small_env("TwoMode-v0", 3)
    obs, _ = env.reset(seed=0)
    params = obs["discriminator"].params
    state = agents.from_torch("pytorch_optimizer.Lamb", lr=1e-2).init(params)
    assert isinstance(state, TorchOptimizerState) and len(state.optimizers) == 3
    for i, opt in enumerate(state.optimizers):
        assert len(opt.param_groups) == 1
        for k, leaf in zip(state.names, opt.param_groups[0]["params"]):
            assert leaf.is_leaf and not leaf.requires_grad
            assert leaf.data_ptr() == params[k][i].data_ptr() and leaf.shape == params[k].shape[1:]


# --- non-element-wise optimizers: slot i == a separate single-seed run ------------------------------------
PER_SEED_CASES = [
    ("MoG-Ring-v0", "torch.optim.Adafactor", {"lr": 1e-2}),  # factored moments, relative step from ||p||
    ("MoG-Ring-v0", "pytorch_optimizer.Lamb", {"lr": 1e-2}),  # per-tensor trust ratio ||p|| / ||u||
    ("MoG-Ring-v0", "pytorch_optimizer.Prodigy", {}),  # group-level d over all of a player's tensors
    ("MoG-Ring-v0", "pytorch_optimizer.ScheduleFreeAdamW", {"lr": 1e-2}),  # group-level weight sum
    ("TwoMode-v0", "pytorch_optimizer.Lamb", {"lr": 1e-2}),
    ("TwoMode-v0", "pytorch_optimizer.Prodigy", {}),
    ("TwoMode-v0", "pytorch_optimizer.SOAP", {"lr": 1e-2}),  # eigenbases of G G^T per matrix
]


def _single_seed_reference(tx, env_id: str, n: int, seed: int, steps: int) -> dict:
    """Slot i of the reference: a separate one-seed env played with seed ``seed + i``."""
    ref = {pl: {} for pl in PLAYERS}
    runs = [_params(_play(tx, env_id, 1, steps, seed + i, dtype=torch.float64)[0]) for i in range(n)]
    for pl in PLAYERS:
        for k in runs[0][pl]:
            ref[pl][k] = torch.cat([r[pl][k] for r in runs])
    return ref


@pytest.mark.parametrize("env_id,name,hyper", PER_SEED_CASES,
                         ids=[f"{e}-{n.split('.')[-1]}" for e, n, _ in PER_SEED_CASES])
def test_each_seed_of_a_batched_run_is_its_own_optimizer(env_id, name, hyper):
    """float64, 6 steps: slot i of an N-seed run equals a single-seed run with seed s + i to 1e-5 relative. Not
    bitwise in general: the env's own kernels (batched matmuls) round differently by batch size (TwoMode's happen
    to agree bit for bit here). SOAP only on TwoMode: on MoG-Ring the eigenbasis of a rank-deficient G G^T is
    arbitrary, and the env's last-bit differences between batch sizes pick different bases."""
    n, seed, steps = 3, 11, 6
    tx = agents.from_torch(name, **hyper)
    env, result = _play(tx, env_id, n, steps, seed, dtype=torch.float64)
    assert not result.diverged.any()
    ref = _single_seed_reference(tx, env_id, n, seed, steps)
    _assert_close_params(ref, _params(env), rtol=1e-5, atol=1e-9)


def _one_optimizer_on_the_whole_tensors(cls, **hyper) -> agents.InPlaceTransformation:
    """What from_torch refuses to do for a non-element-wise optimizer: one instance over the (N, ...) tensors."""

    def init(params):
        return cls(list(params.values()), **hyper)

    def step(grads, opt, params):
        for p, g in zip(params.values(), grads.values()):
            p.grad = g.clone()
        opt.step()
        return opt

    return agents.InPlaceTransformation(init, step)


@pytest.mark.parametrize("cls,hyper", [(po.Lamb, {"lr": 1e-2}), (po.Prodigy, {})], ids=["Lamb", "Prodigy"])
def test_one_non_elementwise_optimizer_over_all_seeds_would_mix_them(cls, hyper):
    """The test above has teeth: a single LAMB / Prodigy over the whole (N, ...) tensors mixes the seeds (norms and
    d over all of them) and misses the single-seed runs by far more than rounding; and from_torch refuses it."""
    n, seed, steps = 3, 11, 6
    env, _ = _play(_one_optimizer_on_the_whole_tensors(cls, **hyper), "TwoMode-v0", n, steps, seed,
                   dtype=torch.float64)
    ref = _single_seed_reference(agents.from_torch(cls, **hyper), "TwoMode-v0", n, seed, steps)
    start = small_env("TwoMode-v0", n, dtype=torch.float64)
    start.reset(seed=seed)
    off = max((env.params[pl][k] - ref[pl][k]).abs().max().item() for pl in PLAYERS for k in ref[pl])
    moved = max((start.params[pl][k] - ref[pl][k]).abs().max().item() for pl in PLAYERS for k in ref[pl])
    assert off > 0.01 * moved  # against 1e-5 relative for the per-seed agent
    with pytest.raises(ValueError, match="per_seed=False .* only for the element-wise optimizers"):
        agents.from_torch(cls, per_seed=False, **hyper)


def test_torch_adam_matches_our_pure_adam():
    """Our adam states that it equals torch.optim.Adam; from_torch plays torch's (float32, 50 steps)."""
    env_t, _ = _play(agents.from_torch("torch.optim.Adam", lr=1e-3, betas=(0.5, 0.9)), "Bilinear-v0", 4, 50)
    env_o, _ = _play(agents.adam(1e-3), "Bilinear-v0", 4, 50)
    _assert_close_params(_params(env_o), _params(env_t), rtol=0, atol=1e-6)


def test_a_class_and_its_dotted_name_are_the_same_agent():
    env_a, _ = _play(agents.from_torch(torch.optim.AdamW, lr=1e-2), "Bilinear-v0")
    env_b, _ = _play(agents.from_torch("torch.optim.AdamW", lr=1e-2), "Bilinear-v0")
    _assert_equal_params(_params(env_a), _params(env_b))
    env_c, _ = _play(agents.from_torch("pytorch_optimizer.optimizer.lion.Lion", lr=1e-3), "Bilinear-v0")
    env_d, _ = _play(agents.from_torch(po.Lion, lr=1e-3), "Bilinear-v0")
    _assert_equal_params(_params(env_c), _params(env_d))


# --- errors, eagerly ----------------------------------------------------------------------------------------
NOT_ALLOWED = r"is not an optimizer package this program imports by name \(torch.optim, pytorch_optimizer"


@pytest.mark.parametrize("name,allow,message", [
    ("no_such_package.Adam", [], rf"the module 'no_such_package' {NOT_ALLOWED}"),
    ("no_such_package.Adam", ["no_such_package"], r"no module to import \(tried 'no_such_package'\)"),
    ("torch.no_such_module.Adam", [], rf"the module 'torch.no_such_module' {NOT_ALLOWED}.*--allow-module torch"),
    ("torch.optim.no_such_module.Adam", [], r"'torch.optim' has no attribute 'no_such_module'"),
    ("torch.optim.Adamm", [], r"'torch.optim' has no attribute 'Adamm'.*did you mean 'torch.optim.Adam'"),
    ("Adam", [], r"not a dotted name such as 'torch.optim.AdamW'"),
    ("torch.optim.", [], r"not a dotted name"),
    ("torch.nn.Linear", [], rf"the module 'torch.nn' {NOT_ALLOWED}"),
    ("torch.nn.Linear", ["torch.nn"], r"takes a torch.optim.Optimizer subclass .* is the class "
                                      r"torch.nn.modules.linear.Linear"),
    ("torch.optim.lr_scheduler.StepLR", [], r"is the class torch.optim.lr_scheduler.StepLR"),
    ("torch.pi", ["torch"], r"'torch.pi' is a float"),
    ("torch.optim.Optimizer", [], r"abstract base class"),
    ("torch.optim.Adam", ["torch optim"], r"a module to allow optimizers from is a dotted module name"),
])
def test_bad_optimizer_names_raise_a_clear_error(name, allow, message):
    with pytest.raises(ValueError, match=message):
        agents.from_torch(name, allow_modules=allow)


def test_an_optimizer_instance_or_a_non_optimizer_is_refused():
    with pytest.raises(ValueError, match=r"takes an optimizer class, got an instance of torch.optim.adam.Adam"):
        agents.from_torch(torch.optim.Adam([torch.zeros(2)]))
    with pytest.raises(ValueError, match=r"takes a torch.optim.Optimizer subclass"):
        agents.from_torch(torch.nn.Linear)
    with pytest.raises(ValueError, match=r"is a int"):
        agents.from_torch(3)


@pytest.mark.parametrize("hyper,error,message", [
    ({"lr": -1}, ValueError, "Invalid learning rate: -1"),
    ({"betas": (1.5, 0.9)}, ValueError, "Invalid beta parameter at index 0"),
    ({"eps": -1.0}, ValueError, "Invalid epsilon value"),
    ({"lr": 1e-3, "momentom": 0.9}, TypeError, "momentom"),
])
def test_hyperparameters_keep_torchs_own_eager_errors(hyper, error, message):
    with pytest.raises(error, match=message):
        agents.from_torch("torch.optim.Adam", **hyper)


def test_other_optimizers_check_their_hyperparameters_eagerly_too():
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
        agents.from_torch("torch.optim.SGD", lr=0.1, nesterov=True)
    with pytest.raises(po.base.exception.NegativeLRError, match="learning rate must be positive"):  # its own error
        agents.from_torch("pytorch_optimizer.Lion", lr=-1.0)


@pytest.mark.parametrize("optimizer,why", [
    ("torch.optim.LBFGS", r"its step\(\) requires 'closure'"),
    ("pytorch_optimizer.AliG", r"its step\(\) raised NoClosureError"),  # closure=None in the signature, raises
])
def test_optimizers_that_need_a_closure_are_refused(optimizer, why):
    with pytest.raises(ValueError, match=rf"{optimizer} cannot play as an agent: it needs a closure .*{why}.*one "
                                         "evaluation per step"):
        agents.from_torch(optimizer)


def test_bad_agent_arguments_are_refused():
    with pytest.raises(ValueError, match="per_seed must be None"):
        agents.from_torch("torch.optim.Adam", per_seed="yes")
    with pytest.raises(ValueError, match="passes the env's tensors as the optimizer's params"):
        agents.from_torch("torch.optim.Adam", params=[])
    with pytest.raises(ValueError, match="scheduler must be a factory"):
        agents.from_torch("torch.optim.SGD", lr=0.1, scheduler=3)
    with pytest.raises(ValueError, match="scheduler must return a torch.optim.lr_scheduler.LRScheduler"):
        agents.from_torch("torch.optim.SGD", lr=0.1, scheduler=lambda opt: opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau steps on a metric"):
        agents.from_torch("torch.optim.SGD", lr=0.1,
                          scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt))
    with pytest.raises(ValueError, match="either a schedule lr .* or scheduler=, not both"):
        agents.from_torch("torch.optim.SGD", lr=lambda t: 0.1, scheduler=_step_lr)
    with pytest.raises(ValueError, match=r"a schedule lr must return a finite number .* lr\(0\) = 'fast'"):
        agents.from_torch("torch.optim.SGD", lr=lambda t: "fast")
    with pytest.raises(ValueError, match="Invalid learning rate"):  # torch's check of lr(0)
        agents.from_torch("torch.optim.SGD", lr=lambda t: -0.1)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):  # the scheduler's own eager check
        agents.from_torch("torch.optim.SGD", lr=0.1,
                          scheduler=lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=2.0))


# --- step sizes: a schedule, a scheduler --------------------------------------------------------------------
def test_a_schedule_lr_is_set_before_each_step():
    schedule = agents.schedules.linear(0.1, 0.01, 10)
    env_t, _ = _play(agents.from_torch("torch.optim.SGD", lr=schedule, momentum=0.5), "Bilinear-v0", steps=15)
    env_o, _ = _play(agents.sgda(schedule, momentum=0.5), "Bilinear-v0", steps=15)
    _assert_close_params(_params(env_o), _params(env_t), rtol=1e-5, atol=1e-6)


def _halving(t: int) -> float:
    return 0.2 * 0.5 ** (t // 3)


def _step_lr(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)


def test_a_scheduler_is_stepped_after_each_step():
    """StepLR(3, 0.5) from lr 0.2 and the schedule 0.2 * 0.5 ** (t // 3) set the same floats: bitwise equal."""
    for per_seed in (None, True):
        env_s, _ = _play(agents.from_torch("torch.optim.SGD", lr=0.2, scheduler=_step_lr, per_seed=per_seed),
                         "Bilinear-v0", steps=10)
        env_f, _ = _play(agents.from_torch("torch.optim.SGD", lr=_halving, per_seed=per_seed), "Bilinear-v0", steps=10)
        _assert_equal_params(_params(env_f), _params(env_s))
    tx = agents.from_torch("torch.optim.SGD", lr=0.2, scheduler=_step_lr)
    env = small_env("Bilinear-v0", 2)
    obs, _ = env.reset(seed=0)
    state = tx.init(obs["generator"].params)
    for _ in range(4):
        state = tx.step(obs["generator"].grads, state, obs["generator"].params)
    assert state.count == 4 and state.optimizers[0].param_groups[0]["lr"] == 0.1


# --- checkpoints ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id,tx", [
    ("MoG-Ring-v0", agents.from_torch("pytorch_optimizer.Prodigy", scheduler=_step_lr)),  # per seed, a scheduler
    ("TwoMode-v0", agents.from_torch("torch.optim.Adam", lr=agents.schedules.linear(0.05, 0.01, 12), amsgrad=True)),
    ("TwoMode-v0", agents.from_torch("pytorch_optimizer.ScheduleFreeAdamW", lr=1e-2)),
], ids=["Prodigy-StepLR", "Adam-schedule", "ScheduleFreeAdamW"])
def test_an_interrupted_episode_resumes_bit_for_bit(env_id, tx, tmp_path):
    kw = {"steps": 12, "seed": 1, "eval_every": 4}
    ref_env = small_env(env_id, 2, dtype=torch.float64)
    ref = minmax_envs.run_episode(ref_env, tx, **kw)
    ckpt = tmp_path / "ep.pt"
    with pytest.raises(Interrupt):  # killed in iteration 8: the checkpoint holds 6
        minmax_envs.run_episode(small_env(env_id, 2, dtype=torch.float64),
                                {"generator": interrupting(tx, PROBE_CALLS + 7), "discriminator": tx},
                                checkpoint=ckpt, checkpoint_every=3, **kw)
    saved = torch.load(ckpt, weights_only=True)  # plain data only
    assert saved["t"] == 6
    env = small_env(env_id, 2, dtype=torch.float64)
    resumed = minmax_envs.run_episode(env, tx, checkpoint=ckpt, checkpoint_every=3, **kw)
    _assert_equal_params(_params(ref_env), _params(env))
    for k, v in ref.metrics.items():
        torch.testing.assert_close(resumed.metrics[k], v, rtol=0, atol=0, equal_nan=True)


def test_state_dict_round_trips_into_a_fresh_init():
    tx = agents.from_torch("pytorch_optimizer.Lamb", lr=1e-2, scheduler=_step_lr)
    env = small_env("TwoMode-v0", 2)
    obs, _ = env.reset(seed=0)
    params = obs["generator"].params
    state = tx.init(params)
    for _ in range(4):
        state = tx.step(obs["generator"].grads, state, params)
    saved = tx.state_dict(state)
    assert saved["count"] == 4 and len(saved["optimizers"]) == 2 and len(saved["schedulers"]) == 2
    back = tx.load_state_dict(tx.init(params), saved)
    assert back.count == 4
    for a, b in zip(back.optimizers, state.optimizers):
        assert a.param_groups[0]["lr"] == b.param_groups[0]["lr"] == 0.005
        for k, v in b.state_dict()["state"][0].items():
            assert torch.equal(torch.as_tensor(a.state_dict()["state"][0][k]), torch.as_tensor(v)), k
    other = agents.from_torch("pytorch_optimizer.Lamb", lr=1e-2)
    with pytest.raises(ValueError, match="the saved state has schedulers, this agent has none"):
        other.load_state_dict(other.init(params), saved)
    whole = agents.from_torch("torch.optim.Adam", lr=1e-2)
    with pytest.raises(ValueError, match="holds 2 optimizers, this agent has 1"):
        whole.load_state_dict(whole.init(params), {**saved, "schedulers": None})


# --- image games, pairs, divergence -----------------------------------------------------------------------
def test_image_games_play_with_views_of_module_parameters():
    """Digits DCGAN (one seed, alternating updates: each agent is called only when its player moves): torch's
    Adam plays as our Adam, and a per-seed optimizer (LAMB) moves the modules' own parameters.

    The generator's first bias feeds a BatchNorm, so its gradient is rounding noise that Adam scales up to about
    ``lr`` per step: there the two implementations' last-bit differences show at a fraction of ``lr`` (1e-5)."""
    lr = 2e-3
    env_t, _ = _play(agents.from_torch("torch.optim.Adam", lr=lr, betas=(0.5, 0.9)), "Digits-DCGAN-v0", 1, 3)
    env_o, _ = _play(agents.adam(lr), "Digits-DCGAN-v0", 1, 3)
    ours, theirs = _params(env_o), _params(env_t)
    noise = ours["generator"].pop("0.bias"), theirs["generator"].pop("0.bias")
    _assert_close_params(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(*noise, rtol=0, atol=0.01 * lr)
    env = small_env("Digits-DCGAN-v0", 1)
    env.reset(seed=0)
    start = {k: p.detach().clone() for k, p in env.game.modules["generator"].named_parameters()}
    minmax_envs.run_episode(env, agents.from_torch("pytorch_optimizer.Lamb", lr=1e-2), steps=2, seed=0)
    moved = dict(env.game.modules["generator"].named_parameters())
    assert any(not torch.equal(moved[k], v) for k, v in start.items())
    for k, p in moved.items():
        assert torch.equal(env.params["generator"][k][0], p.detach())


def test_a_mixed_pair_plays():
    mixed = {"generator": agents.from_torch("torch.optim.Adam", lr=0.05, betas=(0.5, 0.9)),
             "discriminator": agents.sgda(0.2, momentum=0.5)}
    pure = {"generator": agents.adam(0.05), "discriminator": agents.sgda(0.2, momentum=0.5)}
    env_m, res = _play(mixed, "TwoMode-v0", 4, 25)
    env_p, _ = _play(pure, "TwoMode-v0", 4, 25)
    assert not res.diverged.any()
    _assert_close_params(_params(env_p), _params(env_m), rtol=1e-4, atol=1e-5)
    tx = agents.pair(agents.from_torch("pytorch_optimizer.Lion", lr=1e-3), agents.adam(1e-3))
    assert tx.in_place == ("generator",)
    _play(tx, "MoG-Ring-v0", 2, 5)


def test_divergence_is_recorded_and_stopped_seeds_stay_frozen():
    """lr = 1 (a power of two: torch's p.add_(g, alpha=-lr) and the pure p + (-lr g) round alike) makes Bilinear
    seeds diverge at different steps; the frozen parameters are bitwise the pure SGDA's."""
    pure, pure_res = _play(agents.sgda(1.0), "Bilinear-v0", 8, 40)
    fast, fast_res = _play(agents.from_torch("torch.optim.SGD", lr=1.0), "Bilinear-v0", 8, 40)
    steps = pure_res.divergence_step
    assert (steps >= 0).all() and len(set(steps.tolist())) > 1, steps
    assert torch.equal(fast_res.divergence_step, steps)
    _assert_equal_params(_params(pure), _params(fast))
    per_seed, res = _play(agents.from_torch("torch.optim.SGD", lr=1.0, per_seed=True), "Bilinear-v0", 8, 40)
    assert torch.equal(res.divergence_step, steps)
    _assert_equal_params(_params(pure), _params(per_seed))


def test_a_seed_whose_optimizer_fails_on_non_finite_values_sits_out():
    """SOAP's eigendecomposition raises on NaN gradients; a diverged seed's NaNs stop neither the episode nor the
    other seeds."""
    p = torch.randn(3, 4)
    opt = po.SOAP([p])
    p.grad = torch.full_like(p, float("nan"))
    with pytest.raises(RuntimeError):
        opt.step()
    env, res = _play(agents.from_torch("pytorch_optimizer.SOAP", lr=1e3), "MoG-Ring-v0", 3, 10)
    assert res.diverged.all()
    # an optimizer that raises on a seed whose values are finite: the error is the user's to see
    tx = agents.from_torch(_FailsOnTheEnv, lr=0.1)
    obs, _ = env.reset(seed=0)
    state = tx.init(obs["generator"].params)
    with pytest.raises(RuntimeError, match="not on the env"):
        tx.step(obs["generator"].grads, state, obs["generator"].params)


class _FailsOnTheEnv(torch.optim.SGD):
    """Steps the from_torch() dummy, raises on anything else."""

    def step(self, closure=None):
        if self.param_groups[0]["params"][0].shape != (2, 3):
            raise RuntimeError("not on the env")
        return super().step(closure)


class _Rebinds(torch.optim.Optimizer):
    """Gradient descent that replaces each parameter's storage instead of writing into it."""

    def __init__(self, params, lr: float = 0.1):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.data = p.data - group["lr"] * p.grad


def test_an_optimizer_that_rebinds_its_parameters_is_caught_at_the_first_step():
    env = small_env("Bilinear-v0", 2)
    with pytest.raises(RuntimeError, match=r"'x' is no longer the tensor given to init\(\).*p.data = "):
        minmax_envs.run_episode(env, agents.from_torch(_Rebinds), steps=2, seed=0)


# --- the gradients stay the env's --------------------------------------------------------------------------
@pytest.mark.parametrize("per_seed", [None, True])
def test_the_observed_gradients_are_not_written_by_the_optimizer(per_seed):
    """torch's foreach SGD with Nesterov momentum adds the buffer into p.grad: the agent hands its optimizers
    copies, so the observation (and run_episode's diagnostics) keep the env's gradients."""
    hyper = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "foreach": True}
    leaf = torch.ones(4)
    opt = torch.optim.SGD([leaf], **hyper)
    leaf.grad = torch.ones(4)
    opt.step()
    assert not torch.equal(leaf.grad, torch.ones(4))  # the precondition: torch itself writes into .grad
    env = small_env("Bilinear-v0", 3)
    obs, _ = env.reset(seed=0)
    tx = agents.from_torch("torch.optim.SGD", per_seed=per_seed, **hyper)
    params = obs["generator"].params
    state = tx.init(params)
    grads = obs["generator"].grads
    for _ in range(3):
        before = {k: g.clone() for k, g in grads.items()}
        start = {k: p.clone() for k, p in params.items()}
        state = tx.step(grads, state, params)
        for k, g in before.items():
            assert torch.equal(grads[k], g)
            assert not torch.equal(params[k], start[k])
        grads = {k: -g for k, g in before.items()}


# --- pytorch-optimizer as shipped ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Lion", "Adan", "Prodigy", "ScheduleFreeAdamW", "Lamb", "SOAP", "AdaBelief", "Muon"])
@pytest.mark.parametrize("env_id", ["MoG-Ring-v0", "TwoMode-v0"])
def test_pytorch_optimizer_optimizers_play(name, env_id):
    env = small_env(env_id, 3)
    env.reset(seed=5)
    start = _params(env)
    if name == "Muon":  # matrices to Muon, the rest to its AdamW: flagged groups, by name
        tx = agents.from_torch("pytorch_optimizer.Muon", lr=1e-3, param_groups=_muon_groups)
    elif name == "Prodigy":
        tx = agents.from_torch("pytorch_optimizer.Prodigy")
    else:
        tx = agents.from_torch(f"pytorch_optimizer.{name}", lr=1e-3)
    result = minmax_envs.run_episode(env, tx, steps=20, seed=5)
    assert not result.diverged.any()
    for pl in PLAYERS:
        assert any(not torch.equal(env.params[pl][k], v) for k, v in start[pl].items()), pl
        assert all(torch.isfinite(v).all() for v in env.params[pl].values())


def _muon_groups(names: tuple[str, ...]) -> list[dict]:
    """pytorch-optimizer's Muon groups: the weight matrices (per seed) flagged use_muon, the rest not."""
    matrices = [n for n in names if n.endswith("weight") or n in ("V", "W")]
    groups = [{"params": matrices, "use_muon": True},
              {"params": [n for n in names if n not in matrices], "use_muon": False}]
    return [g for g in groups if g["params"]]


def test_muon_needs_its_flagged_groups_and_gets_them_by_name():
    env = small_env("MoG-Ring-v0", 2)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="use_muon"):  # one plain group: Muon's own refusal, at init
        agents.from_torch("pytorch_optimizer.Muon", lr=1e-3, param_groups=lambda names: [{"params": list(names)}]
                          ).init(obs["generator"].params)
    state = agents.from_torch("pytorch_optimizer.Muon", lr=1e-3, param_groups=_muon_groups).init(
        obs["generator"].params)
    assert [[g["use_muon"], len(g["params"])] for g in state.optimizers[0].param_groups] == [[True, 3], [False, 3]]
    assert state.index[0] == (("g0.weight", "g1.weight", "g2.weight"), ("g0.bias", "g1.bias", "g2.bias"))


def test_the_agent_pickles_and_plays_the_same():
    tx = agents.from_torch("pytorch_optimizer.Lamb", lr=1e-2, scheduler=_step_lr)
    copy = pickle.loads(pickle.dumps(tx))
    assert repr(copy.init.__self__) == repr(tx.init.__self__)
    env_a, _ = _play(tx, "TwoMode-v0")
    env_b, _ = _play(copy, "TwoMode-v0")
    _assert_equal_params(_params(env_a), _params(env_b))
    assert "from_torch" in agents.__all__


@pytest.mark.parametrize("cls", ["torch.optim.Adam", "torch.optim.AdamW"])
def test_fused_adam_reads_the_env_gradients_without_copies_and_leaves_them_unchanged(cls):
    """The fused Adam kernels only read the gradients: the whole-tensor path hands them the env's own (no copy),
    and the observation stays as it was, with the same parameters as the copying per-seed path."""
    envs = [small_env("MoG-Ring-v0", 3) for _ in range(2)]
    hyper = {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.01, "fused": True}
    txs = [agents.from_torch(cls, **hyper), agents.from_torch(cls, per_seed=True, **hyper)]
    obs = [e.reset(seed=0)[0] for e in envs]
    states = [tx.init(o["generator"].params) for tx, o in zip(txs, obs)]
    grads = obs[0]["generator"].grads
    before = {k: g.clone() for k, g in grads.items()}
    for _ in range(3):
        states = [tx.step(o["generator"].grads, s, o["generator"].params) for tx, s, o in zip(txs, states, obs)]
    for k, g in before.items():
        assert torch.equal(grads[k], g)
        torch.testing.assert_close(obs[0]["generator"].params[k], obs[1]["generator"].params[k], rtol=1e-6, atol=1e-7)


# --- parameter groups: every group's tensors get their gradients ----------------------------------------------
class _BiasesApartSGD(torch.optim.SGD):
    """SGD that puts the 1-D tensors (per seed: the biases) first, in a group of their own at a tenth of the step
    size (no weight decay on biases, per-layer step sizes: a common pattern)."""

    def __init__(self, params, lr=0.1, **kwargs):
        params = list(params)
        super().__init__([{"params": [p for p in params if p.ndim == 1], "lr": lr / 10},
                          {"params": [p for p in params if p.ndim != 1]}], lr=lr, **kwargs)


class _ReversedAdam(torch.optim.Adam):
    """torch's Adam on its parameters in reverse order (one group)."""

    def __init__(self, params, **kwargs):
        super().__init__(list(params)[::-1], **kwargs)


def _one_step(tx, env_id: str = "MoG-Ring-v0", n: int = 3) -> tuple[dict, dict, dict]:
    """The generator's parameters before and after one step of ``tx`` on a fresh env, and its gradients."""
    env = small_env(env_id, n)
    obs, _ = env.reset(seed=1)
    params, grads = obs["generator"].params, obs["generator"].grads
    before = {k: v.clone() for k, v in params.items()}
    tx.step(grads, tx.init(params), params)
    return before, {k: v.clone() for k, v in params.items()}, grads


@pytest.mark.parametrize("per_seed", [None, True])
def test_every_parameter_group_of_the_optimizer_moves_with_its_own_step_size(per_seed):
    before, after, grads = _one_step(agents.from_torch(_BiasesApartSGD, lr=0.1, per_seed=per_seed))
    for k, g in grads.items():
        lr = 0.01 if k.endswith("bias") else 0.1
        torch.testing.assert_close(after[k], before[k] - lr * g, rtol=0, atol=1e-7)


def test_an_optimizer_holding_its_tensors_in_another_order_gets_each_its_own_gradient():
    env_a, _ = _play(agents.from_torch(_ReversedAdam, lr=1e-2, betas=(0.5, 0.9)))
    env_b, _ = _play(agents.from_torch(torch.optim.Adam, lr=1e-2, betas=(0.5, 0.9), per_seed=True))
    _assert_equal_params(_params(env_a), _params(env_b))


def _biases_apart(names: tuple[str, ...]) -> list[dict]:
    return [{"params": [n for n in names if n.endswith("bias")], "lr": 0.01, "weight_decay": 0.0},
            {"params": [n for n in names if not n.endswith("bias")]}]


@pytest.mark.parametrize("per_seed", [None, True])
def test_param_groups_by_name_give_each_group_its_options(per_seed):
    tx = agents.from_torch("torch.optim.SGD", lr=0.1, weight_decay=0.5, param_groups=_biases_apart,
                           per_seed=per_seed)
    before, after, grads = _one_step(tx)
    for k, g in grads.items():
        expected = before[k] - 0.01 * g if k.endswith("bias") else before[k] - 0.1 * (g + 0.5 * before[k])
        torch.testing.assert_close(after[k], expected, rtol=0, atol=1e-6)


def test_a_schedule_keeps_each_groups_ratio_to_it():
    tx = agents.from_torch("torch.optim.SGD", lr=agents.schedules.linear_decay(0.1, 4), param_groups=_biases_apart)
    env = small_env("MoG-Ring-v0", 2)
    obs, _ = env.reset(seed=0)
    params = obs["generator"].params
    state = tx.init(params)
    for t in range(3):
        state = tx.step(obs["generator"].grads, state, params)
        lrs = [g["lr"] for g in state.optimizers[0].param_groups]
        assert lrs == pytest.approx([0.01 * (1 - t / 4), 0.1 * (1 - t / 4)])


def test_an_optimizer_that_drops_a_tensor_is_refused_at_init():
    class DropsOne(torch.optim.SGD):
        def __init__(self, params, **kwargs):
            params = list(params)
            super().__init__(params[1:] if len(params) > 1 else params, **kwargs)

    env = small_env("MoG-Ring-v0", 2)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"do not hold each tensor it was given exactly once .*not held: "
                                         r"\['g0.weight'\]"):
        agents.from_torch(DropsOne, lr=0.1).init(obs["generator"].params)


# --- names: imported only from the installed optimizer packages, or from modules opted in to ---------------------
MY_OPTIM = """
import torch


class Opt(torch.optim.SGD):
    pass
"""


def test_a_module_of_your_own_is_imported_only_when_opted_in(tmp_path, monkeypatch):
    (tmp_path / "my_optim.py").write_text(MY_OPTIM)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_optim", raising=False)
    with pytest.raises(ValueError, match=r"the module 'my_optim' is not an optimizer package"):
        agents.from_torch("my_optim.Opt", lr=0.1)
    assert "my_optim" not in sys.modules
    env_a, _ = _play(agents.from_torch("my_optim.Opt", lr=0.1, allow_modules=["my_optim"]), "Bilinear-v0")
    with agents.allow_optimizer_modules("my_optim"):
        env_b, _ = _play(agents.from_torch("my_optim.Opt", lr=0.1), "Bilinear-v0")
    with pytest.raises(ValueError, match=r"the module 'my_optim' is not an optimizer package"):
        agents.from_torch("my_optim.Opt", lr=0.1)  # the opt-in ended with the block
    env_c, _ = _play(agents.from_torch(torch.optim.SGD, lr=0.1), "Bilinear-v0")
    _assert_equal_params(_params(env_a), _params(env_c))
    _assert_equal_params(_params(env_b), _params(env_c))

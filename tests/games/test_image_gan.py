"""Image GANs on tiny configurations: parameter views and shapes, loss signs, the WGAN-GP penalty by hand,
alternating / simultaneous schedules, EMA, mixed precision, sample grids, a short Adam episode that lowers
the classifier Frechet distance, checkpoint / resume, argument and data set errors, determinism."""

import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import agents
import minmax_envs
from minmax_envs import PLAYERS
from minmax_envs._rng import SeedStreams
from tests.helpers import PROBE_CALLS, SMALL_KWARGS, Interrupt, interrupting

F64 = torch.float64
TINY = SMALL_KWARGS["Digits-DCGAN-v0"]  # resolution 8, width 4, batch 8, 160 images, 32 eval samples
SIMULTANEOUS = {"update": "simultaneous", "n_critic": 1}


def _env(env_id="Digits-DCGAN-v0", **kw):
    return minmax_envs.make(env_id, **{**TINY, **kw})


def _modules(env):
    return {"generator": env.game.G, "discriminator": env.game.D}


def _zero_updates(env, value=0.0):
    return {pl: {k: torch.full_like(v, value) for k, v in env.params[pl].items()} for pl in env.movers}


def _first_batch(env, seed):
    """The batch the env drew at ``reset(seed=seed)``: a fresh stream of that seed, through the same ``init``
    (which re-initializes the modules to the very same values) and ``sample``."""
    rng = SeedStreams(torch.tensor([seed]))
    params, instance = env.game.init(rng)
    return params, instance, env.game.sample(rng, instance)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- parameters, shapes, images ------------------------------------------------------------------------
@pytest.mark.parametrize("env_id, kw", [("Digits-DCGAN-v0", {}),
                                        ("Digits-DCGAN-v0", {"architecture": "resnet", "resolution": 16}),
                                        ("CIFAR10-ResNetWGANGP-v0", {"n_critic": 2}),
                                        ("ImageFolder-ResNetWGANGP-v0", {"n_critic": 1, "channels": 1})])
def test_params_are_views_of_the_modules_and_grads_have_their_shapes(env_id, kw):
    env = _env(env_id, **kw)
    obs, _ = env.reset(seed=0)
    game = env.game
    for pl, module in _modules(env).items():
        named = dict(module.named_parameters())
        assert list(obs[pl].params) == list(named)
        for k, p in named.items():
            v = obs[pl].params[k]
            assert v.shape == (1, *p.shape) and v.dtype == torch.float32
            assert v.data_ptr() == p.data_ptr(), (pl, k)  # a view, not a copy
    # the first step of an alternating schedule moves the discriminator only
    assert env.movers == ("discriminator",)
    assert obs["generator"].grads is None and obs["generator"].loss is None and not obs["generator"].moving
    for k, g in obs["discriminator"].grads.items():
        assert g.shape == obs["discriminator"].params[k].shape and torch.isfinite(g).all()
    assert obs["discriminator"].loss.shape == (1,)
    # updates land in the modules in place, and the held observation sees them
    name, p = next(iter(game.D.named_parameters()))
    before = p.detach().clone()
    for _ in range(game.schedule.n_critic):
        obs, rewards, _, _, info = env.step(_zero_updates(env, 0.01))
    assert not info["diverged"].any()
    torch.testing.assert_close(p.detach(), before + 0.01 * game.schedule.n_critic)
    assert torch.equal(obs["discriminator"].params[name][0], p.detach())
    # rewards are -loss of the observed (next-moving) player; the other player gets None
    assert env.movers == ("generator",) and rewards["discriminator"] is None
    assert torch.equal(rewards["generator"], -obs["generator"].loss)
    for k, g in obs["generator"].grads.items():
        assert g.shape == obs["generator"].params[k].shape and torch.isfinite(g).all()
    # images: (B, C, R, R) in [-1, 1]
    r, c = game.resolution, game.channels
    assert game.data.shape[1:] == (c, r, r)
    z = torch.randn(5, game.z_dim, generator=torch.Generator().manual_seed(0))
    for images in (game.generate(z), game.G(z)):
        assert images.shape == (5, c, r, r)
        assert images.min() >= -1 and images.max() <= 1 and images.std() > 0


# --- losses ---------------------------------------------------------------------------------------------
def _hand_losses(game, batch, loss):
    """Both players' losses recomputed from the modules, the formulas of the env card."""
    with torch.no_grad():
        fake = game.G(batch["z"])
        d_real, d_fake = game.D(batch["real"]), game.D(fake)
        d_gen = game.D(game.G(batch["z"]))
    if loss == "wgan-gp":
        return {"discriminator": d_fake.mean() - d_real.mean(), "generator": -d_gen.mean()}
    ld = -(F.logsigmoid(d_real).mean() + F.logsigmoid(-d_fake).mean())
    lg = F.logsigmoid(-d_gen).mean() if loss == "gan" else -F.logsigmoid(d_gen).mean()
    return {"discriminator": ld, "generator": lg}


@pytest.mark.parametrize("loss", ["gan", "nsgan"])
def test_gan_losses_are_negative_log_likelihoods_near_two_log_two_at_init(loss):
    env = _env(loss=loss, dtype=F64, **SIMULTANEOUS)
    obs, _ = env.reset(seed=1)
    ld, lg = obs["discriminator"].loss, obs["generator"].loss
    # D's logits are ~0 at initialization (N(0, 0.02) weights): each log-likelihood is ~log 2
    assert ld.item() >= 0
    assert abs(ld.item() - 2 * math.log(2)) < 0.05
    if loss == "nsgan":
        assert lg.item() >= 0 and abs(lg.item() - math.log(2)) < 0.05
    else:  # E log(1 - sigmoid(D(G(z)))) <= 0
        assert lg.item() <= 0 and abs(lg.item() + math.log(2)) < 0.05
    _, _, batch = _first_batch(env, 1)
    hand = _hand_losses(env.game, batch, loss)
    for pl in PLAYERS:
        torch.testing.assert_close(obs[pl].loss[0], hand[pl], rtol=1e-12, atol=1e-12)
    # rewards are -loss of the movers
    obs2, rewards, *_ = env.step(_zero_updates(env))
    for pl in PLAYERS:
        assert torch.equal(rewards[pl], -obs2[pl].loss)
    # after D trains a few steps on its own loss, L_D drops below 2 log 2 and stays >= 0
    tx = agents.adam(1e-2)
    state = tx.init(env.params["discriminator"])
    for _ in range(15):
        obs = env.observation
        u, state = tx.update(obs["discriminator"].grads, state, obs["discriminator"].params)
        env.step({"discriminator": u, "generator": _zero_updates(env)["generator"]})
    ld = env.observation["discriminator"].loss.item()
    assert 0 <= ld < 2 * math.log(2) - 0.1


def _hand_gradient_penalty(D, real, fake, eps):
    """``mean_i (||grad_x D(x_hat_i)|| - 1)^2``, one image at a time (the ResNet critic has no batch norm)."""
    terms = []
    for i in range(real.shape[0]):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x)
        terms.append((g.flatten().norm() - 1) ** 2)
    return torch.stack(terms).mean()


def test_wgan_gp_discriminator_loss_matches_a_hand_computation():
    kw = {"architecture": "resnet", "dtype": F64, **SIMULTANEOUS}
    env = _env(**kw)
    assert env.game.loss == "wgan-gp" and env.game.gp_weight == 10.0
    obs, _ = env.reset(seed=2)
    params, instance, batch = _first_batch(env, 2)
    game = env.game
    with torch.no_grad():
        fake = game.G(batch["z"])
    gp = _hand_gradient_penalty(game.D, batch["real"], fake, batch["eps"])
    hand = _hand_losses(game, batch, "wgan-gp")
    assert gp.item() > 0.5  # near 1 at init: the critic's input gradients are tiny
    torch.testing.assert_close(obs["discriminator"].loss[0], hand["discriminator"] + 10.0 * gp, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(obs["generator"].loss[0], hand["generator"], rtol=1e-10, atol=1e-10)
    # the functional path (torch.func) and its autograd gradients agree with the modules' fast path
    functional = game.losses(params, instance, batch)
    copies = {pl: {k: v.clone() for k, v in ps.items()} for pl, ps in params.items()}
    slow_losses, slow_grads = game.grads(copies, instance, batch)
    fast_losses, fast_grads = game.grads(params, instance, batch)
    for pl in PLAYERS:
        torch.testing.assert_close(functional[pl], obs[pl].loss, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(slow_losses[pl], fast_losses[pl], rtol=1e-10, atol=1e-10)
        for k in params[pl]:
            torch.testing.assert_close(slow_grads[pl][k], fast_grads[pl][k], rtol=1e-8, atol=1e-12)
            torch.testing.assert_close(fast_grads[pl][k], obs[pl].grads[k], rtol=1e-8, atol=1e-12)

    # gp_weight=0 removes the penalty term exactly; the other player's loss is unchanged
    env0 = _env(gp_weight=0.0, **kw)
    obs0, _ = env0.reset(seed=2)
    _, _, batch0 = _first_batch(env0, 2)
    assert torch.equal(batch0["eps"], batch["eps"]) and torch.equal(batch0["z"], batch["z"])
    hand0 = _hand_losses(env0.game, batch0, "wgan-gp")
    torch.testing.assert_close(obs0["discriminator"].loss[0], hand0["discriminator"], rtol=0, atol=1e-14)
    torch.testing.assert_close(obs["discriminator"].loss - obs0["discriminator"].loss, 10.0 * gp.reshape(1),
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(obs0["generator"].loss, obs["generator"].loss, rtol=0, atol=1e-14)


# --- update schedules ------------------------------------------------------------------------------------
def test_alternating_schedule_moves_the_critic_n_critic_times_then_the_generator():
    env = _env(n_critic=3, dtype=F64)
    assert env.game.cycle == 4
    obs, _ = env.reset(seed=0)
    g0 = {k: v.clone() for k, v in obs["generator"].params.items()}
    d0 = {k: v.clone() for k, v in obs["discriminator"].params.items()}
    movers = []
    for step in range(8):
        movers.append(env.movers)
        (pl,) = env.movers
        other = "generator" if pl == "discriminator" else "discriminator"
        assert obs[pl].moving and obs[pl].grads is not None and obs[pl].loss is not None
        assert not obs[other].moving and obs[other].grads is None and obs[other].loss is None
        with pytest.raises(ValueError, match="only these players move"):
            env.step({other: {k: torch.zeros_like(v) for k, v in obs[other].params.items()}})
        with pytest.raises(ValueError, match="only these players move"):
            env.step({p: {k: torch.zeros_like(v) for k, v in obs[p].params.items()} for p in PLAYERS})
        obs, rewards, *_ = env.step(_zero_updates(env, 0.01))
        (nxt,) = env.movers
        assert torch.equal(rewards[nxt], -obs[nxt].loss)
        assert all((rewards[p] is None) == (p != nxt) for p in PLAYERS)
        if step == 2:  # three critic steps: the generator has not moved, the critic moved three times
            for k, v in obs["generator"].params.items():
                assert torch.equal(v, g0[k]), k
            for k, v in obs["discriminator"].params.items():
                torch.testing.assert_close(v, d0[k] + 0.03)
    assert movers == [("discriminator",)] * 3 + [("generator",)] + [("discriminator",)] * 3 + [("generator",)]
    for k, v in obs["generator"].params.items():
        torch.testing.assert_close(v, g0[k] + 0.02)
    for k, v in obs["discriminator"].params.items():
        torch.testing.assert_close(v, d0[k] + 0.06)


def test_simultaneous_update_moves_both_players_and_needs_one_critic_step():
    env = _env(**SIMULTANEOUS)
    obs, _ = env.reset(seed=0)
    before = {pl: {k: v.clone() for k, v in obs[pl].params.items()} for pl in PLAYERS}
    for _ in range(3):
        assert env.movers == PLAYERS
        assert all(obs[pl].moving and obs[pl].grads is not None for pl in PLAYERS)
        obs, rewards, *_ = env.step(_zero_updates(env, 0.01))
        assert all(rewards[pl] is not None for pl in PLAYERS)
    for pl in PLAYERS:
        for k, v in obs[pl].params.items():
            torch.testing.assert_close(v, before[pl][k] + 0.03)
    with pytest.raises(ValueError, match="n_critic must be 1"):
        _env(update="simultaneous", n_critic=2)
    with pytest.raises(ValueError, match="n_critic must be 1"):  # the resnet default is 5 critic steps
        _env(architecture="resnet", update="simultaneous")
    # extragradient needs simultaneous moves
    with pytest.raises(ValueError, match="simultaneous"):
        minmax_envs.run_episode(_env(), agents.extragradient(agents.sgda(0.1)), steps=1, seed=0)
    result = minmax_envs.run_episode(env, agents.extragradient(agents.sgda(0.01)), steps=2, seed=0)
    assert result.evaluations == 2 and env._steps == 4


# --- EMA --------------------------------------------------------------------------------------------------
def test_ema_moves_after_each_generator_step_only():
    d = 0.75
    env = _env(ema_decay=d, dtype=F64)
    env.reset(seed=0)
    game = env.game
    ema = dict(game.ema.named_parameters())
    assert ema.keys() == dict(game.G.named_parameters()).keys()
    for k, p in game.G.named_parameters():  # starts as a copy of the generator (not a view)
        assert torch.equal(ema[k], p) and ema[k].data_ptr() != p.data_ptr() and not ema[k].requires_grad
    old = {k: v.clone() for k, v in ema.items()}
    env.step(_zero_updates(env, 0.5))  # a critic step: the EMA does not move
    for k, v in ema.items():
        assert torch.equal(v, old[k]), k
    assert env.movers == ("generator",)
    obs = env.observation
    upd = {"generator": {k: -1e-2 * g for k, g in obs["generator"].grads.items()}}
    upd["generator"]["0.bias"] = torch.full_like(upd["generator"]["0.bias"], 0.3)
    env.step(upd)
    for k, p in game.G.named_parameters():
        torch.testing.assert_close(ema[k], d * old[k] + (1 - d) * p.detach(), rtol=1e-12, atol=1e-12)
    assert not torch.equal(ema["0.bias"], game.G.get_parameter("0.bias"))


def test_metrics_use_the_ema_generator():
    kw = {"steps": 4, "seed": 0, "eval_every": 4}
    tx = agents.adam(5e-3, betas=(0.5, 0.999))
    raw, ema = _env(ema_decay=None), _env(ema_decay=0.9)
    r_raw = minmax_envs.run_episode(raw, tx, **kw)
    r_ema = minmax_envs.run_episode(ema, tx, **kw)
    (t0, m0_raw), (t1, m1_raw) = r_raw.trajectory
    (_, m0_ema), (_, m1_ema) = r_ema.trajectory
    assert (t0, t1) == (0, 4)
    # at iteration 0 the EMA is the generator: the same distance; after the generator moved, not
    torch.testing.assert_close(m0_ema["classifier_fd"], m0_raw["classifier_fd"], rtol=1e-6, atol=0)
    assert abs(m1_ema["classifier_fd"].item() - m1_raw["classifier_fd"].item()) > 1e-3
    # both envs trained the same generator: only the evaluated network differs
    for k, p in raw.game.G.named_parameters():
        assert torch.equal(p, ema.game.G.get_parameter(k)), k
    z = torch.randn(6, ema.game.z_dim, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(raw.game.generate(z), raw.game.G.eval()(z))
    assert not torch.allclose(ema.game.generate(z), ema.game.G.eval()(z), rtol=0, atol=1e-6)
    assert raw.game.ema is None


# --- mixed precision ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_mixed_precision_runs_and_keeps_float32_parameters(architecture):
    kw = {"architecture": architecture, "width": 8, **SIMULTANEOUS}
    ref_obs, _ = _env(**kw).reset(seed=3)
    env = _env(mixed_precision=True, **kw)
    obs, _ = env.reset(seed=3)
    for pl in PLAYERS:
        assert torch.isfinite(obs[pl].loss).all() and obs[pl].loss.dtype == torch.float32
        torch.testing.assert_close(obs[pl].loss, ref_obs[pl].loss, rtol=5e-2, atol=5e-2)
        assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in obs[pl].grads.values())
    # autocast is on: bfloat16 forward passes do not give the float32 numbers bit for bit
    assert not torch.equal(obs["discriminator"].loss, ref_obs["discriminator"].loss)
    result = minmax_envs.run_episode(env, agents.adam(1e-3), steps=2, seed=3)
    assert not result.diverged.any()
    for module in _modules(env).values():
        assert all(p.dtype == torch.float32 for p in module.parameters())
    z = torch.randn(4, env.game.z_dim)
    assert env.game.generate(z).dtype == torch.float32


# --- sample grids ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_save_samples_writes_a_png_grid(tmp_path, channels, mode):
    env = _env(channels=channels)
    env.reset(seed=0)
    path = env.game.save_samples(tmp_path / "sub" / "grid.png", n=10, seed=4)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == mode
        # 10 images in rows of int(sqrt(10)) = 3: 3 columns, 4 rows of 8x8 images with 2-pixel padding
        assert img.size == (3 * (8 + 2) + 2, 4 * (8 + 2) + 2)
    again = env.game.save_samples(tmp_path / "again.png", n=10, seed=4)
    assert again.read_bytes() == path.read_bytes()  # fixed latents per seed


# --- learning ----------------------------------------------------------------------------------------------
LEARN = {"resolution": 8, "width": 8, "batch_size": 32, "eval_samples": 256, "classifier_epochs": 3,
         "max_images": None, "ema_decay": None}


@pytest.mark.parametrize("seed", [0, 3])
def test_short_adam_episode_on_digits_lowers_the_classifier_frechet_distance(seed):
    """90 iterations of Adam (lr 2e-3, betas (0.5, 0.999)) on the 1,797 digits at 8x8, width 8. Measured over
    seeds 0-39: the distance falls from 468-499 to 139-187 (0.29-0.37 of its initial value), monotonically at
    every 30 iterations; with zero updates (only the batch-norm statistics move) it ends at 0.87-0.94 of its
    initial value, and the Adam run at 0.32-0.42 of that control."""
    env = minmax_envs.make("Digits-DCGAN-v0", **LEARN)
    result = minmax_envs.run_episode(env, agents.adam(2e-3, betas=(0.5, 0.999)), steps=90, seed=seed,
                                     eval_every=30)
    fd = [m["classifier_fd"].item() for _, m in result.trajectory]
    assert [t for t, _ in result.trajectory] == [0, 30, 60, 90]
    assert not result.diverged.any() and all(math.isfinite(v) for v in fd)
    assert all(b < a for a, b in zip(fd, fd[1:])), fd
    assert fd[-1] < 0.6 * fd[0], fd
    control = minmax_envs.run_episode(minmax_envs.make("Digits-DCGAN-v0", **LEARN), agents.sgda(0.0), steps=90,
                                      seed=seed)
    assert control.trajectory == [] and control.metrics["classifier_fd"].item() > 0.8 * fd[0]
    assert fd[-1] < 0.6 * control.metrics["classifier_fd"].item()


# --- checkpoint and resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_interrupted_and_resumed_image_episode_is_bit_identical(tmp_path, architecture):
    kw = {"architecture": architecture, "n_critic": 2, "ema_decay": 0.9}
    tx = agents.adam(1e-3)
    episode = {"steps": 7, "seed": 5, "eval_every": 3}
    ref_env = _env(**kw)
    ref = minmax_envs.run_episode(ref_env, tx, **episode)

    ckpt = tmp_path / "episode.pt"
    env = _env(**kw)
    # after the 3 calls of the checkpoint's agent probe, the critic is killed at its 10th call in the loop: the
    # second critic step of iteration 5; the checkpoint holds 4
    with pytest.raises(Interrupt):
        minmax_envs.run_episode(env, {"generator": tx, "discriminator": interrupting(tx, PROBE_CALLS + 9)},
                                checkpoint=ckpt, checkpoint_every=2, **episode)
    assert torch.load(ckpt, weights_only=True)["t"] == 4
    fresh = _env(**kw)
    resumed = minmax_envs.run_episode(fresh, tx, checkpoint=ckpt, checkpoint_every=2, **episode)
    assert fresh.game.ema is not None
    for a, b in ((ref_env.game.G, fresh.game.G), (ref_env.game.D, fresh.game.D), (ref_env.game.ema, fresh.game.ema)):
        _assert_same_state(_snapshot(a), _snapshot(b))  # parameters and batch-norm buffers
    assert any("running_mean" in k for k in fresh.game.G.state_dict())
    assert fresh.game.G.state_dict()[[k for k in fresh.game.G.state_dict() if "num_batches" in k][0]] > 0
    for pl in PLAYERS:
        for k, v in fresh.params[pl].items():
            assert v.data_ptr() == _modules(fresh)[pl].get_parameter(k).data_ptr()
    assert [t for t, _ in resumed.trajectory] == [0, 3, 6]
    for (_, a), (_, b) in zip(ref.trajectory, resumed.trajectory):
        assert torch.equal(a["classifier_fd"], b["classifier_fd"])
    assert torch.equal(ref.metrics["classifier_fd"], resumed.metrics["classifier_fd"])
    # and the resumed env steps on exactly as the uninterrupted one
    step = _zero_updates(ref_env, 1e-3)
    ref_obs = ref_env.step(step)[0]
    obs = fresh.step(step)[0]
    for pl in ref_env.movers:
        assert torch.equal(ref_obs[pl].loss, obs[pl].loss)


# --- errors ------------------------------------------------------------------------------------------------
def test_argument_errors():
    with pytest.raises(ValueError, match="one seed per env"):
        minmax_envs.make("Digits-DCGAN-v0", num_seeds=2, **TINY)
    for arg, value, choices in [("dataset", "svhn", "digits, mnist, cifar10, imagefolder"),
                                ("architecture", "vit", "dcgan, resnet"),
                                ("loss", "hinge", "gan, nsgan, wgan-gp"),
                                ("update", "unrolled", "simultaneous, alternating")]:
        with pytest.raises(ValueError, match=f"unknown {arg} '{value}'; choose one of {choices}"):
            _env(**{arg: value})
    with pytest.raises(ValueError, match="n_critic"):
        _env(n_critic=0)
    with pytest.raises(ValueError, match="ema_decay"):
        _env(ema_decay=1.0)
    with pytest.raises(ValueError, match="gp_weight"):
        _env(gp_weight=-1.0)
    with pytest.raises(ValueError, match="resolution"):
        _env(resolution=12)


def test_missing_cifar10_names_the_expected_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="data_batch_1") as info:
        minmax_envs.make("CIFAR10-DCGAN-v0", data_dir=str(empty), **TINY)
    assert all(f"data_batch_{i}" in str(info.value) for i in range(1, 6))
    assert "cifar-10-batches-py" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        minmax_envs.make("CIFAR10-DCGAN-v0", data_dir=str(tmp_path / "nowhere"), **TINY)
    # the fake CIFAR-10 of conftest (the environment variable) loads: 3 channels
    assert minmax_envs.make("CIFAR10-DCGAN-v0", **TINY).game.channels == 3


def test_nagarajan_kolter_needs_simultaneous_updates():
    env = _env(regularizer="nk")
    with pytest.raises(ValueError, match="simultaneous"):
        env.reset(seed=0)
    env = _env(regularizer="nk", dtype=F64, **SIMULTANEOUS)
    plain = _env(dtype=F64, **SIMULTANEOUS)
    obs, _ = env.reset(seed=0)
    ref, _ = plain.reset(seed=0)
    for pl in PLAYERS:
        torch.testing.assert_close(obs[pl].loss, ref[pl].loss, rtol=1e-10, atol=1e-12)
    for k, g in obs["discriminator"].grads.items():  # the critic follows its own gradient
        torch.testing.assert_close(g, ref["discriminator"].grads[k], rtol=1e-8, atol=1e-12)
    diff = sum((g - ref["generator"].grads[k]).abs().sum() for k, g in obs["generator"].grads.items())
    assert diff > 0  # the generator's gradient carries the penalty
    obs, *_ = env.step({pl: {k: -1e-2 * g for k, g in obs[pl].grads.items()} for pl in PLAYERS})
    assert all(torch.isfinite(g).all() for pl in PLAYERS for g in obs[pl].grads.values())


# --- determinism -------------------------------------------------------------------------------------------
def test_same_seed_same_run_different_seed_different_init():
    tx = agents.adam(1e-3)
    runs = []
    for seed in (7, 7, 8):
        env = _env(n_critic=2)
        env.reset(seed=seed)
        init = _snapshot(env.game.G) | {f"D.{k}": v for k, v in _snapshot(env.game.D).items()}
        minmax_envs.run_episode(env, tx, steps=3, seed=seed)
        runs.append((init, {**_snapshot(env.game.G), **{f"D.{k}": v for k, v in _snapshot(env.game.D).items()}}))
    _assert_same_state(runs[0][0], runs[1][0])
    _assert_same_state(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0]["0.weight"], runs[2][0]["0.weight"])
    assert not torch.equal(runs[0][0]["D.0.weight"], runs[2][0]["D.0.weight"])
    assert not torch.equal(runs[0][1]["0.weight"], runs[2][1]["0.weight"])


def test_checkpoint_from_other_game_arguments_is_refused():
    kw = SMALL_KWARGS["Digits-DCGAN-v0"]
    env = minmax_envs.make("Digits-DCGAN-v0", **kw)
    env.reset(seed=0)
    state = env.state_dict()
    other = minmax_envs.make("Digits-DCGAN-v0", **{**kw, "ema_decay": None})
    with pytest.raises(ValueError, match="other game arguments.*ema"):
        other.load_state_dict(state)


def test_a_diverged_seed_freezes_its_module_weights():
    env = _env()
    env.reset(seed=0)
    _, _, _, _, info = env.step(_zero_updates(env, 1e7))  # beyond the divergence threshold
    assert info["diverged"].tolist() == [True]
    weights = {f"{pl}.{k}": p for pl, m in _modules(env).items() for k, p in m.named_parameters()}
    before = {k: p.detach().clone() for k, p in weights.items()}
    for _ in range(3):  # both players' steps: the masked path of the in-place update
        env.step(_zero_updates(env, 1.0))
    assert all(torch.equal(before[k], p) for k, p in weights.items())

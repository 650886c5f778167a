"""Offline image metrics: a classifier Frechet distance, Inception FID when available, image grids.

**Classifier Frechet distance.** FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule
converge to a local Nash equilibrium") fits a Gaussian to Inception-v3 pool features of real images and
another to those of generated images and reports the Frechet (2-Wasserstein) distance between them::

    d^2 = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2}).

The Inception weights cannot be downloaded on these machines, so the suite computes the same distance
in the feature space of a small CNN trained on the dataset itself (:class:`ClassifierFeatures`,
:func:`train_classifier`): its penultimate layer replaces Inception's pool layer. The distance is
computed by torchmetrics' ``FrechetInceptionDistance`` with this network as its custom ``feature``
extractor (:func:`classifier_frechet_distance`); :func:`frechet_distance_from_stats` is an independent
float64 closed form used to validate it. Report it as the *classifier Frechet distance*, never as FID.

What it is not:

- **Not comparable to published FIDs** (or to :func:`inception_fid`): another network, 128 features
  instead of 2048, trained on the evaluated dataset rather than on ImageNet.
- **Not comparable across classifiers**: values mean something only between runs that use the same
  classifier, i.e. the same training images, labels, seed and hyperparameters. :func:`train_classifier`
  caches the trained weights on disk under a key made of exactly these, so every evaluation that asks
  for the same classifier gets bit-identical weights.
- **Not unbiased**: like FID, the plug-in estimate grows as the number of samples shrinks. Compare only
  values computed with the same numbers of real and fake images.

When the dataset has no labels (an image folder), the classifier learns the self-supervised rotation
task (Gidaris et al. 2018, "Unsupervised representation learning by predicting image rotations"): it
predicts which of 0/90/180/270 degrees an image was rotated by, so the features still come from "a
classifier trained on the dataset".

:func:`inception_fid` computes the real FID through torchmetrics when ``torch-fidelity`` and the
Inception weights are available; they are optional and never required by the rest of the package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import pathlib
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from minmax_envs.checkpoint import UnreadableTensorFile, load_tensors, read_regular_file, save_tensors, write_bytes

__all__ = [
    "CacheWarning",
    "ClassifierFeatures",
    "classifier_frechet_distance",
    "frechet_distance_from_stats",
    "inception_fid",
    "save_image_grid",
    "train_classifier",
]

# Bump when the architecture or the training procedure changes: it is part of the cache key.
_ARCH_VERSION = "ClassifierFeatures-v1"
_LR = 3e-3
_WIDTH = 32
_NUM_FEATURES = 128
_NUM_ROTATIONS = 4
_RANGE_TOL = 1e-3


class ClassifierFeatures(nn.Module):
    """A small CNN classifier for ``(C, H, W)`` images in ``[-1, 1]``; its penultimate layer is the feature map.

    Architecture (``w = width``; any image size, e.g. 8x8 digits, 28x28 MNIST, 32x32 CIFAR)::

        Conv3x3(C -> w) - ReLU - Conv3x3 stride 2 (w -> 2w) - ReLU - Conv3x3 stride 2 (2w -> 2w) - ReLU
        - AdaptiveAvgPool(2x2) - flatten (8w) - Linear(8w -> num_features) - ReLU      = forward(x)
        - Linear(num_features -> num_classes)                                        = logits(x)

    No batch norm and no dropout: features of an image do not depend on the rest of its batch nor on
    the module's mode. Weights are Kaiming-normal from ``generator`` (biases zero), so a seeded generator
    gives the same network on every run.

    Args:
        in_channels: image channels ``C`` (1 or 3 in practice).
        num_classes: classes of the training task (10 for digits, 4 for the rotation task).
        width: channels of the first convolution.
        num_features: dimension of the feature vector returned by :meth:`forward`.
        generator: random generator for the initial weights (default: a fresh one seeded with 0).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        width: int = _WIDTH,
        num_features: int = _NUM_FEATURES,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width),
                            ("num_features", num_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        self.num_features = num_features
        self.train_accuracy: float | None = None
        """Accuracy on its training task and data, set by :func:`train_classifier`."""
        with torch.random.fork_rng(devices=[]):  # layer constructors draw from the global RNG: leave it as it was
            self._build(in_channels, num_classes, width, num_features)
        self.reset_parameters(generator)

    def _build(self, in_channels: int, num_classes: int, width: int, num_features: int) -> None:
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * width, num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(num_features, num_classes)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-normal weights (fan-in, ReLU gain) drawn from ``generator``, zero biases."""
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                # Draw on the CPU generator, then copy: the same numbers whatever device the module is on.
                w = torch.empty(module.weight.shape, dtype=torch.float32)
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
                with torch.no_grad():
                    module.weight.copy_(w)
                    module.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, num_features)`` of images ``x`` of shape ``(B, C, H, W)`` in ``[-1, 1]``."""
        return self.body(x)

    def logits(self, x: Tensor) -> Tensor:
        """Class logits, shape ``(B, num_classes)``."""
        return self.head(self.body(x))


# ----------------------------------------------------------------------------------------------------------------
# Training and caching


def _default_cache_dir() -> pathlib.Path:
    env = os.environ.get("MINMAX_ENVS_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "minmax_envs"


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point in [-1, 1], got dtype {images.dtype}")
    if images.numel() and not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contain NaN or infinite values")
    if images.numel():
        lo, hi = float(images.min()), float(images.max())
        if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
            raise ValueError(f"{name} must lie in [-1, 1] (got values in [{lo:.4g}, {hi:.4g}]); "
                             "rescale them, or clamp them if they come from a generator without tanh")


def _cache_key(images: Tensor, labels: Tensor | None, config: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps([list(images.shape), str(images.dtype)]).encode())
    h.update(images.numpy().tobytes())
    if labels is None:
        h.update(b"labels:none")
    else:
        h.update(b"labels:")
        h.update(labels.numpy().tobytes())
    return h.hexdigest()


def _rotations(x: Tensor) -> tuple[Tensor, Tensor]:
    """All four rotations of a batch of square images and their labels 0..3 (k * 90 degrees)."""
    xs = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(_NUM_ROTATIONS)])
    ys = torch.arange(_NUM_ROTATIONS, device=x.device).repeat_interleave(x.shape[0])
    return xs, ys


def _task_batch(x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    return _rotations(x) if y is None else (x, y)


def _fit(model: ClassifierFeatures, images: Tensor, labels: Tensor | None, *, generator: torch.Generator,
         epochs: int, batch_size: int, device: torch.device) -> None:
    """Adam on the cross-entropy, minibatches shuffled by ``generator`` (a CPU generator: same order everywhere)."""
    opt = torch.optim.Adam(model.parameters(), lr=_LR)
    n = images.shape[0]
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            x = images[idx].to(device)
            y = None if labels is None else labels[idx].to(device)
            x, y = _task_batch(x, y)
            loss = nn.functional.cross_entropy(model.logits(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()


@torch.no_grad()
def _accuracy(model: ClassifierFeatures, images: Tensor, labels: Tensor | None, device: torch.device,
              batch_size: int = 512) -> float:
    correct = total = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        y = None if labels is None else labels[start:start + batch_size].to(device)
        x, y = _task_batch(x, y)
        correct += int((model.logits(x).argmax(dim=1) == y).sum())
        total += int(y.numel())
    return correct / max(total, 1)


class CacheWarning(UserWarning):
    """A cached file was not used (changed since it was written, damaged, or of another version): it is made again."""


#: the largest classifier cache file read (the network is under a megabyte; a guard against exhausting memory)
_CACHE_MAX_BYTES = 256 << 20


def _digest_file(path: pathlib.Path) -> pathlib.Path:
    """Where the SHA-256 of a cache file is recorded when it is written: ``<file>.sha256`` beside it."""
    return path.with_name(f"{path.name}.sha256")


def _cached_classifier(path: pathlib.Path, config: dict[str, Any],
                       fresh: Any) -> tuple[ClassifierFeatures | None, str]:
    """The classifier cached at ``path``, verified before use, or ``(None, why not)``.

    Verified: the file's SHA-256 is the one recorded beside it when it was written (:func:`_digest_file`; a cache
    of an older version has none), it is read with the suite's safe loader
    (:func:`~minmax_envs.checkpoint.load_tensors`: a regular file, no link followed, ``weights_only=True``), it was
    made with ``config`` (the key names the configuration, so another one means the file was moved or edited), and
    its weights are exactly those of a ``fresh()`` network (names, shapes, dtypes) and finite.

    The digest detects a cache changed since it was written (an edit, a truncation, a file copied over another
    key), not one rewritten together with its digest: it is a check, not a signature."""
    digest_file = _digest_file(path)
    try:
        recorded = read_regular_file(digest_file, 1024).decode("ascii").strip()
    except UnreadableTensorFile as e:
        return None, f"its digest {str(digest_file)!r} cannot be read ({e.reason})"
    except UnicodeDecodeError:
        recorded = ""
    if len(recorded) != 64 or any(c not in "0123456789abcdef" for c in recorded):
        return None, f"its digest {str(digest_file)!r} is not a SHA-256 in hex"
    try:
        blob = load_tensors(path, max_bytes=_CACHE_MAX_BYTES, sha256=recorded)
    except UnreadableTensorFile as e:
        return None, e.reason
    if not isinstance(blob, dict) or blob.get("config") != config:
        return None, "it was made with another configuration than its key names"
    accuracy = blob.get("train_accuracy")
    weights = blob.get("state_dict")
    if not isinstance(accuracy, float) or not 0.0 <= accuracy <= 1.0 or not isinstance(weights, dict):
        return None, "it does not hold a network's weights and training accuracy"
    model = fresh()
    expected = model.state_dict()
    for name, want in expected.items():
        got = weights.get(name)
        if not isinstance(got, Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            return None, f"its weight {name!r} does not fit the network"
        if not bool(torch.isfinite(got).all()):
            return None, f"its weight {name!r} holds non-finite values"
    if set(weights) != set(expected):
        return None, f"it holds other weights than the network's: {sorted(set(weights) ^ set(expected))}"
    model.load_state_dict(weights, strict=True)
    model.train_accuracy = accuracy
    return model, ""


def train_classifier(
    images: Tensor,
    labels: Tensor | None,
    *,
    seed: int = 0,
    epochs: int = 5,
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> ClassifierFeatures:
    """Train (once) the feature network of the classifier Frechet distance on a dataset; cached on disk.

    With ``labels``, the network learns to classify the images; with ``labels=None`` (unlabeled image
    folders) it learns the self-supervised rotation task: every image is shown rotated by 0, 90, 180 and
    270 degrees and the network predicts which (square images only).

    Training is deterministic: the initial weights and the minibatch order come from a
    ``torch.Generator`` seeded with ``seed`` (the global RNG is neither used nor advanced), the network has
    no dropout nor batch norm, and optimization is Adam (lr 3e-3) on the cross-entropy. On the CPU two
    runs with the same arguments give bit-identical weights; on a GPU, cuDNN may differ in the last bits.

    The trained weights are stored in ``cache_dir/classifier_features/<key>.pt``, where ``key`` is the
    sha256 of the images and labels (as float32 / int64 bytes, with their shape), the architecture and the
    hyperparameters (seed, epochs, batch size, learning rate, task), with the file's SHA-256 beside it
    (``<key>.pt.sha256``). A later call with the same arguments loads that file and returns identical weights
    without training, once it is verified (the digest, a safe read, the configuration, the weights' names,
    shapes and finite values); a cache that fails any check is not used: a :class:`CacheWarning` says why, and
    the classifier is trained again and the cache rewritten.

    Args:
        images: ``(N, C, H, W)`` float images in ``[-1, 1]`` (any device; hashed on the CPU).
        labels: ``(N,)`` integer class labels in ``0..K-1`` (``K >= 2``), or ``None`` for the rotation task.
        seed: seed of the initialization and shuffling generator.
        epochs: passes over the data. 5 epochs reach > 95% train accuracy on scikit-learn's digits.
        batch_size: images per minibatch (times 4 rotated copies for the rotation task).
        cache_dir: cache root; default the environment variable ``MINMAX_ENVS_CACHE``, else
            ``~/.cache/minmax_envs``.
        device: where to train and where the returned network lives.

    Returns:
        The trained :class:`ClassifierFeatures`, in eval mode with ``requires_grad`` False; its
        ``train_accuracy`` holds the accuracy on its training task and data.
    """
    _check_images(images)
    if images.shape[0] < 2:
        raise ValueError(f"need at least 2 images, got {images.shape[0]}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    images = images.detach().to("cpu", torch.float32).contiguous()
    n, c, h, w = images.shape
    if labels is None:
        if h != w:
            raise ValueError(f"the rotation task (labels=None) needs square images, got {h}x{w}")
        num_classes, task = _NUM_ROTATIONS, "rotation"
    else:
        if not isinstance(labels, Tensor) or labels.shape != (n,) or labels.is_floating_point() \
                or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be an integer tensor of shape ({n},), got "
                             f"{getattr(labels, 'dtype', type(labels).__name__)} of shape "
                             f"{tuple(getattr(labels, 'shape', ()))}")
        labels = labels.detach().to("cpu", torch.int64).contiguous()
        if int(labels.min()) < 0:
            raise ValueError("labels must be non-negative class indices")
        num_classes, task = int(labels.max()) + 1, "classification"
        if num_classes < 2:
            raise ValueError("labels must contain at least 2 classes")
    device = torch.device(device)
    config = {"arch": _ARCH_VERSION, "in_channels": c, "num_classes": num_classes, "width": _WIDTH,
              "num_features": _NUM_FEATURES, "task": task, "seed": seed, "epochs": epochs,
              "batch_size": batch_size, "lr": _LR, "optimizer": "adam"}
    key = _cache_key(images, labels, config)
    root = pathlib.Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    path = root / "classifier_features" / f"{key}.pt"

    def fresh_model(generator: torch.Generator) -> ClassifierFeatures:
        return ClassifierFeatures(c, num_classes, width=_WIDTH, num_features=_NUM_FEATURES, generator=generator)

    model: ClassifierFeatures | None = None
    if path.exists() or path.is_symlink():
        model, why = _cached_classifier(path, config, lambda: fresh_model(torch.Generator().manual_seed(seed)))
        if model is None:
            warnings.warn(f"the classifier cache {str(path)!r} is not used: {why}; the classifier is trained again "
                          "and the cache rewritten", CacheWarning, stacklevel=2)
    if model is not None:
        model.to(device)
    else:
        # One generator draws the initial weights, then the minibatch order of every epoch.
        generator = torch.Generator().manual_seed(seed)
        model = fresh_model(generator).to(device)
        _fit(model, images, labels, generator=generator, epochs=epochs, batch_size=batch_size, device=device)
        model.train_accuracy = _accuracy(model, images, labels, device)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        digest = save_tensors(path, {"config": config, "state_dict": state, "train_accuracy": model.train_accuracy},
                              what="the classifier cache")
        write_bytes(_digest_file(path), f"{digest}\n".encode())
    model.eval()
    model.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------------------------------------------
# Frechet distances


class _TorchmetricsFeatures(nn.Module):
    """Adapter from torchmetrics' custom-feature contract to :class:`ClassifierFeatures`.

    torchmetrics passes the images given to ``update`` unchanged to a custom extractor (``normalize``
    only converts images for the built-in Inception). We feed it float images in ``[0, 1]``, the
    documented input of ``normalize=True``, and map them back to ``[-1, 1]`` here. Features are returned
    in float64 so that torchmetrics also returns its result in float64 (it casts the distance to the
    features' dtype). The adapter never leaves eval mode, whatever ``metric.train()`` does.
    """

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.num_features = int(features.num_features)

    def train(self, mode: bool = True) -> _TorchmetricsFeatures:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x * 2 - 1).double()


def _load_fid_class():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except Exception as e:  # noqa: BLE001 - e.g. a broken optional torch-fidelity / torchvision install
        raise RuntimeError(f"cannot import torchmetrics.image.fid.FrechetInceptionDistance: {e!r}. torchmetrics "
                           "imports torch-fidelity at that point when it is installed; if torch-fidelity or "
                           "torchvision is broken, uninstall or repair it") from e
    return FrechetInceptionDistance


def _update_in_batches(metric: Any, images: Tensor, real: bool, batch_size: int, device: torch.device) -> None:
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].detach().to(device, torch.float32)
        metric.update(((x + 1) / 2).clamp_(0, 1), real=real)


def classifier_frechet_distance(real: Tensor, fake: Tensor, features: ClassifierFeatures,
                                batch_size: int = 256) -> float:
    """Classifier Frechet distance between real and fake images (NOT FID; see the module docstring).

    ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})`` for the mean and (unbiased) covariance of
    ``features(x)`` over the real and over the fake images, computed by torchmetrics'
    ``FrechetInceptionDistance`` with ``features`` as custom extractor (feature statistics accumulated in
    float64). Biased like FID: compare values computed with the same numbers of images.

    Args:
        real: ``(M, C, H, W)`` images in ``[-1, 1]``, ``M >= 2``.
        fake: ``(M', C, H, W)`` images in ``[-1, 1]``, ``M' >= 2`` (same image shape as ``real``).
        features: a network from :func:`train_classifier` (any module with an int ``num_features``
            mapping ``(B, C, H, W)`` images in ``[-1, 1]`` to ``(B, num_features)`` works).
        batch_size: images per feature-extraction batch.

    Returns:
        The distance as a Python float (float64 arithmetic).
    """
    for name, x in (("real", real), ("fake", fake)):
        _check_images(x, name)
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 images, got {x.shape[0]}")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake images differ in shape: {tuple(real.shape[1:])} vs {tuple(fake.shape[1:])}")
    in_channels = getattr(features, "in_channels", None)
    if in_channels is not None and real.shape[1] != in_channels:
        raise ValueError(f"the classifier takes {in_channels}-channel images, got {real.shape[1]} channels")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    param = next(features.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = features.training
    features.eval()
    try:
        metric = _load_fid_class()(feature=_TorchmetricsFeatures(features), normalize=True,
                                   reset_real_features=True).to(device)
        with torch.no_grad():
            _update_in_batches(metric, real, True, batch_size, device)
            _update_in_batches(metric, fake, False, batch_size, device)
            value = float(metric.compute())
    finally:
        features.train(was_training)
    return value


def _as_float64(x: Any, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(s)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``, in float64.

    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})``, with the trace of the square root computed as
    ``Tr((S1^{1/2} S2 S1^{1/2})^{1/2})`` (equal for positive semi-definite ``S1``, ``S2``) from symmetric
    eigendecompositions: no complex arithmetic, negative round-off eigenvalues clipped to zero.
    Independent of torchmetrics' implementation (which takes eigenvalues of ``S1 S2``), so it validates it.

    Args:
        mu1: the first mean, shape ``(d,)`` (a tensor, array or sequence).
        sigma1: its covariance, shape ``(d, d)``, symmetric positive semi-definite (symmetrized here).
        mu2: the second mean, as ``mu1``.
        sigma2: its covariance, as ``sigma1``.
    """
    m1, m2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    s1, s2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got {m1.shape} and {m2.shape}")
    d = m1.shape[0]
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"sigma1 and sigma2 must have shape ({d}, {d}), got {s1.shape} and {s2.shape}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    r1 = _psd_sqrt(s1)
    middle = r1 @ s2 @ r1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum())
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


_INCEPTION_HELP = (
    'Install it with `pip install "torchmetrics[image]"` or `pip install torch-fidelity` (it needs a working '
    "torchvision matching your torch build), and make the Inception-v3 weights obtainable: torch-fidelity "
    "downloads pt_inception-2015-12-05-6726825d.pth on first use, so either allow that download once or "
    "pass weights_path= to a local copy. Without them, use classifier_frechet_distance (offline, "
    "not comparable to published FIDs)."
)


def inception_fid(real: Tensor, fake: Tensor, *, batch_size: int = 64, device: str | torch.device = "cpu",
                  weights_path: str | os.PathLike | None = None) -> float:
    """FID of Heusel et al. 2017 (Inception-v3 pool features, 2048-d) through torchmetrics.

    Optional: needs ``torch-fidelity`` and the Inception weights. Comparable to published FIDs only
    with the published protocol (50,000 fake images against the training set); with fewer than 2048
    images a covariance is singular and the value is strongly biased upwards.

    Args:
        real: ``(M, C, H, W)`` images in ``[-1, 1]`` with ``C`` 1 (repeated to RGB) or 3.
        fake: generated images, as ``real``.
        batch_size: images per Inception batch.
        device: where Inception runs.
        weights_path: a local copy of torch-fidelity's Inception weights (default: torch-fidelity's
            download cache).

    Raises:
        RuntimeError: torch-fidelity or the weights are unavailable; the message says what to install.
    """
    for name, x in (("real", real), ("fake", fake)):
        _check_images(x, name)
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 images, got {x.shape[0]}")
        if x.shape[1] not in (1, 3):
            raise ValueError(f"{name} must have 1 or 3 channels, got {x.shape[1]}")
    if importlib.util.find_spec("torch_fidelity") is None:
        raise RuntimeError("inception_fid needs the optional package torch-fidelity, which is not installed. "
                           + _INCEPTION_HELP)
    fid_class = _load_fid_class()
    device = torch.device(device)
    try:
        metric = fid_class(feature=2048, normalize=True, reset_real_features=True,
                           feature_extractor_weights_path=None if weights_path is None else str(weights_path))
    except Exception as e:  # noqa: BLE001 - offline download failures come in many types
        raise RuntimeError(f"could not build torchmetrics' Inception-v3 feature extractor ({e!r}). "
                           + _INCEPTION_HELP) from e
    metric = metric.to(device)
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            for start in range(0, images.shape[0], batch_size):
                x = images[start:start + batch_size].detach().to(device, torch.float32)
                x = ((x + 1) / 2).clamp_(0, 1)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                metric.update(x, real=is_real)
        return float(metric.compute())


# ----------------------------------------------------------------------------------------------------------------
# Image grids


def save_image_grid(images: Tensor, path: str | os.PathLike, nrow: int = 8, padding: int = 2) -> pathlib.Path:
    """Write images in ``[-1, 1]`` as one PNG grid (Pillow); return the path.

    ``images`` of shape ``(B, C, H, W)`` (or one ``(C, H, W)`` image), ``C`` 1 (grayscale PNG) or 3 (RGB).
    Images fill rows of ``nrow`` columns left to right; ``padding`` black pixels separate them and frame
    the grid, so the PNG is ``ncol * (W + padding) + padding`` pixels wide and
    ``ceil(B / nrow) * (H + padding) + padding`` high, ``ncol = min(nrow, B)``. Values map
    ``-1 -> 0`` and ``1 -> 255`` (rounded; values outside ``[-1, 1]`` are clipped). Parent folders are created.
    """
    from PIL import Image

    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with B >= 1 and C in {{1, 3}}, "
                         f"got {tuple(images.shape)}")
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    x = images.detach().to("cpu", torch.float32)
    b, c, h, w = x.shape
    pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    ncol, nrows = min(nrow, b), math.ceil(b / nrow)
    grid = torch.zeros(c, nrows * (h + padding) + padding, ncol * (w + padding) + padding, dtype=torch.uint8)
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = pixels[i]
    array = grid[0].numpy() if c == 1 else grid.permute(1, 2, 0).contiguous().numpy()
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(out, format="PNG")  # uint8 (H, W) -> mode L, (H, W, 3) -> RGB
    return out

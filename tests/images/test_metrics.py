"""Classifier Frechet distance, its feature network and cache, the closed form, image grids, Inception FID."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from sklearn.datasets import load_digits

from minmax_envs.images import metrics
from minmax_envs.images.metrics import (
    ClassifierFeatures,
    classifier_frechet_distance,
    frechet_distance_from_stats,
    inception_fid,
    save_image_grid,
    train_classifier,
)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 digits as (N, 1, 8, 8) float32 in [-1, 1] (pixel values 0..16) and int64 labels."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    return x, torch.tensor(d.target, dtype=torch.int64)


@pytest.fixture(scope="module")
def classifier(digits, tmp_path_factory) -> ClassifierFeatures:
    x, y = digits
    return train_classifier(x, y, epochs=3, cache_dir=tmp_path_factory.mktemp("cache"))


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _cache_files(root) -> list:
    return sorted((root / "classifier_features").glob("*.pt"))


@torch.no_grad()
def _rotation_accuracy(model: ClassifierFeatures, x: torch.Tensor) -> float:
    correct = 0
    for k in range(4):
        pred = model.logits(torch.rot90(x, k, dims=(2, 3))).argmax(dim=1)
        correct += int((pred == k).sum())
    return correct / (4 * x.shape[0])


# ----------------------------------------------------------------------------------------------------------------
# Classifier and training


def test_classifier_is_accurate_on_digits_and_frozen(classifier, digits):
    x, y = digits
    with torch.no_grad():
        acc = (classifier.logits(x).argmax(dim=1) == y).double().mean().item()
        feats = classifier(x[:5])
    assert acc > 0.9
    assert classifier.train_accuracy == pytest.approx(acc)
    assert feats.shape == (5, classifier.num_features)
    assert not classifier.training
    assert all(not p.requires_grad for p in classifier.parameters())


def test_same_seed_gives_identical_weights_and_leaves_global_rng_alone(digits, tmp_path):
    x, y = digits[0][:256], digits[1][:256]
    rng_before = torch.get_rng_state()
    a = train_classifier(x, y, seed=3, epochs=1, batch_size=32, cache_dir=tmp_path / "a")
    b = train_classifier(x, y, seed=3, epochs=1, batch_size=32, cache_dir=tmp_path / "b")
    c = train_classifier(x, y, seed=4, epochs=1, batch_size=32, cache_dir=tmp_path / "c")
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)


def test_cache_hit_returns_identical_weights_without_training(digits, tmp_path, monkeypatch):
    x, y = digits[0][:256], digits[1][:256]
    first = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path)
    assert len(_cache_files(tmp_path)) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the weights were cached")

    monkeypatch.setattr(metrics, "_fit", no_training)
    second = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path)
    assert _same_weights(first, second)
    assert second.train_accuracy == first.train_accuracy
    assert not second.training and all(not p.requires_grad for p in second.parameters())


def test_cache_key_changes_with_data_labels_and_hyperparameters(digits, tmp_path):
    x, y = digits[0][:64].clone(), digits[1][:64].clone()
    kw = {"epochs": 1, "batch_size": 32, "cache_dir": tmp_path}
    train_classifier(x, y, **kw)
    x2 = x.clone()
    x2[0, 0, 0, 0] = 0.5
    train_classifier(x2, y, **kw)
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 10
    train_classifier(x, y2, **kw)
    train_classifier(x, y, seed=1, **kw)
    train_classifier(x, None, **kw)
    assert len(_cache_files(tmp_path)) == 5
    train_classifier(x.clone(), y.clone(), **kw)  # equal data: same key
    assert len(_cache_files(tmp_path)) == 5


def test_cache_dir_defaults_to_the_environment_variable(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("MINMAX_ENVS_CACHE", str(tmp_path))
    train_classifier(digits[0][:64], digits[1][:64], epochs=1, batch_size=32)
    assert len(_cache_files(tmp_path)) == 1


def test_a_corrupt_cache_file_is_retrained(digits, tmp_path):
    x, y = digits[0][:64], digits[1][:64]
    first = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path / "good")
    train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path / "bad")
    (path,) = _cache_files(tmp_path / "bad")
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(metrics.CacheWarning, match="is not used: its SHA-256 is not the one recorded"):
        again = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path / "bad")
    assert _same_weights(first, again)


def _zeroed(path) -> None:
    """Tamper a cache file as an attacker (or a bad copy) would: a valid torch file of the same configuration
    whose weights are all zero (the network's features then are constant: every Frechet distance 0)."""
    blob = torch.load(path, weights_only=True)
    blob["state_dict"] = {k: torch.zeros_like(v) for k, v in blob["state_dict"].items()}
    torch.save(blob, path)


def test_a_tampered_cache_is_retrained_not_used(digits, tmp_path):
    x, y = digits[0][:256], digits[1][:256]
    first = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path)
    real, fake = x[:128], torch.flip(x[128:], dims=(3,))
    honest = classifier_frechet_distance(real, fake, first)
    (path,) = _cache_files(tmp_path)
    _zeroed(path)
    zero = ClassifierFeatures(1, 10)
    zero.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    assert classifier_frechet_distance(real, fake, zero) == 0.0  # what the metric was with the tampered cache
    with pytest.warns(metrics.CacheWarning, match=r"classifier_features/\w+\.pt' is not used: its SHA-256 is not the "
                                                  r"one recorded when it was written.*trained again"):
        again = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path)
    assert _same_weights(first, again)
    assert classifier_frechet_distance(real, fake, again) == honest > 0
    # the cache was rewritten with its digest: the next call uses it, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same_weights(first, train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path))


@pytest.mark.parametrize("damage", ["no digest", "link", "weights of another shape"])
def test_an_unverifiable_cache_is_retrained(digits, tmp_path, damage):
    x, y = digits[0][:64], digits[1][:64]
    first = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path / "c")
    (path,) = _cache_files(tmp_path / "c")
    digest = path.with_name(path.name + ".sha256")
    if damage == "no digest":  # a cache of an older version, or a file dropped in by hand
        digest.unlink()
        why = "its digest .* cannot be read"
    elif damage == "link":  # a cache file that points elsewhere is not followed
        target = tmp_path / "elsewhere.pt"
        path.rename(target)
        path.symlink_to(target)
        why = "it is a symbolic link, which is not followed"
    else:  # consistent with its digest, but not this network's weights
        blob = torch.load(path, weights_only=True)
        blob["state_dict"]["head.weight"] = torch.zeros(3, 3)
        digest.write_text(metrics.save_tensors(path, blob) + "\n")
        why = "its weight 'head.weight' does not fit the network"
    with pytest.warns(metrics.CacheWarning, match=f"is not used: {why}"):
        again = train_classifier(x, y, epochs=1, batch_size=32, cache_dir=tmp_path / "c")
    assert _same_weights(first, again)
    assert path.is_file() and not path.is_symlink()


def test_rotation_task_without_labels(digits, tmp_path):
    x = digits[0][:512]
    model = train_classifier(x, None, epochs=2, batch_size=32, cache_dir=tmp_path)
    assert model.num_classes == 4
    acc = _rotation_accuracy(model, x)
    assert acc > 0.6  # chance is 0.25
    assert model.train_accuracy == pytest.approx(acc)
    with torch.no_grad():
        assert model(x[:3]).shape == (3, model.num_features)


def test_train_classifier_rejects_bad_inputs(digits, tmp_path):
    x, y = digits[0][:16], digits[1][:16]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train_classifier((x + 1) * 127.5, y, epochs=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="square"):
        train_classifier(torch.zeros(8, 1, 8, 6), None, epochs=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="labels"):
        train_classifier(x, y[:5], epochs=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(x, y, epochs=0, cache_dir=tmp_path)
    assert not (tmp_path / "classifier_features").exists()


# ----------------------------------------------------------------------------------------------------------------
# Frechet distances


def test_distance_of_a_set_to_itself_is_zero(classifier, digits):
    x = digits[0]
    assert abs(classifier_frechet_distance(x, x, classifier)) < 1e-6


def test_distance_grows_with_noise_and_shift(classifier, digits):
    x = digits[0]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    levels = [0.05, 0.1, 0.2, 0.4, 0.8]
    dists = [classifier_frechet_distance(x, (x + s * noise).clamp(-1, 1), classifier) for s in levels]
    assert dists[0] > 0
    assert all(a < b for a, b in zip(dists, dists[1:])), dists
    shifted = classifier_frechet_distance(x, (x + 0.5).clamp(-1, 1), classifier)
    same_data = classifier_frechet_distance(x[::2], x[1::2], classifier)  # sampling noise only
    assert shifted > 5 * same_data > 0


def test_torchmetrics_agrees_with_the_closed_form(classifier, digits):
    real = digits[0]
    fake = (real.flip(-1) + 0.3 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    ours = classifier_frechet_distance(real, fake, classifier, batch_size=500)
    with torch.no_grad():
        fr, ff = classifier(real).double(), classifier(fake).double()
    expected = frechet_distance_from_stats(fr.mean(0), torch.cov(fr.T), ff.mean(0), torch.cov(ff.T))
    assert expected > 1
    assert ours == pytest.approx(expected, rel=1e-6)


def test_batch_size_does_not_change_the_distance(classifier, digits):
    real, fake = digits[0][:600], digits[0][600:1300]
    a = classifier_frechet_distance(real, fake, classifier, batch_size=1000)
    b = classifier_frechet_distance(real, fake, classifier, batch_size=7)
    assert a == pytest.approx(b, rel=1e-6)


def test_classifier_frechet_distance_rejects_bad_inputs(classifier, digits):
    x = digits[0][:10]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        classifier_frechet_distance(x, (x + 1) * 127.5, classifier)
    with pytest.raises(ValueError, match="at least 2"):
        classifier_frechet_distance(x, x[:1], classifier)
    with pytest.raises(ValueError, match="channel"):
        classifier_frechet_distance(x.expand(-1, 3, -1, -1), x.expand(-1, 3, -1, -1), classifier)
    with pytest.raises(ValueError, match="shape"):
        classifier_frechet_distance(x, x[..., :4], classifier)


def test_closed_form_on_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # 1 + 6.25 + 4 + 1
    assert expected == pytest.approx(12.25)
    got = frechet_distance_from_stats(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)
    as_tensors = frechet_distance_from_stats(torch.tensor(mu1), torch.tensor(np.diag(a)), torch.tensor(mu2),
                                             torch.tensor(np.diag(b)))
    assert as_tensors == pytest.approx(expected, rel=1e-12)


def test_closed_form_on_full_covariances():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((6, 6))
    s1 = m @ m.T + 0.1 * np.eye(6)
    n = rng.standard_normal((6, 6))
    s2 = n @ n.T + 0.1 * np.eye(6)
    mu = rng.standard_normal(6)
    # Identical Gaussians, and a covariance scaled by c^2: Tr(S + c^2 S - 2 c S) = (1 - c)^2 Tr(S).
    assert abs(frechet_distance_from_stats(mu, s1, mu, s1)) < 1e-9
    assert frechet_distance_from_stats(mu, s1, mu, 9.0 * s1) == pytest.approx(4.0 * np.trace(s1), rel=1e-10)
    # Non-commuting covariances: against scipy's general matrix square root.
    reference = np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real) + np.sum((mu - 1.0) ** 2)
    assert frechet_distance_from_stats(mu, s1, np.ones(6), s2) == pytest.approx(reference, rel=1e-8)
    # Singular covariances are fine.
    low_rank = m[:, :2] @ m[:, :2].T
    assert abs(frechet_distance_from_stats(mu, low_rank, mu, low_rank)) < 1e-6
    with pytest.raises(ValueError, match="shape"):
        frechet_distance_from_stats(mu, s1[:5, :5], mu, s2)


# ----------------------------------------------------------------------------------------------------------------
# Image grids


def test_save_image_grid_size_and_gray_values(tmp_path):
    images = torch.full((10, 1, 8, 6), -1.0)
    images[:5] = 1.0
    images[9] = 0.0
    path = save_image_grid(images, tmp_path / "sub" / "grid.png", nrow=4, padding=2)
    assert path == tmp_path / "sub" / "grid.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "L"
        assert im.size == (4 * (6 + 2) + 2, 3 * (8 + 2) + 2)  # (width, height)
        px = np.asarray(im)
    assert (px[2:10, 2:8] == 255).all()  # image 0: white
    assert (px[12:20, 2:8] == 255).all()  # image 4: first of row 1, white
    assert (px[12:20, 10:16] == 0).all()  # image 5: black
    assert (px[22:30, 10:16] == 128).all()  # image 9: 0 -> 127.5 -> 128
    assert (px[:2] == 0).all() and (px[:, 8:10] == 0).all()  # padding
    assert (px[22:30, 18:] == 0).all()  # empty cells of the last row


def test_save_image_grid_rgb(tmp_path):
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(3, 3, 5, 5)
    path = save_image_grid(red, tmp_path / "rgb.png", nrow=8, padding=0)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (15, 5)
        px = np.asarray(im)
    assert (px[..., 0] == 255).all() and (px[..., 1:] == 0).all()
    with pytest.raises(ValueError, match="C in"):
        save_image_grid(torch.zeros(2, 2, 4, 4), tmp_path / "bad.png")


# ----------------------------------------------------------------------------------------------------------------
# Inception FID (optional dependency)


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None, reason="torch-fidelity is installed")
def test_inception_fid_explains_what_to_install():
    x = torch.zeros(4, 3, 8, 8)
    with pytest.raises(RuntimeError) as err:
        inception_fid(x, x)
    message = str(err.value)
    assert "torch-fidelity" in message and 'pip install "torchmetrics[image]"' in message
    assert "weights" in message

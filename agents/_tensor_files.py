"""Files of tensors: the one safe reader (:func:`load_tensors`) and the one atomic writer (:func:`save_tensors`) of
every file of tensors the suite reads or writes (``run_episode`` checkpoints, learned controllers' weights, the
feature classifier's cache), what such a file may hold (:func:`is_plain`, :func:`check_plain`), and the same atomic
write for a small file of bytes beside them (:func:`write_bytes`, e.g. a recorded digest).

Everything read from a file is hostile input. :func:`load_tensors` therefore

* opens the path without following a symbolic link (``O_NOFOLLOW``) and without blocking (a FIFO would wait for a
  writer), and reads it only if it is a regular file of at most ``max_bytes`` bytes;
* checks the file's SHA-256 where the caller recorded one (the bytes checked are the bytes loaded);
* unpickles with ``torch.load(weights_only=True)``: torch's restricted unpickler builds tensors, numbers, strings,
  ``None`` and lists, tuples and dicts of them, and refuses every other object, so loading never runs code.

Every failure is an :class:`UnreadableTensorFile` (a ``ValueError``) that says why in a few words; callers put it
in their own sentence (which file, what to do).

It lives in :mod:`agents`, the package :mod:`minmax_envs` builds on, because both read such files (the agents'
``torch.optim`` states are checked with :func:`is_plain`) and :mod:`agents` never imports :mod:`minmax_envs`.
:mod:`minmax_envs.checkpoint` re-exports it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

#: the leaves ``torch.load(weights_only=True)`` reads back (with lists, tuples and dicts of them)
PLAIN_LEAVES: tuple[type, ...] = (torch.Tensor, bool, int, float, str, type(None))

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class UnreadableTensorFile(ValueError):
    """A file :func:`load_tensors` refused or could not read.

    Attributes:
        path: the file.
        reason: why, in a few words (``"the file is empty"``, ``"it is a symbolic link, which is not followed"``,
            ``"it refers to builtins.exec, which is neither a tensor nor a plain container, ..."``).
        detail: the underlying error as ``"<type>: <message>"`` (torch's own reason, without its advice to load
            unsafely) when torch failed to read the file, else ``None`` (the file itself was refused).
    """

    def __init__(self, path: Path, reason: str, detail: str | None = None):
        super().__init__(f"{path} cannot be read: {reason}")
        self.path, self.reason, self.detail = path, reason, detail


def is_plain(x: Any) -> bool:
    """Whether ``torch.load(weights_only=True)`` reads ``x`` back: tensors, numbers, strings, ``None``, and lists,
    tuples and dicts (keys ``str`` or ``int``) of them."""
    if type(x) in (list, tuple):
        return all(map(is_plain, x))
    if type(x) in (dict, OrderedDict):
        return all(isinstance(k, (str, int)) and is_plain(v) for k, v in x.items())
    return isinstance(x, PLAIN_LEAVES)


def check_plain(x: Any, where: str) -> None:
    """Raise a ``TypeError`` naming the first entry of ``x`` that :func:`is_plain` refuses (``where`` names ``x``)."""
    if type(x) in (dict, OrderedDict):
        for k, v in x.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"cannot save {where}: key {k!r} is not a str or int")
            check_plain(v, f"{where}[{k!r}]")
    elif type(x) in (list, tuple):
        for i, v in enumerate(x):
            check_plain(v, f"{where}[{i}]")
    elif not isinstance(x, PLAIN_LEAVES):
        raise TypeError(f"cannot save {where}: a {type(x).__qualname__}; files of tensors hold tensors, numbers, "
                        "strings, None and lists, tuples and dicts of them (what torch.load(weights_only=True) reads)")


def _open_regular(path: Path, max_bytes: int) -> tuple[int, int]:
    """Open ``path`` for reading if it is a regular file (not through a link) of at most ``max_bytes`` bytes:
    ``(file descriptor, size)``; else :class:`UnreadableTensorFile`."""
    if not _O_NOFOLLOW and path.is_symlink():  # platforms without O_NOFOLLOW
        raise UnreadableTensorFile(path, "it is a symbolic link, which is not followed (pass the file itself)")
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_BINARY)
    except FileNotFoundError:
        raise UnreadableTensorFile(path, "it does not exist") from None
    except OSError as e:
        if path.is_symlink():  # ELOOP (or EMLINK on some BSDs): O_NOFOLLOW met a link
            raise UnreadableTensorFile(path, "it is a symbolic link, which is not followed (pass the file itself)") \
                from None
        raise UnreadableTensorFile(path, f"{type(e).__name__}: {e}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableTensorFile(path, "it is a directory")
        if not stat.S_ISREG(info.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode)
                    or stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "special")
            raise UnreadableTensorFile(path, f"it is {kind} file, not a regular file")
        if info.st_size == 0:
            raise UnreadableTensorFile(path, "the file is empty")
        if info.st_size > max_bytes:
            raise UnreadableTensorFile(path, f"it is {info.st_size} bytes, more than the {max_bytes} bytes such a "
                                             "file may have")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link) of at most ``max_bytes`` bytes, else
    :class:`UnreadableTensorFile`."""
    fd, size = _open_regular(path, max_bytes)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while read
        raise UnreadableTensorFile(path, f"it is more than the {max_bytes} bytes such a file may have")
    return data


def _why(e: BaseException) -> tuple[str, str]:
    """``(reason, detail)`` of a failed ``torch.load`` (see :class:`UnreadableTensorFile`)."""
    msg = str(e)
    text = msg
    if "WeightsUnpickler error:" in text:  # torch's reason, not its advice to load unsafely
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = text.split("Please use", 1)[0].split("Check the documentation", 1)[0]
    detail = f"{type(e).__name__}: {' '.join(text.split())}"
    if m := re.search(r"GLOBAL ([\w.]+)", msg):
        return (f"it refers to {m.group(1)}, which is neither a tensor nor a plain container, so it is not loaded "
                "(a file of another program or of an older version, or one crafted to run code)"), detail
    if "zip archive" in msg or "central directory" in msg:
        return "it is truncated or corrupt (not a complete torch zip archive)", detail
    if m := re.search(r"Unsupported operand \d+", msg):
        return f"it is not a torch checkpoint ({m.group(0)})", detail
    if isinstance(e, OSError):
        return f"{type(e).__name__}: {e}", detail
    first = next((line.strip() for line in msg.splitlines() if line.strip()), "")
    return f"it is not a torch checkpoint ({type(e).__name__}{': ' + first[:120] if first else ''})", detail


def load_tensors(path: str | os.PathLike, *, max_bytes: int, sha256: str | None = None,
                 map_location: str | torch.device | None = "cpu") -> Any:
    """Read a file of tensors safely (see the module docstring): the one loader of the suite.

    Args:
        path: the file; a symbolic link is refused, not followed.
        max_bytes: the largest file accepted (a guard against a file that would exhaust memory).
        sha256: the hex SHA-256 the file's bytes must have (recorded when it was written), or ``None``.
        map_location: as ``torch.load``'s (``"cpu"``: tensors on the CPU whatever device wrote them).

    Returns:
        What ``torch.load(weights_only=True)`` builds: tensors, numbers, strings, ``None``, lists, tuples, dicts.

    Raises:
        UnreadableTensorFile: the path is missing, a link, a directory or another special file, empty, larger
            than ``max_bytes``, has another digest than ``sha256``, or is not a file that torch's restricted
            unpickler reads (truncated, foreign, or naming any object but a tensor or a plain container).
    """
    path = Path(path)
    if sha256 is not None:
        data = read_regular_file(path, max_bytes)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise UnreadableTensorFile(path, "its SHA-256 is not the one recorded when it was written (changed or "
                                             "damaged since)")
        source: Any = io.BytesIO(data)
    else:
        fd, _ = _open_regular(path, max_bytes)
        source = os.fdopen(fd, "rb")
    try:
        with warnings.catch_warnings():  # torch warns of a foreign pickle's protocol; the error says more
            warnings.simplefilter("ignore")
            return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - empty, truncated, corrupt or foreign files: one clear error
        raise UnreadableTensorFile(path, *_why(e)) from None
    finally:
        source.close()


def save_tensors(path: str | os.PathLike, payload: Any, *, what: str = "the file") -> str:
    """Write ``payload`` with ``torch.save`` atomically: into a new temporary file beside ``path`` (created
    exclusively: a planted link is never written through), then renamed over ``path`` (a link at ``path`` is
    replaced, not followed). A crash mid-write leaves the old file or none, never a truncated one.

    Args:
        path: the file to write; its directory is created if needed.
        payload: tensors and plain containers only (:func:`check_plain`: what :func:`load_tensors` reads back).
        what: how a ``TypeError`` about a payload that is not plain names it.

    Returns:
        The SHA-256 of the bytes written (hex), for callers that record it to check the file on reading.
    """
    check_plain(payload, what)
    digest = hashlib.sha256()

    def write(f: io.BufferedWriter) -> None:
        torch.save(payload, _HashingWriter(f, digest))

    _replace_atomically(Path(path), write)
    return digest.hexdigest()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, as :func:`save_tensors` writes (a new temporary file beside it, then a
    rename: never through a link, never a truncated file)."""
    _replace_atomically(Path(path), lambda f: f.write(data))


def _replace_atomically(path: Path, write: Any) -> None:
    """``write(f)`` into a new temporary file beside ``path`` (created exclusively), synced, then renamed over
    ``path``; the temporary file is removed if anything fails. The directory is created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _HashingWriter:
    """A write-only stream that hashes what it passes on (torch.save writes its zip archive sequentially)."""

    def __init__(self, f: io.BufferedWriter, digest: Any):
        self.f, self.digest = f, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


__all__ = ["PLAIN_LEAVES", "UnreadableTensorFile", "check_plain", "is_plain", "load_tensors", "read_regular_file",
           "save_tensors", "write_bytes"]

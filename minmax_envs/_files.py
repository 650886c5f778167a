"""Writing inside one directory only: no link is followed, every replaced file is replaced atomically.

A :class:`Folder` is a directory that the program writes into (a results directory, a TensorBoard log
directory). The directory itself is the user's choice and may be reached through a link; everything *inside* it is
reached from an open descriptor of it, one component at a time, with ``O_NOFOLLOW``:

* a folder inside it that is a symbolic link (or not a folder) is **refused** (``ValueError`` naming it), never
  entered, so nothing written through the folder lands outside it;
* a file is **replaced** atomically (:meth:`Folder.write`): the bytes go to a new temporary file in the same folder
  (created with ``O_EXCL | O_NOFOLLOW``, so a planted link or file under the temporary name is never written
  through), flushed to disk, then renamed over the name. A symbolic link at the name is replaced by the file, its
  target untouched; a reader sees the old file or the new one, never a part;
* a file that grows (a log, the results store) is opened for appending or reading with ``O_NOFOLLOW``
  (:meth:`Folder.open`): a symbolic link there is **refused**, and so is anything that is not a regular file
  (a FIFO, a device), before a byte is read or written.

Names are one or more components joined by ``/`` (``"plots/x.png"``); a component may not be empty, ``.`` or
``..`` (:func:`check_name`), so a name cannot leave the folder. Names made from user text (task and agent names)
go through :func:`path_part` first.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")
MAX_PART = 100  # characters of a name made by path_part (file systems allow 255 bytes)


def check_name(name: str) -> list[str]:
    """The components of ``name``, a relative path inside a folder; a ``ValueError`` for an absolute path, an empty
    component, ``.`` or ``..``."""
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise ValueError(f"{name!r} is not a name inside a folder (components must not be empty, '.' or '..')")
    return parts


def path_part(name: str) -> str:
    """A user's name (a task, an agent such as ``torch:torch.optim.Adam?betas=[0.5,0.9]``) as one safe path component:
    runs of characters other than letters, digits and ``_.=+-`` become ``_``, outer dots and underscores go
    (so never ``.``, ``..`` or a hidden name), and a name longer than :data:`MAX_PART` keeps its start and gets a hash
    of the whole (``_`` for nothing left)."""
    part = _UNSAFE.sub("_", name).strip("._") or "_"
    if len(part) > MAX_PART:
        part = part[: MAX_PART - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return part


def _refused(path: Path, what: str) -> ValueError:
    return ValueError(f"{path} is {what}; the program writes into plain folders only and never follows a link "
                      "(remove it, or use another directory)")


class Folder:
    """The directory ``root`` (created with its parents on the first write if missing) and what is inside it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    # --- descriptors -----------------------------------------------------------------------------------------------

    def _open_root(self, create: bool) -> int:
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except NotADirectoryError:
            if self.root.exists():
                raise ValueError(f"{self.root} is not a directory") from None
            raise  # a file among its parents: the system's message names it

    @contextmanager
    def _dir(self, parts: list[str], create: bool) -> Iterator[int | None]:
        """A descriptor of the folder ``parts`` inside the root (created if ``create``), entered without following a
        link; ``None`` if it does not exist and ``create`` is false."""
        try:
            fd = self._open_root(create)
        except FileNotFoundError:
            yield None
            return
        try:
            for i, part in enumerate(parts):
                try:
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                        raise _refused(self.root.joinpath(*parts[: i + 1]), "a symbolic link" if stat.S_ISLNK(
                            st.st_mode) else "not a folder") from None
                    raise
                os.close(fd)
                fd = sub
            yield fd
        finally:
            os.close(fd)

    # --- what is there ---------------------------------------------------------------------------------------------

    def lstat(self, name: str) -> os.stat_result | None:
        """The status of ``name`` itself (a link is not followed), or ``None`` if there is nothing."""
        *parents, last = check_name(name)
        with self._dir(parents, create=False) as fd:
            if fd is None:
                return None
            try:
                return os.stat(last, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None

    def listdir(self, name: str = "") -> list[str]:
        """The entries of the folder ``name`` ("" for the root); ``[]`` if it does not exist."""
        with self._dir(check_name(name) if name else [], create=False) as fd:
            return [] if fd is None else sorted(os.listdir(fd))

    # --- writing ---------------------------------------------------------------------------------------------------

    def write(self, name: str, data: bytes) -> Path:
        """Replace ``name`` by a file holding ``data``, atomically (see :meth:`replace`); returns its path."""
        with self.replace(name) as f:
            f.write(data)
        return self / name

    @contextmanager
    def replace(self, name: str) -> Iterator[BinaryIO]:
        """A new file to write, which replaces ``name`` atomically when the block ends without an error (temporary
        file, fsync, rename; see the module docstring) and is removed when it raises. A symbolic link at ``name``
        is replaced, a folder there is refused."""
        *parents, last = check_name(name)
        with self._dir(parents, create=True) as fd:
            assert fd is not None
            old = _lstat_at(last, fd)
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise _refused(self / name, "a folder where a file belongs")
            tmp = f".{last[:80]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=fd)
            try:
                with os.fdopen(out, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, last, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
            _fsync(fd)

    def write_text(self, name: str, text: str) -> Path:
        return self.write(name, text.encode("utf-8"))

    def remove(self, name: str) -> bool:
        """Remove the file (or link: never its target) ``name``; whether there was one."""
        *parents, last = check_name(name)
        with self._dir(parents, create=False) as fd:
            if fd is None:
                return False
            try:
                os.unlink(last, dir_fd=fd)
            except FileNotFoundError:
                return False
        return True

    @contextmanager
    def open(self, name: str, mode: str) -> Iterator[BinaryIO | None]:
        """``name`` opened in binary mode ``"rb"`` (``None`` if it does not exist), ``"ab"`` (created if missing) or
        ``"r+b"``, never through a link: a symbolic link or anything but a regular file there is refused."""
        flags = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+b": os.O_RDWR}[mode]
        *parents, last = check_name(name)
        with self._dir(parents, create=mode == "ab") as fd:
            if fd is None:
                yield None
                return
            try:  # O_NONBLOCK: opening a FIFO must not wait for a writer before it is refused
                raw = os.open(last, flags | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), 0o644, dir_fd=fd)
            except FileNotFoundError:
                if mode != "rb":
                    raise
                yield None
                return
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise _refused(self / name, "a symbolic link") from None
                raise
        try:
            if not stat.S_ISREG(os.fstat(raw).st_mode):
                raise ValueError(f"{self / name} is not a regular file; the program reads and writes regular files "
                                 "only (remove it, or use another directory)")
            os.set_blocking(raw, True)
            f = os.fdopen(raw, mode)
        except BaseException:
            os.close(raw)
            raise
        with f:
            yield f

    def fsync(self) -> None:
        """Flush the root folder's entries (a rename or a new file in it) to disk."""
        with self._dir([], create=False) as fd:
            if fd is not None:
                _fsync(fd)


def _lstat_at(name: str, fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:
        pass

"""Reading JSON that may be hostile (suite files, a results directory's ``suite.json`` and ``results.jsonl``,
controller descriptions): regular files only, bounded sizes, bounded nesting.

Python's ``json`` module recurses once per nested array or object, so ``[[[[...]]]]`` a few thousand deep raises
a ``RecursionError`` (a traceback, not a message), and whatever walks the parsed value next recurses as deep.
:func:`loads` refuses text nested deeper than :data:`MAX_DEPTH` with a ``json.JSONDecodeError`` (a ``ValueError``),
the error every caller already reports for invalid JSON. A FIFO or a device opened for reading blocks or never
ends (``/dev/zero``): :func:`open_regular` refuses anything but a regular file before reading a byte, and
:func:`read_text` and :func:`lines` cap how much one file or one line may hold.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from typing import IO, Any

MAX_DEPTH = 64  # arrays and objects within each other; suites and records need fewer than 10
MAX_FILE_BYTES = 64 * 2**20  # a JSON file read whole: suite files, suite.json, controller descriptions
MAX_LINE_BYTES = 64 * 2**20  # one line of a JSON-lines file: a record is a few kB (curves, samples)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """A ``json.JSONDecodeError`` at the first bracket that opens level ``max_depth + 1`` of ``text``."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(lambda s: "_" * len(s.group()), text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > max_depth:
            raise json.JSONDecodeError(f"nested deeper than {max_depth} levels of arrays and objects", text,
                                       m.start())


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` of text nested at most :data:`MAX_DEPTH` deep; deeper text raises ``json.JSONDecodeError``."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    check_depth(text)
    try:
        return json.loads(text, **kwargs)
    except RecursionError:  # pragma: no cover - check_depth comes first
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels of arrays and objects", text, 0) from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """``path`` opened for binary reading if it is a regular file (a link to one is followed), else a
    ``ValueError`` naming the file and what it is: a FIFO or a device is never read (opened without blocking,
    checked before the first byte). Missing files raise ``FileNotFoundError`` as ``open`` does."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{os.fspath(path)!r} is a {_kind(mode)}, not a regular file; it is not read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    f.raw.name = os.fspath(path)  # messages name the file, not the descriptor
    return f


def read_text(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (:func:`open_regular`), or a ``ValueError`` if it holds more
    than ``max_bytes``; bad UTF-8 raises ``UnicodeDecodeError``."""
    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{os.fspath(path)!r} is larger than {_size(max_bytes)}; it is not read")
    return data.decode("utf-8")


def read_json(path: str | os.PathLike, what: str, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The JSON value of the file ``path``, or a ``ValueError`` whose one line names ``what`` (``"suite file"``)
    and the file: not a regular file, too large, not UTF-8, not JSON (with line and column), nested too deep,
    unreadable."""
    key = os.fspath(path)
    try:
        return loads(read_text(path, max_bytes))
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {key!r} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {key!r} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except OSError as e:
        raise ValueError(f"cannot read {what} {key!r}: {e.strerror}") from None
    except ValueError as e:
        raise ValueError(f"{what} {e}") from None


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n >= 2**20 else f"{n} bytes"


def lines(f: IO[bytes], max_bytes: int | None = None, name: str | os.PathLike | None = None) -> Iterator[bytes]:
    """The lines of the binary file ``f`` (each with its newline, the last one perhaps without), as iterating
    over ``f`` gives them, except that a line longer than ``max_bytes`` (:data:`MAX_LINE_BYTES`) raises a
    ``ValueError`` naming the file (``name``, else ``f.name``) and the line instead of being read into memory
    whole."""
    limit = MAX_LINE_BYTES if max_bytes is None else max_bytes
    number = 0
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limit and not (len(raw) == limit + 1 and raw.endswith(b"\n")):
            name = str(name if name is not None else getattr(f, "name", "the file"))
            raise ValueError(f"{name!r}: line {number} is longer than {_size(limit)}, which no record is; this is not "
                             "a results file written by minmax_envs: move it away or use another results directory")
        yield raw

"""The results store: one JSON line per finished episode (one seed), appended atomically.

``DIR/results.jsonl`` holds every episode of every sweep written to ``DIR``. A batch of episodes (the
seeds of one batched run) is written with a single ``write`` on a file opened in append mode and then
flushed to disk, so a crash leaves either all of the batch or, at worst, a truncated last line, which
:meth:`ResultStore.records` skips. Every record carries its ``key`` (a hash of what defines the episode); a
re-run skips the keys already stored, so an interrupted sweep resumes without repeating or losing a finished
episode.

A record is declared in :mod:`minmax_envs.evaluation.record` (its fields, their JSON types and roles; checked by
:func:`~minmax_envs.evaluation.record.validate_record`); other fields are allowed (and kept).

**Damaged lines.** A line that is not UTF-8, not JSON (``NaN`` included: the store writes strict JSON) or not a
record by this schema is skipped by :meth:`ResultStore.records`, which
warns once per read (a :class:`DamagedRecordWarning` naming the file and the line numbers): its episode counts
as not run, so a resumed sweep runs it again and a report leaves it out. The next :meth:`ResultStore.append`
moves such lines, and a torn last line, to ``DIR/results.damaged.jsonl`` (one JSON object per line: the line
number, the problem, the text) and rewrites ``results.jsonl`` without them (a new file renamed over the old
one), so the main file stays clean and nothing is deleted. Appends hold an exclusive lock
(``DIR/.results.lock``, POSIX ``flock``) so that this rewrite never loses the records of another process
appending to the same directory.

**Links.** Every file of the store is opened inside its directory without following a link
(:class:`minmax_envs._files.Folder`): a ``results.jsonl``, ``results.damaged.jsonl`` or ``.results.lock`` that is a
symbolic link, a FIFO or a device is refused with a ``ValueError`` naming it, before anything is read or written;
the rewrite goes to a new temporary file renamed over ``results.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from minmax_envs import _json
from minmax_envs._files import Folder
from minmax_envs.evaluation.record import OPTIONAL_FIELDS, PHASES, RECORD_FIELDS, FieldType, validate_record

RESULTS_FILE = "results.jsonl"
DAMAGED_FILE = "results.damaged.jsonl"
LOCK_FILE = ".results.lock"
SUITE_FILE = "suite.json"
ERRORS_FILE = "errors.jsonl"
CLAIMS_DIR = ".claims"
LEADERBOARD = "leaderboard.md"
SUMMARY_CSV = "summary.csv"
CONFIGS_CSV = "configs.csv"
PLOTS_DIR = "plots"
LAYOUT: dict[str, str] = {
    RESULTS_FILE: "appended", DAMAGED_FILE: "appended", LOCK_FILE: "appended", ERRORS_FILE: "appended",
    SUITE_FILE: "replaced", LEADERBOARD: "replaced", SUMMARY_CSV: "replaced", CONFIGS_CSV: "replaced",
    CLAIMS_DIR: "folder", PLOTS_DIR: "folder",
}
"""The names a results directory may hold and how the program writes each (docs/evaluation.md): a file
``"appended"`` (opened in place: a link there is refused), a file ``"replaced"`` (a new file renamed over it: a link
there is replaced) or a ``"folder"`` (entered: a link there is refused). Temporary files (``.NAME.PID.RANDOM.tmp``)
come and go beside them."""


def check_layout(folder: Folder) -> None:
    """Refuse (``ValueError`` naming it) a name of :data:`LAYOUT` in ``folder`` that the program would have to follow
    or could not write: a symbolic link where a file is appended or a folder entered, a folder where a file belongs,
    or a file (a FIFO, a device...) where a folder or a regular file belongs."""
    for name, kind in LAYOUT.items():
        st = folder.lstat(name)
        if st is None:
            continue
        path = folder / name
        if stat.S_ISLNK(st.st_mode):
            if kind != "replaced":
                raise ValueError(f"{path} is a symbolic link; a results directory holds plain files and folders only "
                                 "and the program never follows a link there (remove it, or use another directory)")
        elif kind == "folder" and not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{path} is not a folder; the program writes its {name} there (remove it, or use "
                             "another directory)")
        elif kind != "folder" and not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file; the program writes its {name} there (remove it, or use "
                             "another directory)")
MAX_LISTED = 5  # damaged lines named one by one in a warning


def episode_key(identity: dict[str, Any]) -> str:
    """The key of an episode: the sha1 of its ``identity`` (every input that can change its record; see
    :meth:`minmax_envs.evaluation.protocol.Unit.identity`) as canonical JSON."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()


# --- lines of a results file ---------------------------------------------------------------------------------------

class DamagedRecordWarning(UserWarning):
    """Lines of a results file that are not records were skipped (see :mod:`minmax_envs.evaluation.store`)."""


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based
    start: int  # byte offset in the file
    raw: bytes
    record: dict[str, Any] | None  # None: damaged, torn or blank
    problem: str | None  # why it is not a record (None for a record or a blank line)

    @property
    def torn(self) -> bool:
        return not self.raw.endswith(b"\n")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)``, ``(None, None)`` for a blank line, or ``(None, why it is not a record)``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
    if not text.strip():
        return None, None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return None, f"not JSON ({e.msg} at column {e.colno})"
    except (ValueError, RecursionError) as e:
        return None, f"not JSON ({e})"
    try:
        return validate_record(value), None
    except ValueError as e:
        return None, f"not a record ({e})"
    except RecursionError:
        return None, "not a record (nested too deeply)"


def _lines(f: IO[bytes], path: Path, start: int = 0, number: int = 1) -> Iterator[_Line]:
    """The lines of the binary file ``f`` (the file ``path``) from byte ``start`` (line ``number``), each parsed."""
    for raw in _json.lines(f, name=path):  # a line longer than any record is refused, not read whole
        yield _Line(number, start, raw, *_parse(raw))
        start, number = start + len(raw), number + 1


def _problem(line: _Line) -> str:
    return f"torn last line, an interrupted write ({line.problem})" if line.torn else str(line.problem)


def _damage_message(path: Path, lines: list[_Line]) -> str:
    def cut(text: str, limit: int = 160) -> str:
        return text if len(text) <= limit else text[: limit - 3] + "..."

    listed = "; ".join(f"line {ln.number}: {cut(_problem(ln))}" for ln in lines[:MAX_LISTED])
    more = f"; and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
    return (f"{path}: skipped {len(lines)} damaged line(s) ({listed}{more}); their episodes count as not run (a "
            f"resumed sweep runs them again) and the next write to the store moves them to {DAMAGED_FILE}")


def read_json(folder: Folder, name: str) -> Any:
    """The JSON value of the file ``name`` in ``folder`` (``None`` if it is missing), read without following a link;
    else a ``ValueError`` saying ``cannot be read (why)``: a link, not a regular file, not UTF-8, not JSON, nested
    too deeply."""
    try:
        with folder.open(name, "rb") as f:
            if f is None:
                return None
            raw = f.read(_json.MAX_FILE_BYTES + 1)
        if len(raw) > _json.MAX_FILE_BYTES:
            raise ValueError(f"larger than {_json.MAX_FILE_BYTES} bytes")
        return _json.loads(raw.decode("utf-8"), parse_constant=_no_constant)  # nesting bounded
    except RecursionError:
        raise ValueError("cannot be read (nested too deeply)") from None
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"cannot be read ({e})") from None


# --- the store -----------------------------------------------------------------------------------------------------

class ResultStore:
    """Append-only JSONL store of episode records in a directory (created on the first append)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"results directory {str(self.dir)!r} exists and is not a directory")
        self.folder = Folder(self.dir)
        self.path = self.dir / RESULTS_FILE
        self.damaged_path = self.dir / DAMAGED_FILE
        for p in (self.path, self.damaged_path):
            if p.is_dir():
                raise ValueError(f"results file {str(p)!r} is a directory; the results store needs that name for "
                                 "its JSONL file: move the directory away or use another results directory")
        # (inode, bytes, lines) of a prefix of results.jsonl known to hold only records, each line ended
        self._clean: tuple[int, int, int] | None = None
        self._known: tuple[int, int, set[str]] = (-1, 0, set())  # (inode, bytes read, keys) of fresh_keys

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, in write order. A torn last line (a crash mid-write) is skipped; so is a damaged line
        (not UTF-8, not JSON, not a record by :data:`RECORD_FIELDS`), with one :class:`DamagedRecordWarning` per
        read naming the file and the lines. Keys already seen are skipped too, so a record is never counted
        twice. A results file that is a symbolic link or not a regular file is refused (``ValueError``)."""
        seen: set[str] = set()
        damaged: list[_Line] = []
        try:
            with self._reading() as f:
                if f is None:
                    return
                inode, end, count, torn = os.fstat(f.fileno()).st_ino, 0, 0, False
                for line in _lines(f, self.path):
                    end, count, torn = line.start + len(line.raw), line.number, line.torn
                    if line.record is None:
                        if line.problem is not None and not line.torn:
                            damaged.append(line)
                        continue
                    if line.record["key"] in seen:
                        continue
                    seen.add(line.record["key"])
                    yield line.record
                if not damaged and not torn:
                    self._clean = (inode, end, count)  # the next append need not read these lines again
        finally:
            if damaged:
                warnings.warn(_damage_message(self.path, damaged), DamagedRecordWarning, stacklevel=2)

    @contextmanager
    def _reading(self) -> Iterator[IO[bytes] | None]:
        try:
            with self.folder.open(RESULTS_FILE, "rb") as f:
                yield f
        except OSError as e:
            raise ValueError(f"cannot read the results file {str(self.path)!r}: {e.strerror}") from None

    def keys(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def fresh_keys(self) -> set[str]:
        """The keys stored now, like :meth:`keys`, reading only the lines appended since the last call (all of the
        file again if it was replaced meanwhile): cheap enough to ask before every unit of a sweep."""
        inode, offset, keys = self._known
        with self._reading() as f:
            if f is None:
                self._known = (-1, 0, set())
                return set()
            st = os.fstat(f.fileno())
            if st.st_ino != inode or st.st_size < offset:
                offset, keys = 0, set()
            f.seek(offset)
            for line in _lines(f, self.path, offset):
                if line.torn:
                    break
                if line.record is not None:
                    keys.add(line.record["key"])
                offset = line.start + len(line.raw)
            self._known = (st.st_ino, offset, keys)
        return set(keys)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records in one write, then fsync: all of them land, or (crash) none is read back.

        Each must be a record by :data:`RECORD_FIELDS` once written as strict JSON, else a ``ValueError`` and
        nothing is written: the store never writes a line it would skip. Damaged lines and a torn last line
        already in the file are first moved to ``results.damaged.jsonl`` (see the module docstring)."""
        lines = []
        for r in records:
            line = json.dumps(r, allow_nan=False)
            try:
                validate_record(json.loads(line))
            except ValueError as e:
                raise ValueError(f"not an episode record: {e}") from None
            lines.append(line + "\n")
        if not lines:
            return
        with self._locked():
            count = self._quarantine()
            with self.folder.open(RESULTS_FILE, "ab") as f:
                f.write("".join(lines).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
                st = os.fstat(f.fileno())
            self._clean = (st.st_ino, st.st_size, count + len(lines))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the directory's writes (POSIX ``flock``; no lock where there is none)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: one writing process per directory
            yield
            return
        with self.folder.open(LOCK_FILE, "ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _quarantine(self) -> int:
        """Under the lock: leave ``results.jsonl`` holding only records, each line ended, moving the rest to
        ``results.damaged.jsonl``; returns its number of lines. Reads only what was added since the file was
        last known clean."""
        st = self.folder.lstat(RESULTS_FILE)
        if st is None:
            return 0
        start, number = 0, 1
        if self._clean is not None and self._clean[0] == st.st_ino and self._clean[1] <= st.st_size:
            start, number = self._clean[1], self._clean[2] + 1
        damaged, last = False, None
        with self.folder.open(RESULTS_FILE, "rb") as f:
            f.seek(start)
            for line in _lines(f, self.path, start, number):
                damaged = damaged or (line.problem is not None and not line.torn)
                last = line
        if damaged:
            return self._rewrite()
        count = number - 1 if last is None else last.number
        if last is not None and last.torn:
            if last.record is not None:  # a whole record that lacks only its newline
                with self.folder.open(RESULTS_FILE, "ab") as f:
                    f.write(b"\n")
                    os.fsync(f.fileno())
            else:
                if last.problem is not None:
                    self._set_aside([last])  # first: a crash in between leaves the line in both files, not neither
                with self.folder.open(RESULTS_FILE, "r+b") as f:
                    f.truncate(last.start)
                    os.fsync(f.fileno())
                count -= 1
        return count

    def _rewrite(self) -> int:
        """Copy the records to a new file, set the rest aside, rename the copy over ``results.jsonl``."""
        bad, kept = [], 0
        with self.folder.open(RESULTS_FILE, "rb") as src, self.folder.replace(RESULTS_FILE) as dst:
            for line in _lines(src, self.path):
                if line.record is not None:
                    dst.write(line.raw if not line.torn else line.raw + b"\n")
                    kept += 1
                elif line.problem is not None:
                    bad.append(line)
            self._set_aside(bad)  # before the rename: a crash in between leaves a line in both files, not neither
        return kept

    def _set_aside(self, lines: list[_Line]) -> None:
        """Append ``lines`` to ``results.damaged.jsonl``: their line number, problem and text, one JSON object each."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        out = "".join(json.dumps({"line": ln.number, "problem": _problem(ln), "moved": stamp,
                                  "text": ln.raw.decode("utf-8", "backslashreplace").rstrip("\n")}) + "\n"
                      for ln in lines)
        with self.folder.open(DAMAGED_FILE, "ab") as f:
            f.write(out.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def __len__(self) -> int:
        return sum(1 for _ in self.records())

    def __repr__(self) -> str:
        return f"ResultStore({str(self.dir)!r})"


__all__ = ["DAMAGED_FILE", "LAYOUT", "OPTIONAL_FIELDS", "PHASES", "RECORD_FIELDS", "RESULTS_FILE", "SUITE_FILE",
           "DamagedRecordWarning", "FieldType", "ResultStore", "check_layout", "episode_key", "read_json",
           "validate_record"]

"""CPU allocator tuning: keep freed memory in the process instead of returning it to the OS at every step."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_cpu_allocator(mmap_threshold: int = 1 << 30) -> bool:
    """Make glibc serve large blocks from its heap and keep freed ones (``mallopt`` of the mmap and trim
    thresholds), for this process.

    Agents and games here are functional: every step allocates fresh tensors of the parameters' size and
    frees the previous ones. With glibc's defaults, blocks above a dynamic threshold are ``mmap``-ed and
    unmapped on free, so every step pays page faults on fresh pages; for a 5 MB tensor that makes an add
    ~3.5x slower on the CPU (``docs/performance.md``). After this call freed memory is reused instead (the
    process keeps its peak memory). Called by the ``minmax`` command and the benchmarks; call it yourself in
    a script. Returns whether it applied (Linux with glibc; elsewhere it does nothing and returns False).
    Equivalent environment variables, set before Python starts: ``MALLOC_MMAP_THRESHOLD_=1073741824
    MALLOC_TRIM_THRESHOLD_=2147483647``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))

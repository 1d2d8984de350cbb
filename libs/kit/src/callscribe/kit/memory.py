"""glibc malloc settings for long-running services that move large buffers.

gRPC messages of megabytes are allocated and freed constantly. glibc raises its mmap threshold
after such frees and keeps one arena per thread, so freed buffers stay in the process (RSS
creeps up by tens of MiB under load). A fixed threshold returns large buffers to the OS at once;
few arenas keep per-thread caches small.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def return_large_buffers_to_os(mmap_threshold: int = 256 * 1024, arenas: int = 2) -> bool:
    """Apply the settings; False (and a log line) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.info("mallopt not available (not glibc): malloc left at its defaults")
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(_M_ARENA_MAX, arenas) == 1
    if not ok:
        log.warning("mallopt refused the settings; RSS may grow under large uploads")
    return ok

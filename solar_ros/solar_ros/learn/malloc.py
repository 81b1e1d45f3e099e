"""Make a training thread as fast as the main thread: one glibc malloc arena for the process.

glibc gives each new thread its own malloc arena; torch's large, short-lived buffers then
go through mmap and munmap in a thread that is not the main one, and a model fit in such a
thread took 1.7 times as long as in the main thread on this machine (the learner node
refits in a background thread). With one shared arena both take the same time.
"""

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # mallopt parameter of glibc's malloc.h


def share_malloc_arena() -> bool:
    """Limit glibc to one malloc arena; return whether it applied (False off glibc).

    Call it before the threads that allocate are started; arenas already made stay.
    """
    name = ctypes.util.find_library('c')
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):  # not glibc: no mallopt, nothing to do
        return False

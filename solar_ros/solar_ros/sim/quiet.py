"""Silence what native libraries print on the process's stdout and stderr (PyBullet's banner)."""

from contextlib import contextmanager
import os
import sys
from typing import Iterator


@contextmanager
def quiet_native_output() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null inside the block, then restore them.

    Python's own ``sys.stdout`` and ``sys.stderr`` are flushed first, so nothing written
    before the block is lost; anything written inside it, by Python or C, is dropped.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, 'w') as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)

"""One leftover at a time: an exclusive flock on a file under /run.

A second copy does not wait behind a slow first one; it learns at once that
the lock is held and the caller exits.
"""

import fcntl
import os
from pathlib import Path

DEFAULT_LOCK = Path("/run/leftover.lock")


class LockHeld(Exception):
    """The lock cannot be had: another leftover holds it, or the file cannot be used."""


def take_lock(path: Path) -> int:
    """An open descriptor holding the lock until the process exits."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise LockHeld(f"cannot open lock file {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockHeld(f"another leftover holds {path}") from None
    except OSError as error:
        os.close(fd)
        raise LockHeld(f"cannot lock {path}: {error.strerror}") from None
    return fd

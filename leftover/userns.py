"""Who owns the user namespace a process runs in, as the kernel says.

A process in a user namespace other than the initial one (a rootless podman or
apptainer --fakeroot container, `unshare --user`) may run as a subordinate UID
that no job, squeue line or protected_users entry names. The kernel knows who
made the namespace: the owner of the outermost namespace below the initial
one is the user the container belongs to. This module reads that owner.

Rules this module keeps:
- It only reads. It never signals, never joins a namespace, and never consults
  /etc/subuid: that file is policy for new namespaces, not a fact about a
  running process.
- "Initial or not" is decided by readlink(/proc/PID/ns/user) alone: the
  kernel names its initial user namespace with a fixed inode. Only a process
  in another namespace is opened and asked with ioctls, so a fake /proc tree
  whose processes are all in the initial namespace works without them.
- The ioctl walk is done once per namespace per reader: a namespace is cached
  only while this reader holds it open, so its inode cannot be freed and
  reused for another user's namespace while the cache names it.
- A process that vanishes mid-read is an ordinary outcome (None). Anything
  else that stops the read is an answer too: the namespace is unreadable, with
  why, and the process must be left alone.
"""

import errno
import fcntl
import os
import struct
from pathlib import Path
from typing import NamedTuple

# include/linux/proc_ns.h: PROC_USER_INIT_INO = 0xEFFFFFFDU, the inode of the
# initial user namespace; namespaces made later get inodes from
# PROC_DYNAMIC_FIRST (0xF0000000) up, so no other one can carry it.
INITIAL_USERNS_INODE = 0xEFFFFFFD
INITIAL_USERNS_LINK = f"user:[{INITIAL_USERNS_INODE}]"
# include/uapi/linux/nsfs.h (Linux 4.11+): NSIO 0xb7; NS_GET_PARENT _IO(NSIO, 0x2)
# returns a descriptor of the parent namespace, NS_GET_OWNER_UID _IO(NSIO, 0x4)
# writes the owner's uid_t as seen from the caller's namespace.
NS_GET_PARENT = (0xB7 << 8) | 0x2
NS_GET_OWNER_UID = (0xB7 << 8) | 0x4
MAX_DEPTH = 33  # the kernel nests at most 32 user namespaces below the initial one
MAX_PINNED = 256  # namespaces held open for the cache; beyond that, a walk per process

_VANISHED = (errno.ENOENT, errno.ESRCH)


class UsernsError(Exception):
    """leftover itself cannot tell who owns a namespace (it is not in the initial one)."""


class Userns(NamedTuple):
    """A process's user namespace. owner: the UID (in the initial namespace)
    owning the outermost namespace below the initial one; None for the initial
    namespace itself. error: why it could not be read (owner is then None)."""

    owner: int | None
    error: str | None = None


INITIAL = Userns(None)


def require_initial_namespace(own: Path = Path("/proc/self/ns/user")) -> None:
    """Raise UsernsError unless leftover runs in the initial user namespace:
    from any other, owners outside it cannot be named, and UIDs in /proc are
    not the host's."""
    try:
        inode = os.stat(own).st_ino
    except OSError as error:
        raise UsernsError(f"cannot read its own user namespace ({own}: {error.strerror})") from None
    if inode != INITIAL_USERNS_INODE:
        raise UsernsError(
            f"it runs in user namespace user:[{inode}], not the initial one; "
            "run it as root on the host, outside any container"
        )


class UsernsReader:
    """Reads the user namespace of processes under proc_root. Use as a context
    manager: the namespaces it cached are held open until it closes."""

    def __init__(self, proc_root: Path, max_pinned: int = MAX_PINNED) -> None:
        self.proc_root = proc_root
        self.max_pinned = max_pinned
        self.cache: dict[str, Userns] = {}
        self.pinned: list[int] = []
        self.walks = 0  # ioctl walks done: the cost the cache saves

    def __enter__(self) -> "UsernsReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for fd in self.pinned:
            os.close(fd)
        self.pinned.clear()
        self.cache.clear()

    def read(self, pid: int) -> Userns | None:
        """The namespace of pid; None if the process is gone."""
        path = f"{self.proc_root}/{pid}/ns/user"
        try:
            link = os.readlink(path)
        except OSError as error:
            return self._failed(pid, "ns/user cannot be read", error)
        if link == INITIAL_USERNS_LINK:
            return INITIAL
        cached = self.cache.get(link)
        if cached is not None:
            return cached
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            return self._failed(pid, "ns/user cannot be opened", error)
        self.walks += 1
        namespace = _walk(fd)
        if f"user:[{os.fstat(fd).st_ino}]" == link and len(self.pinned) < self.max_pinned:
            self.cache[link] = namespace
            self.pinned.append(fd)
        else:
            os.close(fd)
        return namespace

    def _failed(self, pid: int, what: str, error: OSError) -> Userns | None:
        """A process gone mid-read is None; one still there is unreadable."""
        if error.errno in _VANISHED and not os.path.exists(f"{self.proc_root}/{pid}/status"):
            return None
        return Userns(None, f"{what}: {error.strerror}")


def _walk(fd: int) -> Userns:
    """Walk up from the namespace open on fd (which stays open) to the
    outermost one below the initial namespace, and ask who owns it."""
    current = fd
    try:
        for _ in range(MAX_DEPTH):
            try:
                parent = fcntl.ioctl(current, NS_GET_PARENT)
            except OSError as error:
                return Userns(None, f"NS_GET_PARENT failed: {error.strerror}")
            if os.fstat(parent).st_ino == INITIAL_USERNS_INODE:
                os.close(parent)
                return _owner(current)
            if current != fd:
                os.close(current)
            current = parent
        return Userns(None, f"more than {MAX_DEPTH} nested user namespaces")
    finally:
        if current != fd:
            os.close(current)


def _owner(fd: int) -> Userns:
    buffer = bytearray(4)
    try:
        fcntl.ioctl(fd, NS_GET_OWNER_UID, buffer)
    except OSError as error:
        return Userns(None, f"NS_GET_OWNER_UID failed: {error.strerror}")
    return Userns(struct.unpack("=I", buffer)[0])

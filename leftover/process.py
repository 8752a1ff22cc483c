"""What a process is, as read from /proc/[pid]/status and /proc/[pid]/stat.

Pure parsers: bytes in, fields out. They never open a file, never guess a missing
field and never crash on hostile bytes: anything they cannot read with certainty
raises ProcFormatError, and the caller leaves that process alone.
"""

import functools
import sys
from typing import NamedTuple

PF_KTHREAD = 0x00200000
KTHREADD_PID = 2


class ProcFormatError(ValueError):
    """A status or stat file that does not have the shape the kernel gives it."""


class Process(NamedTuple):
    """One process (thread-group leader) on the node. A NamedTuple, not a
    dataclass: the scan makes one per process, and this is cheaper to build.

    uids are (real, effective, saved, filesystem). start_ticks is field 22 of
    /proc/[pid]/stat, clock ticks since boot on CLOCK_BOOTTIME; None until read.
    job_cgroup is the Slurm job cgroup the process is in; None when it is in
    none, or /proc/[pid]/cgroup was not read. job_cgroup_uid is the user that
    cgroup's path names (cgroup v1's uid_<N>), whoever owns the process: the
    extern step of PrologFlags=Contain holds only root's processes.
    userns_owner is the UID owning the outermost user namespace below the
    initial one that the process is in (a container's user); None when it is
    in the initial namespace, or that was not read. userns_error says why its
    namespace could not be read, if it could not. threads is the Threads:
    count, read only where it changes what the process is (state Z: a leader
    whose main thread exited while other threads run shows Z); None where not
    read. gpu_devices are the GPU device files it has open, read for targets
    only (leftover.gpu); they are told, and never change a verdict.
    """

    pid: int
    name: str
    state: str
    ppid: int
    uids: tuple[int, int, int, int]
    kernel_thread: bool
    start_ticks: int | None = None
    job_cgroup: str | None = None
    job_cgroup_uid: int | None = None
    userns_owner: int | None = None
    userns_error: str | None = None
    threads: int | None = None
    gpu_devices: tuple[str, ...] = ()

    @property
    def uid(self) -> int:
        return self.uids[0]

    @property
    def identities(self) -> tuple[int, ...]:
        """Every UID the process counts as: its own four and, in a user
        namespace other than the initial one, the namespace's owner."""
        return self.uids if self.userns_owner is None else (*self.uids, self.userns_owner)

    @property
    def exited(self) -> bool:
        """Dead, waiting for its parent to reap it: a zombie with no live
        thread left. A zombie leader whose other threads still run is alive."""
        return self.state in ("Z", "X") and (self.threads or 1) <= 1


class Stat(NamedTuple):
    """The fields leftover needs from /proc/[pid]/stat."""

    state: str
    ppid: int
    flags: int
    start_ticks: int


def parse_status(pid: int, raw: bytes) -> Process:
    """Parse /proc/[pid]/status. Raises ProcFormatError if a needed field is
    missing or malformed. Each field is found with bytes.find, since the whole
    scan's cost is mostly this function, once per process; the kernel writes
    each field once, and the first occurrence is the one taken."""
    name = _field(raw, b"Name")
    state = _field(raw, b"State")[:1].decode("ascii", "replace")
    if not state.isalpha():
        raise ProcFormatError("State is not a letter")
    ppid = _decimal(_field(raw, b"PPid"), "PPid")
    uids = _uids(_field(raw, b"Uid"))
    kthread = _field(raw, b"Kthread", required=False)
    if kthread is None:
        kernel_thread = pid == KTHREADD_PID or ppid == KTHREADD_PID
    elif kthread in (b"0", b"1"):
        kernel_thread = kthread == b"1"
    else:
        raise ProcFormatError("Kthread is not 0 or 1")
    threads = None
    if state == "Z":
        count = _field(raw, b"Threads", required=False)
        threads = None if count is None else _decimal(count, "Threads")
    return Process(pid, sys.intern(_unescape_name(name)), state, ppid, uids, kernel_thread, threads=threads)


def parse_nspid(raw: bytes) -> tuple[int, ...] | None:
    """The NSpid: line of a status file: the process's pid in each PID
    namespace, from the one the /proc belongs to down to its own. None where
    the kernel does not write it (before 4.1)."""
    field = _field(raw, b"NSpid", required=False)
    if field is None:
        return None
    if not field:
        raise ProcFormatError("NSpid is empty")
    return tuple(_decimal(word, "NSpid") for word in field.split())


@functools.lru_cache(maxsize=4096)
def _uids(field: bytes) -> tuple[int, int, int, int]:
    """The four UIDs of a Uid: line. Cached: a node has far fewer distinct UID
    lines than processes, and one shared tuple each keeps a big scan small."""
    words = field.split()
    if len(words) != 4 or not b"".join(words).isdigit() or max(map(len, words)) > 10:
        raise ProcFormatError("Uid does not have four numbers")
    uids = tuple(map(int, words))
    if max(uids) > _MAX_ID:
        raise ProcFormatError("Uid is out of range")
    return uids  # type: ignore[return-value]


def _field(raw: bytes, key: bytes, required: bool = True) -> bytes | None:
    """The value of the first `key:` line, tabs and spaces stripped."""
    head = key + b":"
    if raw.startswith(head):
        start = len(head)
    else:
        found = raw.find(b"\n" + head)
        if found < 0:
            if required:
                raise ProcFormatError(f"missing {key.decode()}")
            return None
        start = found + len(head) + 1
    end = raw.find(b"\n", start)
    return raw[start : len(raw) if end < 0 else end].strip(b" \t")


def parse_stat(raw: bytes) -> Stat:
    """Parse /proc/[pid]/stat. The command name (field 2) may hold spaces and
    parentheses, so the fixed fields are counted from the last ')'."""
    close = raw.rfind(b")")
    if close < 0 or b"(" not in raw[:close]:
        raise ProcFormatError("no (comm) field")
    rest = raw[close + 1 :].split(None, 20)
    # rest[0] is field 3 (state); field N is rest[N - 3]; rest[20], if there,
    # is the unsplit remainder from field 23 on, which leftover does not need.
    if len(rest) < 20:
        raise ProcFormatError("stat is truncated")
    state = rest[0].decode("ascii", "replace")
    if len(state) != 1 or not state.isalpha():
        raise ProcFormatError("state is not a letter")
    return Stat(state, _decimal(rest[1], "ppid"), _decimal(rest[6], "flags"), _decimal(rest[19], "starttime"))


_MAX_ID = 2**32 - 1


def _decimal(word: bytes, what: str) -> int:
    if not word.isdigit() or len(word) > 20:
        raise ProcFormatError(f"{what} is not a number")
    value = int(word)
    if value > _MAX_ID and what not in ("flags", "starttime"):
        raise ProcFormatError(f"{what} is out of range")
    return value


def _unescape_name(value: bytes) -> str:
    """The kernel writes Name with '\\n' and '\\\\' escaped; undo only that and
    keep every other byte (undecodable ones as surrogates) for the log to escape."""
    if b"\\" not in value:
        return value.decode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(value):
        byte = value[i : i + 1]
        if byte == b"\\" and value[i + 1 : i + 2] in (b"n", b"\\"):
            out += b"\n" if value[i + 1 : i + 2] == b"n" else b"\\"
            i += 2
            continue
        out += byte
        i += 1
    return out.decode("utf-8", "surrogateescape")

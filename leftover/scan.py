"""Reading the process table from a /proc tree, and the clock /proc counts in.

Every read expects the process to vanish under it: a pid whose files are gone
or empty is an ordinary outcome (skipped), never an error. A file that is there
but garbled, or that fails to read for any other reason (EACCES, EIO, EISDIR,
ENAMETOOLONG from a cgroup path longer than PATH_MAX on older kernels), is
pinned on that one process: it is reported as skipped with the reason and left
alone (and leftover.decide spares what runs below it). It must never let one
process's file stop the whole run: only a /proc that cannot be listed at all,
or lists no readable process, is an error.
"""

import errno
import os
import time
from pathlib import Path
from typing import NamedTuple

from leftover.cgroup import CgroupFormatError, read_job_cgroup
from leftover.log import printable
from leftover.process import PF_KTHREAD, Process, ProcFormatError, parse_nspid, parse_stat, parse_status
from leftover.userns import UsernsReader

_VANISHED = (errno.ENOENT, errno.ESRCH, errno.EINVAL, errno.ENOTDIR)
_CHUNK = 4096  # one page: a larger read buffer per file fragments the heap badly


class ProcError(Exception):
    """The /proc tree as a whole cannot be read."""


class Skipped(NamedTuple):
    pid: int
    why: str


class Scan(NamedTuple):
    processes: tuple[Process, ...]
    skipped: tuple[Skipped, ...]


def clock_ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


def boottime_ticks() -> int:
    """Now, on the clock /proc/[pid]/stat's start time uses: CLOCK_BOOTTIME in
    clock ticks, rounded down so that a process started in the same tick as
    this call counts as started after it."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // (1_000_000_000 // clock_ticks_per_second())


def list_pids(proc_root: Path) -> tuple[int, ...]:
    """The pids /proc lists now (processes, not their threads)."""
    try:
        with os.scandir(proc_root) as entries:
            return tuple(int(e.name) for e in entries if e.name.isascii() and e.name.isdigit())
    except OSError as error:
        raise ProcError(f"cannot list {proc_root}: {error.strerror}") from None


def scan_statuses(proc_root: Path) -> Scan:
    """Every process's status file; start times are left unread (None)."""
    scan = statuses_of(proc_root, list_pids(proc_root))
    if not scan.processes:
        raise ProcError(f"{proc_root} lists no readable process; is it a proc file system?")
    return scan


def statuses_of(proc_root: Path, pids) -> Scan:
    """The status files of pids, in pid order; a pid that is gone is skipped,
    one whose file is garbled or fails to read is skipped with the reason."""
    processes, skipped = [], []
    for pid in pids:
        try:
            raw = _read(f"{proc_root}/{pid}/status")
            if raw is not None:
                processes.append(parse_status(pid, raw))
        except (OSError, ProcFormatError) as error:
            skipped.append(Skipped(pid, f"status unreadable: {_reason(error)}"))
    processes.sort(key=_pid)
    return Scan(tuple(processes), tuple(skipped))


def _pid(process: Process) -> int:
    return process.pid


UNREADABLE_CGROUP = "(cgroup file unreadable: taken to be a job's)"


def with_job_cgroups(proc_root: Path, scan: Scan, pids: frozenset[int]) -> Scan:
    """The same scan with /proc/[pid]/cgroup read for pids: the Slurm job cgroup
    each is in, if any, and the user its path names. A cgroup file that is
    garbled or cannot be read might hide a job, so it counts as one: the
    process and its UIDs are spared, never judged without it, and the warning
    says so."""

    def update(process: Process, raw: bytes) -> Process:
        found = read_job_cgroup(raw)
        if found == (process.job_cgroup, process.job_cgroup_uid):
            return process  # in no job, as most are: nothing to replace
        return process._replace(job_cgroup=found.path, job_cgroup_uid=found.uid)

    def unreadable(process: Process) -> Process:
        return process._replace(job_cgroup=UNREADABLE_CGROUP)

    def read(process: Process) -> bytes | None:
        if (process.threads or 1) > 1:
            return _live_threads_cgroups(proc_root, process.pid)
        return _read(f"{proc_root}/{process.pid}/cgroup")

    return _with_file(proc_root, scan, pids, "cgroup", update, unreadable, "; taken to be a job's, so its UIDs are spared", read)


def _live_threads_cgroups(proc_root: Path, pid: int) -> bytes | None:
    """The cgroup files of a zombie leader's live threads, one after another.
    The kernel shows a leader whose main thread exited in the root cgroups,
    while its threads stay in the process's own (a job's, say). None if no
    thread is left."""
    raw = b""
    try:
        with os.scandir(f"{proc_root}/{pid}/task") as tasks:
            for task in tasks:
                if task.name != str(pid):
                    raw += _read(f"{proc_root}/{pid}/task/{task.name}/cgroup") or b""
    except OSError as error:
        if error.errno in _VANISHED:
            return None
        raise
    return raw or None


def with_userns_owners(proc_root: Path, scan: Scan, pids: frozenset[int]) -> Scan:
    """The same scan with the user namespace of pids read: who owns it, or why
    that could not be read. A process gone meanwhile is dropped. Each
    namespace is walked once, however many processes it holds."""
    processes = []
    with UsernsReader(proc_root) as reader:
        for process in scan.processes:
            if process.pid not in pids:
                processes.append(process)
                continue
            namespace = reader.read(process.pid)
            if namespace == (process.userns_owner, process.userns_error):
                processes.append(process)  # the initial namespace, as most are: nothing to replace
            elif namespace is not None:
                processes.append(process._replace(userns_owner=namespace.owner, userns_error=namespace.error))
    return Scan(tuple(processes), scan.skipped)


def with_start_times(proc_root: Path, scan: Scan, pids: frozenset[int]) -> Scan:
    """The same scan with /proc/[pid]/stat read for pids: start time, and the
    kernel's own kernel-thread flag."""

    def update(process: Process, raw: bytes) -> Process:
        stat = parse_stat(raw)
        return process._replace(
            start_ticks=stat.start_ticks,
            kernel_thread=process.kernel_thread or bool(stat.flags & PF_KTHREAD),
        )

    return _with_file(proc_root, scan, pids, "stat", update)


def _with_file(proc_root: Path, scan: Scan, pids: frozenset[int], name: str, update,
               unreadable=None, consequence: str = "", read=None) -> Scan:
    """Read one more file for pids (with read(process), if given). A process
    whose file is gone has vanished and is dropped. One whose file is garbled
    or fails to read is reported as skipped, and is dropped, or kept as
    unreadable(process) makes it."""
    processes, skipped = [], list(scan.skipped)
    for process in scan.processes:
        if process.pid not in pids:
            processes.append(process)
            continue
        try:
            raw = read(process) if read else _read(f"{proc_root}/{process.pid}/{name}")
            if raw is not None:
                processes.append(update(process, raw))
        except (OSError, ProcFormatError, CgroupFormatError) as error:
            skipped.append(Skipped(process.pid, f"{name} unreadable: {_reason(error)}{consequence}"))
            if unreadable is not None:
                processes.append(unreadable(process))
    return Scan(tuple(processes), tuple(skipped))


def foreign_pid_namespace(proc_root: Path) -> str | None:
    """Why proc_root is not the /proc of this process's PID namespace, or None
    if it is. A /proc names pids as its own namespace sees them: its `self`
    is this process's pid there, and NSpid lists one pid per namespace from
    its namespace down to ours. Read in another namespace's /proc (unshare
    --pid without --mount-proc, a container given the host's /proc), every
    pid would name another process than the one signalled."""
    own = os.getpid()
    try:
        seen_as = os.readlink(f"{proc_root}/self")
        status = _read(f"{proc_root}/self/status")
        nspid = parse_nspid(status) if status is not None else None
    except (OSError, ProcFormatError) as error:
        return f"{proc_root} is not this PID namespace's: its self cannot be read ({_reason(error)})"
    if seen_as != str(own):
        return f"{proc_root} is not this PID namespace's: it calls this process {printable(seen_as)}, not {own}"
    if nspid is not None and nspid != (own,):
        return f"{proc_root} is not this PID namespace's: this process has pids {','.join(map(str, nspid))} from there down"
    return None


def read_identity(proc_root: Path, pid: int) -> Process | None:
    """A fresh look at one process, start time included; None if it is gone or
    cannot be read with certainty (the caller must then leave it alone)."""
    try:
        status, stat = _read(f"{proc_root}/{pid}/status"), _read(f"{proc_root}/{pid}/stat")
    except OSError as error:
        raise ProcError(f"cannot read /proc/{pid}: {_reason(error)}") from None
    if status is None or stat is None:
        return None
    try:
        return parse_status(pid, status)._replace(start_ticks=parse_stat(stat).start_ticks)
    except ProcFormatError:
        return None


def _reason(error: Exception) -> str:
    return (error.strerror or str(error)) if isinstance(error, OSError) else str(error)


def _read(path: str) -> bytes | None:
    """The whole file, or None if the process it describes is gone. Any other
    failure is raised as OSError, for the caller to pin on that process.
    O_NONBLOCK: a FIFO in a tree given with --proc must not hang the run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in _VANISHED:
            return None
        raise
    try:
        raw = os.read(fd, _CHUNK)
        while len(raw) % _CHUNK == 0 and raw:  # a long Groups: line, say
            more = os.read(fd, _CHUNK)
            if not more:
                break
            raw += more
    except OSError as error:
        if error.errno in _VANISHED:
            return None
        raise
    finally:
        os.close(fd)
    return raw or None

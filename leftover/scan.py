"""Reading the process table from a /proc tree, and the clock /proc counts in.

Every read expects the process to vanish under it: a pid whose files are gone,
empty or unreadable is an ordinary outcome (skipped), never an error. A file
that is there but garbled is reported as skipped with the reason, and the
process is left alone. Only a /proc that cannot be listed at all is an error.
"""

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from leftover.cgroup import CgroupFormatError, job_cgroup, job_cgroup_uid, parse_cgroup
from leftover.process import PF_KTHREAD, Process, ProcFormatError, parse_stat, parse_status
from leftover.userns import UsernsReader

_VANISHED = (errno.ENOENT, errno.ESRCH, errno.EINVAL)
_CHUNK = 4096  # one page: a larger read buffer per file fragments the heap badly


class ProcError(Exception):
    """The /proc tree as a whole cannot be read."""


@dataclass(frozen=True)
class Skipped:
    pid: int
    why: str


@dataclass(frozen=True)
class Scan:
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
    """The status files of pids, in pid order; a pid that is gone is skipped."""
    processes, skipped = [], []
    for pid in pids:
        raw = _read(f"{proc_root}/{pid}/status")
        if raw is None:
            continue
        try:
            processes.append(parse_status(pid, raw))
        except ProcFormatError as error:
            skipped.append(Skipped(pid, f"status unreadable: {error}"))
    processes.sort(key=_pid)
    return Scan(tuple(processes), tuple(skipped))


def _pid(process: Process) -> int:
    return process.pid


UNREADABLE_CGROUP = "(cgroup file unreadable: taken to be a job's)"


def with_job_cgroups(proc_root: Path, scan: Scan, pids: frozenset[int]) -> Scan:
    """The same scan with /proc/[pid]/cgroup read for pids: the Slurm job cgroup
    each is in, if any, and the user its path names. A garbled cgroup file
    might hide a job, so it counts as one: the process and its UIDs are
    spared, never judged without it."""

    def update(process: Process, raw: bytes) -> Process:
        try:
            path = job_cgroup(parse_cgroup(raw))
        except CgroupFormatError:
            return process._replace(job_cgroup=UNREADABLE_CGROUP)
        return process._replace(job_cgroup=path, job_cgroup_uid=job_cgroup_uid(path))

    return _with_file(proc_root, scan, pids, "cgroup", update)


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
            if namespace is not None:
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


def _with_file(proc_root: Path, scan: Scan, pids: frozenset[int], name: str, update) -> Scan:
    """Read one more file for pids. A process whose file is gone has vanished
    and is dropped; one whose file is garbled is dropped as skipped."""
    processes, skipped = [], list(scan.skipped)
    for process in scan.processes:
        if process.pid not in pids:
            processes.append(process)
            continue
        raw = _read(f"{proc_root}/{process.pid}/{name}")
        if raw is None:
            continue
        try:
            processes.append(update(process, raw))
        except (ProcFormatError, CgroupFormatError) as error:
            skipped.append(Skipped(process.pid, f"{name} unreadable: {error}"))
    return Scan(tuple(processes), tuple(skipped))


def read_identity(proc_root: Path, pid: int) -> Process | None:
    """A fresh look at one process, start time included; None if it is gone or
    cannot be read with certainty (the caller must then leave it alone)."""
    status, stat = _read(f"{proc_root}/{pid}/status"), _read(f"{proc_root}/{pid}/stat")
    if status is None or stat is None:
        return None
    try:
        return parse_status(pid, status)._replace(start_ticks=parse_stat(stat).start_ticks)
    except ProcFormatError:
        return None


def _read(path: str) -> bytes | None:
    """The whole file, or None if the process it describes is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in _VANISHED or error.errno == errno.ENOTDIR:
            return None
        raise ProcError(f"cannot read {path}: {error.strerror}") from None
    try:
        raw = os.read(fd, _CHUNK)
        while len(raw) % _CHUNK == 0 and raw:  # a long Groups: line, say
            more = os.read(fd, _CHUNK)
            if not more:
                break
            raw += more
    except OSError as error:
        if error.errno in _VANISHED or error.errno == errno.ENOTDIR:
            return None
        raise ProcError(f"cannot read {path}: {error.strerror}") from None
    finally:
        os.close(fd)
    return raw or None

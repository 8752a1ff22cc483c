"""Each run's figures for node_exporter's textfile collector, so a site can
watch a fleet of nodes, including the ones whose runs keep failing closed.

render() is pure: a finished RunReport in, Prometheus text out. write() puts
the text in place atomically (a temporary file in the same directory, then
rename), so the collector never reads half a file.

It runs as root in a directory that a site chose, so it must never follow
anything another account controls: the directory is reached from / one
component at a time, following only links owned by root (or this user), and
every directory on the way must be root's (or this user's) and writable by
nobody else (a sticky directory such as /tmp aside, except the last). Everything after that
happens relative to the directory's descriptor: the temporary file is created
exclusively and never through a link, its mode set through its descriptor,
and it is renamed within the directory. The previous file is read only if it
is a regular file, and only its first METRICS_READ_LIMIT bytes.
"""

import os
import re
import stat
from pathlib import Path

from leftover.act import Result

_LAST_SUCCESS = re.compile(r"^leftover_last_success_timestamp_seconds (\d+(?:\.\d+)?)$", re.M)
METRICS_READ_LIMIT = 64 * 1024
MAX_LINKS = 40  # as the kernel's own limit on links in one path
_OPEN_DIRECTORY = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MetricsError(Exception):
    """The metrics file was not written; the message says why in one line."""


def previous_success(path: Path) -> float | None:
    """The last success recorded in an earlier run's file, if any: None when
    the directory is not trusted, or the file is not a regular file."""
    try:
        directory = _open_trusted_directory(path.parent)
    except MetricsError:
        return None
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, METRICS_READ_LIMIT)
    except OSError:
        return None
    finally:
        os.close(fd)
    match = _LAST_SUCCESS.search(raw.decode("utf-8", errors="replace"))
    return float(match.group(1)) if match else None


def render(report, finished_at: float, last_success: float | None) -> str:
    """The run as Prometheus text. report is a leftover.report.RunReport."""
    plan = report.plan
    results = {result.value: 0 for result in Result}
    for outcome in report.outcomes:
        results[outcome.result.value] += 1
    bailed = report.bailed_out_label or ""
    lines = [
        ("leftover_run_timestamp_seconds", "gauge", "When the last run finished.", [("", finished_at)]),
        ("leftover_last_success_timestamp_seconds", "gauge", "When a run last completed without bailing out.",
         [("", last_success)] if last_success is not None else []),
        ("leftover_run_duration_seconds", "gauge", "How long the last run took, splay included.", [("", report.duration)]),
        ("leftover_run_bailed_out", "gauge", "1 if the last run bailed out and signalled nothing, by reason.",
         [(f'{{reason="{bailed}"}}', 1)] if bailed else [('{reason=""}', 0)]),
        ("leftover_processes_scanned", "gauge", "Processes read from /proc in the last run.", [("", report.scanned)]),
        ("leftover_local_job_processes", "gauge", "Processes the node showed to be inside a job.",
         [("", plan.local_job_processes() if plan else 0)]),
        ("leftover_controller_asked", "gauge", "1 if the last run asked squeue.", [("", int(report.asked_slurm))]),
        ("leftover_squeue_seconds", "gauge", "How long squeue took in the last run.",
         [("", report.slurm_seconds)] if report.slurm_seconds is not None else []),
        ("leftover_targets", "gauge", "Processes the last run's plan targeted.", [("", len(plan.targets) if plan else 0)]),
        ("leftover_gpu_holding_targets", "gauge", "Targets of the last run that had a GPU device open.",
         [("", sum(1 for d in plan.targets if d.process.gpu_devices) if plan else 0)]),
        ("leftover_signalled_processes", "gauge", "Targets of the last run by what became of them.",
         [(f'{{result="{name}"}}', count) for name, count in results.items()]),
    ]
    text = []
    for name, kind, meaning, samples in lines:
        text.append(f"# HELP {name} {meaning}")
        text.append(f"# TYPE {name} {kind}")
        text.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)
    return "\n".join(text) + "\n"


def write(path: Path, text: str) -> None:
    """Replace path with text, atomically; MetricsError if it cannot."""
    directory = _open_trusted_directory(path.parent)
    temporary = f".{path.name}.{os.urandom(8).hex()}"  # O_EXCL below: a name nobody can foresee
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:
                handle.write(text)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(temporary, path.name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError as error:
        _remove(temporary, directory)
        raise MetricsError(error.strerror or str(error)) from None
    except BaseException:
        _remove(temporary, directory)
        raise
    finally:
        os.close(directory)


def _remove(name: str, directory: int) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except OSError:
        pass


def _open_trusted_directory(path: Path) -> int:
    """A descriptor of the directory at path, reached from / one component at
    a time, following only links that root (or this user) owns in directories
    already checked; MetricsError if any directory or link on the way could be
    changed by someone other than root or this user."""
    trusted = {0, os.geteuid()}
    pending = [name for name in os.path.abspath(path).split("/") if name]
    walked, links = Path("/"), 0
    try:
        fd = os.open("/", _OPEN_DIRECTORY)
    except OSError as error:
        raise MetricsError(f"cannot open /: {error.strerror}") from None
    try:
        _check_directory(fd, walked, trusted, last=not pending)
        while pending:
            name = pending.pop(0)
            try:
                next_fd = os.open(name, _OPEN_DIRECTORY, dir_fd=fd)
            except NotADirectoryError:
                target = _trusted_link(fd, walked / name, name, trusted)
                links += 1
                if links > MAX_LINKS:
                    raise MetricsError(f"too many symbolic links on the way to {path}") from None
                if target.startswith("/"):
                    root = os.open("/", _OPEN_DIRECTORY)
                    os.close(fd)
                    fd, walked = root, Path("/")
                pending[:0] = [part for part in target.split("/") if part and part != "."]
                _check_directory(fd, walked, trusted, last=not pending)
                continue
            except OSError as error:
                raise MetricsError(f"cannot open directory {walked / name}: {error.strerror}") from None
            os.close(fd)
            fd, walked = next_fd, (walked.parent if name == ".." else walked / name)
            _check_directory(fd, walked, trusted, last=not pending)
    except OSError as error:
        os.close(fd)
        raise MetricsError(f"cannot check directory {walked}: {error.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _trusted_link(directory: int, path: Path, name: str, trusted: set[int]) -> str:
    """The target of the link name in directory, if a trusted account owns it."""
    try:
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            raise MetricsError(f"{path} is not a directory")
        if info.st_uid not in trusted:
            raise MetricsError(f"symbolic link {path} is owned by uid {info.st_uid}, not root")
        return os.readlink(name, dir_fd=directory)
    except OSError as error:
        raise MetricsError(f"cannot read {path}: {error.strerror}") from None


def _check_directory(fd: int, path: Path, trusted: set[int], last: bool) -> None:
    info = os.fstat(fd)
    if info.st_uid not in trusted:
        raise MetricsError(f"directory {path} is owned by uid {info.st_uid}, not root")
    sticky = bool(info.st_mode & stat.S_ISVTX)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and (last or not sticky):
        raise MetricsError(f"directory {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6f}"

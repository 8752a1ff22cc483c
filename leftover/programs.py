"""Running another program as root, so that it can neither be swapped for
someone else's nor hold leftover for ever.

leftover runs a few programs (Slurm's squeue and scontrol, getent for the user
database). This module is how each one runs:

- its path is followed from / one component at a time; every directory, symlink
  and the file itself must belong to root (or to the user running leftover) and
  be writable by nobody else, sticky directories aside: what sshd's StrictModes
  and sudo ask of the files they trust. The checked file is then opened, and
  that open file (through /proc/self/fd) is what runs: nothing can be swapped in
  between;
- it runs in a session and process group of its own, with no stdin; its output
  comes through pipes (no file system that can be full or missing), at most
  MAX_OUTPUT bytes of each stream;
- at the deadline, or when leftover itself is stopped, the whole group gets
  SIGKILL; a program still there KILL_WAIT_SECONDS later (uninterruptible sleep,
  a frozen cgroup) is left behind, not waited for.

It must never wait without a bound and never retry; what the output means is
for the caller to judge.
"""

import os
import selectors
import signal
import stat
import subprocess
import time
from typing import NamedTuple

MAX_OUTPUT = 1 << 20
KILL_WAIT_SECONDS = 1.0
MAX_SYMLINKS = 40
_EXIT_POLL_SECONDS = 0.01


class ProgramError(Exception):
    """The program was not run, or gave no usable answer; one line says why."""


class Unanswered(ProgramError):
    """The deadline passed (or leftover was stopped) before the program finished."""

    def __init__(self, name: str, left_behind: str) -> None:
        super().__init__(f"{name} did not finish in time{left_behind}")
        self.left_behind = left_behind


class Finished(NamedTuple):
    returncode: int  # negative: killed by that signal
    stdout: bytes
    stderr: bytes


def run(argv: list[str], environment: dict[str, str], deadline: float) -> Finished:
    """Run argv[0] (checked by open_trusted) with argv; everything it printed,
    once it has exited and closed its output, before deadline (time.monotonic)."""
    name = os.path.basename(argv[0])
    fd = open_trusted(argv[0])
    try:
        process = subprocess.Popen(
            argv, executable=f"/proc/self/fd/{fd}", pass_fds=(fd,), env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as error:
        raise ProgramError(f"cannot run {argv[0]}: {error.strerror}") from None
    finally:
        os.close(fd)
    with process.stdout, process.stderr:
        try:
            stdout, stderr = _collect(process, deadline)
        except _Late:
            raise Unanswered(name, _end(process)) from None
        except _TooMuch:
            raise ProgramError(f"{name} printed {MAX_OUTPUT} bytes or more, more than leftover reads{_end(process)}") from None
        except BaseException:
            _end(process)
            raise
    return Finished(process.returncode, stdout, stderr)


def open_trusted(program: str) -> int:
    """An O_PATH descriptor of program, after checking every step of its path
    from /; ProgramError if any step could have been changed by someone else."""
    path, info = _checked_path(program)
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ProgramError(f"cannot run {program}: {error.strerror}") from None
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise ProgramError(f"not running {program} as root: {path} changed while it was checked")
    return fd


def _checked_path(program: str) -> tuple[str, os.stat_result]:
    """The path program really names, and its file's status, walking from /
    and following symlinks as the kernel would, checking each step."""
    trusted = frozenset({0, os.geteuid()})
    absolute = program if program.startswith("/") else os.path.join(os.getcwd(), program)
    pending = absolute.split("/")
    here, info = "/", _lstat(program, "/")
    _check(program, "/", info, trusted, directory=True)
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            here = os.path.dirname(here)
            continue
        step = os.path.join(here, name)
        info = _lstat(program, step)
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise ProgramError(f"cannot run {program}: more than {MAX_SYMLINKS} symlinks on its path")
            if info.st_uid not in trusted:
                raise ProgramError(f"not running {program} as root: symlink {step} on its path is owned by uid {info.st_uid}")
            try:
                target = os.readlink(step)
            except OSError as error:
                raise ProgramError(f"cannot run {program}: {step}: {error.strerror}") from None
            if target.startswith("/"):
                here = "/"
            pending = target.split("/") + pending
            continue
        _check(program, step, info, trusted, directory=any(p not in ("", ".") for p in pending))
        here = step
    return here, info


def _lstat(program: str, step: str) -> os.stat_result:
    try:
        return os.lstat(step)
    except OSError as error:
        raise ProgramError(f"cannot run {program}: {step}: {error.strerror}") from None


def _check(program: str, step: str, info: os.stat_result, trusted: frozenset[int], directory: bool) -> None:
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
    if directory and not stat.S_ISDIR(info.st_mode):
        raise ProgramError(f"cannot run {program}: {step} is not a directory")
    if not directory and not stat.S_ISREG(info.st_mode):
        raise ProgramError(f"cannot run {program}: {step} is not a regular file")
    if info.st_uid not in trusted:
        raise ProgramError(f"not running {program} as root: {kind} {step} on its path is owned by uid {info.st_uid}")
    sticky = directory and info.st_mode & stat.S_ISVTX
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
        raise ProgramError(
            f"not running {program} as root: {kind} {step} on its path is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o})"
        )


class _Late(Exception):
    pass


class _TooMuch(Exception):
    pass


def _collect(process: subprocess.Popen, deadline: float) -> tuple[bytes, bytes]:
    """Read both pipes to their end, then wait for the exit, all before deadline."""
    chunks: dict[int, list[bytes]] = {process.stdout.fileno(): [], process.stderr.fileno(): []}
    sizes = dict.fromkeys(chunks, 0)
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Late
            for key, _ in selector.select(remaining):
                try:
                    data = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(key.fd)
                    continue
                chunks[key.fd].append(data)
                sizes[key.fd] += len(data)
                if sizes[key.fd] >= MAX_OUTPUT:
                    raise _TooMuch
    while process.poll() is None:
        if time.monotonic() >= deadline:
            raise _Late
        time.sleep(_EXIT_POLL_SECONDS)
    return b"".join(chunks[process.stdout.fileno()]), b"".join(chunks[process.stderr.fileno()])


def _end(process: subprocess.Popen) -> str:
    """SIGKILL the program's process group and wait for it a short, bounded
    time. '' if it is gone; else a clause saying it was left behind."""
    if process.returncode is None:  # not reaped, so its pid still names its group
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    give_up = time.monotonic() + KILL_WAIT_SECONDS
    while process.poll() is None:
        if time.monotonic() >= give_up:
            return (
                f"; pid {process.pid} still there {KILL_WAIT_SECONDS:g}s after SIGKILL"
                f" (state {_state(process.pid)}), left behind"
            )
        time.sleep(_EXIT_POLL_SECONDS)
    return ""


def _state(pid: int) -> str:
    """The kernel's one-letter state of pid (D: uninterruptible sleep), or '?'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as status:
            text = status.read()
    except OSError:
        return "?"
    return text[text.rfind(b")") + 2 : text.rfind(b")") + 3].decode("ascii", "replace") or "?"

"""Running another program as root, so that it can neither be swapped for
someone else's nor hold leftover for ever.

leftover runs a few programs (Slurm's squeue and scontrol, getent for the user
database, the site's notify command). This module is how each one is found
and run:

- every file-system step on the way to a program (looking for it, checking
  its path, opening it, executing it) is taken in a child process forked for
  that purpose, never in leftover's own process. A file system that stops
  answering can hold a process where not even SIGKILL ends it (a FUSE request
  its server has taken and never answers: request_wait_answer in the kernel's
  fs/fuse/dev.c ends in an uninterruptible wait_event); it then holds only that
  child, which is left behind like any program that will not die. Before its
  first such step the child restores the default signal actions, leaves
  leftover's session and closes every descriptor but its own pipes (one
  inherited copy of the lock's descriptor would keep leftover's flock held for
  as long as the child is stuck). After the fork only the thread that forked
  exists in the child, so it makes nothing but os calls until it execs or
  _exits, and never returns into leftover;
- the program's path is followed from / one component at a time; every
  directory, symlink and the file itself must belong to root (or to the user
  running leftover) and be writable by nobody else, sticky directories aside:
  what sshd's StrictModes and sudo ask of the files they trust. The checked
  file is then opened, and that open file (through /proc/self/fd) is what
  runs: nothing can be swapped in between. A refusal comes back to leftover as
  one line through a pipe that a successful exec closes (close-on-exec): that
  is how leftover knows the program started;
- it runs in a session and process group of its own, with no stdin unless
  it is given one; its output comes through pipes (no file system that can be
  full or missing), at most MAX_OUTPUT bytes of each stream;
- at the deadline, or when leftover itself is stopped, the whole group gets
  SIGKILL (the child too, if it had not started the program yet); a child
  still there KILL_WAIT_SECONDS later (uninterruptible sleep, a frozen cgroup,
  a file system that does not answer) is left behind, not waited for.

It must never touch a program's path in leftover's own process, never wait
without a bound and never retry; what the output means is for the caller to
judge.
"""

import fcntl
import gc
import os
import selectors
import signal
import stat
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

MAX_OUTPUT = 1 << 20
KILL_WAIT_SECONDS = 1.0
MAX_SYMLINKS = 40
_FIRST_EXIT_POLL_SECONDS = 0.0001
_EXIT_POLL_SECONDS = 0.01
_ALL_SIGNALS = signal.valid_signals()
_IGNORED_BY_PYTHON = (signal.SIGPIPE, signal.SIGXFSZ)  # restored to their defaults for the program, as subprocess does
_REPORT_FD = 3  # the child's end of the report pipe: close-on-exec
_ABOVE_STANDARD_FDS = 10
_NOT_STARTED = 127


class ProgramError(Exception):
    """The program was not run, or gave no usable answer; one line says why."""


class Unanswered(ProgramError):
    """The deadline passed (or leftover was stopped) before the program
    finished. started: whether it had begun at all; if not, a step of the
    way to it (its path, its file) did not answer."""

    def __init__(self, name: str, program: str, started: bool, left_behind: str) -> None:
        super().__init__(f"{name} did not finish in time{left_behind}")
        self.program = program
        self.started = started
        self.left_behind = left_behind

    def within(self, seconds: float) -> str:
        """What happened in seconds, with the clause saying what was left behind."""
        if self.started:
            return f"did not answer within {seconds:g}s{self.left_behind}"
        return f"did not start within {seconds:g}s (a file system on the way to {self.program} did not answer){self.left_behind}"


class Finished(NamedTuple):
    returncode: int  # negative: killed by that signal
    stdout: bytes
    stderr: bytes


def run(
    argv: list[str], environment: dict[str, str], deadline: float, *, stdin: bytes | None = None,
    cwd: str | None = None, keep_output: bool = True, kill_wait: float = KILL_WAIT_SECONDS,
) -> Finished:
    """Run argv[0] (its path checked in the child) with argv; everything it
    printed, once it has exited and closed its output, before deadline
    (time.monotonic). stdin, if given, is written to its standard input;
    without keep_output its output goes to /dev/null."""
    name = os.path.basename(argv[0])
    child = _Child(lambda: _become(argv, environment, cwd), f"cannot run {argv[0]}", stdin is not None, keep_output)
    try:
        child.exchange(stdin or b"", deadline)
    except _Late:
        raise Unanswered(name, argv[0], child.started, child.end(kill_wait)) from None
    except _TooMuch:
        raise ProgramError(f"{name} printed {MAX_OUTPUT} bytes or more, more than leftover reads{child.end(kill_wait)}") from None
    except BaseException:
        child.end(kill_wait)
        raise
    if child.refusal is not None:
        raise ProgramError(child.refusal)
    return Finished(child.returncode, child.stdout, child.stderr)


def executables(paths: list[str], deadline: float) -> dict[str, str]:
    """Each of paths that names a file (not a directory) leftover's user may
    execute, with its real path (symlinks resolved). The looking is done in a
    child, like every step towards a program; Unanswered if it is not done by
    deadline."""
    child = _Child(lambda: _found(paths), "cannot look for programs", with_stdin=False, keep_output=False)
    try:
        child.exchange(b"", deadline)
    except _Late:
        raise Unanswered("the search", ", ".join(paths), False, child.end(KILL_WAIT_SECONDS)) from None
    except _TooMuch:
        raise ProgramError(f"the search for programs said more than leftover reads{child.end(KILL_WAIT_SECONDS)}") from None
    except BaseException:
        child.end(KILL_WAIT_SECONDS)
        raise
    if child.refusal is not None or child.answer is None:
        raise ProgramError(child.refusal or "the search for programs ended without an answer")
    fields = child.answer.decode("utf-8", "surrogateescape").split("\0")[:-1]
    return dict(zip(fields[::2], fields[1::2], strict=True))


# What a child does: only os calls, then exec or an answer.


def _become(argv: list[str], environment: dict[str, str], cwd: str | None) -> bytes:
    """Check argv[0]'s path, open it and exec it: returns only by raising."""
    fd = _open_trusted(argv[0])
    try:
        os.set_inheritable(fd, True)  # a script's interpreter reads it through /proc/self/fd
        if cwd is not None:
            os.chdir(cwd)
        os.execve(f"/proc/self/fd/{fd}", argv, environment)
    except OSError as error:
        raise ProgramError(f"cannot run {argv[0]}: {error.strerror}") from None


def _found(paths: list[str]) -> bytes:
    """The search child's answer: each of paths that is an executable file,
    then its real path, each followed by a NUL."""
    answer = []
    for path in paths:
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            answer.append(f"{path}\0{os.path.realpath(path)}\0")
    return "".join(answer).encode("utf-8", "surrogateescape")


def _open_trusted(program: str) -> int:
    """An O_PATH descriptor of program, after checking every step of its path
    from /; ProgramError if any step could have been changed by someone else.
    In a child only: any step may wait for ever."""
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


# leftover's side: fork, then write, read and wait, each with the deadline.


class _Late(Exception):
    pass


class _TooMuch(Exception):
    pass


_ANSWER = b"\0answer\0"  # what a child that answers writes first; a refusal is one line of text


class _Child:
    """A child forked to do work(): exec a program (work raises, and the child
    says why in one line, if it cannot), or answer with bytes. Its pipes:
    stdin (if with_stdin, else /dev/null), stdout and stderr (if keep_output,
    else /dev/null), and the report pipe, which exec closes and which carries
    a refusal or the answer."""

    def __init__(self, work: Callable[[], bytes], failing: str, with_stdin: bool, keep_output: bool) -> None:
        self.returncode: int | None = None
        self.started = False  # the report pipe closed with nothing in it: exec succeeded
        self.refusal: str | None = None
        self.answer: bytes | None = None
        self.stdout = self.stderr = b""
        self._stdin: int | None = None
        self._readers: dict[int, str] = {}  # our read ends, by what they carry
        theirs: list[int] = []  # the child's ends: closed here once it has them
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            theirs.append(null)
            stdin = null
            if with_stdin:
                stdin, self._stdin = os.pipe()
                theirs.append(stdin)
            stdout = self._from_child("stdout", theirs) if keep_output else null
            stderr = self._from_child("stderr", theirs) if keep_output else null
            report = self._from_child("report", theirs)
            self.pid = _fork((stdin, stdout, stderr), report, work)
        except BaseException as error:
            self._close_ours()
            if isinstance(error, OSError):
                raise ProgramError(f"{failing}: {error.strerror or error}") from None
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    def _from_child(self, name: str, theirs: list[int]) -> int:
        read, write = os.pipe()
        self._readers[read] = name
        theirs.append(write)
        return write

    def exchange(self, stdin: bytes, deadline: float) -> None:
        """Write stdin, read every pipe to its end, then wait for the exit, all
        before deadline. Every pipe of ours is closed on the way out."""
        chunks: dict[str, list[bytes]] = {name: [] for name in self._readers.values()}
        sizes = dict.fromkeys(chunks, 0)
        written = 0
        try:
            with selectors.DefaultSelector() as selector:
                for fd, name in self._readers.items():
                    os.set_blocking(fd, False)
                    selector.register(fd, selectors.EVENT_READ, name)
                if self._stdin is not None:
                    os.set_blocking(self._stdin, False)
                    selector.register(self._stdin, selectors.EVENT_WRITE, "stdin")
                while selector.get_map():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _Late
                    for key, _ in selector.select(remaining):
                        if key.data == "stdin":
                            written = self._write(selector, stdin, written)
                            continue
                        try:
                            data = os.read(key.fd, 1 << 16)
                        except BlockingIOError:
                            continue
                        if not data:
                            selector.unregister(key.fd)
                            self.started = self.started or (key.data == "report" and not chunks["report"])
                            continue
                        chunks[key.data].append(data)
                        sizes[key.data] += len(data)
                        if sizes[key.data] >= MAX_OUTPUT:
                            raise _TooMuch
        finally:
            self._close_ours()
        if not self._reaped(deadline):
            raise _Late
        said = b"".join(chunks["report"])
        if said.startswith(_ANSWER):
            self.answer = said[len(_ANSWER) :]
        elif said:
            self.refusal = said.decode("utf-8", "replace")
        else:
            self.stdout, self.stderr = b"".join(chunks.get("stdout", [])), b"".join(chunks.get("stderr", []))

    def _write(self, selector: selectors.BaseSelector, data: bytes, written: int) -> int:
        """Write what the pipe takes; at the end of data, or once the program
        stopped reading, close stdin so that it sees the end."""
        try:
            written += os.write(self._stdin, data[written : written + (1 << 16)])
        except BlockingIOError:
            return written
        except BrokenPipeError:
            written = len(data)
        if written >= len(data):
            selector.unregister(self._stdin)
            os.close(self._stdin)
            self._stdin = None
        return written

    def _close_ours(self) -> None:
        for fd in (self._stdin, *self._readers):
            if fd is not None:
                os.close(fd)
        self._stdin, self._readers = None, {}

    def _reaped(self, until: float) -> bool:
        """Whether the child has exited, waiting for it until then: a child
        that has closed its pipes is usually a moment from its end, so the
        pauses start short."""
        pause = _FIRST_EXIT_POLL_SECONDS
        while self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                break
            remaining = until - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
            pause = min(2 * pause, _EXIT_POLL_SECONDS)
        return True

    def end(self, kill_wait: float) -> str:
        """SIGKILL the child and its process group and wait for it a short,
        bounded time. '' if it is gone; else a clause saying it was left behind."""
        if self.returncode is None:  # not reaped, so its pid still names it and its group
            for kill in (os.killpg, os.kill):  # the group, and the child itself if it had not left ours yet
                try:
                    kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
        if self._reaped(time.monotonic() + kill_wait):
            return ""
        return f"; pid {self.pid} still there {kill_wait:g}s after SIGKILL (state {_state(self.pid)}), left behind"


def _fork(stdio: tuple[int, int, int], report: int, work: Callable[[], bytes]) -> int:
    """Fork the child, which sets itself up, does work() and exits, never
    returning here. Signals stay blocked across the fork, so that no handler
    of leftover's runs in the child before the default actions are back."""
    handled = [signum for signum in _ALL_SIGNALS if signum in _IGNORED_BY_PYTHON or callable(signal.getsignal(signum))]
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
    try:
        with warnings.catch_warnings():
            # Python 3.12 and later warn of any fork in a process with threads
            # (leftover's syslog and watchdog threads), after the child exists:
            # as an error it would leave the child unsupervised. This child
            # touches no lock those threads may hold (see the docstring).
            warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise
    if pid == 0:
        code = _NOT_STARTED
        try:
            code = _in_child(stdio, report, handled, previous, work)
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid


def _in_child(stdio: tuple[int, int, int], report: int, handled: list, mask: set, work: Callable[[], bytes]) -> int:
    """The child's whole life, in os calls: the default action for each
    signal in handled (those leftover handles or Python ignores), its mask
    back, a session of its own, only its own pipes open (as 0, 1, 2 and
    _REPORT_FD), then work(); its answer, or why it could not, goes to the
    report pipe. Its exit status."""
    gc.disable()  # no finalizer of an object of leftover's may run here
    said_to = report  # until the report pipe is _REPORT_FD
    try:
        for signum in handled:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.setsid()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, _ABOVE_STANDARD_FDS) for fd in (*stdio, report)]
        for standard, fd in enumerate(high[:3]):
            os.dup2(fd, standard)
        said_to = os.dup2(high[3], _REPORT_FD, inheritable=False)
        os.closerange(_REPORT_FD + 1, max(os.sysconf("SC_OPEN_MAX"), *high) + 1)
        message = _ANSWER + work()
    except ProgramError as error:
        message = str(error).encode("utf-8", "surrogateescape")
    except BaseException as error:  # noqa: BLE001 - whatever it is, the child says so and exits
        message = f"the child leftover forked failed: {type(error).__name__}: {error}".encode("utf-8", "surrogateescape")
    view = memoryview(message)
    while view:
        view = view[os.write(said_to, view) :]
    return 0 if message.startswith(_ANSWER) else _NOT_STARTED


def _state(pid: int) -> str:
    """The kernel's one-letter state of pid (D: uninterruptible sleep), or '?'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as status:
            text = status.read()
    except OSError:
        return "?"
    return text[text.rfind(b")") + 2 : text.rfind(b")") + 3].decode("ascii", "replace") or "?"

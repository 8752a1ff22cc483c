"""Telling the owner, when the site asks for it (both are off by default): a
line on each terminal the target's user owns, just before SIGTERM; and the
site's notify command, run once after a run that targeted anything, with the
run's JSON document on its standard input.

It decides nothing and signals no target. Nothing here may hold a run up or
change its outcome: a terminal is opened and written without blocking, at
most MAX_TERMINALS of them per user; the command runs through
leftover.programs, in a session of its own, and is killed with its whole
process group at its time limit (a child stuck on the way to it too). Every
failure comes back as one line of text for the log, never as an exception.

Terminals are found by ownership of the pseudo-terminals under /dev/pts, not
in utmp: devpts gives a pty to the user who opened it (ssh, tmux, screen and
script panes alike, which utmp lists only in part), it is the kernel's own
record and cannot go stale after a crash, and it needs no binary parser.
"""

import errno
import os
import stat
import time
from pathlib import Path

from leftover.programs import ProgramError, Unanswered, run

DEV_PTS = Path("/dev/pts")
MAX_TERMINALS = 32
MAX_LINE = 480
KILL_WAIT_SECONDS = 2.0
_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/"}


def user_terminals(uid: int, dev_pts: Path = DEV_PTS) -> list[Path]:
    """The pseudo-terminals uid owns, in name order, at most MAX_TERMINALS."""
    found = []
    try:
        with os.scandir(dev_pts) as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue  # ptmx
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # closed since the listing
                if stat.S_ISCHR(info.st_mode) and info.st_uid == uid:
                    found.append(Path(entry.path))
    except OSError:
        return []
    return sorted(found, key=lambda path: int(path.name))[:MAX_TERMINALS]


def write_to_terminal(terminal: Path, uid: int, text: str) -> str | None:
    """Write text to terminal without blocking; None if it was all written,
    else why not. The terminal must still be uid's when it is open."""
    data = ("\r\n" + text[:MAX_LINE] + "\r\n").encode("utf-8", "replace")
    try:
        fd = os.open(terminal, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        return error.strerror or str(error)
    try:
        info = os.fstat(fd)
        if not stat.S_ISCHR(info.st_mode) or info.st_uid != uid:
            return "no longer the user's terminal"
        written = os.write(fd, data)
    except OSError as error:
        return "its output is not draining (stopped or full)" if error.errno == errno.EAGAIN else error.strerror
    finally:
        os.close(fd)
    return None if written == len(data) else f"only {written} of {len(data)} bytes written"


def terminal_message(host: str, names: list[tuple[int, str]], why: str, grace_seconds: float) -> str:
    """One line for the owner: which of their processes end, why, and when."""
    listed = ", ".join(f"{pid} ({name})" for pid, name in names[:8])
    more = f" and {len(names) - 8} more" if len(names) > 8 else ""
    return (
        f"leftover on {host}: ending {len(names)} process(es) of yours, pid {listed}{more}: {why}. "
        f"SIGTERM now, SIGKILL in {grace_seconds:g}s if still running."
    )


def run_notify_command(command: Path, document: str, timeout: float) -> str | None:
    """Run the site's command with document on stdin; None if it exited 0,
    else one line saying what went wrong. It runs through leftover.programs,
    as squeue does: its whole path checked (root's, writable by no one else)
    in a child of its own, the checked file what runs, its output discarded."""
    try:
        done = run(
            [str(command)], _ENVIRONMENT, time.monotonic() + timeout, stdin=document.encode("utf-8"), cwd="/",
            keep_output=False, kill_wait=KILL_WAIT_SECONDS,
        )
    except Unanswered as error:
        if error.started:
            return f"{command} did not finish within {timeout:g}s; its process group was killed{error.left_behind}"
        return f"{command} {error.within(timeout)}"
    except ProgramError as error:
        return str(error)
    if done.returncode < 0:
        return f"{command} was killed by signal {-done.returncode}"
    if done.returncode != 0:
        return f"{command} exited {done.returncode}"
    return None

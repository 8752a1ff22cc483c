"""Carrying out a plan: SIGTERM every target at once, one grace period, SIGKILL
the survivors.

It signals only the processes it is handed, one by one, never "all of user X".
Before every signal, SIGKILL included, it proves the pid still names the
process that was planned (same start time, same UIDs, not exited); through a
pidfd where the kernel has them, so a pid reused after the check can never be
hit; else by re-reading /proc just before kill(2). A pidfd is opened for one
signal and closed at once, and it must name the planned pid in /proc's own
PID namespace: no descriptor is held per target, so no number of targets can
exhaust the open-file limit. A target that cannot be checked is left alone
and said to be unchecked, never taken for one that changed. A process that
exits on its own is an ordinary outcome. Whatever stops it half-way (a stop
signal, an error), it first says which targets got what, then raises
KillPhaseStopped.
"""

import errno
import os
import signal
import time
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import NamedTuple

from leftover.decide import Decision
from leftover.interrupt import Interrupted
from leftover.scan import ProcError, read_identity

OWN_PROC = Path("/proc")  # pids, pidfds and this /proc share one namespace
KILL_WAIT_SECONDS = 2.0
FIRST_LOOK_SECONDS, LONGEST_LOOK_SECONDS = 0.01, 0.25  # between looks at /proc while waiting for exits
LISTED_PIDS = 20  # pids named in one log line; the rest are counted


class Result(Enum):
    GONE = "gone"  # exited before it was signalled
    CHANGED = "changed"  # pid now names another process, or its UIDs changed: left alone
    UNCHECKED = "unchecked"  # its identity could not be checked (no descriptor, /proc unreadable, pidfd of another pid): left alone
    FAILED = "signal-failed"  # the kernel refused the signal: left alone
    TERMINATED = "terminated"  # exited within the grace period after SIGTERM
    KILLED = "killed"  # SIGKILL sent after the grace period, and it exited
    UNKILLABLE = "unkillable"  # still present after SIGKILL (uninterruptible sleep)
    SIGTERM_ONLY = "sigterm-only"  # leftover was stopped after SIGTERM, before the grace ended
    NOT_SIGNALLED = "not-signalled"  # leftover was stopped before signalling it


UNSIGNALLED = frozenset({Result.GONE, Result.CHANGED, Result.UNCHECKED, Result.FAILED, Result.NOT_SIGNALLED})
NOT_CARRIED_OUT = frozenset({Result.UNCHECKED, Result.FAILED})  # the plan wanted a signal the run could not send


class Outcome(NamedTuple):
    decision: Decision
    result: Result
    detail: str = ""  # why it was unchecked or a signal failed
    sigterm_sent: bool = False  # SIGTERM went out, whatever became of SIGKILL

    @property
    def signalled(self) -> bool:
        """Whether any signal may have reached it: a SIGKILL left unchecked
        or refused after a SIGTERM still leaves a signalled target."""
        return self.sigterm_sent or self.result not in UNSIGNALLED


class KillPhaseStopped(Exception):
    """The kill phase did not finish; outcomes says what became of each target."""

    def __init__(self, why: str, outcomes: list[Outcome]) -> None:
        super().__init__(why)
        self.why = why
        self.outcomes = outcomes

    @property
    def signalled(self) -> bool:
        return any(o.signalled for o in self.outcomes)


class _NoPidfds(Exception):
    """The kernel (or a seccomp filter) gives no pidfds."""


class _Target:
    """One planned process, and what has become of it so far."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.result: Result | None = None
        self.sigterm_sent = False
        self.error = ""

    @property
    def pid(self) -> int:
        return self.decision.process.pid

    def check(self) -> Result | None:
        """None if the pid still names the planned process, alive; else why not."""
        planned = self.decision.process
        try:
            now = read_identity(OWN_PROC, planned.pid)
        except ProcError as error:
            self.error = str(error)
            return Result.UNCHECKED
        if now is None:
            return Result.GONE
        if now.start_ticks != planned.start_ticks or now.uids != planned.uids:
            return Result.CHANGED
        if now.exited:
            return Result.GONE
        return None

    def send(self, signum: int, through_pidfd: bool) -> Result | None:
        """Deliver signum after checking identity; None if delivered, else why
        not. Through a pidfd opened for this one signal, or else kill(2)."""
        if not through_pidfd:
            return self.check() or self._deliver(lambda: os.kill(self.pid, signum))
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return Result.GONE
        except OSError as error:
            if error.errno in (errno.ENOSYS, errno.EPERM):
                raise _NoPidfds from None
            if error.errno in (errno.ENOENT, errno.EINVAL):  # the pid now names a thread, not a process
                return Result.CHANGED
            self.error = f"cannot open a pidfd: {error.strerror}"
            return Result.UNCHECKED
        try:
            return (
                self._pidfd_names_planned_pid(pidfd)
                or self.check()
                or self._deliver(lambda: signal.pidfd_send_signal(pidfd, signum))
            )
        finally:
            os.close(pidfd)

    def _pidfd_names_planned_pid(self, pidfd: int) -> Result | None:
        """The pidfd's process, seen from /proc's PID namespace, must be the
        planned pid: where /proc belongs to another namespace it names another
        process (or 0, one /proc cannot see), and /proc's identity check would
        vouch for the wrong one."""
        try:
            fd = os.open(f"{OWN_PROC}/self/fdinfo/{pidfd}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                raw = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError as error:
            self.error = f"cannot read its pidfd's fdinfo: {error.strerror}"
            return Result.UNCHECKED
        named = next((line.split(b":", 1)[1].strip() for line in raw.splitlines() if line.startswith(b"Pid:")), b"")
        if named == str(self.pid).encode():
            return None
        if named == b"-1":
            return Result.GONE
        self.error = f"its pidfd names pid {named.decode(errors='replace') or '?'} in {OWN_PROC}'s PID namespace"
        return Result.UNCHECKED

    def _deliver(self, send: Callable[[], None]) -> Result | None:
        try:
            send()
        except ProcessLookupError:
            return Result.GONE
        except OSError as error:
            self.error = error.strerror or str(error)
            return Result.FAILED
        return None

    def exited(self) -> bool:
        """Whether it is no longer ours to wait for, read from /proc: gone, or
        the pid names another process or changed UIDs (then marked CHANGED).
        One that cannot be read now is waited for still."""
        problem = self.check()
        if problem is Result.CHANGED:
            self.result = Result.CHANGED
        return problem in (Result.GONE, Result.CHANGED)


class Actor:
    """Signals planned processes; says each step through report(level, text)."""

    def __init__(self, report: Callable[[str, str], None], describe: Callable[[Decision], str]) -> None:
        self.report = report
        self.describe = describe
        self.pidfds = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")
        self.fallback_said = False

    def carry_out(self, targets: Sequence[Decision], grace_seconds: float) -> list[Outcome]:
        handles = [_Target(decision) for decision in targets]
        try:
            self._terminate_then_kill(handles, grace_seconds)
        except BaseException as cause:
            why = f"stopped by {cause.name}" if isinstance(cause, Interrupted) else f"stopped by an error ({type(cause).__name__}: {cause})"
            raise KillPhaseStopped(why, self._account_for(why, handles)) from cause
        return [Outcome(h.decision, h.result, h.error if h.result in NOT_CARRIED_OUT else "", h.sigterm_sent) for h in handles]

    def _terminate_then_kill(self, live: list[_Target], grace_seconds: float) -> None:
        if not self.pidfds:
            self._say_fallback()
        for handle in live:
            handle.sigterm_sent = True  # from here on, if stopped, count it as maybe sent
            if self._deliver(handle, signal.SIGTERM):
                self.report("info", f"sent SIGTERM to {self.describe(handle.decision)}")
            else:
                handle.sigterm_sent = False
        live = self._wait([h for h in live if h.result is None], grace_seconds, Result.TERMINATED, "no SIGKILL sent")
        for handle in live:
            if self._deliver(handle, signal.SIGKILL, after_sigterm=True):
                self.report("info", f"sent SIGKILL to {self.describe(handle.decision)}: still alive {grace_seconds:g}s after SIGTERM")
        live = self._wait([h for h in live if h.result is None], KILL_WAIT_SECONDS, Result.KILLED, "nothing more sent")
        for handle in live:
            handle.result = Result.UNKILLABLE
            self.report(
                "warning",
                f"{self.describe(handle.decision)} is still present {KILL_WAIT_SECONDS:g}s after SIGKILL; the next run tries again",
            )

    def _deliver(self, handle: _Target, signum: int, after_sigterm: bool = False) -> bool:
        """Send signum; on failure record why in handle.result and say so."""
        try:
            problem = handle.send(signum, self.pidfds)
        except _NoPidfds:
            self.pidfds = False
            self._say_fallback()
            problem = handle.send(signum, self.pidfds)
        if problem is None:
            return True
        name = signal.Signals(signum).name
        if problem is Result.GONE:
            handle.result = Result.TERMINATED if after_sigterm else Result.GONE
            if not after_sigterm:
                self.report("info", f"{self.describe(handle.decision)} exited before it was signalled")
        elif problem is Result.CHANGED:
            handle.result = Result.CHANGED
            self.report("warning", f"pid {handle.pid} no longer names the planned process (start time or UIDs changed); no {name} sent")
        elif problem is Result.UNCHECKED:
            handle.result = Result.UNCHECKED
            self.report("debug", f"cannot check {self.describe(handle.decision)}: {handle.error}; no {name} sent")
        else:
            handle.result = Result.FAILED
            self.report("warning", f"could not send {name} to {self.describe(handle.decision)}: {handle.error}; left alone")
        return False

    def _say_fallback(self) -> None:
        if not self.fallback_said:
            self.fallback_said = True
            self.report("warning", "this kernel gives no pidfd; checking each start time just before kill(2) instead")

    def _account_for(self, why: str, handles: list[_Target]) -> list[Outcome]:
        for handle in handles:
            if handle.result is None:
                handle.result = Result.SIGTERM_ONLY if handle.sigterm_sent else Result.NOT_SIGNALLED
        outcomes = [Outcome(h.decision, h.result, h.error if h.result in NOT_CARRIED_OUT else "", h.sigterm_sent) for h in handles]
        termed = sorted(o.decision.process.pid for o in outcomes if o.result is Result.SIGTERM_ONLY)
        untouched = sorted(o.decision.process.pid for o in outcomes if o.result is Result.NOT_SIGNALLED)
        self.report(
            "warning",
            f"{why} during the kill phase: SIGTERM sent but no SIGKILL to pids {pid_list(termed)}; "
            f"nothing sent to pids {pid_list(untouched)}; the next run decides again",
        )
        return outcomes

    def _wait(self, handles: list[_Target], seconds: float, result: Result, then: str) -> list[_Target]:
        """Wait until every handle exited or seconds passed; mark the exited
        ones with result (CHANGED ones are said to get nothing more: then) and
        return those still alive. Exits are read from
        /proc, more rarely the longer the wait, so that no descriptor is held
        per target."""
        deadline = time.monotonic() + seconds
        pause = FIRST_LOOK_SECONDS
        pending = list(handles)
        while True:
            still = []
            for handle in pending:
                if handle.exited():
                    handle.result = handle.result or result
                    if handle.result is Result.CHANGED:
                        self.report("warning", f"pid {handle.pid} no longer names the planned process (start time or UIDs changed); {then}")
                else:
                    still.append(handle)
            pending = still
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return pending
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, LONGEST_LOOK_SECONDS)


def pid_list(pids: list[int]) -> str:
    """pids for a log line: the first LISTED_PIDS, then how many more."""
    shown = ",".join(map(str, pids[:LISTED_PIDS])) or "none"
    return shown if len(pids) <= LISTED_PIDS else f"{shown} and {len(pids) - LISTED_PIDS} more"

"""Carrying out a plan: SIGTERM every target at once, one grace period, SIGKILL
the survivors.

It signals only the processes it is handed, one by one, never "all of user X".
Before every signal, SIGKILL included, it proves the pid still names the
process that was planned (same start time, same UIDs, not exited); through a
pidfd where the kernel has them, so a pid reused after the check can never be
hit; else by re-reading /proc just before kill(2). A process that exits on its
own is an ordinary outcome. Whatever stops it half-way (a stop signal, an
error), it first says which targets got what, then raises KillPhaseStopped.
"""

import errno
import os
import select
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from leftover.decide import Decision
from leftover.interrupt import Interrupted
from leftover.scan import ProcError, read_identity

OWN_PROC = Path("/proc")  # pids, pidfds and this /proc share one namespace
KILL_WAIT_SECONDS = 2.0


class Result(Enum):
    GONE = "gone"  # exited before it was signalled
    CHANGED = "changed"  # pid now names another process, or its UIDs changed: left alone
    FAILED = "signal-failed"  # the kernel refused the signal: left alone
    TERMINATED = "terminated"  # exited within the grace period after SIGTERM
    KILLED = "killed"  # SIGKILL sent after the grace period, and it exited
    UNKILLABLE = "unkillable"  # still present after SIGKILL (uninterruptible sleep)
    SIGTERM_ONLY = "sigterm-only"  # leftover was stopped after SIGTERM, before the grace ended
    NOT_SIGNALLED = "not-signalled"  # leftover was stopped before signalling it


UNSIGNALLED = frozenset({Result.GONE, Result.CHANGED, Result.FAILED, Result.NOT_SIGNALLED})


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    result: Result


class KillPhaseStopped(Exception):
    """The kill phase did not finish; outcomes says what became of each target."""

    def __init__(self, why: str, outcomes: list[Outcome]) -> None:
        super().__init__(why)
        self.why = why
        self.outcomes = outcomes

    @property
    def signalled(self) -> bool:
        return any(o.result not in UNSIGNALLED for o in self.outcomes)


class _Target:
    """One planned process and the handle it is signalled through."""

    def __init__(self, decision: Decision, pidfd: int | None) -> None:
        self.decision = decision
        self.pidfd = pidfd
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
        except ProcError:
            return Result.CHANGED
        if now is None:
            return Result.GONE
        if now.start_ticks != planned.start_ticks or now.uids != planned.uids:
            return Result.CHANGED
        if now.exited:
            return Result.GONE
        return None

    def exited(self) -> bool:
        """Whether it is gone. Without a pidfd, /proc is read again: a pid that
        now names another process, or changed UIDs, is marked CHANGED and
        counts as no longer ours to wait for."""
        if self.pidfd is not None:
            return bool(_readable([self.pidfd], 0))
        problem = self.check()
        if problem is Result.CHANGED:
            self.result = Result.CHANGED
        return problem is not None

    def send(self, signum: int) -> Result | None:
        """Deliver signum after checking identity; None if delivered, else why not."""
        problem = self.check()
        if problem is not None:
            return problem
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            return Result.GONE
        except OSError as error:
            self.error = error.strerror or str(error)
            return Result.FAILED
        return None

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class Actor:
    """Signals planned processes; says each step through report(level, text)."""

    def __init__(self, report: Callable[[str, str], None], describe: Callable[[Decision], str]) -> None:
        self.report = report
        self.describe = describe
        self.pidfds = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")
        self.fallback_said = False

    def carry_out(self, targets: Sequence[Decision], grace_seconds: float) -> list[Outcome]:
        handles: list[_Target] = []
        try:
            for decision in targets:
                handles.append(self._open(decision))
            self._terminate_then_kill([h for h in handles if h.result is None], grace_seconds)
        except BaseException as cause:
            why = f"stopped by {cause.name}" if isinstance(cause, Interrupted) else f"stopped by an error ({type(cause).__name__}: {cause})"
            raise KillPhaseStopped(why, self._account_for(why, targets, handles)) from cause
        finally:
            for handle in handles:
                handle.close()
        return [Outcome(h.decision, h.result) for h in handles]

    def _terminate_then_kill(self, live: list[_Target], grace_seconds: float) -> None:
        for handle in live:
            handle.sigterm_sent = True  # from here on, if stopped, count it as maybe sent
            if self._deliver(handle, signal.SIGTERM):
                self.report("info", f"sent SIGTERM to {self.describe(handle.decision)}")
            else:
                handle.sigterm_sent = False
        live = self._wait([h for h in live if h.result is None], grace_seconds, Result.TERMINATED)
        for handle in live:
            if self._deliver(handle, signal.SIGKILL, after_sigterm=True):
                self.report("info", f"sent SIGKILL to {self.describe(handle.decision)}: still alive {grace_seconds:g}s after SIGTERM")
        live = self._wait([h for h in live if h.result is None], KILL_WAIT_SECONDS, Result.KILLED)
        for handle in live:
            handle.result = Result.UNKILLABLE
            self.report(
                "warning",
                f"{self.describe(handle.decision)} is still present {KILL_WAIT_SECONDS:g}s after SIGKILL; the next run tries again",
            )

    def _deliver(self, handle: _Target, signum: int, after_sigterm: bool = False) -> bool:
        """Send signum; on failure record why in handle.result and say so."""
        problem = handle.send(signum)
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
        else:
            handle.result = Result.FAILED
            self.report("warning", f"could not send {name} to {self.describe(handle.decision)}: {handle.error}; left alone")
        return False

    def _account_for(self, why: str, targets: Sequence[Decision], handles: list[_Target]) -> list[Outcome]:
        opened = {h.pid for h in handles}
        for handle in handles:
            if handle.result is None:
                handle.result = Result.SIGTERM_ONLY if handle.sigterm_sent else Result.NOT_SIGNALLED
        outcomes = [Outcome(h.decision, h.result) for h in handles] + [
            Outcome(d, Result.NOT_SIGNALLED) for d in targets if d.process.pid not in opened
        ]
        termed = sorted(o.decision.process.pid for o in outcomes if o.result is Result.SIGTERM_ONLY)
        untouched = sorted(o.decision.process.pid for o in outcomes if o.result is Result.NOT_SIGNALLED)
        self.report(
            "warning",
            f"{why} during the kill phase: SIGTERM sent but no SIGKILL to pids {_pids(termed)}; "
            f"nothing sent to pids {_pids(untouched)}; the next run decides again",
        )
        return outcomes

    def _open(self, decision: Decision) -> _Target:
        pidfd = None
        if self.pidfds:
            try:
                pidfd = os.pidfd_open(decision.process.pid)
            except ProcessLookupError:
                handle = _Target(decision, None)
                handle.result = Result.GONE
                self.report("info", f"{self.describe(decision)} exited before it was signalled")
                return handle
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE):
                    pidfd = None  # out of descriptors: this one is checked by start time
                elif error.errno in (errno.ENOSYS, errno.EPERM):
                    self.pidfds = False
                else:  # ENOENT/EINVAL: the pid now names a thread, not a process
                    handle = _Target(decision, None)
                    handle.result = Result.CHANGED
                    self.report("warning", f"pid {decision.process.pid} cannot be opened ({error.strerror}); left alone")
                    return handle
        if not self.pidfds and not self.fallback_said:
            self.fallback_said = True
            self.report("warning", "this kernel gives no pidfd; checking each start time just before kill(2) instead")
        return _Target(decision, pidfd)

    def _wait(self, handles: list[_Target], seconds: float, result: Result) -> list[_Target]:
        """Wait until every handle exited or seconds passed; mark the exited
        ones with result and return those still alive."""
        deadline = time.monotonic() + seconds
        pending = list(handles)
        while True:
            for handle in [h for h in pending if h.exited()]:
                handle.result = handle.result or result
                pending.remove(handle)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return pending
            fds = [h.pidfd for h in pending if h.pidfd is not None]
            if len(fds) == len(pending):
                _readable(fds, remaining)
            else:
                time.sleep(min(0.05, remaining))


def _pids(pids: list[int]) -> str:
    return ",".join(map(str, pids)) or "none"


def _readable(fds: list[int], seconds: float) -> list[int]:
    """Those of fds that poll readable within seconds (a pidfd: the process exited)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(max(0, int(seconds * 1000)))]

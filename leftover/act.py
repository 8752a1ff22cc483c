"""Carrying out a plan: SIGTERM every target at once, one grace period, SIGKILL
the survivors.

It signals only the processes it is handed, one by one, never "all of user X".
Before any signal it proves the pid still names the process that was planned
(same start time, same UIDs): through a pidfd where the kernel has them, so a
pid reused after the check can never be hit; else by re-reading /proc just
before kill(2). A process that exits on its own is an ordinary outcome.
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
    TERMINATED = "terminated"  # exited within the grace period after SIGTERM
    KILLED = "killed"  # SIGKILL sent after the grace period, and it exited
    UNKILLABLE = "unkillable"  # still present after SIGKILL (uninterruptible sleep)
    SIGTERM_ONLY = "sigterm-only"  # leftover was stopped after SIGTERM, before the grace ended
    NOT_SIGNALLED = "not-signalled"  # leftover was stopped before signalling it


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    result: Result


class _Target:
    """One planned process and the handle it is signalled through."""

    def __init__(self, decision: Decision, pidfd: int | None) -> None:
        self.decision = decision
        self.pidfd = pidfd
        self.result: Result | None = None
        self.sigterm_sent = False

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
        if now.state in ("Z", "X"):
            return Result.GONE
        return None

    def exited(self) -> bool:
        if self.pidfd is not None:
            return bool(_readable([self.pidfd], 0))
        return self.check() is not None

    def send(self, signum: int) -> bool:
        """Deliver signum; False if the process is already gone."""
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            elif self.check() is None:
                os.kill(self.pid, signum)
            else:
                return False
        except ProcessLookupError:
            return False
        return True

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
        """Signal targets. If leftover is stopped meanwhile (Interrupted), it
        says which targets got SIGTERM and which got nothing, then re-raises
        with the outcomes attached."""
        handles: list[_Target] = []
        try:
            for decision in targets:
                handles.append(self._open(decision))
            self._terminate_then_kill([h for h in handles if h.result is None], grace_seconds)
        except Interrupted as stop:
            self._account_for(stop, targets, handles)
            raise
        finally:
            for handle in handles:
                handle.close()
        return [Outcome(h.decision, h.result) for h in handles]

    def _terminate_then_kill(self, live: list[_Target], grace_seconds: float) -> None:
        for handle in live:
            if handle.send(signal.SIGTERM):
                handle.sigterm_sent = True
                self.report("info", f"sent SIGTERM to {self.describe(handle.decision)}")
            else:
                self._gone(handle)
        live = self._wait([h for h in live if h.result is None], grace_seconds, Result.TERMINATED)
        for handle in live:
            if handle.send(signal.SIGKILL):
                self.report("info", f"sent SIGKILL to {self.describe(handle.decision)}: still alive {grace_seconds:g}s after SIGTERM")
            else:
                handle.result = Result.TERMINATED
        live = self._wait([h for h in live if h.result is None], KILL_WAIT_SECONDS, Result.KILLED)
        for handle in live:
            handle.result = Result.UNKILLABLE
            self.report(
                "warning",
                f"{self.describe(handle.decision)} is still present {KILL_WAIT_SECONDS:g}s after SIGKILL; the next run tries again",
            )

    def _account_for(self, stop: Interrupted, targets: Sequence[Decision], handles: list[_Target]) -> None:
        opened = {h.pid for h in handles}
        for handle in handles:
            if handle.result is None:
                handle.result = Result.SIGTERM_ONLY if handle.sigterm_sent else Result.NOT_SIGNALLED
        stop.outcomes = [Outcome(h.decision, h.result) for h in handles] + [
            Outcome(d, Result.NOT_SIGNALLED) for d in targets if d.process.pid not in opened
        ]
        termed = sorted(o.decision.process.pid for o in stop.outcomes if o.result is Result.SIGTERM_ONLY)
        untouched = sorted(o.decision.process.pid for o in stop.outcomes if o.result is Result.NOT_SIGNALLED)
        self.report(
            "warning",
            f"stopped by {stop.name} during the kill phase: SIGTERM sent but no SIGKILL to pids {_pids(termed)}; "
            f"nothing sent to pids {_pids(untouched)}; the next run decides again",
        )

    def _open(self, decision: Decision) -> _Target:
        pidfd = None
        if self.pidfds:
            try:
                pidfd = os.pidfd_open(decision.process.pid)
            except ProcessLookupError:
                handle = _Target(decision, None)
                self._gone(handle)
                return handle
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE):
                    pidfd = None  # out of descriptors: this one is checked by start time
                elif error.errno in (errno.ENOSYS, errno.EPERM):
                    self.pidfds = False
                else:
                    raise
        if not self.pidfds and not self.fallback_said:
            self.fallback_said = True
            self.report("warning", "this kernel gives no pidfd; checking each start time just before kill(2) instead")
        handle = _Target(decision, pidfd)
        problem = handle.check()
        if problem is Result.GONE:
            self._gone(handle)
        elif problem is Result.CHANGED:
            handle.result = problem
            self.report(
                "warning", f"pid {decision.process.pid} no longer names the planned process (start time or UIDs changed); left alone"
            )
        return handle

    def _gone(self, handle: _Target) -> None:
        handle.result = Result.GONE
        self.report("info", f"{self.describe(handle.decision)} exited before it was signalled")

    def _wait(self, handles: list[_Target], seconds: float, result: Result) -> list[_Target]:
        """Wait until every handle exited or seconds passed; mark the exited
        ones with result and return those still alive."""
        deadline = time.monotonic() + seconds
        pending = list(handles)
        while True:
            for handle in [h for h in pending if h.exited()]:
                handle.result = result
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

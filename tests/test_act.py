"""The Actor against real processes: children of the test, signalled for real."""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from leftover import act
from leftover.act import Actor, KillPhaseStopped, Result
from leftover.decide import RULES, Decision
from leftover.interrupt import stop_signals_raise
from leftover.scan import ProcError, read_identity

TARGET_RULE = RULES[-1]
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"


def start(code: str = "import time; print('ready', flush=True); time.sleep(600)") -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    return child


def planned(child: subprocess.Popen) -> Decision:
    return Decision(read_identity(Path("/proc"), child.pid), TARGET_RULE)


class Said:
    def __init__(self):
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))

    def text(self):
        return "\n".join(text for _, text in self.lines)


def actor(said: Said) -> Actor:
    return Actor(report=said, describe=lambda d: f"pid={d.process.pid}")


def reaped(child: subprocess.Popen) -> int:
    """The child's exit: a negative signal number."""
    return child.wait(timeout=5)


@pytest.fixture
def children():
    started = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "start-time-fallback"])
def test_sigterm_ends_a_process_that_obeys(children, pidfds):
    child = start()
    children.append(child)
    said = Said()
    worker = actor(said)
    worker.pidfds = pidfds
    outcomes = worker.carry_out([planned(child)], grace_seconds=5)
    assert [o.result for o in outcomes] == [Result.TERMINATED]
    assert reaped(child) == -signal.SIGTERM
    assert f"sent SIGTERM to pid={child.pid}" in said.text()
    assert ("no pidfd" in said.text()) is (not pidfds)


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "start-time-fallback"])
def test_process_ignoring_sigterm_is_killed_after_the_grace(children, pidfds):
    child = start(IGNORES_TERM)
    children.append(child)
    said = Said()
    worker = actor(said)
    worker.pidfds = pidfds
    began = time.monotonic()
    outcomes = worker.carry_out([planned(child)], grace_seconds=1)
    assert time.monotonic() - began >= 1
    assert [o.result for o in outcomes] == [Result.KILLED]
    assert reaped(child) == -signal.SIGKILL
    assert f"sent SIGKILL to pid={child.pid}: still alive 1s after SIGTERM" in said.text()


def test_all_targets_share_one_grace_period(children):
    """Every SIGTERM goes out before any SIGKILL: one grace period for the
    whole plan, not one per target or per user."""
    stubborn = [start(IGNORES_TERM) for _ in range(3)]
    children.extend(stubborn)
    said = Said()
    outcomes = actor(said).carry_out([planned(c) for c in stubborn], grace_seconds=1)
    assert {o.result for o in outcomes} == {Result.KILLED}
    sent = [text.split()[1] for _, text in said.lines if text.startswith("sent ")]
    assert sent == ["SIGTERM"] * 3 + ["SIGKILL"] * 3


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "start-time-fallback"])
def test_a_process_whose_start_time_differs_is_left_alone(children, pidfds):
    child = start()
    children.append(child)
    decision = planned(child)
    impostor = Decision(decision.process._replace(start_ticks=decision.process.start_ticks - 1), TARGET_RULE)
    said = Said()
    worker = actor(said)
    worker.pidfds = pidfds
    assert [o.result for o in worker.carry_out([impostor], grace_seconds=1)] == [Result.CHANGED]
    assert child.poll() is None
    assert "no longer names the planned process" in said.text()


def test_a_process_whose_uids_changed_is_left_alone(children):
    child = start()
    children.append(child)
    decision = planned(child)
    changed = Decision(decision.process._replace(uids=(4321,) * 4), TARGET_RULE)
    assert [o.result for o in actor(Said()).carry_out([changed], grace_seconds=1)] == [Result.CHANGED]
    assert child.poll() is None


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "start-time-fallback"])
def test_a_process_that_exited_before_the_signal_is_an_ordinary_outcome(children, pidfds):
    child = start()
    decision = planned(child)
    child.kill()
    child.wait()
    worker = actor(Said())
    worker.pidfds = pidfds
    assert [o.result for o in worker.carry_out([decision], grace_seconds=1)] == [Result.GONE]


def test_pidfds_are_closed_after_the_run(children):
    child = start()
    children.append(child)
    before = len(os.listdir("/proc/self/fd"))
    actor(Said()).carry_out([planned(child)], grace_seconds=2)
    assert len(os.listdir("/proc/self/fd")) == before


def test_stopped_during_the_grace_says_what_was_and_was_not_done(children):
    stubborn = start(IGNORES_TERM)
    children.append(stubborn)
    gone = start()
    planned_gone = planned(gone)
    gone.kill()
    gone.wait()
    said = Said()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(KillPhaseStopped) as stop, stop_signals_raise():
        actor(said).carry_out([planned(stubborn), planned_gone], grace_seconds=30)
    assert {o.decision.process.pid: o.result for o in stop.value.outcomes} == {
        stubborn.pid: Result.SIGTERM_ONLY,
        gone.pid: Result.GONE,
    }
    assert stubborn.poll() is None  # no SIGKILL after the stop
    expected = f"stopped by SIGTERM during the kill phase: SIGTERM sent but no SIGKILL to pids {stubborn.pid}; nothing sent to pids none"
    assert expected in said.text()


def test_stop_signals_are_restored_afterwards():
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals_raise():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "start-time-fallback"])
def test_a_process_that_turned_zombie_after_the_plan_is_gone_not_signalled(children, pidfds):
    child = start()
    decision = planned(child)
    child.kill()  # exits, and stays a zombie: the test does not reap it yet
    while read_identity(Path("/proc"), child.pid).state != "Z":
        time.sleep(0.01)
    worker = actor(Said())
    worker.pidfds = pidfds
    assert [o.result for o in worker.carry_out([decision], grace_seconds=1)] == [Result.GONE]
    child.wait()


# The main thread ends with a raw exit(2) (SYS_exit, 60 on x86-64), not the
# whole group's exit_group: the kernel then shows the leader as Z while the
# other thread runs on.
MAIN_THREAD_EXITS = (
    "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(600,)).start(); "
    "print('ready', flush=True); ctypes.CDLL(None).syscall(60, 0)"
)


def zombie_leader(children) -> subprocess.Popen:
    child = start(MAIN_THREAD_EXITS)
    children.append(child)
    while (now := read_identity(Path("/proc"), child.pid)).state != "Z":
        time.sleep(0.01)
    assert now.threads == 2 and not now.exited
    return child


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "start-time-fallback"])
def test_a_zombie_leader_with_a_live_thread_is_signalled_not_taken_for_gone(children, pidfds):
    child = zombie_leader(children)
    said = Said()
    worker = actor(said)
    worker.pidfds = pidfds
    assert [o.result for o in worker.carry_out([planned(child)], grace_seconds=5)] == [Result.TERMINATED]
    assert reaped(child) == -signal.SIGTERM
    assert f"sent SIGTERM to pid={child.pid}" in said.text()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing UID needs root")
def test_a_process_that_changed_its_uid_after_the_plan_is_left_alone(children):
    code = ("import os, sys; print('ready', flush=True); sys.stdin.readline(); os.setresuid(3002, 3002, 3002); "
            "print('changed', flush=True); import time; time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children.append(child)
    assert child.stdout.readline() == "ready\n"
    decision = planned(child)
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline() == "changed\n"
    said = Said()
    assert [o.result for o in actor(said).carry_out([decision], grace_seconds=1)] == [Result.CHANGED]
    assert child.poll() is None


def test_an_error_mid_phase_still_says_what_was_done_and_stops_the_phase(children):
    stubborn = start(IGNORES_TERM)
    children.append(stubborn)
    said = Said()

    def report(level, text):
        said(level, text)
        if text.startswith("sent SIGTERM"):
            raise BrokenPipeError("stderr went away")

    worker = Actor(report=report, describe=lambda d: f"pid={d.process.pid}")
    with pytest.raises(KillPhaseStopped) as stop:
        worker.carry_out([planned(stubborn)], grace_seconds=30)
    assert stop.value.signalled
    assert [o.result for o in stop.value.outcomes] == [Result.SIGTERM_ONLY]
    assert "stopped by an error (BrokenPipeError: stderr went away) during the kill phase" in said.text()
    assert stubborn.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="changing UID needs root")
def test_no_sigkill_for_a_process_whose_uid_changed_during_the_grace(children):
    code = ("import os, signal, sys, time\n"
            "def become_other(*_):\n"
            "    os.setresuid(3002, 3002, 3002)\n"
            "signal.signal(signal.SIGTERM, become_other)\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(1)\n")
    child = start(code)
    children.append(child)
    said = Said()
    outcomes = actor(said).carry_out([planned(child)], grace_seconds=1)
    assert [o.result for o in outcomes] == [Result.CHANGED]
    assert child.poll() is None
    assert "no SIGKILL sent" in said.text()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing UID needs root")
def test_without_pidfds_a_uid_change_during_the_grace_is_reported_as_changed(children):
    code = ("import os, signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: os.setresuid(3002, 3002, 3002))\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(1)\n")
    child = start(code)
    children.append(child)
    worker = actor(Said())
    worker.pidfds = False
    assert [o.result for o in worker.carry_out([planned(child)], grace_seconds=1)] == [Result.CHANGED]
    assert child.poll() is None


def test_many_more_targets_than_open_files_are_all_checked_and_signalled(children):
    """No descriptor is held per target: a plan many times larger than the
    open-file limit is carried out whole, none left unchecked."""
    sleepers = [subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for _ in range(300)]
    children.extend(sleepers)
    decisions = [Decision(read_identity(Path("/proc"), s.pid), TARGET_RULE) for s in sleepers]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        outcomes = actor(Said()).carry_out(decisions, grace_seconds=5)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [o.result for o in outcomes] == [Result.TERMINATED] * len(sleepers)
    assert {reaped(s) for s in sleepers} == {-signal.SIGTERM}


def test_a_target_that_cannot_be_checked_is_unchecked_not_changed(children, monkeypatch):
    child = start()
    children.append(child)
    decision = planned(child)

    def unreadable(proc_root, pid):
        raise ProcError(f"cannot read {proc_root}/{pid}/status: Too many open files")

    monkeypatch.setattr(act, "read_identity", unreadable)
    outcomes = actor(Said()).carry_out([decision], grace_seconds=1)
    assert [(o.result, o.detail) for o in outcomes] == [(Result.UNCHECKED, f"cannot read /proc/{child.pid}/status: Too many open files")]
    assert child.poll() is None


def test_a_target_whose_sigkill_could_not_be_checked_still_counts_as_signalled(children, monkeypatch):
    """SIGTERM went out, the target ignored it, and /proc failed before SIGKILL:
    the outcome is unchecked, yet the run did signal it (exit 3, never 'nothing
    signalled')."""
    from leftover import act
    from leftover.scan import ProcError, read_identity

    child = start("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)")
    children.append(child)
    target = planned(child)
    calls = []

    def failing_after_sigterm(root, pid):
        calls.append(pid)
        if len(calls) > 1:
            raise ProcError(f"cannot read {root}/{pid}/stat: Input/output error")
        return read_identity(root, pid)

    monkeypatch.setattr(act, "read_identity", failing_after_sigterm)
    (outcome,) = actor(Said()).carry_out([target], grace_seconds=0.2)
    assert outcome.result is Result.UNCHECKED and outcome.sigterm_sent and outcome.signalled

"""leftover itself stopped by a signal: before the kill phase nothing is
signalled (exit 1); during it, the log says which targets got SIGTERM and which
got nothing (exit 3)."""

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e


def start_leftover(conf) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "leftover", "--no-splay", "--config", str(conf), "--lock-file", str(conf.parent / "lock")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_line(syslog, mark: int, text: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(text in line for line in syslog.texts_since(mark)):
            return
    raise AssertionError(f"no syslog line with {text!r}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopped_during_the_grace_period(slurm, syslog, tmp_path, signum):
    stubborn = cluster.stubborn(STRAY)
    mark = syslog.mark()
    run = start_leftover(cluster.config(tmp_path, grace_seconds=60))
    try:
        wait_for_line(syslog, mark, f"sent SIGTERM to pid={stubborn.pid} ")
        run.send_signal(signum)
        assert run.wait(timeout=10) == 3
        assert cluster.alive(stubborn.pid)  # no SIGKILL followed
        texts = syslog.texts_since(mark)
        name = signal.Signals(signum).name
        assert any(t.startswith(f"stopped by {name} during the kill phase: SIGTERM sent but no SIGKILL to pids ")
                   and str(stubborn.pid) in t for t in texts), texts
        assert any(t.startswith(f"stopped by {name} during the kill phase; scanned ") for t in texts), texts
    finally:
        run.kill()
        cluster.stop([stubborn])


def test_stopped_before_the_kill_phase_signals_nothing(slurm, syslog, tmp_path):
    stray = cluster.sleeper(STRAY)
    slow = tmp_path / "squeue"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    cluster.scontrol_beside(tmp_path)
    mark = syslog.mark()
    run = start_leftover(cluster.config(tmp_path, squeue=str(slow), squeue_timeout=30))
    try:
        time.sleep(1.5)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=10) == 1
        assert cluster.alive(stray.pid)
        assert "bailed out, nothing signalled: stopped by SIGTERM" in syslog.texts_since(mark)
    finally:
        run.kill()
        cluster.stop([stray])

"""Telling the owner for real: a test user's own process opens a pty (the
slave is then the user's, as devpts gives it) and keeps reading its master;
leftover, with tell_terminals and a real notify command, writes its line there
before SIGTERM, and the command gets the run's document."""

import json
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e

# Ignores SIGTERM (so it lives through the grace and can pass on what it read),
# opens a pty of its own, says which, and copies whatever reaches it to a file.
TERMINAL_HOLDER = """
import os, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
master, slave = os.openpty()
out = open(sys.argv[1] + "/seen", "ab", buffering=0)
with open(sys.argv[1] + "/tty.new", "w") as name:
    name.write(os.ttyname(slave))
os.rename(sys.argv[1] + "/tty.new", sys.argv[1] + "/tty")
while True:
    out.write(os.read(master, 4096))
"""


def wait_for(path: Path, seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)
    return path.read_text()


def test_the_owner_is_told_on_their_own_terminal_before_sigterm_and_the_site_command_gets_the_run(
    slurm, syslog, tmp_path
):
    tmp_path.chmod(0o755)
    shared = Path(tempfile.mkdtemp(prefix="leftover-e2e-tty-", dir="/tmp"))  # pytest's tmp_path is root's alone
    shared.chmod(0o777)
    told = tmp_path / "notified.json"
    command = tmp_path / "notify"
    command.write_text(f"#!/bin/sh\ncat > {told}\n")
    command.chmod(0o755)
    holder = cluster.start_as(STRAY, ["/usr/bin/python3", "-c", TERMINAL_HOLDER, str(shared)])
    try:
        terminal = wait_for(shared / "tty")
        assert Path(terminal).stat().st_uid == STRAY.uid
        mark = syslog.mark()
        conf = cluster.config(tmp_path, tell_terminals=True, notify_command=str(command), notify_timeout=10)
        result = cluster.run_leftover(conf)
        assert result.returncode == 0, result.stderr
        assert cluster.wait_dead(holder.pid)
        seen = (shared / "seen").read_bytes().replace(b"\r", b"").decode()
        host = socket.gethostname().split(".")[0]
        assert f"leftover on {host}: ending 1 process(es) of yours, pid {holder.pid} (python3): no-job-on-node" in seen
        lines = syslog.texts_since(mark)
        told_at = lines.index(next(t for t in lines if t.startswith(f"told user={STRAY.name} uid={STRAY.uid} on {terminal}")))
        sigterm_at = lines.index(next(t for t in lines if t.startswith(f"sent SIGTERM to pid={holder.pid} ")))
        assert told_at < sigterm_at
        document = json.loads(told.read_text())
        assert [(t["pid"], t["result"]) for t in document["targets"]] == [(holder.pid, "killed")]
    finally:
        cluster.stop([holder])
        shutil.rmtree(shared)


def test_a_hanging_site_command_is_killed_and_the_run_still_succeeds(slurm, syslog, tmp_path):
    tmp_path.chmod(0o755)
    command = tmp_path / "notify"
    command.write_text("#!/bin/sh\nexec sleep 600\n")
    command.chmod(0o755)
    stray = cluster.sleeper(STRAY)
    try:
        mark = syslog.mark()
        result = cluster.run_leftover(cluster.config(tmp_path, notify_command=str(command), notify_timeout=1))
        assert result.returncode == 0, result.stderr
        assert [t for t in syslog.texts_since(mark) if "did not finish within 1s; its process group was killed" in t]
        assert cluster.wait_dead(stray.pid)
    finally:
        cluster.stop([stray])

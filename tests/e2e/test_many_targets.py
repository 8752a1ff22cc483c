"""A user with thousands of processes and no job: every one is a target, and a
run under cron's usual open-file limit (a soft limit of 1024) must kill them
all, not run out of descriptors and call them changed."""

import re
import resource
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e

SLEEPERS = 3000
SOFT_NOFILE = 1024


def processes_of(user) -> list[int]:
    done = subprocess.run(["pgrep", "-U", str(user.uid)], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()]


def under_cron_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_NOFILE, hard))


def test_thousands_of_targets_under_a_1024_open_file_limit_are_all_killed(slurm, syslog, tmp_path):
    forker = cluster.start_as(
        STRAY, ["/bin/sh", "-c", f"i=0; while [ $i -lt {SLEEPERS} ]; do sleep 600 & i=$((i+1)); done; wait"]
    )
    try:
        deadline = time.monotonic() + 120
        while len(processes_of(STRAY)) < SLEEPERS + 1:
            assert time.monotonic() < deadline, f"only {len(processes_of(STRAY))} processes of {STRAY.name} started"
            time.sleep(0.2)
        targets = processes_of(STRAY)
        mark = syslog.mark()
        run = subprocess.Popen(
            [sys.executable, "-m", "leftover", "--no-splay", "--config", str(cluster.config(tmp_path)),
             "--lock-file", str(tmp_path / "lock")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=under_cron_limit,
        )
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-2000:]
        survivors = [pid for pid in targets if not cluster.wait_dead(pid, seconds=0.01)]
        assert survivors == []
        (summary,) = [line.text for line in syslog.since(mark) if line.pid == run.pid and line.text.startswith("scanned ")]
        terminated = re.search(r"(\d+) terminated", summary)
        assert terminated and int(terminated.group(1)) >= SLEEPERS + 1, summary
        assert not re.search(r"unchecked|signal-failed", summary), summary
    finally:
        forker.kill()
        forker.wait()
        cluster.clear_test_users()

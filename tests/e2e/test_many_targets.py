"""A user with thousands of processes and no job: every one is a target, and a
run under cron's usual open-file limit (a soft limit of 1024) must kill them
all, not run out of descriptors and call them changed."""

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
        result = subprocess.run(
            [sys.executable, "-m", "leftover", "--no-splay", "--config", str(cluster.config(tmp_path)),
             "--lock-file", str(tmp_path / "lock")],
            cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=under_cron_limit,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        survivors = [pid for pid in targets if not cluster.wait_dead(pid, seconds=0.01)]
        assert survivors == []
        summaries = [t for t in syslog.texts_since(mark) if t.startswith("scanned ")]
        assert len(summaries) == 1 and f"{SLEEPERS + 1} target(s)" in summaries[0], summaries
        assert summaries[0].endswith(f"; {SLEEPERS + 1} terminated"), summaries
    finally:
        forker.kill()
        forker.wait()
        cluster.clear_test_users()

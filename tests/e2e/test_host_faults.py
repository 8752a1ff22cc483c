"""A half-broken node: /proc mounted with hidepid, a read-only lock directory,
no syslog socket. Each runs the real leftover in a private mount namespace,
with job_source local so that Slurm plays no part, and a real stray to show
whether anything was signalled."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e


def in_mount_namespace(setup: str, *leftover_arguments: str) -> subprocess.CompletedProcess:
    """Run `setup` (shell) then leftover, in a mount namespace of their own."""
    command = " ".join([setup, "&&", "exec", sys.executable, "-m", "leftover", "--no-splay", *leftover_arguments])
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.fixture
def stray(slurm):
    process = cluster.sleeper(STRAY)
    yield process
    cluster.stop([process])


def test_proc_mounted_with_hidepid_hides_nothing_from_root(stray, tmp_path):
    (tmp_path / "proc").mkdir()
    conf = cluster.config(tmp_path, job_source="local")
    done = in_mount_namespace(f"mount -t proc -o hidepid=2 proc {tmp_path}/proc",
                              "--dry-run", "--json", "--config", str(conf), "--proc", f"{tmp_path}/proc")
    assert done.returncode == 0, done.stderr
    assert stray.pid in [t["pid"] for t in json.loads(done.stdout)["targets"]]
    assert cluster.alive(stray.pid)


def test_read_only_lock_directory_bails_out_and_signals_nothing(stray, tmp_path):
    (tmp_path / "run").mkdir()
    conf = cluster.config(tmp_path, job_source="local")
    done = in_mount_namespace(f"mount -t tmpfs -o ro tmpfs {tmp_path}/run",
                              "--json", "--config", str(conf), "--lock-file", f"{tmp_path}/run/leftover.lock")
    assert done.returncode == 1, done.stderr
    assert "cannot open lock file" in json.loads(done.stdout)["bailed_out"]
    assert cluster.alive(stray.pid)


def test_missing_lock_directory_bails_out_and_signals_nothing(stray, tmp_path):
    conf = cluster.config(tmp_path, job_source="local")
    done = in_mount_namespace("true", "--json", "--config", str(conf), "--lock-file", f"{tmp_path}/absent/leftover.lock")
    assert done.returncode == 1 and "No such file" in json.loads(done.stdout)["bailed_out"]
    assert cluster.alive(stray.pid)


def test_without_syslog_the_run_goes_on_and_logs_to_stderr(stray, tmp_path):
    conf = cluster.config(tmp_path, job_source="local")
    hide = "mount --bind /dev/null /dev/log" if Path("/dev/log").exists() else "true"
    done = in_mount_namespace(hide, "--config", str(conf), "--lock-file", f"{tmp_path}/lock")
    assert done.returncode == 0, done.stderr
    assert "no syslog at /dev/log" in done.stderr
    assert f"sent SIGTERM to pid={stray.pid} user={STRAY.name}" in done.stderr
    assert cluster.wait_dead(stray.pid)

"""The metrics file is written as root into a directory a site chose: nothing
another account controls may redirect the write, the chmod or the read. Real
files, FIFOs, links and directories owned by a test account's UID."""

import json
import os
import resource
import stat
import subprocess
import sys
import time

import pytest

from leftover import metrics
from leftover.metrics import MetricsError
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC, REPO
from tests.faults import config, faulty_squeue

OTHER_UID = 3002  # lo-stray's UID in the end-to-end tests; only files are given to it here
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another account needs root")


def bailing_run(tmp_path, metrics_file, limit_memory=False) -> subprocess.CompletedProcess:
    """A real leftover run that bails out (squeue fails), so it reads the
    previous metrics file for its last success, then writes a new one."""
    conf = config(tmp_path, json.dumps({"squeue": str(faulty_squeue(tmp_path, "exits-1")), "metrics_file": str(metrics_file)}))

    def limits():
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "leftover", "--no-splay", "--config", str(conf), "--lock-file", str(tmp_path / "lock"),
         "--proc", str(EXAMPLE_PROC), "--passwd", str(EXAMPLE_NODE / "passwd")],
        cwd=REPO, capture_output=True, text=True, timeout=30, preexec_fn=limits,
    )


def test_the_file_is_written_whole_with_mode_0644(tmp_path):
    prom = tmp_path / "leftover.prom"
    metrics.write(prom, "leftover_targets 3\n")
    assert prom.read_text() == "leftover_targets 3\n"
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["leftover.prom"]


def test_a_fifo_at_the_path_does_not_hang_a_run(tmp_path):
    prom = tmp_path / "leftover.prom"
    os.mkfifo(prom)
    done = bailing_run(tmp_path, prom)
    assert done.returncode == 1, done.stderr
    assert stat.S_ISREG(prom.lstat().st_mode) and 'leftover_run_bailed_out{reason="slurm"} 1' in prom.read_text()


def test_a_link_to_dev_zero_at_the_path_is_not_read(tmp_path):
    prom = tmp_path / "leftover.prom"
    prom.symlink_to("/dev/zero")
    done = bailing_run(tmp_path, prom, limit_memory=True)
    assert done.returncode == 1, done.stderr
    assert stat.S_ISREG(prom.lstat().st_mode) and stat.S_ISCHR(os.stat("/dev/zero").st_mode)


def test_only_the_start_of_a_huge_previous_file_is_read(tmp_path):
    prom = tmp_path / "leftover.prom"
    prom.write_text("#" * metrics.METRICS_READ_LIMIT + "\nleftover_last_success_timestamp_seconds 5\n")
    assert metrics.previous_success(prom) is None
    prom.write_text("leftover_last_success_timestamp_seconds 5\n")
    assert metrics.previous_success(prom) == 5


def test_a_link_root_owns_in_a_trusted_directory_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    metrics.write(tmp_path / "link" / "leftover.prom", "x 1\n")
    assert (tmp_path / "real" / "leftover.prom").read_text() == "x 1\n"
    assert metrics.previous_success(tmp_path / "link" / "leftover.prom") is None


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_directory_others_can_write_is_refused(tmp_path, mode):
    directory = tmp_path / "textfiles"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(MetricsError, match="writable by group or others"):
        metrics.write(directory / "leftover.prom", "x 1\n")
    assert list(directory.iterdir()) == []


@needs_root
def test_a_directory_another_account_owns_is_refused(tmp_path):
    directory = tmp_path / "textfiles"
    directory.mkdir()
    os.chown(directory, OTHER_UID, OTHER_UID)
    (directory / "leftover.prom").write_text("leftover_last_success_timestamp_seconds 5\n")
    with pytest.raises(MetricsError, match=f"directory {directory} is owned by uid {OTHER_UID}, not root"):
        metrics.write(directory / "leftover.prom", "x 1\n")
    assert metrics.previous_success(directory / "leftover.prom") is None


@needs_root
def test_a_parent_another_account_owns_is_refused(tmp_path):
    """As the prometheus account owns /var/lib/prometheus on Debian: it could
    put any directory, or a link, in the place of node-exporter."""
    parent = tmp_path / "prometheus"
    (parent / "node-exporter").mkdir(parents=True)
    os.chown(parent, OTHER_UID, OTHER_UID)
    with pytest.raises(MetricsError, match=f"directory {parent} is owned by uid {OTHER_UID}"):
        metrics.write(parent / "node-exporter" / "leftover.prom", "x 1\n")


@needs_root
def test_a_link_another_account_owns_is_not_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    os.chown(tmp_path / "link", OTHER_UID, OTHER_UID, follow_symlinks=False)
    with pytest.raises(MetricsError, match=f"symbolic link {tmp_path / 'link'} is owned by uid {OTHER_UID}"):
        metrics.write(tmp_path / "link" / "leftover.prom", "x 1\n")
    assert list((tmp_path / "real").iterdir()) == []


SWAPPER = """
import os, sys
directory, victim = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while True:
    for name in os.listdir(directory):
        if name.startswith(".leftover.prom.") and not os.path.islink(os.path.join(directory, name)):
            staging = os.path.join(directory, "staging-" + name)
            try:
                os.symlink(victim, staging)
                os.replace(staging, os.path.join(directory, name))
            except OSError:
                pass
"""


@needs_root
def test_a_symlink_swap_in_a_directory_another_account_owns_cannot_redirect_the_chmod(tmp_path):
    """Whoever can write the directory swaps each temporary file for a link
    to a secret as soon as it appears, racing the writer (the swapper runs as
    root here: what matters is what the directory's owner could do). A large
    text widens the writer's window, so that the race is won within seconds
    where there is one to win."""
    directory = tmp_path / "textfiles"
    directory.mkdir()
    os.chown(directory, OTHER_UID, OTHER_UID)
    secret = tmp_path / "munge.key"
    secret.write_text("secret")
    secret.chmod(0o600)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(directory), str(secret)], stdout=subprocess.PIPE, text=True)
    try:
        assert swapper.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and stat.S_IMODE(secret.stat().st_mode) == 0o600:
            try:
                metrics.write(directory / "leftover.prom", "leftover_targets 3\n" * 200_000)
            except (MetricsError, OSError):
                pass
    finally:
        swapper.kill()
        swapper.wait()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text() == "secret"

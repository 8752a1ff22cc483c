"""Nothing outside can hang leftover or hide from it: a syslog that stopped
reading, a PID namespace without its own /proc, a process whose main thread
exited, and a debuglevel that would silence the record of a kill. Each runs
the real leftover against real processes of a test user, with job_source local
so that Slurm plays no part (a faulty squeue stands in where a bail-out is the
point)."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from leftover.cli import worst_case_seconds
from leftover.config import load_settings
from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY
from tests.faults import faulty_squeue

pytestmark = pytest.mark.e2e

# A run here lasts grace_seconds (2) plus a second or two; a hang lasts for
# ever. subprocess gives up after this; a run that should end within the
# README's bound (worst_case_seconds) is checked against that too.
RUN_BOUND_SECONDS = 60

# The main thread ends with a raw exit(2) (SYS_exit, 60 on x86-64), not the
# whole group's exit_group: the kernel then shows the leader as Z with
# Threads: 2 while the other thread runs on.
MAIN_THREAD_EXITS = (
    "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(600,)).start(); "
    "ctypes.CDLL(None).syscall(60, 0)"
)
# The same, once the file named by its argument exists.
MAIN_THREAD_EXITS_ON_CUE = (
    "import ctypes, os, sys, threading, time; threading.Thread(target=time.sleep, args=(600,)).start()\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
    "ctypes.CDLL(None).syscall(60, 0)"
)


@pytest.fixture
def stray(slurm):
    process = cluster.sleeper(STRAY)
    yield process
    cluster.stop([process])


def leftover(*arguments: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*wrapper, sys.executable, "-m", "leftover", "--no-splay", *arguments],
                          cwd=REPO, capture_output=True, text=True, timeout=RUN_BOUND_SECONDS)


@pytest.fixture
def stuck_syslog(syslog, tmp_path):
    """A datagram socket that nobody reads, filled until one more line would
    block, as journald's or rsyslog's is when the daemon hangs. The syslog
    fixture's /dev/log is there to be bind-mounted over."""
    path = tmp_path / "stuck-log"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(str(path))
    filler.setblocking(False)
    sent = 0
    while True:
        try:
            filler.send(b"<30>filler: a line nobody reads")
        except BlockingIOError:
            break
        sent += 1
    assert sent > 0
    yield path
    filler.close()
    receiver.close()


def test_a_syslog_that_stopped_reading_neither_hangs_the_run_nor_loses_its_record(stray, stuck_syslog, tmp_path):
    conf = cluster.config(tmp_path, job_source="local")
    started = time.monotonic()
    done = leftover("--config", str(conf), "--lock-file", str(tmp_path / "lock"), wrapper=(
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        f'mount --bind {stuck_syslog} /dev/log && exec "$0" "$@"'))
    assert time.monotonic() - started <= worst_case_seconds(load_settings(conf, explicit=True, trusted_owners=frozenset({0})))
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "syslog at /dev/log accepted no line" in line]
    assert len(said) == 1 and "logging to stderr only for the rest of this run" in said[0]
    assert f"sent SIGTERM to pid={stray.pid} user={STRAY.name}" in done.stderr
    assert cluster.wait_dead(stray.pid)


def test_kills_reach_syslog_whatever_debuglevel_says(stray, syslog, tmp_path):
    conf = cluster.config(tmp_path, job_source="local", debuglevel="warning")
    mark = syslog.mark()
    done = leftover("--config", str(conf), "--lock-file", str(tmp_path / "lock"))
    assert done.returncode == 0, done.stderr
    assert cluster.wait_dead(stray.pid)
    texts = syslog.texts_since(mark)
    assert [t for t in texts if t.startswith(f"sent SIGTERM to pid={stray.pid} user={STRAY.name}")], texts
    assert [t for t in texts if t.startswith("scanned ") and "1 terminated" in t], texts


def test_bail_outs_reach_syslog_whatever_debuglevel_says(stray, syslog, tmp_path):
    conf = cluster.config(tmp_path, debuglevel="critical", squeue=str(faulty_squeue(tmp_path, "exits-1")))
    mark = syslog.mark()
    done = leftover("--config", str(conf), "--lock-file", str(tmp_path / "lock"))
    assert done.returncode == 1, done.stderr
    texts = syslog.texts_since(mark)
    assert [t for t in texts if t.startswith("bailed out, nothing signalled: Slurm gave no usable answer")], texts
    assert cluster.alive(stray.pid)


def test_a_pid_namespace_without_its_own_proc_is_refused(stray, syslog, tmp_path):
    conf = cluster.config(tmp_path, job_source="local")
    mark = syslog.mark()
    done = leftover("--json", "--config", str(conf), "--lock-file", str(tmp_path / "lock"),
                    wrapper=("unshare", "--pid", "--fork"))
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["bailed_out_reason"] == "proc"
    assert report["bailed_out"].startswith("/proc is not this PID namespace's: it calls this process ")
    assert syslog.texts_since(mark) == [f"bailed out, nothing signalled: {report['bailed_out']}"]
    assert cluster.alive(stray.pid)


def test_a_pid_namespace_with_its_own_proc_runs(stray, tmp_path):
    conf = cluster.config(tmp_path, job_source="local")
    done = leftover("--json", "--config", str(conf), "--lock-file", str(tmp_path / "lock"),
                    wrapper=("unshare", "--pid", "--fork", "--mount-proc"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["targets"] == []  # the stray is outside this namespace, so out of sight
    assert cluster.alive(stray.pid)


def status_of(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def wait_for_zombie_leader(process: subprocess.Popen) -> None:
    while not (status_of(process.pid).get("State", "").startswith("Z") and status_of(process.pid)["Threads"] == "2"):
        assert process.poll() is None
        time.sleep(0.01)


def test_a_process_whose_main_thread_exited_is_judged_and_killed(slurm, tmp_path):
    process = cluster.start_as(STRAY, ["/usr/bin/python3", "-c", MAIN_THREAD_EXITS])
    try:
        wait_for_zombie_leader(process)
        conf = cluster.config(tmp_path, job_source="local")
        planned = leftover("--dry-run", "--json", "--all", "--config", str(conf))
        assert planned.returncode == 0, planned.stderr
        every = {entry["pid"]: entry for entry in json.loads(planned.stdout)["processes"]}
        assert (every[process.pid]["state"], every[process.pid]["reason"]) == ("Z", "no-job-on-node")
        done = leftover("--json", "--config", str(conf), "--lock-file", str(tmp_path / "lock"))
        assert done.returncode == 0, done.stderr
        assert [t["result"] for t in json.loads(done.stdout)["targets"] if t["pid"] == process.pid] == ["terminated"]
        assert process.wait(timeout=5) == -signal.SIGTERM
    finally:
        cluster.stop([process])


@pytest.fixture
def cgroup_v1(slurm):
    cluster.slurm_up_with("proctrack/cgroup")
    yield
    cluster.clear_test_users()
    cluster.slurm_up_with("proctrack/linuxproc")


def test_a_process_whose_main_thread_exited_inside_a_job_cgroup_is_spared(cgroup_v1, tmp_path):
    """The kernel shows such a leader in the root cgroups: the job's cgroup is
    read from its live thread. Adopted into an allocation (pam_slurm_adopt),
    with job_source local, the cgroup is the only evidence of the job."""
    job_id = cluster.allocate_without_shell(JOB)
    cue = Path(tempfile.mkdtemp(prefix="leftover-e2e-cue-", dir="/tmp"))
    cue.chmod(0o755)
    process = cluster.start_as(JOB, ["/usr/bin/python3", "-c", MAIN_THREAD_EXITS_ON_CUE, str(cue / "go")])
    try:
        cluster.adopt(process.pid, JOB, job_id)
        (cue / "go").touch()
        wait_for_zombie_leader(process)
        conf = cluster.config(tmp_path, job_source="local")
        planned = leftover("--dry-run", "--json", "--all", "--config", str(conf))
        assert planned.returncode == 0, planned.stderr
        every = {entry["pid"]: entry for entry in json.loads(planned.stdout)["processes"]}
        assert (every[process.pid]["state"], every[process.pid]["reason"]) == ("Z", "in-job-cgroup")
        done = leftover("--config", str(conf), "--lock-file", str(tmp_path / "lock"))
        assert done.returncode == 0, done.stderr
        assert process.poll() is None and status_of(process.pid)["Threads"] == "2"
    finally:
        cluster.stop([process])
        cluster.cancel(job_id)
        shutil.rmtree(cue)

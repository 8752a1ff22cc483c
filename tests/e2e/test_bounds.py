"""Nothing outside can hang a run or slip it another program: a real squeue
frozen in a cgroup v1 freezer, a real FUSE file system that stops answering on
the way to squeue or getent, a real NSS module (libnss-sss) talking to an sssd
that accepts and never answers, a squeue directory owned by another account, a
symlink through a directory others can write. Each run ends within
worst_case_seconds() of its config, exits non-zero with one line saying why,
and a real stray is still alive afterwards."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from leftover.cli import worst_case_seconds
from leftover.config import load_settings
from leftover.lock import take_lock
from tests.conftest import REPO, state_of
from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e

FREEZER = Path("/sys/fs/cgroup/freezer")
SQUEUE = Path("/usr/bin/squeue")  # also where a chroot's wrapper ends up (exec, same pid)
SCONTROL = Path("/usr/bin/scontrol")  # leftover runs the scontrol beside squeue first


@pytest.fixture
def stray(slurm):
    process = cluster.sleeper(STRAY)
    yield process
    cluster.stop([process])


def bound_of(conf: Path) -> float:
    return worst_case_seconds(load_settings(conf, explicit=True, trusted_owners=frozenset({0})))


def leftover_argv(conf: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "leftover", "--no-splay", "--config", str(conf),
            "--lock-file", str(conf.parent / "lock"), *arguments]


def bails_out_in_time(syslog, conf: Path, stray, why: str, argv=None) -> list[str]:
    """The run's bail-out lines that say why (its own: other sessions may log
    to the same /dev/log). argv's command must exec leftover, keeping its pid."""
    mark = syslog.mark()
    started = time.monotonic()
    run = subprocess.Popen(argv or leftover_argv(conf), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = run.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert run.returncode == 1, stderr
    assert elapsed <= bound_of(conf), f"{elapsed:.1f}s, more than the documented {bound_of(conf):g}s"
    texts = [line.text for line in syslog.since(mark) if line.ident == "leftover" and line.pid == run.pid]
    lines = [t for t in texts if t.startswith("bailed out, nothing signalled: ") and why in t]
    assert lines, texts
    assert not [t for t in texts if t.startswith("sent SIG")]
    assert cluster.alive(stray.pid)
    return lines


# A Slurm command that SIGKILL cannot end


@pytest.fixture
def frozen_cgroup():
    if not (FREEZER / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 freezer on this machine")
    cgroup = FREEZER / f"leftover-e2e-{os.getpid()}"
    cgroup.mkdir()
    yield cgroup
    (cgroup / "freezer.state").write_text("THAWED")
    deadline = time.monotonic() + 10
    while (cgroup / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    cgroup.rmdir()


def child_running(parent: int, program: Path, seconds: float = 20) -> int:
    """The pid of parent's child running program (by its command line: it runs
    from /proc/self/fd, so its name is a number)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                ppid = int(status.read_text().split("\nPPid:")[1].split()[0])
                argv0 = (status.parent / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent and argv0 == str(program).encode():
                return int(status.parent.name)
        time.sleep(0.02)
    raise AssertionError(f"no {program} under pid {parent}")


def test_squeue_frozen_in_a_cgroup_freezer_is_left_behind_within_the_bound(stray, syslog, frozen_cgroup, tmp_path):
    """slurmctld stopped, so the real squeue waits for it; then squeue is frozen,
    so the SIGKILL at squeue_timeout cannot end it (D state)."""
    conf = cluster.config(tmp_path, squeue=str(cluster.slurm_bin() / "squeue"), slew_max=0)  # a chroot's: its wrapper
    mark = syslog.mark()
    cluster.signal_daemon("slurmctld", signal.SIGSTOP)
    try:
        started = time.monotonic()
        run = subprocess.Popen(leftover_argv(conf), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        squeue = child_running(run.pid, SQUEUE)
        (frozen_cgroup / "cgroup.procs").write_text(str(squeue))
        (frozen_cgroup / "freezer.state").write_text("FROZEN")
        code = run.wait(timeout=120)
        elapsed = time.monotonic() - started
        assert code == 1, run.stderr.read()
        assert elapsed <= bound_of(conf)
        assert cluster.alive(squeue)  # still frozen: it was left behind, not waited for
    finally:
        cluster.signal_daemon("slurmctld", signal.SIGCONT)
    texts = syslog.texts_since(mark)
    assert [t for t in texts if t.startswith("bailed out, nothing signalled: Slurm gave no usable answer: squeue did not "
                                             f"answer within 2s; pid {squeue} still there 1s after SIGKILL (state D), left behind")], texts
    assert cluster.alive(stray.pid)


# A file system that stops answering on the way to a program


LEFT_BEHIND = r"; pid (\d+) still there 1s after SIGKILL \(state D\), left behind$"
LOOKING = "looking for squeue did not finish in time (a file system on the way to it did not answer)"


@pytest.mark.parametrize(("mode", "where", "why", "stuck"), [
    ("taken", "other/slurm/bin/squeue", LOOKING, True),  # the server took the lookup: not even SIGKILL ends the wait
    ("queued", "other/slurm/bin/squeue", LOOKING, True),  # behind another lookup, on the directory's lock: the same
    ("queued", "slurm/bin/squeue", LOOKING, False),  # still in the kernel's queue: SIGKILL ends the child
    # found (every step answers), but the open for the exec of the first program, the scontrol beside it,
    # is taken and never answered
    ("taken", "squeue", "scontrol did not start within 2s (a file system on the way to {scontrol} did not answer)", True),
], ids=["lookup-taken", "lookup-behind-a-lock", "lookup-queued", "exec-taken"])
def test_squeue_on_a_file_system_that_never_answers_bails_out_within_the_bound(
    stray, syslog, hung_file_system, tmp_path, mode, where, why, stuck
):
    """Every step towards squeue is a child's: the run bails out by itself
    within its bound with one line, and a child the kernel holds is left
    behind without a copy of the lock, which the next run takes."""
    squeue = hung_file_system.mount(mode) / where
    conf = cluster.config(tmp_path, squeue=str(squeue), slew_max=0)
    lines = bails_out_in_time(syslog, conf, stray, "Slurm gave no usable answer: ")
    assert len(lines) == 1
    said = re.search(re.escape(why.format(scontrol=squeue.parent / "scontrol")) + (LEFT_BEHIND if stuck else "$"), lines[0])
    assert said, lines[0]
    if stuck:
        assert state_of(int(said[1])) == "D"  # still held by the kernel, and yet:
    os.close(take_lock(conf.parent / "lock"))


def test_getent_on_a_file_system_that_never_answers_fails_closed_within_the_bound(stray, syslog, hung_file_system, tmp_path):
    """/usr/bin/getent is, in the run's own mount namespace, a file on that
    file system: its exec never gets an answer."""
    getent = hung_file_system.mount("taken") / "getent"
    conf = cluster.config(tmp_path, job_source="local", slew_max=0, protected_users=["slurm", "ldap-only-admin"])
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'mount --bind {getent} /usr/bin/getent && exec "$@"',
            "sh", *leftover_argv(conf)]
    lines = bails_out_in_time(syslog, conf, stray, "cannot resolve protected users ldap-only-admin: ", argv=argv)
    assert len(lines) == 1
    said = re.search(re.escape("getent did not start within 2s (a file system on the way to /usr/bin/getent did not answer)")
                     + LEFT_BEHIND, lines[0])
    assert said, lines[0]
    assert state_of(int(said[1])) == "D"
    os.close(take_lock(conf.parent / "lock"))


# Programs on a path someone else controls


def test_squeue_in_a_directory_owned_by_another_account_is_not_run(stray, syslog, tmp_path):
    directory = tmp_path / "slurm"
    directory.mkdir()
    shutil.copy2(SQUEUE, directory / "squeue")
    shutil.copy2(SCONTROL, directory / "scontrol")
    os.chown(directory, STRAY.uid, STRAY.uid)
    conf = cluster.config(tmp_path, squeue=str(directory / "squeue"), slew_max=0)
    bails_out_in_time(syslog, conf, stray, f"directory {directory} on its path is owned by uid {STRAY.uid}")


def test_squeue_through_a_symlink_in_a_directory_others_can_write_is_not_run(stray, syslog, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (tmp_path / "bin").mkdir()
    for command, real in (("squeue", SQUEUE), ("scontrol", SCONTROL)):
        (shared / command).symlink_to(real)
        (tmp_path / "bin" / command).symlink_to(shared / command)
    conf = cluster.config(tmp_path, squeue=str(tmp_path / "bin" / "squeue"), slew_max=0)
    bails_out_in_time(syslog, conf, stray, f"directory {shared} on its path is writable by group or others")


# A name service that never answers: libnss-sss and an sssd that accepts and stays silent


@pytest.fixture
def silent_sssd(tmp_path):
    """A socket where libnss-sss looks for sssd, accepting every connection
    and answering none, and an nsswitch.conf that asks sss before files; both
    take effect only inside in_private_namespace()."""
    if not Path("/lib/x86_64-linux-gnu/libnss_sss.so.2").exists() and not Path("/usr/lib/x86_64-linux-gnu/libnss_sss.so.2").exists():
        pytest.skip("libnss-sss is not installed (make deps)")
    pipes = tmp_path / "pipes"
    pipes.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(pipes / "nss"))
    (pipes / "nss").chmod(0o666)  # what libnss-sss requires of sssd's socket
    server.listen(64)
    held = []

    def accept_and_say_nothing():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    (tmp_path / "nsswitch.conf").write_text("passwd: sss files\ngroup: files\n")
    yield tmp_path
    server.close()
    for connection in held:
        connection.close()


def in_private_namespace(sssd: Path, argv: list[str]) -> list[str]:
    setup = (f"mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/sss/pipes && mount --bind {sssd}/pipes /var/lib/sss/pipes"
             f" && mount --bind {sssd}/nsswitch.conf /etc/nsswitch.conf")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{setup} && exec "$@"', "sh", *argv]


def test_silent_sssd_really_hangs_a_look_up(silent_sssd):
    """The reproduction itself: without leftover's bound, getent waits."""
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(in_private_namespace(silent_sssd, ["getent", "passwd", "ldap-only-admin"]), timeout=5,
                       capture_output=True)


def test_protected_user_lookup_that_hangs_fails_closed_within_the_bound(stray, syslog, silent_sssd):
    conf = cluster.config(silent_sssd, job_source="local", slew_max=0,
                          protected_users=["slurm", "ldap-only-admin"])
    bails_out_in_time(syslog, conf, stray, "cannot resolve protected users ldap-only-admin: the user database did not answer within 2s",
                      argv=in_private_namespace(silent_sssd, leftover_argv(conf)))


def test_label_lookup_that_hangs_shows_the_uid_and_the_run_goes_on(stray, syslog, silent_sssd):
    passwd = silent_sssd / "passwd"
    passwd.write_text("".join(line + "\n" for line in Path("/etc/passwd").read_text().splitlines()
                              if not line.startswith(f"{STRAY.name}:")))
    conf = cluster.config(silent_sssd, job_source="local", slew_max=0)
    mark = syslog.mark()
    started = time.monotonic()
    done = subprocess.run(in_private_namespace(silent_sssd, leftover_argv(conf, "--passwd", str(passwd), "--json")),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started <= bound_of(conf)
    assert done.returncode == 0, done.stderr
    texts = syslog.texts_since(mark)
    assert [t for t in texts if t.startswith(f"user names of uids {STRAY.uid} not known: the user database did not answer")], texts
    assert [t for t in texts if t.startswith(f"sent SIGTERM to pid={stray.pid} user={STRAY.uid} uid={STRAY.uid} ")], texts
    assert [t["user"] for t in json.loads(done.stdout)["targets"] if t["pid"] == stray.pid] == [str(STRAY.uid)]
    assert cluster.wait_dead(stray.pid)


def test_stop_signal_during_a_hung_lookup_ends_the_run_at_once(stray, syslog, silent_sssd):
    conf = cluster.config(silent_sssd, job_source="local", slew_max=0, protected_users=["slurm", "ldap-only-admin"])
    mark = syslog.mark()
    run = subprocess.Popen(in_private_namespace(silent_sssd, leftover_argv(conf)), cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child_running(run.pid, Path("/usr/bin/getent"))
        stopped = time.monotonic()
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 1
        assert time.monotonic() - stopped < 2
    finally:
        run.kill()
    assert "bailed out, nothing signalled: stopped by SIGTERM" in syslog.texts_since(mark)
    assert cluster.alive(stray.pid)

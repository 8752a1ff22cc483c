"""Running a program as root: the whole path is checked, the checked file is
what runs, and every wait has a bound (a process group killed at the deadline,
a frozen child left behind). The checks run in the child leftover forks, so
their refusals are read here as run() reports them. Real processes, real
directories, a real cgroup v1 freezer where the machine has one."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leftover import programs
from leftover.lock import take_lock
from leftover.programs import KILL_WAIT_SECONDS, Finished, ProgramError, Unanswered, executables, run
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC, state_of

OTHER_UID = 3002  # an account that is neither root nor leftover's user
FREEZER = Path("/sys/fs/cgroup/freezer")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another account")


def script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


def started(program: Path) -> Finished:
    return run([str(program)], {}, time.monotonic() + 5)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def test_a_program_in_trusted_directories_runs_and_its_output_is_read(tmp_path):
    done = run([str(script(tmp_path / "hello", "echo out; echo err >&2; exit 3"))], {}, time.monotonic() + 5)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")


@needs_root
def test_a_directory_owned_by_another_account_is_refused(tmp_path):
    directory = tmp_path / "slurm" / "bin"
    directory.mkdir(parents=True)
    program = script(directory / "squeue", "echo UID")
    os.chown(tmp_path / "slurm", OTHER_UID, OTHER_UID)
    with pytest.raises(ProgramError, match=f"directory {tmp_path}/slurm on its path is owned by uid {OTHER_UID}"):
        started(program)


def test_a_symlink_through_a_directory_others_can_write_is_refused(tmp_path):
    open_directory = tmp_path / "open"
    open_directory.mkdir()
    open_directory.chmod(0o777)
    script(open_directory / "squeue", "echo UID")
    (tmp_path / "squeue").symlink_to(open_directory / "squeue")
    with pytest.raises(ProgramError, match=f"directory {open_directory} on its path is writable by group or others"):
        started(tmp_path / "squeue")


def test_a_group_writable_file_is_refused(tmp_path):
    with pytest.raises(ProgramError, match="is writable by group or others .mode 0775."):
        started(script(tmp_path / "squeue", "echo UID", mode=0o775))


@needs_root
def test_a_symlink_owned_by_another_account_is_refused_even_in_a_sticky_directory(tmp_path):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    target = script(tmp_path / "squeue", "echo UID")
    (sticky / "squeue").symlink_to(target)
    os.lchown(sticky / "squeue", OTHER_UID, OTHER_UID)
    with pytest.raises(ProgramError, match=f"symlink {sticky}/squeue on its path is owned by uid {OTHER_UID}"):
        started(sticky / "squeue")


def test_a_sticky_world_writable_directory_holding_a_trusted_file_is_accepted(tmp_path):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert started(script(sticky / "squeue", "echo UID")).stdout == b"UID\n"


def test_relative_and_dotted_symlinks_are_followed_as_the_kernel_would(tmp_path):
    (tmp_path / "real" / "bin").mkdir(parents=True)
    script(tmp_path / "real" / "bin" / "squeue", "echo from-real")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "bin").symlink_to("../real/bin")
    (tmp_path / "links" / "squeue").symlink_to("bin/../bin/squeue")
    done = run([str(tmp_path / "links" / "squeue")], {}, time.monotonic() + 5)
    assert done.stdout == b"from-real\n"


def test_the_checked_file_is_the_one_that_runs(tmp_path, monkeypatch):
    """Whatever happens to the path after the check, the file that was checked
    and opened runs, not whatever the path names at exec time."""
    program = script(tmp_path / "squeue", "echo checked")
    checked = programs._open_trusted

    def check_then_swap(path: str) -> int:  # in the child, between its check and its exec
        fd = checked(path)
        swapped = script(tmp_path / "other", "echo swapped-in")
        os.replace(swapped, program)
        return fd

    monkeypatch.setattr(programs, "_open_trusted", check_then_swap)
    assert run([str(program)], {}, time.monotonic() + 5).stdout == b"checked\n"


def test_at_the_deadline_the_whole_process_group_is_killed(tmp_path):
    """A program that started a helper of its own: both go at the deadline,
    not only the child leftover started."""
    marker = tmp_path / "helper.pid"
    program = script(tmp_path / "squeue", f"sleep 60 & echo $! > {marker}; exec sleep 60")
    started = time.monotonic()
    with pytest.raises(Unanswered) as unanswered:
        run([str(program)], {}, started + 0.5)
    assert unanswered.value.left_behind == ""
    assert time.monotonic() - started < 0.5 + KILL_WAIT_SECONDS
    helper = int(marker.read_text())
    deadline = time.monotonic() + 2
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(helper)


def test_output_beyond_the_cap_stops_the_program(tmp_path):
    with pytest.raises(ProgramError, match=f"printed {programs.MAX_OUTPUT} bytes or more"):
        run([str(script(tmp_path / "squeue", "exec yes 2001"))], {}, time.monotonic() + 30)


@pytest.mark.skipif(os.geteuid() != 0 or not (FREEZER / "cgroup.procs").exists(), reason="needs root and a cgroup v1 freezer")
def test_a_program_frozen_in_a_cgroup_is_left_behind_within_the_bound(tmp_path):
    """SIGKILL does not end a task in a frozen cgroup v1 freezer (it stays in
    D state): leftover gives up KILL_WAIT_SECONDS after the SIGKILL."""
    cgroup = FREEZER / f"leftover-test-{os.getpid()}"
    cgroup.mkdir()
    try:
        program = script(tmp_path / "squeue", f"echo $$ > {cgroup}/cgroup.procs; echo FROZEN > {cgroup}/freezer.state; exec sleep 60")
        started = time.monotonic()
        with pytest.raises(Unanswered) as unanswered:
            run([str(program)], {}, started + 0.5)
        elapsed = time.monotonic() - started
        assert "after SIGKILL (state D), left behind" in unanswered.value.left_behind
        assert KILL_WAIT_SECONDS < elapsed < 0.5 + KILL_WAIT_SECONDS + 0.5
    finally:
        (cgroup / "freezer.state").write_text("THAWED")
        deadline = time.monotonic() + 10
        while (cgroup / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        cgroup.rmdir()


@pytest.mark.parametrize(("mode", "where", "stuck"), [
    ("taken", "other/squeue", True),  # a step of its path: the server took the lookup
    ("taken", "squeue", True),  # the file itself: every step answers, the open for exec does not
    ("queued", "other/squeue", True),  # behind the lookup holding /other's lock (fuse_lock_inode, a mutex)
    ("queued", "slurm/bin/squeue", False),  # the lookup is still in the kernel's queue: SIGKILL ends it
], ids=["lookup-taken", "exec-taken", "lookup-behind-a-lock", "lookup-queued"])
def test_a_file_system_that_never_answers_holds_a_child_never_leftover_nor_its_lock(
    hung_file_system, tmp_path, mode, where, stuck
):
    """Every step towards the program is the child's: leftover gives up on it
    at the deadline, and a child the kernel will not let go (state D, where
    SIGKILL waits too) is left behind holding nothing of leftover's."""
    program = hung_file_system.mount(mode) / where
    held = take_lock(tmp_path / "lock")
    started = time.monotonic()
    with pytest.raises(Unanswered) as unanswered:
        run([str(program)], {}, started + 0.5)
    elapsed = time.monotonic() - started
    assert not unanswered.value.started
    assert unanswered.value.within(0.5).startswith(f"did not start within 0.5s (a file system on the way to {program} did not answer)")
    if stuck:
        pid = int(re.fullmatch(r"; pid (\d+) still there 1s after SIGKILL \(state D\), left behind", unanswered.value.left_behind)[1])
        assert state_of(pid) == "D"
        assert KILL_WAIT_SECONDS < elapsed < 0.5 + KILL_WAIT_SECONDS + 0.5
    else:
        assert unanswered.value.left_behind == "" and elapsed < 0.5 + KILL_WAIT_SECONDS
    os.close(held)
    os.close(take_lock(tmp_path / "lock"))  # a fresh open file: taken only if no child holds a copy of the first


def test_looking_for_programs_on_a_file_system_that_never_answers_ends_at_the_deadline(hung_file_system):
    hung = hung_file_system.mount("taken")
    started = time.monotonic()
    with pytest.raises(Unanswered) as unanswered:
        executables(["/bin/sh", str(hung / "other" / "squeue")], started + 0.5)
    assert "(state D), left behind" in unanswered.value.left_behind
    assert time.monotonic() - started < 0.5 + KILL_WAIT_SECONDS + 0.5


def test_looking_for_programs_finds_executable_files_and_their_real_paths(tmp_path):
    script(tmp_path / "squeue", "echo UID")
    (tmp_path / "link").symlink_to(tmp_path / "squeue")
    (tmp_path / "plain").write_text("")
    (tmp_path / "directory").mkdir()
    paths = [str(tmp_path / name) for name in ("squeue", "link", "plain", "directory", "absent")]
    assert executables(paths, time.monotonic() + 5) == {
        str(tmp_path / "squeue"): str(tmp_path / "squeue"), str(tmp_path / "link"): str(tmp_path / "squeue"),
    }


def test_the_program_inherits_no_descriptor_of_leftovers(tmp_path):
    """The lock's descriptor (close-on-exec or not) never reaches the child:
    it closes every descriptor but its pipes before its first step."""
    held = take_lock(tmp_path / "lock")
    os.set_inheritable(held, True)
    try:
        done = run([str(script(tmp_path / "fds", "ls -l /proc/$$/fd"))], {"PATH": "/usr/bin:/bin"}, time.monotonic() + 5)
    finally:
        os.close(held)
    assert done.returncode == 0 and str(tmp_path / "lock") not in done.stdout.decode()
    assert "/dev/null" in done.stdout.decode()  # its stdin: what it lists is its own


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_the_answer_is_read_without_any_writable_temporary_directory():
    """squeue's answer goes through a pipe: with every temporary directory
    read-only (a full or missing /tmp), the run still reads it."""
    # Read-only, not emptied: a checkout under /tmp (a CI clone) stays readable.
    setup = ("mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && "
             "mount --bind /var/tmp /var/tmp && mount -o remount,bind,ro /var/tmp && cd /tmp")
    command = (f"{setup} && exec {sys.executable} -m leftover --dry-run --json --no-splay "
               f"--config {EXAMPLE_NODE}/leftover.conf --proc {EXAMPLE_PROC} --passwd {EXAMPLE_NODE}/passwd")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
                          capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["bailed_out"]
    assert report["job_uids"] == [2001]

import os
import shutil
from pathlib import Path

import pytest

from leftover.scan import (
    UNREADABLE_CGROUP,
    ProcError,
    foreign_pid_namespace,
    read_identity,
    scan_statuses,
    with_job_cgroups,
    with_start_times,
)
from tests.conftest import EXAMPLE_PROC


def test_example_tree_skips_vanished_and_reports_garbled():
    scan = scan_statuses(EXAMPLE_PROC)
    pids = [p.pid for p in scan.processes]
    assert 1301 not in pids  # vanished: directory without files, silently skipped
    assert 1302 not in pids  # truncated status
    assert [s.pid for s in scan.skipped] == [1302]
    assert all(p.start_ticks is None for p in scan.processes)


def test_start_times_are_read_only_where_asked():
    scan = scan_statuses(EXAMPLE_PROC)
    scan = with_start_times(EXAMPLE_PROC, scan, frozenset({1202, 1303}))
    by_pid = {p.pid: p for p in scan.processes}
    assert by_pid[1202].start_ticks == 1100
    assert by_pid[1201].start_ticks is None
    assert 1303 not in by_pid and [s.pid for s in scan.skipped] == [1302, 1303]


def test_job_cgroups_are_read_only_where_asked():
    scan = with_job_cgroups(EXAMPLE_PROC, scan_statuses(EXAMPLE_PROC), frozenset({1201, 1202}))
    by_pid = {p.pid: p for p in scan.processes}
    assert by_pid[1201].job_cgroup.endswith("/job_4242/step_batch")
    assert by_pid[1202].job_cgroup is None and by_pid[1202].start_ticks is None


def test_process_whose_stat_vanished_after_status_is_dropped(tmp_path):
    shutil.copytree(EXAMPLE_PROC / "1202", tmp_path / "1202", symlinks=True)
    scan = scan_statuses(tmp_path)
    (tmp_path / "1202" / "stat").unlink()
    assert with_start_times(tmp_path, scan, frozenset({1202})).processes == ()


def test_garbled_cgroup_counts_as_a_job_so_the_process_and_its_user_are_spared(tmp_path):
    shutil.copytree(EXAMPLE_PROC / "1202", tmp_path / "1202", symlinks=True)
    (tmp_path / "1202" / "cgroup").write_bytes(b"not a cgroup line\n")
    scan = with_job_cgroups(tmp_path, scan_statuses(tmp_path), frozenset({1202}))
    assert [p.job_cgroup for p in scan.processes] == [UNREADABLE_CGROUP]
    assert [s.pid for s in scan.skipped] == [1202] and "taken to be a job's" in scan.skipped[0].why


def unreadable(path: Path) -> None:
    """A file of a fake /proc that fails to read: a directory in its place
    (EISDIR), as a FIFO or a file of the real /proc might fail with EIO,
    EACCES or, for a cgroup path longer than PATH_MAX, ENAMETOOLONG."""
    path.unlink()
    path.mkdir()


def test_a_cgroup_file_that_fails_to_read_spares_that_process_and_its_uids_not_the_run(tmp_path):
    for pid in (1202, 1203):
        shutil.copytree(EXAMPLE_PROC / str(pid), tmp_path / str(pid), symlinks=True)
    unreadable(tmp_path / "1202" / "cgroup")
    scan = with_job_cgroups(tmp_path, scan_statuses(tmp_path), frozenset({1202, 1203}))
    by_pid = {p.pid: p for p in scan.processes}
    assert by_pid[1202].job_cgroup == UNREADABLE_CGROUP and by_pid[1203].job_cgroup is None
    assert [s.pid for s in scan.skipped] == [1202]
    assert "cgroup unreadable: Is a directory; taken to be a job's" in scan.skipped[0].why


def test_a_cgroup_fifo_neither_hangs_nor_stops_the_run(tmp_path):
    shutil.copytree(EXAMPLE_PROC / "1202", tmp_path / "1202", symlinks=True)
    (tmp_path / "1202" / "cgroup").unlink()
    os.mkfifo(tmp_path / "1202" / "cgroup")
    scan = with_job_cgroups(tmp_path, scan_statuses(tmp_path), frozenset({1202}))
    assert scan.processes == ()  # opened without blocking, read empty: as if it had exited


def test_a_stat_file_that_fails_to_read_leaves_that_process_alone_with_a_warning(tmp_path):
    for pid in (1202, 1203):
        shutil.copytree(EXAMPLE_PROC / str(pid), tmp_path / str(pid), symlinks=True)
    unreadable(tmp_path / "1202" / "stat")
    scan = with_start_times(tmp_path, scan_statuses(tmp_path), frozenset({1202, 1203}))
    assert [p.pid for p in scan.processes] == [1203]
    assert [(s.pid, s.why) for s in scan.skipped] == [(1202, "stat unreadable: Is a directory")]


def test_unlistable_proc_is_an_error(tmp_path):
    with pytest.raises(ProcError, match="cannot list"):
        scan_statuses(tmp_path / "absent")


def test_tree_without_processes_is_an_error(tmp_path):
    (tmp_path / "self").mkdir()
    with pytest.raises(ProcError, match="no readable process"):
        scan_statuses(tmp_path)


def test_a_status_file_that_fails_to_read_leaves_that_process_alone_with_a_warning(tmp_path):
    for pid in (1202, 1203):
        shutil.copytree(EXAMPLE_PROC / str(pid), tmp_path / str(pid), symlinks=True)
    unreadable(tmp_path / "1202" / "status")
    scan = scan_statuses(tmp_path)
    assert [p.pid for p in scan.processes] == [1203]
    assert [(s.pid, s.why) for s in scan.skipped] == [(1202, "status unreadable: Is a directory")]


def test_a_tree_whose_every_status_fails_to_read_is_an_error(tmp_path):
    shutil.copytree(EXAMPLE_PROC / "1202", tmp_path / "1202", symlinks=True)
    unreadable(tmp_path / "1202" / "status")
    with pytest.raises(ProcError, match="no readable process"):
        scan_statuses(tmp_path)


def test_read_identity_of_real_process_and_of_a_gone_one():
    me = read_identity(Path("/proc"), os.getpid())
    assert me is not None and me.pid == os.getpid() and me.start_ticks is not None
    assert read_identity(EXAMPLE_PROC, 1301) is None


def fake_self(tmp_path: Path, seen_as: str, nspid: str | None) -> Path:
    (tmp_path / seen_as).mkdir()
    status = (EXAMPLE_PROC / "1202" / "status").read_bytes()
    if nspid is not None:
        status = status.replace(b"NSpid:\t1202\n", f"NSpid:\t{nspid}\n".encode())
    (tmp_path / seen_as / "status").write_bytes(status)
    (tmp_path / "self").symlink_to(seen_as)
    return tmp_path


def test_this_namespaces_own_proc_is_accepted(tmp_path):
    assert foreign_pid_namespace(Path("/proc")) is None
    assert foreign_pid_namespace(fake_self(tmp_path, str(os.getpid()), str(os.getpid()))) is None


def test_a_proc_that_calls_this_process_by_another_pid_is_another_namespaces(tmp_path):
    problem = foreign_pid_namespace(fake_self(tmp_path, "99999", f"99999\t{os.getpid()}"))
    assert problem == f"{tmp_path} is not this PID namespace's: it calls this process 99999, not {os.getpid()}"


def test_the_same_pid_number_in_an_ancestor_namespace_is_still_caught_by_nspid(tmp_path):
    problem = foreign_pid_namespace(fake_self(tmp_path, str(os.getpid()), f"{os.getpid()}\t7"))
    assert problem and problem.endswith(f"this process has pids {os.getpid()},7 from there down")


def test_a_proc_without_this_process_is_another_namespaces(tmp_path):
    (tmp_path / "1").mkdir()
    assert "its self cannot be read (No such file or directory)" in foreign_pid_namespace(tmp_path)


def test_a_zombie_leaders_cgroup_is_read_from_its_live_threads(tmp_path):
    """The kernel shows a leader whose main thread exited in the root cgroups
    (seen on 6.18); its live thread is still in the job's."""
    shutil.copytree(EXAMPLE_PROC / "1208", tmp_path / "1208", symlinks=True)
    status = tmp_path / "1208" / "status"
    status.write_bytes(status.read_bytes().replace(b"Threads:\t1\n", b"Threads:\t2\n"))
    for tid, cgroup in ((1208, EXAMPLE_PROC / "1208" / "cgroup"), (1210, EXAMPLE_PROC / "1201" / "cgroup")):
        (tmp_path / "1208" / "task" / str(tid)).mkdir(parents=True)
        shutil.copy(cgroup, tmp_path / "1208" / "task" / str(tid) / "cgroup")
    scan = with_job_cgroups(tmp_path, scan_statuses(tmp_path), frozenset({1208}))
    assert [p.job_cgroup for p in scan.processes] == ["/slurm_node1/uid_2001/job_4242/step_batch"]

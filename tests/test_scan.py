import os
import shutil
from pathlib import Path

import pytest

from leftover.scan import UNREADABLE_CGROUP, ProcError, read_identity, scan_statuses, with_job_cgroups, with_start_times
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


def test_unlistable_proc_is_an_error(tmp_path):
    with pytest.raises(ProcError, match="cannot list"):
        scan_statuses(tmp_path / "absent")


def test_tree_without_processes_is_an_error(tmp_path):
    (tmp_path / "self").mkdir()
    with pytest.raises(ProcError, match="no readable process"):
        scan_statuses(tmp_path)


def test_unreadable_status_is_an_error_not_a_silent_skip(tmp_path):
    shutil.copytree(EXAMPLE_PROC / "1202", tmp_path / "1202", symlinks=True)
    (tmp_path / "1202" / "status").unlink()
    (tmp_path / "1202" / "status").mkdir()  # reading a directory fails with EISDIR
    with pytest.raises(ProcError, match="cannot read"):
        scan_statuses(tmp_path)


def test_read_identity_of_real_process_and_of_a_gone_one():
    me = read_identity(Path("/proc"), os.getpid())
    assert me is not None and me.pid == os.getpid() and me.start_ticks is not None
    assert read_identity(EXAMPLE_PROC, 1301) is None

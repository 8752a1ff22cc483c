"""Reading who owns a process's user namespace: on a fake /proc tree (which
can only say "initial" or fail) and on real namespaces made here with
unshare(1), which the kernel answers with ioctls."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from leftover.scan import scan_statuses, with_userns_owners
from leftover.userns import INITIAL, UsernsError, UsernsReader, require_initial_namespace
from tests.conftest import REPO

USERNS_PROC = REPO / "fixtures" / "userns-node" / "proc"
REAL_PROC = Path("/proc")
SYSTEM_UID = 900  # below min_uid: no other test session's run can kill it


def test_the_initial_namespace_is_known_by_readlink_alone():
    with UsernsReader(USERNS_PROC) as reader:
        assert reader.read(1402) == INITIAL
        assert reader.walks == 0


@pytest.mark.parametrize(
    "pid, why",
    [
        (1401, "ns/user cannot be opened: No such file or directory"),  # a fake tree cannot answer ioctls
        (1403, "ns/user cannot be read: No such file or directory"),
        (1404, "NS_GET_PARENT failed: Inappropriate ioctl for device"),  # as on a kernel before 4.11
    ],
)
def test_a_namespace_that_cannot_be_read_is_an_answer_with_why(pid, why):
    with UsernsReader(USERNS_PROC) as reader:
        namespace = reader.read(pid)
    assert namespace.owner is None and namespace.error == why


def test_a_process_gone_before_its_namespace_is_read_is_dropped(tmp_path):
    shutil.copytree(USERNS_PROC / "1401", tmp_path / "1401", symlinks=True)
    shutil.copytree(USERNS_PROC / "1402", tmp_path / "1402", symlinks=True)
    scan = scan_statuses(tmp_path)
    shutil.rmtree(tmp_path / "1401")
    scan = with_userns_owners(tmp_path, scan, frozenset({1401, 1402}))
    assert [p.pid for p in scan.processes] == [1402]


def test_namespaces_are_read_only_where_asked():
    scan = with_userns_owners(USERNS_PROC, scan_statuses(USERNS_PROC), frozenset({1401, 1402}))
    by_pid = {p.pid: p for p in scan.processes}
    assert by_pid[1401].userns_error == "ns/user cannot be opened: No such file or directory"
    assert by_pid[1402].userns_error is None and by_pid[1402].userns_owner is None
    assert by_pid[1403].userns_error is None  # not asked: not read


def test_leftover_refuses_a_namespace_other_than_the_initial_one(tmp_path):
    require_initial_namespace()  # this test session runs on the host
    (tmp_path / "user").write_text("")
    with pytest.raises(UsernsError, match="not the initial one"):
        require_initial_namespace(tmp_path / "user")
    with pytest.raises(UsernsError, match="cannot read its own user namespace"):
        require_initial_namespace(tmp_path / "absent")


# Real namespaces. unshare(1) as root, or as a system account below min_uid,
# so that no other test session's run of leftover ever targets them.

def _can_unshare() -> bool:
    done = subprocess.run(["unshare", "--user", "true"], capture_output=True)
    return done.returncode == 0


needs_userns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not _can_unshare(),
    reason="needs root and unshare --user",
)


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _leaf(process: subprocess.Popen, name: str = "sleep", below_namespace_of: int | None = None) -> int:
    """The pid of the first process called name below process, once it runs
    in a user namespace other than leftover's (and than below_namespace_of's)."""
    deadline = time.monotonic() + 10
    elsewhere = {os.readlink("/proc/self/ns/user")}
    if below_namespace_of is not None:
        elsewhere.add(os.readlink(f"/proc/{below_namespace_of}/ns/user"))
    while time.monotonic() < deadline:
        for pid in _descendants(process.pid) + [process.pid]:
            try:
                if _comm(pid) == name and os.readlink(f"/proc/{pid}/ns/user") not in elsewhere:
                    return pid
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no {name} in a user namespace below pid {process.pid}")


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += map(int, children)
        frontier += map(int, children)
    return found


@pytest.fixture
def started():
    processes = []
    yield processes
    for process in processes:
        for pid in _descendants(process.pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        process.kill()
        process.wait()


def _setpriv(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@needs_userns
def test_a_namespace_made_by_a_user_is_owned_by_that_user(started):
    started.append(_start(_setpriv(SYSTEM_UID) + ["unshare", "--user", "--map-root-user", "sleep", "60"]))
    with UsernsReader(REAL_PROC) as reader:
        assert reader.read(_leaf(started[-1])).owner == SYSTEM_UID


@needs_userns
def test_nested_namespaces_are_owned_by_the_owner_of_the_outermost_below_the_initial_one(started):
    """root makes a namespace, maps UIDs 0-65535 in it onto themselves, and
    inside it becomes SYSTEM_UID and makes another: the inner one is owned by
    SYSTEM_UID, the outer one (the answer) by root."""
    inner = f"exec {' '.join(_setpriv(SYSTEM_UID))} unshare --user sleep 60"
    started.append(_start(["unshare", "--user", "sh", "-c", f'while [ -z "$(cat /proc/self/uid_map)" ]; do sleep 0.05; done; {inner}']))
    outer = started[-1].pid
    while os.readlink(f"/proc/{outer}/ns/user") == os.readlink("/proc/self/ns/user"):
        time.sleep(0.01)
    for map_file in ("uid_map", "gid_map"):
        Path(f"/proc/{outer}/{map_file}").write_text("0 0 65536\n")
    pid = _leaf(started[-1], below_namespace_of=outer)
    with UsernsReader(REAL_PROC) as reader:
        assert reader.read(pid).owner == 0
        assert reader.read(outer).owner == 0


@needs_userns
def test_a_namespace_is_walked_once_for_all_its_processes(started):
    started.append(_start(_setpriv(SYSTEM_UID) + ["unshare", "--user", "--map-root-user", "sh", "-c", "sleep 60 & exec sleep 61"]))
    _leaf(started[-1])
    deadline = time.monotonic() + 10
    while len(pids := [p for p in _descendants(started[-1].pid) + [started[-1].pid] if _comm(p) == "sleep"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with UsernsReader(REAL_PROC) as reader:
        assert {reader.read(pid).owner for pid in pids} == {SYSTEM_UID}
        assert reader.walks == 1
    with UsernsReader(REAL_PROC, max_pinned=0) as reader:
        assert {reader.read(pid).owner for pid in pids} == {SYSTEM_UID}
        assert reader.walks == 2


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@needs_userns
def test_leftover_run_inside_a_user_namespace_bails_out_and_signals_nothing():
    example = REPO / "fixtures" / "example-node"
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", shutil.which("python3") or "python3", "-m", "leftover", "--dry-run", "--json",
         "--no-splay", "--config", str(example / "leftover.conf"), "--proc", str(example / "proc"), "--passwd", str(example / "passwd")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert '"bailed_out_reason": "userns"' in done.stdout
    assert '"targets": []' in done.stdout

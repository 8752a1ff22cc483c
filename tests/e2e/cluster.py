"""The real single-node Slurm test cluster and the real users and processes the
end-to-end tests work with. Everything here acts on this machine for real.

LEFTOVER_TEST_SLURM picks the cluster: unset (or 22.05) is the host's own
(Debian 12's Slurm 22.05, tests/cluster/slurm-up); 24.11 and 26.05 are Debian
chroots beside it (tests/cluster/slurm-chroot), driven through root-owned
wrappers of their client commands. 22.05 has a chroot too (bookworm), driven
only inside `host_release_in_chroot`, for node layouts the host's shared
cluster cannot take. Every Slurm command here goes through `slurm_command`, so
the tests read the same for every version."""

import fcntl
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

SLURM_UP = REPO / "tests" / "cluster" / "slurm-up"
SLURM_CHROOT = REPO / "tests" / "cluster" / "slurm-chroot"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by leftover's tests/cluster/slurm-up"
MACHINE_LOCK = Path("/run/lock/leftover-e2e.lock")
HOST_VERSION = "22.05"
CHROOT_VERSIONS = ("24.11", "26.05")
VERSION = os.environ.get("LEFTOVER_TEST_SLURM") or HOST_VERSION
CHROOT_BASE = Path("/var/lib/leftover-matrix")
WRAPPERS = Path("/usr/local/lib/leftover-matrix")
_IN_CHROOT = []  # not empty while host_release_in_chroot drives the host's release in its chroot


def on_host() -> bool:
    """The tests drive the host's own cluster, not a chroot's."""
    return VERSION == HOST_VERSION and not _IN_CHROOT


def host_release_built_in_chroot() -> bool:
    """The host's release has a chroot of its own (`slurm-chroot build 22.05`)."""
    return (CHROOT_BASE / HOST_VERSION / "root" / ".leftover-complete").exists()


@contextmanager
def host_release_in_chroot():
    """Within it, a session on the host's release drives the same release in a
    Debian 12 chroot (its own ports, daemons and node names) instead of the
    host's shared cluster, which keeps its node name; the chroot's daemons
    stop at the end. The caller holds the machine lock. Elsewhere a no-op."""
    if VERSION != HOST_VERSION:
        yield
        return
    _IN_CHROOT.append(None)
    try:
        ensure_users()
        yield
    finally:
        try:
            clear_test_users()
            slurm_down()
        finally:
            _IN_CHROOT.pop()


def cluster_root() -> Path:
    """The root directory of the cluster's daemons and commands."""
    return Path("/") if on_host() else CHROOT_BASE / VERSION / "root"


def slurm_conf() -> Path:
    """The slurm.conf of the cluster the tests drive."""
    return SLURM_CONF if on_host() else cluster_root() / "etc/slurm/slurm.conf"


def version_at_least(release: str) -> bool:
    """The driven cluster's Slurm is release ("25.05") or newer."""
    return tuple(map(int, VERSION.split("."))) >= tuple(map(int, release.split(".")))


def slurm_bin() -> Path:
    """The directory of the client commands leftover is configured with."""
    return Path("/usr/bin") if on_host() else WRAPPERS / VERSION / "bin"


def scontrol_beside(directory: Path) -> Path:
    """A copy of the cluster's scontrol in directory, beside a squeue of the
    test's own: leftover learns the node names only from an scontrol beside
    the squeue it runs."""
    path = directory / "scontrol"
    shutil.copy2(slurm_bin() / "scontrol", path)
    return path


def slurm_command(command: str, *arguments: str, user: "TestUser | None" = None) -> list[str]:
    """argv for one of the cluster's client commands, run as root or, with
    user, as that user (inside the chroot: chroot(8) then setpriv(1), as root)."""
    if on_host() or user is None:
        return [str(slurm_bin() / command), *arguments]
    gid = grp.getgrnam(user.name).gr_gid
    return ["chroot", str(cluster_root()), "setpriv", f"--reuid={user.uid}", f"--regid={gid}", "--clear-groups",
            f"/usr/bin/{command}", *arguments]


def _as(user: "TestUser") -> dict:
    """subprocess keywords that run a slurm_command as user."""
    if not on_host():
        return {}
    return {"user": user.uid, "group": grp.getgrnam(user.name).gr_gid, "extra_groups": []}


_HELD = []  # this process's hold on MACHINE_LOCK, taken once however many callers ask


@contextmanager
def holding_machine(wait_seconds: float = 3600):
    """This machine's shared test resources (the cluster, the lo-* users,
    /dev/log, the installed package) for one test session, soak or bench at a
    time: another checkout's session waits instead of killing this one's
    processes. Yields False if the lock did not come within wait_seconds.
    Re-entrant within a process (an flock taken twice through two open files
    would wait for itself)."""
    if _HELD:
        _HELD.append(None)
        try:
            yield True
        finally:
            _HELD.pop()
        return
    MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(MACHINE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(1)
        _HELD.append(fd)
        try:
            yield True
        finally:
            _HELD.pop()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TestUser:
    name: str | None  # None: a UID that /etc/passwd does not list
    uid: int


JOB = TestUser("lo-jobuser", 3001)
STRAY = TestUser("lo-stray", 3002)
SUSPENDED = TestUser("lo-suspended", 3003)
EXEMPT_BY_NAME = TestUser("lo-exempt", 3004)
EXEMPT_BY_UID = TestUser("lo-exemptuid", 3005)
LONG_NAME = TestUser("lo-averylongusername", 3006)
BEYOND_2_31 = TestUser("lo-bignum", 3_000_000_000)  # squeue before 26.05.3 prints it as -1294967296
SYSTEM_LISTED = TestUser("lo-sysacct", 950)
SYSTEM_UNLISTED = TestUser(None, 960)
USERS = (JOB, STRAY, SUSPENDED, EXEMPT_BY_NAME, EXEMPT_BY_UID, LONG_NAME, BEYOND_2_31, SYSTEM_LISTED, SYSTEM_UNLISTED)


def is_test_cluster() -> bool:
    if os.geteuid() != 0:
        return False
    if on_host():
        return SLURM_CONF.exists() and MARK in SLURM_CONF.read_text()
    assert VERSION in CHROOT_VERSIONS, f"LEFTOVER_TEST_SLURM={VERSION}: known are {HOST_VERSION}, {CHROOT_VERSIONS}"
    return shutil.which("debootstrap") is not None


def slurm_up(layout: str = "host", proctrack: str = "proctrack/linuxproc") -> None:
    """The cluster up (idempotent); a chroot's with its node layout (see
    tests/cluster/slurm-chroot). The caller holds the machine lock."""
    if on_host():
        assert layout == "host", "the host's cluster is shared: its node names are not changed"
        subprocess.run([str(SLURM_UP)], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "LEFTOVER_TEST_PROCTRACK": proctrack})
    else:
        subprocess.run([str(SLURM_CHROOT), "up", VERSION, layout, proctrack], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "LEFTOVER_HOLDS_MACHINE_LOCK": "1"})


def slurm_down() -> None:
    """A chroot's daemons stopped and its mounts gone (the host's cluster stays)."""
    if not on_host():
        subprocess.run([str(SLURM_CHROOT), "down", VERSION], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "LEFTOVER_HOLDS_MACHINE_LOCK": "1"})


def ensure_users() -> None:
    for user in USERS:
        if user.name is None:
            assert _no_passwd_entry(user.uid), f"uid {user.uid} must not be in passwd"
            continue
        try:
            assert pwd.getpwnam(user.name).pw_uid == user.uid
        except KeyError:
            _useradd(user, [])
        if not on_host():
            root = cluster_root()
            if f"\n{user.name}:x:{user.uid}:" not in "\n" + (root / "etc/passwd").read_text():
                _useradd(user, ["--root", str(root)])


def _useradd(user: "TestUser", where: list[str]) -> None:
    subprocess.run(
        ["useradd", *where, "--no-create-home", "--user-group", "--uid", str(user.uid), "--shell", "/bin/sh", user.name],
        check=True,
    )


def clear_test_users() -> None:
    """No process or job of a test user survives from an earlier test or an
    interrupted session; waits until every such process is gone."""
    for user in USERS:
        if user.name:
            subprocess.run(slurm_command("scancel", "--user", user.name), capture_output=True)
    uids = ",".join(str(user.uid) for user in USERS)
    deadline = time.monotonic() + 30
    while True:
        subprocess.run(["pkill", "-KILL", "-U", uids], capture_output=True)
        listed = subprocess.run(["pgrep", "-U", uids], capture_output=True, text=True).stdout.split()
        if not [pid for pid in listed if alive(int(pid))]:
            return
        assert time.monotonic() < deadline, f"processes of test users will not go: {listed}"
        time.sleep(0.1)


def _no_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


def config(directory: Path, **overrides) -> Path:
    """A root-owned config that exempts Slurm's own account, as a real site must."""
    settings = {
        "protected_users": ["slurm", EXEMPT_BY_NAME.name, EXEMPT_BY_UID.uid],
        "grace_seconds": 2,
        "squeue_timeout": 2,
    }
    if not on_host():
        settings["squeue"] = str(slurm_bin() / "squeue")
    settings |= overrides
    path = directory / "leftover.conf"
    path.write_text(json.dumps(settings))
    path.chmod(0o644)
    return path


def run_leftover(conf: Path, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess:
    lock = conf.parent / "leftover.lock"
    return subprocess.run(
        [sys.executable, "-m", "leftover", "--no-splay", "--config", str(conf), "--lock-file", str(lock), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_as(user: TestUser, argv: list[str]) -> subprocess.Popen:
    """A real process owned by user, in a session of its own, as a stray would be."""
    gid = grp.getgrnam(user.name).gr_gid if user.name else user.uid
    return subprocess.Popen(
        argv, user=user.uid, group=gid, extra_groups=[], start_new_session=True, cwd="/",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def sleeper(user: TestUser) -> subprocess.Popen:
    return start_as(user, ["sleep", "600"])


def stubborn(user: TestUser) -> subprocess.Popen:
    """A process that ignores SIGTERM (an ignored signal stays ignored across exec)."""
    return start_as(user, ["sh", "-c", "trap '' TERM; exec sleep 600"])


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def wait_dead(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def stop(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def submit_job(user: TestUser, node: str | None = None) -> tuple[int, int]:
    """sbatch a job as user (on node, if named); wait until it runs. Returns
    (job id, pid of the job's sleep)."""
    workdir = Path(tempfile.mkdtemp(prefix="leftover-e2e-job-", dir="/tmp"))
    workdir.chmod(0o777)
    marker = workdir / "pid"
    where = [f"--nodelist={node}"] if node else []
    done = subprocess.run(
        slurm_command("sbatch", "--parsable", *where, "--chdir=/tmp", "--output=/dev/null", "--wrap",
                      f"echo $$ > {marker}; exec sleep 600", user=user),
        **_as(user), capture_output=True, text=True, check=True,
    )
    job_id = int(done.stdout.strip().split(";")[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if job_state(job_id) == "RUNNING" and marker.exists() and marker.read_text().strip():
            pid = int(marker.read_text())
            shutil.rmtree(workdir)
            return job_id, pid
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} of {user.name} did not start; state {job_state(job_id)}")


def job_nodes(job_id: int) -> str:
    done = subprocess.run(slurm_command("squeue", "-h", "-j", str(job_id), "-o", "%N"), capture_output=True, text=True)
    return done.stdout.strip()


def job_state(job_id: int) -> str:
    done = subprocess.run(slurm_command("squeue", "-h", "-j", str(job_id), "-o", "%T"), capture_output=True, text=True)
    return done.stdout.strip()


def scontrol(*arguments: str) -> None:
    subprocess.run(slurm_command("scontrol", *arguments), check=True, capture_output=True)


def cancel(job_id: int) -> None:
    subprocess.run(slurm_command("scancel", str(job_id)), check=False)


def daemon_pids(name: str) -> list[int]:
    """The cluster's own daemons called name: a chroot's are started by their
    real file names (slurmctld-wlm, ...) and run with the chroot as root, so
    neither cluster's tests touch the other's daemons."""
    done = subprocess.run(["pgrep", "-x", f"{name}|{name}-wlm"], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split() if _root_of(int(pid)) == cluster_root()]


def _root_of(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/root"))
    except OSError:
        return None


def signal_daemon(name: str, signum: int) -> None:
    for pid in daemon_pids(name):
        os.kill(pid, signum)


def stop_daemon(name: str) -> None:
    signal_daemon(name, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while daemon_pids(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not daemon_pids(name), f"{name} did not stop"


def submit_escaping_job(user: TestUser) -> tuple[int, int, int]:
    """A job whose script starts a child that escapes with setsid and a double
    fork, as leftovers do. Returns (job id, pid of the job's sleep, pid of the
    escaped child)."""
    workdir = Path(tempfile.mkdtemp(prefix="leftover-e2e-job-", dir="/tmp"))
    workdir.chmod(0o777)
    script = (
        f"(setsid sh -c 'echo $$ > {workdir}/escaped; exec sleep 600' </dev/null >/dev/null 2>&1 &); "
        f"echo $$ > {workdir}/pid; exec sleep 600"
    )
    done = subprocess.run(
        slurm_command("sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null", "--wrap", script, user=user),
        **_as(user), capture_output=True, text=True, check=True,
    )
    job_id = int(done.stdout.strip().split(";")[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = [workdir / "pid", workdir / "escaped"]
        if job_state(job_id) == "RUNNING" and all(f.exists() and f.read_text().strip() for f in files):
            pids = [int(f.read_text()) for f in files]
            shutil.rmtree(workdir)
            return job_id, pids[0], pids[1]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} of {user.name} did not start; state {job_state(job_id)}")


def controller_queries() -> dict[str, int]:
    """Client queries slurmctld has answered since the last reset (`sdiag -r`):
    every REQUEST_*_INFO message but sdiag's own."""
    done = subprocess.run(slurm_command("sdiag"), capture_output=True, text=True, check=True)
    section = done.stdout.split("Remote Procedure Call statistics by message type", 1)[1].split("\n\n", 1)[0]
    counts = {}
    for line in section.splitlines():
        words = line.split()
        if words and words[0].startswith("REQUEST_") and words[0].endswith("_INFO") and words[0] != "REQUEST_STATS_INFO":
            counts[words[0]] = int(next(w for w in words if w.startswith("count:")).split(":")[1])
    return counts


def reset_controller_statistics() -> None:
    subprocess.run(slurm_command("sdiag", "-r"), check=True, capture_output=True)


def slurm_up_with(proctrack: str) -> None:
    slurm_up(proctrack=proctrack)


def allocate_without_shell(user: TestUser, job_cgroups: bool = True, node: str | None = None) -> int:
    """salloc --no-shell: an allocation on the node (on node, if named) with
    no process of the user's under slurmstepd (only the extern step's
    root-owned processes). Waits for the extern step's cgroups
    (proctrack/cgroup) or, without job_cgroups, for its slurmstepd."""
    where = [f"--nodelist={node}"] if node else []
    done = subprocess.run(
        slurm_command("salloc", "--no-shell", "--nodes=1", *where, user=user), **_as(user),
        capture_output=True, text=True, check=True, cwd="/tmp",
    )
    job_id = int(done.stderr.split("Granted job allocation ")[1].split()[0])
    deadline = time.monotonic() + 30
    while job_state(job_id) != "RUNNING" or not (_extern_cgroups(user, job_id) if job_cgroups else extern_stepd(job_id)):
        assert time.monotonic() < deadline, f"allocation {job_id} did not start"
        time.sleep(0.2)
    return job_id


def extern_stepd(job_id: int) -> int | None:
    """The pid of the job's extern step slurmstepd, if it runs."""
    done = subprocess.run(["pgrep", "-x", "-f", rf"slurmstepd: \[{job_id}\.extern\]"], capture_output=True, text=True)
    pids = [pid for pid in done.stdout.split() if _root_of(int(pid)) == cluster_root()]
    return int(pids[0]) if pids else None


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in done.stdout.split()]


def adopt(pid: int, user: TestUser, job_id: int) -> None:
    """Move pid into the job's extern step cgroup in every controller, as
    pam_slurm_adopt does with an ssh session of a user who has a job here."""
    for procs in _extern_cgroups(user, job_id):
        procs.write_text(f"{pid}\n")


def _extern_cgroups(user: TestUser, job_id: int) -> list[Path]:
    return sorted(Path("/sys/fs/cgroup").glob(f"*/slurm*/uid_{user.uid}/job_{job_id}/step_extern/cgroup.procs"))


SUBORDINATE_COUNT = 65536
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


def ensure_subordinate_ids(users) -> dict[str, int]:
    """Each user has a range of subordinate UIDs and GIDs (newuidmap's and
    newgidmap's policy) in /etc/subuid and /etc/subgid, added with usermod
    after every range already there if missing. Returns each user's first
    subordinate UID. Idempotent; call it holding the machine lock."""
    for path in SUBID_FILES:
        path.touch(exist_ok=True)
    first = {}
    for user in users:
        starts = [_subid_start(path, user.name) for path in SUBID_FILES]
        if None in starts:
            start = max(max((s + n for s, n in _subid_ranges(path)), default=100000) for path in SUBID_FILES)
            end = f"{start}-{start + SUBORDINATE_COUNT - 1}"
            subprocess.run(["usermod", "--add-subuids", end, "--add-subgids", end, user.name], check=True)
            starts = [_subid_start(path, user.name) for path in SUBID_FILES]
        first[user.name] = starts[0]
    return first


def _subid_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in path.read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            ranges.append((int(fields[1]), int(fields[2])))
    return ranges


def _subid_start(path: Path, name: str) -> int | None:
    for line in path.read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 3 and fields[0] == name and fields[1].isdigit() and int(fields[2]) >= SUBORDINATE_COUNT:
            return int(fields[1])
    return None


def wait_for_uid(pid: int, uid: int, name: str = "sleep", seconds: float = 10) -> None:
    """Wait until pid runs name as uid (a container's process, once its
    user namespace is mapped and it has changed UID inside it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            status = ""
        if f"Name:\t{name}\n" in status and f"\nUid:\t{uid}\t" in status:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} does not run {name} as uid {uid}")


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the session process leads (start_as), whatever UIDs its
    members run as (subordinate ones included), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_for_process_of(uid: int, name: str, seconds: float = 30) -> int:
    """The pid of a process called name running as uid, once there is one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = subprocess.run(["pgrep", "-U", str(uid), "-x", name], capture_output=True, text=True)
        if done.stdout.split():
            return int(done.stdout.split()[0])
        time.sleep(0.1)
    raise AssertionError(f"no {name} runs as uid {uid}")


def kill_uids(uids: range) -> None:
    """SIGKILL every process whose real UID is in uids (a subordinate range)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int((entry / "status").read_text().split("\nUid:\t", 1)[1].split("\t", 1)[0])
            if uid in uids:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue

"""Rootless podman, for real: a user with a job and a jobless user each run a
container (an image imported from a tar of /bin/sleep and the libraries it
links) as container UID 1000, which podman maps to a subordinate host UID
from the user's /etc/subuid range. No job cgroup, slurmstepd or squeue line
names that UID; the namespace's owner does."""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY

pytestmark = pytest.mark.e2e

INSIDE_UID = 1000
# No systemd, journald or cgroup delegation here: events to a file, cgroupfs,
# and no cgroups for the container (rootless podman cannot make them on cgroup
# v1). runc, not crun: crun 1.8 refuses a hybrid hierarchy whose v2 tree has a
# controller ("cgroups in hybrid mode not supported"), as this machine's has.
GLOBAL = ["--storage-driver=vfs", "--events-backend=file", "--cgroup-manager=cgroupfs", "--runtime=runc"]
IMAGE = "localhost/leftover-sleep"


@dataclass
class Rootless:
    user: cluster.TestUser
    home: Path

    def podman(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
        runtime = self.home / "run"
        env = {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        return subprocess.run(
            ["podman", *GLOBAL, *arguments], user=self.user.uid, group=self.user.uid, extra_groups=[], env=env, cwd=self.home,
            capture_output=True, text=True, timeout=timeout,
        )


def sleep_image(path: Path) -> Path:
    """A tar of /bin/sleep and the libraries it links, for podman import."""
    links = subprocess.run(["ldd", "/bin/sleep"], capture_output=True, text=True, check=True).stdout
    files = ["/bin/sleep"] + [word for word in links.split() if word.startswith("/")]
    with tarfile.open(path, "w") as tar:
        for name in files:
            tar.add(os.path.realpath(name), arcname=name.lstrip("/"))
    path.chmod(0o644)
    return path


def start_container(rootless: Rootless, image_tar: Path) -> str:
    for directory in (rootless.home, rootless.home / "run"):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(directory, rootless.user.uid, rootless.user.uid)
    done = rootless.podman("import", str(image_tar), IMAGE)
    if done.returncode != 0:
        pytest.fail(f"rootless podman import as {rootless.user.name} failed: {done.stderr.strip()}")
    done = rootless.podman("run", "-d", "--network=none", f"--user={INSIDE_UID}", IMAGE, "/bin/sleep", "600")
    if done.returncode != 0:
        pytest.fail(f"rootless podman run as {rootless.user.name} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class Scene:
    pids: dict
    report: dict
    syslog: list


@pytest.fixture(scope="module")
def scene(slurm, syslog):
    first = cluster.ensure_subordinate_ids([JOB, STRAY])
    workdir = Path(tempfile.mkdtemp(prefix="leftover-e2e-podman-", dir="/tmp"))  # pytest's is root's alone
    workdir.chmod(0o755)
    image_tar = sleep_image(workdir / "sleep.tar")
    users = {"job user": Rootless(JOB, workdir / JOB.name), "jobless user": Rootless(STRAY, workdir / STRAY.name)}
    jobs = []
    try:
        cluster.clear_test_users()
        job_id, _ = cluster.submit_job(JOB)
        jobs.append(job_id)
        pids = {}
        for what, rootless in users.items():
            start_container(rootless, image_tar)
            host_uid = first[rootless.user.name] + INSIDE_UID - 1  # podman maps container UID 0 to the user, 1.. to the range
            pids[what] = cluster.wait_for_process_of(host_uid, "sleep")
        mark = syslog.mark()
        result = cluster.run_leftover(cluster.config(workdir), "--json")
        assert result.returncode == 0, result.stderr
        cluster.wait_dead(pids["jobless user"])
        yield Scene(pids, json.loads(result.stdout), syslog.texts_since(mark))
    finally:
        for job_id in jobs:
            cluster.cancel(job_id)
        for rootless in users.values():
            if rootless.home.exists():
                rootless.podman("rm", "--force", "--all", "--time=0", timeout=60)
            cluster.kill_uids(range(first[rootless.user.name], first[rootless.user.name] + cluster.SUBORDINATE_COUNT))
        cluster.clear_test_users()
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_job_users_rootless_container_is_spared_for_its_owner(scene):
    pid = scene.pids["job user"]
    assert cluster.alive(pid)
    (entry,) = [entry for entry in scene.report["judged"] if entry["pid"] == pid]
    assert (entry["userns_owner"], entry["reason"]) == (JOB.name, "uid-has-local-job")


def test_the_jobless_users_rootless_container_is_killed(scene):
    pid = scene.pids["jobless user"]
    assert not cluster.alive(pid)
    (line,) = [text for text in scene.syslog if text.startswith(f"sent SIGTERM to pid={pid} ")]
    assert f"userns_owner={STRAY.name} userns_owner_uid={STRAY.uid} " in line

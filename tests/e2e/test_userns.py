"""Containers' processes, for real: user namespaces made unprivileged by the
test users with unshare(1) and newuidmap (their /etc/subuid ranges), one made
by root with remapped UIDs (a rootful container), and a nested one. Each
container process runs as a subordinate UID that no job, squeue line or
protected_users entry names; only the namespace's owner ties it to a user."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import EXEMPT_BY_NAME, JOB, STRAY

pytestmark = pytest.mark.e2e

ROOTFUL_FIRST_UID = 900000  # root's remapped container UIDs: in no /etc/subuid range, no passwd entry
CONTAINER_USER = 1000  # the UID a container process runs as inside its namespace


def container(user, inside_uid: int, argv: list[str]) -> list[str]:
    """unshare(1) as user: a new user namespace mapped by newuidmap from the
    user's /etc/subuid range (UID 0 inside is the range's first), then
    setuid(inside_uid) in it, then argv."""
    return ["unshare", "--user", "--map-auto", f"--setuid={inside_uid}", f"--setgid={inside_uid}", *argv]


def rootful_container(argv: list[str]) -> tuple[subprocess.Popen, int]:
    """root makes a user namespace mapping UIDs 0-65535 inside onto
    ROOTFUL_FIRST_UID and up (as rootful podman --userns=auto or LXC does) and
    runs argv as its UID 0. Returns the runtime process and argv's pid."""
    process = subprocess.Popen(
        ["/usr/bin/python3", str(Path(__file__).with_name("rootful_container.py")), str(ROOTFUL_FIRST_UID), *argv],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    return process, int(process.stdout.readline())


def _namespace(pid) -> str:
    return os.readlink(f"/proc/{pid}/ns/user")


@dataclass
class Scene:
    pids: dict
    uids: dict
    result: subprocess.CompletedProcess
    report: dict
    syslog: list


@pytest.fixture(scope="module")
def scene(slurm, syslog, tmp_path_factory):
    first = cluster.ensure_subordinate_ids([JOB, STRAY, EXEMPT_BY_NAME])
    workdir = tmp_path_factory.mktemp("userns")
    jobs, processes = [], []
    try:
        cluster.clear_test_users()
        job_id, job_pid = cluster.submit_job(JOB)
        jobs.append(job_id)
        sleep = ["sleep", "600"]
        started = {
            "job user's container": (cluster.start_as(JOB, container(JOB, CONTAINER_USER, sleep)), first[JOB.name] + CONTAINER_USER),
            "jobless user's container": (
                cluster.start_as(STRAY, container(STRAY, CONTAINER_USER, sleep)), first[STRAY.name] + CONTAINER_USER),
            "protected user's container": (
                cluster.start_as(EXEMPT_BY_NAME, container(EXEMPT_BY_NAME, CONTAINER_USER, sleep)),
                first[EXEMPT_BY_NAME.name] + CONTAINER_USER),
            "job user's nested container": (
                cluster.start_as(JOB, container(JOB, CONTAINER_USER, ["unshare", "--user", *sleep])), first[JOB.name] + CONTAINER_USER),
        }
        processes.extend(process for process, _ in started.values())
        for process, uid in started.values():
            cluster.wait_for_uid(process.pid, uid)
        pids = {what: process.pid for what, (process, _) in started.items()}
        runtime, pids["rootful container"] = rootful_container(sleep)
        processes.append(runtime)
        started["rootful container"] = (runtime, ROOTFUL_FIRST_UID)
        cluster.wait_for_uid(pids["rootful container"], ROOTFUL_FIRST_UID)
        uids = {what: uid for what, (_, uid) in started.items()}
        mark = syslog.mark()
        result = cluster.run_leftover(cluster.config(workdir), "--json", "--all")
        cluster.wait_dead(pids["jobless user's container"])
        yield Scene(pids, uids, result, json.loads(result.stdout), syslog.texts_since(mark))
    finally:
        for process in processes:
            cluster.kill_session(process)
        for job_id in jobs:
            cluster.cancel(job_id)


def judged(scene, what) -> dict:
    (entry,) = [entry for entry in scene.report["judged"] if entry["pid"] == scene.pids[what]]
    return entry


def listed(scene, what) -> dict:
    """The process's entry in --all's list of every process."""
    (entry,) = [entry for entry in scene.report["processes"] if entry["pid"] == scene.pids[what]]
    return entry


def test_run_completes(scene):
    assert scene.result.returncode == 0, scene.result.stderr


def test_the_jobless_users_container_process_is_killed_and_the_log_names_the_owner(scene):
    what = "jobless user's container"
    pid = scene.pids[what]
    assert not cluster.alive(pid)
    (line,) = [text for text in scene.syslog if text.startswith(f"sent SIGTERM to pid={pid} ")]
    assert f" uid={scene.uids[what]} userns_owner={STRAY.name} userns_owner_uid={STRAY.uid} " in line
    (target,) = [t for t in scene.report["targets"] if t["pid"] == pid]
    assert (target["userns_owner"], target["result"]) == (STRAY.name, "terminated")


@pytest.mark.parametrize("what", ["job user's container", "job user's nested container"])
def test_a_job_users_containers_are_spared_and_the_reason_names_the_owner(scene, what):
    assert cluster.alive(scene.pids[what])
    entry = judged(scene, what)
    assert entry["uid"] == scene.uids[what]
    assert (entry["userns_owner"], entry["userns_owner_uid"]) == (JOB.name, JOB.uid)
    assert entry["reason"] in ("uid-has-local-job", "job-on-node")
    assert not [text for text in scene.syslog if f"pid={scene.pids[what]} " in text]


def test_a_protected_users_container_is_spared(scene):
    pid = scene.pids["protected user's container"]
    assert cluster.alive(pid)
    assert pid not in [entry["pid"] for entry in scene.report["judged"]]  # spared by a status rule
    entry = listed(scene, "protected user's container")
    owner = (EXEMPT_BY_NAME.name, EXEMPT_BY_NAME.uid)
    assert (entry["reason"], entry["userns_owner"], entry["userns_owner_uid"]) == ("protected-user", *owner)
    assert not [text for text in scene.syslog if f"pid={pid} " in text]


def test_a_rootful_containers_process_is_spared(scene):
    """Host UID 900000 is no one's; its namespace's owner is root, a system account."""
    pid = scene.pids["rootful container"]
    assert cluster.alive(pid)
    assert pid not in [entry["pid"] for entry in scene.report["judged"]]  # spared by a status rule
    entry = listed(scene, "rootful container")
    assert (entry["uid"], entry["reason"], entry["userns_owner_uid"]) == (ROOTFUL_FIRST_UID, "system-account", 0)
    assert not [text for text in scene.syslog if f"pid={pid} " in text]


def test_the_nested_container_runs_as_a_uid_its_own_namespace_owner_has(scene):
    """The inner namespace was made by container UID 1000, so its kernel owner
    is that subordinate UID: only the walk to the outermost namespace finds
    the job's user."""
    pid = scene.pids["job user's nested container"]
    outer = scene.pids["job user's container"]
    assert _namespace(pid) != _namespace(outer) and _namespace(pid) != _namespace("self")

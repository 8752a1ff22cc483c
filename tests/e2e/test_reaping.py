"""One real run of leftover on a node with jobs, strays and protected users,
then a look at which processes are still alive and what reached syslog."""

import pwd
from dataclasses import dataclass

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import (
    EXEMPT_BY_NAME,
    EXEMPT_BY_UID,
    JOB,
    LONG_NAME,
    STRAY,
    SUSPENDED,
    SYSTEM_LISTED,
    SYSTEM_UNLISTED,
)

pytestmark = pytest.mark.e2e


@dataclass
class Scene:
    pids: dict
    result: object
    syslog: list


@pytest.fixture(scope="module")
def scene(slurm, syslog, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reaping")
    jobs, processes = [], []
    try:
        job_id, job_pid = cluster.submit_job(JOB)
        jobs.append(job_id)
        suspended_id, suspended_pid = cluster.submit_job(SUSPENDED)
        jobs.append(suspended_id)
        cluster.scontrol("suspend", str(suspended_id))
        assert cluster.job_state(suspended_id) == "SUSPENDED"
        started = {
            "stray": cluster.sleeper(STRAY),
            "stray ignoring SIGTERM": cluster.stubborn(STRAY),
            "job user outside the job": cluster.sleeper(JOB),
            "suspended user outside the job": cluster.sleeper(SUSPENDED),
            "exempt by name": cluster.sleeper(EXEMPT_BY_NAME),
            "exempt by uid": cluster.sleeper(EXEMPT_BY_UID),
            "long name stray": cluster.sleeper(LONG_NAME),
            "system account in passwd": cluster.sleeper(SYSTEM_LISTED),
            "system account not in passwd": cluster.sleeper(SYSTEM_UNLISTED),
        }
        processes.extend(started.values())
        pids = {what: process.pid for what, process in started.items()}
        pids["job process"] = job_pid
        pids["suspended job process"] = suspended_pid
        mark = syslog.mark()
        result = cluster.run_leftover(cluster.config(workdir))
        for what in ("stray", "stray ignoring SIGTERM", "long name stray"):
            cluster.wait_dead(pids[what])
        yield Scene(pids, result, syslog.texts_since(mark))
    finally:
        cluster.stop(processes)
        for job_id in jobs:
            cluster.cancel(job_id)


def test_run_completes(scene):
    assert scene.result.returncode == 0, scene.result.stderr


@pytest.mark.parametrize("what", ["stray", "stray ignoring SIGTERM", "long name stray"])
def test_strays_are_killed(scene, what):
    assert not cluster.alive(scene.pids[what])


@pytest.mark.parametrize(
    "what",
    [
        "job process",
        "job user outside the job",
        "suspended job process",
        "suspended user outside the job",
        "exempt by name",
        "exempt by uid",
        "system account in passwd",
        "system account not in passwd",
    ],
)
def test_protected_processes_are_spared(scene, what):
    assert cluster.alive(scene.pids[what])


def test_slurm_daemons_are_spared(scene):
    assert cluster.daemon_pids("slurmctld") and cluster.daemon_pids("slurmd")


def test_process_ignoring_sigterm_gets_sigkill_after_the_grace(scene):
    pid = scene.pids["stray ignoring SIGTERM"]
    lines = [t for t in scene.syslog if f"pid={pid} " in t]
    assert lines[0].startswith(f"sent SIGTERM to pid={pid} user=lo-stray uid=3002 ")
    assert lines[1].startswith(f"sent SIGKILL to pid={pid} user=lo-stray uid=3002 ")
    assert lines[1].endswith("still alive 2s after SIGTERM")


def test_kill_lines_name_user_uid_process_and_age(scene):
    pid = scene.pids["long name stray"]
    (line,) = [t for t in scene.syslog if f"pid={pid} " in t]
    assert line.startswith(f"sent SIGTERM to pid={pid} user=lo-averylongusername uid={LONG_NAME.uid} name='sleep' age=")
    assert line.endswith("reason=no-job-on-node")


def test_no_protected_process_is_named_in_the_log(scene):
    spared = [pid for what, pid in scene.pids.items() if "stray" not in what]
    assert not [t for t in scene.syslog for pid in spared if f"pid={pid} " in t]


def test_one_summary_line(scene):
    summaries = [t for t in scene.syslog if t.startswith("scanned ")]
    assert len(summaries) == 1
    assert "3 target(s)" in summaries[0] and "2 user(s) with jobs" in summaries[0]
    assert "1 killed, 2 terminated" in summaries[0]


def test_lines_arrive_on_dev_log_with_ident_and_daemon_facility(slurm, syslog, tmp_path):
    stray = cluster.sleeper(STRAY)
    mark = syslog.mark()
    try:
        result = cluster.run_leftover(cluster.config(tmp_path))
        assert result.returncode == 0
        lines = syslog.since(mark)
    finally:
        cluster.stop([stray])
    kills = [line for line in lines if line.text.startswith(f"sent SIGTERM to pid={stray.pid} user=lo-stray")]
    assert len(kills) == 1
    assert (kills[0].ident, kills[0].facility, kills[0].severity) == ("leftover", 3, 6)  # daemon.info
    assert {line.ident for line in lines if line.pid == kills[0].pid} == {"leftover"}


def test_test_users_exist_as_the_tests_assume(slurm):
    assert pwd.getpwnam(LONG_NAME.name).pw_uid == LONG_NAME.uid and len(LONG_NAME.name) > 8

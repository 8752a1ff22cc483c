"""The node answers for itself: job processes are recognised through their job
cgroup (proctrack/cgroup, cgroup v1) and through slurmstepd ancestry
(proctrack/linuxproc), and the controller is asked only when a process is
left that no local evidence covers. RPCs are counted with sdiag.

The README's "What job_source=local sees" is proven here on this machine's
Slurm 22.05 (cgroup v1), and for cgroup v2 by tests/test_survey.py."""

import json
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY

pytestmark = pytest.mark.e2e


def judged(result) -> dict[int, str]:
    assert result.returncode == 0, result.stderr
    return {entry["pid"]: entry["reason"] for entry in json.loads(result.stdout)["judged"]}


@pytest.fixture
def linuxproc(slurm):
    cluster.slurm_up_with("proctrack/linuxproc")


@pytest.fixture
def cgroup_v1(slurm):
    cluster.slurm_up_with("proctrack/cgroup")
    yield
    cluster.clear_test_users()
    cluster.slurm_up_with("proctrack/linuxproc")


def test_idle_node_makes_no_controller_query(linuxproc, tmp_path):
    cluster.clear_test_users()
    cluster.reset_controller_statistics()
    result = cluster.run_leftover(cluster.config(tmp_path), "--json")
    assert result.returncode == 0 and not json.loads(result.stdout)["asked_slurm"]
    assert cluster.controller_queries() == {}


def test_node_whose_user_processes_are_all_in_jobs_makes_no_query(linuxproc, tmp_path):
    cluster.clear_test_users()
    job_id, job_pid = cluster.submit_job(JOB)
    try:
        cluster.reset_controller_statistics()
        result = cluster.run_leftover(cluster.config(tmp_path), "--json")
        assert cluster.controller_queries() == {}
        assert judged(result)[job_pid] == "under-slurmstepd"
        assert cluster.alive(job_pid)
    finally:
        cluster.cancel(job_id)


def test_node_with_a_stray_asks_once(linuxproc, tmp_path):
    cluster.clear_test_users()
    job_id, job_pid = cluster.submit_job(JOB)
    stray = cluster.sleeper(STRAY)
    try:
        cluster.reset_controller_statistics()
        result = cluster.run_leftover(cluster.config(tmp_path), "--json")
        report = json.loads(result.stdout)
        assert result.returncode == 0 and report["asked_slurm"]
        assert cluster.controller_queries()["REQUEST_JOB_INFO"] == 1
        assert report["local_job_processes"] >= 1
        assert cluster.wait_dead(stray.pid) and cluster.alive(job_pid)
    finally:
        cluster.stop([stray])
        cluster.cancel(job_id)


def test_escaped_child_of_a_job_is_spared(cgroup_v1, tmp_path):
    job_id, job_pid, escaped_pid = cluster.submit_escaping_job(JOB)
    stray = cluster.sleeper(STRAY)
    try:
        result = cluster.run_leftover(cluster.config(tmp_path))
        assert result.returncode == 0, result.stderr
        assert cluster.wait_dead(stray.pid)
        assert cluster.alive(escaped_pid) and cluster.alive(job_pid)
    finally:
        cluster.stop([stray])
        cluster.cancel(job_id)


def test_process_adopted_into_a_job_cgroup_is_spared_by_its_cgroup_alone(cgroup_v1, tmp_path):
    """An ssh session adopted into the job (pam_slurm_adopt) has no slurmstepd
    ancestor, and its user none under slurmstepd either: only the cgroup shows
    the job. job_source local proves it, since the controller is never asked."""
    job_id = cluster.allocate_without_shell(JOB)
    adopted, stray = cluster.sleeper(JOB), cluster.sleeper(STRAY)
    cluster.adopt(adopted.pid, JOB, job_id)
    conf = cluster.config(tmp_path, job_source="local")
    try:
        reasons = judged(cluster.run_leftover(conf, "--dry-run", "--json"))
        assert reasons[adopted.pid] == "in-job-cgroup"
        assert reasons[stray.pid] == "no-job-on-node"
        cluster.reset_controller_statistics()
        result = cluster.run_leftover(conf)
        assert result.returncode == 0, result.stderr
        assert cluster.controller_queries() == {}
        assert cluster.wait_dead(stray.pid) and cluster.alive(adopted.pid)
    finally:
        cluster.stop([stray, adopted])
        cluster.cancel(job_id)


def test_v1_allocation_with_only_roots_processes_is_evidence_for_its_user(cgroup_v1, tmp_path):
    """salloc --no-shell with PrologFlags=Contain: the extern step holds only
    root's processes (its slurmstepd in the job's freezer cgroup, its sleep in
    step_extern), yet their cgroup v1 path names the job's user. That user's
    process outside the job is spared under job_source=local, without a
    controller RPC; another user's is killed."""
    job_id = cluster.allocate_without_shell(JOB)
    stepd = cluster.extern_stepd(job_id)
    outside, stray = cluster.sleeper(JOB), cluster.sleeper(STRAY)
    conf = cluster.config(tmp_path, job_source="local")
    try:
        node = cluster.slurm_conf().read_text().split("\nNodeName=")[1].split()[0]
        assert f"freezer:/slurm_{node}/uid_{JOB.uid}/job_{job_id}\n" in Path(f"/proc/{stepd}/cgroup").read_text()
        roots = [stepd, *cluster.children(stepd)]
        assert [f"freezer:/slurm_{node}/uid_{JOB.uid}/job_{job_id}/step_extern\n" in Path(f"/proc/{pid}/cgroup").read_text()
                for pid in roots[1:]] == ([] if cluster.version_at_least("25.05") else [True])  # to 24.11: a sleep
        assert all(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4] == ["0"] * 4 for pid in roots)
        reasons = judged(cluster.run_leftover(conf, "--dry-run", "--json"))
        assert reasons[outside.pid] == "uid-has-local-job"
        assert reasons[stray.pid] == "no-job-on-node"
        cluster.reset_controller_statistics()
        result = cluster.run_leftover(conf)
        assert result.returncode == 0, result.stderr
        assert cluster.controller_queries() == {}
        assert cluster.wait_dead(stray.pid) and cluster.alive(outside.pid)
    finally:
        cluster.stop([stray, outside])
        cluster.cancel(job_id)


def test_without_job_cgroups_an_allocation_with_only_roots_processes_is_invisible_locally(linuxproc, tmp_path):
    """proctrack/linuxproc: nothing names the user of the extern step's root
    processes, so job_source=local sees no job for them (squeue would)."""
    cluster.clear_test_users()
    job_id = cluster.allocate_without_shell(JOB, job_cgroups=False)
    outside = cluster.sleeper(JOB)
    try:
        local = judged(cluster.run_leftover(cluster.config(tmp_path, job_source="local"), "--dry-run", "--json"))
        assert local[outside.pid] == "no-job-on-node"
        asked = judged(cluster.run_leftover(cluster.config(tmp_path), "--dry-run", "--json"))
        assert asked[outside.pid] == "job-on-node"
    finally:
        cluster.stop([outside])
        cluster.cancel(job_id)

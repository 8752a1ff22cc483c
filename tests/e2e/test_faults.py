"""Slurm broken in each way the tool must survive: every process stays alive,
the run exits non-zero, and syslog says why."""

import signal

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY
from tests.faults import faulty_squeue

pytestmark = pytest.mark.e2e


@pytest.fixture
def bystanders(slurm, tmp_path):
    """A job, a process of its user outside it, and two strays: none may die."""
    job_id, job_pid = cluster.submit_job(JOB)
    processes = [cluster.sleeper(STRAY), cluster.stubborn(STRAY), cluster.sleeper(JOB)]
    yield [p.pid for p in processes] + [job_pid]
    cluster.stop(processes)
    cluster.slurm_up()
    cluster.cancel(job_id)


def bails_out(syslog, conf, bystanders, why: str, code: int = 1):
    mark = syslog.mark()
    result = cluster.run_leftover(conf)
    assert result.returncode == code, result.stderr
    assert all(cluster.alive(pid) for pid in bystanders)
    texts = syslog.texts_since(mark)
    assert any(t.startswith("bailed out, nothing signalled: ") and why in t for t in texts), texts
    assert not any(t.startswith("sent SIG") for t in texts)


def test_slurmctld_stopped(bystanders, syslog, tmp_path):
    cluster.stop_daemon("slurmctld")
    bails_out(syslog, cluster.config(tmp_path), bystanders, "squeue did not answer within 2s")


def test_slurmctld_hung(bystanders, syslog, tmp_path):
    cluster.signal_daemon("slurmctld", signal.SIGSTOP)
    try:
        bails_out(syslog, cluster.config(tmp_path), bystanders, "squeue did not answer within 2s")
    finally:
        cluster.signal_daemon("slurmctld", signal.SIGCONT)


def test_munged_stopped(bystanders, syslog, tmp_path):
    cluster.stop_daemon("munged")
    bails_out(syslog, cluster.config(tmp_path), bystanders, "Slurm gave no usable answer")


@pytest.mark.parametrize("fault, why", [("prints-garbage", "is not a UID"), ("exits-1", "squeue exited 1")])
def test_faulty_squeue(bystanders, syslog, tmp_path, fault, why):
    squeue = faulty_squeue(tmp_path, fault)
    bails_out(syslog, cluster.config(tmp_path, squeue=str(squeue)), bystanders, why)


def test_malformed_config(bystanders, syslog, tmp_path):
    conf = cluster.config(tmp_path)
    conf.write_text('{"protected_users": ["slurm"], "grace_seconds": }')
    bails_out(syslog, conf, bystanders, "is not valid JSON", code=2)

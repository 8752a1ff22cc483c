"""A job of a UID of 2^31 or more, asked about with the real squeue: Slurm
22.05's squeue prints %U with "%d" (src/squeue/print.c), so the UID comes out
negative. leftover reads it as the UID it stands for: the user's process is
spared, the run does not fail closed, and a stray beside it is still killed."""

import json
import subprocess

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import BEYOND_2_31, STRAY

pytestmark = pytest.mark.e2e


@pytest.fixture
def linuxproc(slurm):
    cluster.slurm_up_with("proctrack/linuxproc")


def test_a_job_of_a_uid_beyond_2_31_is_read_from_squeues_negative_number(linuxproc, tmp_path):
    cluster.clear_test_users()
    job_id = cluster.allocate_without_shell(BEYOND_2_31, job_cgroups=False)
    outside, stray = cluster.sleeper(BEYOND_2_31), cluster.sleeper(STRAY)
    try:
        printed = subprocess.run(cluster.slurm_command("squeue", "-h", "-j", str(job_id), "-o", "%U"),
                                 capture_output=True, text=True, check=True)
        version = subprocess.run(cluster.slurm_command("squeue", "--version"), capture_output=True, text=True, check=True).stdout.split()[1]
        if tuple(map(int, version.split(".")[:3])) < (26, 5, 3):
            assert printed.stdout.strip() == str(BEYOND_2_31.uid - 2**32)
        result = cluster.run_leftover(cluster.config(tmp_path), "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert BEYOND_2_31.uid in report["job_uids"]
        reasons = {entry["pid"]: entry["reason"] for entry in report["judged"]}
        assert reasons[outside.pid] == "job-on-node"
        assert cluster.wait_dead(stray.pid) and cluster.alive(outside.pid)
    finally:
        cluster.stop([stray, outside])
        cluster.cancel(job_id)

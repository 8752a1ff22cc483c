"""Nodes not named after their host, with real jobs: a NodeName given a
NodeHostname (`NodeName=lo-alias NodeHostname=<host>`), and one host serving
two NodeNames (`lo-twin1`, `lo-twin2`, one slurmd each, as Debian's
multiple-slurmd builds of 24.11 and 26.05 allow: src/common/read_config.c,
_push_to_hashtbls, refuses a second NodeName per NodeHostname only without
MULTIPLE_SLURMD). leftover must learn the names from `scontrol show aliases`
and ask squeue about all of them: a job user's process outside the job is
spared because of a job on a node that is not called like the host, and a
jobless user's process is killed.

The host's own cluster is shared and never renamed, so these run against the
chroot clusters only (LEFTOVER_TEST_SLURM=24.11 or 26.05, `make test-matrix`)."""

import json
import socket

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY

pytestmark = pytest.mark.e2e

LAYOUTS = {"alias": ("lo-alias",), "two": ("lo-twin1", "lo-twin2")}


@pytest.fixture(params=sorted(LAYOUTS))
def layout(slurm, request):
    if cluster.on_host():
        pytest.skip("the host's cluster is shared and keeps its node name; "
                    "these run on the chroot clusters (LEFTOVER_TEST_SLURM=24.11|26.05, make test-matrix)")
    cluster.clear_test_users()
    cluster.slurm_up(layout=request.param)
    yield request.param
    cluster.clear_test_users()
    cluster.slurm_up()


def test_node_names_are_not_the_host_name(layout):
    assert socket.gethostname().split(".")[0] not in LAYOUTS[layout]


def test_job_on_the_last_node_name_spares_its_user_and_a_jobless_user_dies(layout, tmp_path):
    node = LAYOUTS[layout][-1]
    job_id, job_pid = cluster.submit_job(JOB, node=node)
    outside, stray = cluster.sleeper(JOB), cluster.sleeper(STRAY)
    try:
        assert cluster.job_nodes(job_id) == node
        result = cluster.run_leftover(cluster.config(tmp_path), "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["asked_slurm"] and tuple(report["node_names"]) == LAYOUTS[layout]
        assert JOB.uid in report["job_uids"]
        assert [t["pid"] for t in report["targets"]] == [stray.pid]
        assert cluster.wait_dead(stray.pid)
        assert cluster.alive(outside.pid) and cluster.alive(job_pid)
    finally:
        cluster.stop([outside, stray])
        cluster.cancel(job_id)

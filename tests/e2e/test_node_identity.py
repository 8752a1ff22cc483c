"""Nodes not named after their host, with real jobs: a NodeName given a
NodeHostname (`NodeName=lo-alias NodeHostname=<host>`), and one host serving
two NodeNames (`lo-twin1`, `lo-twin2`, one slurmd each, as Debian's
multiple-slurmd builds allow: src/common/read_config.c, _push_to_hashtbls,
refuses a second NodeName per NodeHostname only without MULTIPLE_SLURMD).
leftover must learn the names from `scontrol show aliases` and ask squeue about
all of them: a job user's process outside the job is spared because of a job
on a node that is not called like the host, and a jobless user's is killed.

squeue answers a --nodelist name for the first node (in slurmctld's table,
slurm.conf's order) whose NodeName or NodeHostname it is, and refuses a name
that is neither ("Invalid node name", exit 1): `_map_node_name` in
src/squeue/opts.c, the same at slurm-22-05-8-1, slurm-24-11-5-1 and
slurm-26-05-3-1. So the host name of a host with two NodeNames is answered for
the first alone, with exit 0; leftover never asks about a name scontrol did
not print, and kills nothing when scontrol is missing or names no node (as for
NodeHostnames written as FQDNs, layout `fqdn`). A NodeName is answered for
itself: slurmctld will not start when a node before it has that name as its
NodeHostname (layout `shadow`; `_check_callback` in src/common/node_conf.c).
The tests here pin each of those facts on every version, so a Slurm that
changes one of them turns them red.

The host's own cluster is shared and never renamed, so these run against
chroot clusters only: 24.11 and 26.05 (LEFTOVER_TEST_SLURM, `make
test-matrix`), and 22.05 in a Debian 12 chroot of its own when it is built
(`tests/cluster/slurm-chroot build 22.05`; `make test-matrix` builds it)."""

import json
import shutil
import socket
import subprocess

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY

pytestmark = pytest.mark.e2e

HOST = socket.gethostname().split(".")[0]
LAYOUTS = {"alias": ("lo-alias",), "two": ("lo-twin1", "lo-twin2")}
FQDN_NODES = (HOST, "lo-fqdn")  # both NodeHostname=<host>.leftover.invalid
NEITHER = "lo-neither"  # no node's NodeName or NodeHostname


@pytest.fixture(scope="module")
def renamable(slurm):
    """A cluster whose node names the tests may change: a chroot's; on the
    host's release, its own chroot if built, never the host's shared cluster."""
    if cluster.on_host() and not cluster.host_release_built_in_chroot():
        pytest.skip(f"the host's cluster is shared and keeps its node name; Slurm {cluster.VERSION} has no chroot "
                    f"here (tests/cluster/slurm-chroot build {cluster.VERSION}, or make test-matrix)")
    with cluster.host_release_in_chroot():
        cluster.slurm_up()
        yield


@pytest.fixture
def in_layout(renamable):
    """Brings up the layout asked for; the host layout again after the test."""
    def up(layout: str) -> None:
        cluster.clear_test_users()
        cluster.slurm_up(layout=layout)
    yield up
    cluster.clear_test_users()
    cluster.slurm_up()


@pytest.fixture(params=sorted(LAYOUTS))
def layout(in_layout, request):
    in_layout(request.param)
    return request.param


def squeue(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(cluster.slurm_command("squeue", *arguments), capture_output=True, text=True)


def scontrol_aliases() -> subprocess.CompletedProcess:
    return subprocess.run(cluster.slurm_command("scontrol", "show", "aliases"), capture_output=True, text=True)


def squeue_alone(directory) -> str:
    """A copy of the cluster's squeue in a root-owned directory of its own,
    with no scontrol beside it."""
    bin_dir = directory / "squeue-alone"
    bin_dir.mkdir()
    shutil.copy(cluster.slurm_bin() / "squeue", bin_dir / "squeue")
    (bin_dir / "squeue").chmod(0o755)
    return str(bin_dir / "squeue")


def test_node_names_are_not_the_host_name(layout):
    assert HOST not in LAYOUTS[layout]


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


def test_squeue_answers_a_name_for_the_first_node_it_names_and_refuses_any_other(layout):
    """A job on the last NodeName: asked by that NodeName, squeue lists its
    user; by the host name (the NodeHostname of every node here), the first
    node's jobs alone, exit 0, so the job shows only where it is on the first
    node (alias) and not at all where it is on the second (two); by a name
    that is neither, squeue fails."""
    names = LAYOUTS[layout]
    assert scontrol_aliases().stdout.split() == list(names)
    job_id, _ = cluster.submit_job(JOB, node=names[-1])
    try:
        by_name = squeue("--all", "--format=%U", f"--nodelist={names[-1]}")
        assert (by_name.returncode, by_name.stdout, by_name.stderr) == (0, f"UID\n{JOB.uid}\n", "")
        by_host = squeue("--all", "--format=%U", f"--nodelist={HOST}")
        expected = f"UID\n{JOB.uid}\n" if len(names) == 1 else "UID\n"
        assert (by_host.returncode, by_host.stdout, by_host.stderr) == (0, expected, "")
        neither = squeue("--all", "--format=%U", f"--nodelist={NEITHER}")
        assert (neither.returncode, neither.stdout) == (1, "")
        assert neither.stderr.strip() == f"squeue: error: Invalid node name {NEITHER}"
    finally:
        cluster.cancel(job_id)


def test_without_scontrol_beside_squeue_an_allocation_on_the_second_node_kills_nothing(in_layout, tmp_path):
    """Two NodeNames on this host and an allocation on the second with no
    process of its user here (proctrack/linuxproc: nothing local names the
    user), so only squeue can spare the user's process outside it. squeue
    alone, asked about the host name, would answer for the first node and
    list nobody. leftover kills nothing; with scontrol beside squeue it spares
    the user and kills the jobless one."""
    in_layout("two")
    job_id = cluster.allocate_without_shell(JOB, job_cgroups=False, node="lo-twin2")
    outside, stray = cluster.sleeper(JOB), cluster.sleeper(STRAY)
    try:
        assert cluster.job_nodes(job_id) == "lo-twin2"
        assert squeue("--all", "--format=%U", f"--nodelist={HOST}").stdout == "UID\n"
        alone = cluster.run_leftover(cluster.config(tmp_path, squeue=squeue_alone(tmp_path)), "--json")
        report = json.loads(alone.stdout)
        assert alone.returncode == 1 and report["bailed_out_reason"] == "slurm" and report["targets"] == []
        assert "no scontrol beside" in report["bailed_out"] and not report["asked_slurm"]
        assert cluster.alive(outside.pid) and cluster.alive(stray.pid)

        beside = cluster.run_leftover(cluster.config(tmp_path), "--json")
        assert beside.returncode == 0, beside.stderr
        report = json.loads(beside.stdout)
        assert tuple(report["node_names"]) == LAYOUTS["two"] and JOB.uid in report["job_uids"]
        assert [t["pid"] for t in report["targets"]] == [stray.pid]
        assert cluster.wait_dead(stray.pid) and cluster.alive(outside.pid)
    finally:
        cluster.stop([outside, stray])
        cluster.cancel(job_id)


def test_a_host_whose_nodehostname_is_its_fqdn_gets_no_name_from_scontrol_and_kills_nothing(in_layout, tmp_path):
    """slurm.conf gives both of this host's nodes the NodeHostname
    <host>.leftover.invalid, one of them NodeName=<host>. `scontrol show
    aliases` prints nothing, exit 0 (`_print_aliases` in src/scontrol/scontrol.c
    looks up the short host name, then the NodeHostnames of the NodeName it
    finds), though the host serves two nodes; squeue asked about the host name
    answers for node <host> alone. An allocation on lo-fqdn: leftover kills
    nothing."""
    in_layout("fqdn")
    aliases = scontrol_aliases()
    assert (aliases.returncode, aliases.stdout) == (0, "")
    job_id = cluster.allocate_without_shell(JOB, job_cgroups=False, node="lo-fqdn")
    outside, stray = cluster.sleeper(JOB), cluster.sleeper(STRAY)
    try:
        assert cluster.job_nodes(job_id) == "lo-fqdn"
        by_host = squeue("--all", "--format=%U", f"--nodelist={HOST}")
        assert (by_host.returncode, by_host.stdout) == (0, "UID\n")
        result = cluster.run_leftover(cluster.config(tmp_path), "--json")
        report = json.loads(result.stdout)
        assert result.returncode == 1 and report["bailed_out_reason"] == "slurm" and report["targets"] == []
        assert "scontrol show aliases names no node of this host" in report["bailed_out"]
        assert cluster.alive(outside.pid) and cluster.alive(stray.pid)
    finally:
        cluster.stop([outside, stray])
        cluster.cancel(job_id)


def test_slurmctld_refuses_a_nodename_that_a_node_before_it_has_as_nodehostname(in_layout):
    """`NodeName=lo-shadow NodeHostname=<host>`, then `NodeName=<host>`: were
    it accepted, squeue would answer the NodeName <host> for lo-shadow. Every
    version refuses to start ("fatal: Duplicated NodeHostName <host> in config
    file"), so a NodeName scontrol prints is always answered for itself."""
    log = cluster.cluster_root() / "var/log/slurm/slurmctld.log"
    size = log.stat().st_size if log.exists() else 0
    with pytest.raises(subprocess.CalledProcessError):
        in_layout("shadow")
    with open(log, "rb") as text:
        text.seek(size)
        fatal = [line for line in text.read().decode(errors="replace").splitlines() if "fatal:" in line]
    assert [line.split("] ", 1)[1] for line in fatal] == [f"fatal: Duplicated NodeHostName {HOST} in config file"]

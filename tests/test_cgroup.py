import re

import pytest

from leftover.cgroup import CgroupFormatError, job_cgroup, job_cgroup_uid, parse_cgroup
from tests.conftest import REPO

CGROUPS = REPO / "fixtures" / "cgroup"


def paths(name: str) -> tuple[str, ...]:
    return parse_cgroup((CGROUPS / name).read_bytes())


# Every fixture: the job cgroup leftover must find in it, and the UID that path
# is evidence for. Each fixture's .source file cites the Slurm file and tag.
LAYOUTS = {
    "v1-job": ("/slurm_vm/uid_3001/job_30/step_batch", 3001),
    "v1-job-plain": ("/slurm/uid_1000/job_77/step_0/task_0", 1000),
    "v1-extern-stepd": ("/slurm_vm/uid_3001/job_31", 3001),
    "v1-extern-sleep": ("/slurm_vm/uid_3001/job_31/step_extern", 3001),
    "v1-container": ("/docker/4f1c2a9d7e3b6a5c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e/slurm/uid_1000/job_5/step_batch", 1000),
    "v2-job": ("/system.slice/slurmstepd.scope/job_3385/step_0/user/task_0", None),
    "v2-job-node-in-scope": ("/system.slice/node17_slurmstepd.scope/job_12/step_extern/user/task_special", None),
    "v2-job-id-paths": ("/system.slice/slurmstepd.scope/job_4100/step_batch/user/task_0", None),
    "v2-sluid": ("/system.slice/slurmstepd.scope/s2MXKXFZCTFS00/step_0/user/task_0", None),
    "v2-sluid-node-in-scope": ("/system.slice/node17_slurmstepd.scope/s2MXKXFZCTFS01/step_extern/user/task_special", None),
    "v2-slice": ("/slurm.slice/slurmstepd.scope/job_12/step_batch/user/task_0", None),
    "v2-slice-node-sluid": ("/hpc.slice/n03_slurmstepd.scope/s009KXFZCTFS00/step_0/user/task_2", None),
    "v2-container": ("/docker.slice/docker-4f1c2a9d7e3b6a5c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e.scope"
                     "/system.slice/slurmstepd.scope/job_9/step_0/user/task_0", None),
    "v2-stepd-in-job": ("/system.slice/slurmstepd.scope/job_12/step_extern/slurm", None),
    "v2-stepd-itself": (None, None),
    "v1-ssh-session": (None, None),
    "v2-ssh-session": (None, None),
    "v1-lookalike": (None, None),
    "v1-forged-delegated": (None, None),
    "v2-forged-sluid-delegated": (None, None),
    "v2-forged-node-scope-delegated": (None, None),
    "v2-not-a-sluid": (None, None),
    "v2-sluid-top-digit-too-big": (None, None),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_slurm_writes_and_no_lookalike(name):
    expected_path, expected_uid = LAYOUTS[name]
    found = job_cgroup(paths(name))
    assert found == expected_path
    assert job_cgroup_uid(found) == expected_uid


def test_every_fixture_is_checked_and_cites_its_source():
    fixtures = {p.name for p in CGROUPS.iterdir() if p.suffix != ".source"}
    assert fixtures == set(LAYOUTS)
    for name in fixtures:
        source = (CGROUPS / f"{name}.source").read_text()
        if LAYOUTS[name][0] is not None:
            assert re.search(r"src/\S+\.c", source) and re.search(r"slurm-\d\d-\d\d-\d+-\d", source), name


def test_a_users_delegated_subtree_is_never_a_job():
    fake = ("/user.slice/user-3002.slice/user@3002.service/slurmstepd.scope/job_1/step_0",)
    assert job_cgroup(fake) is None


@pytest.mark.parametrize(
    "path",
    [
        "/system.slice/slurmstepd.scope/s2MXKXFZCTFS0/step_0",  # 12 digits
        "/system.slice/slurmstepd.scope/s2MXKXFZCTFS000/step_0",  # 14 digits
        "/system.slice/slurmstepd.scope/s2mxkxfzctfs00/step_0",  # print_sluid writes upper case
        "/system.slice/slurmstepd.scope/S2MXKXFZCTFS00/step_0",
        "/system.slice/slurmstepd.scope/s2MXKXFZCTFO00/step_0",  # O, I, L are read, never written
        "/system.slice/slurmstepd.scope/job_12x/step_0",
        "/system.slice/slurmstepd.scope.d/job_12/step_0",
        "/system.slice/slurmstepd.scope/system",
    ],
)
def test_what_slurm_never_writes_is_not_a_job(path):
    assert job_cgroup((path,)) is None


def test_a_v1_uid_beyond_32_bits_is_no_evidence():
    path = "/slurm/uid_4294967296/job_1/step_0"
    assert job_cgroup((path,)) == path
    assert job_cgroup_uid(path) is None


def test_the_first_v1_job_in_a_path_names_the_user():
    """Below a job's own directory a user might make more (v1 job cgroups may be
    the user's): only the leftmost job directory, Slurm's, counts."""
    path = "/slurm/uid_1000/job_5/step_0/slurm/uid_3001/job_9"
    assert job_cgroup_uid(path) == 1000


def test_example_node_job_process():
    assert job_cgroup(parse_cgroup((REPO / "fixtures/example-node/proc/1201/cgroup").read_bytes())).endswith("/job_4242/step_batch")


@pytest.mark.parametrize("raw", [b"", b"\n", b"garbage\n", b"x:cpu:/\n", b"1:cpu\n", b"1:cpu:relative\n"])
def test_malformed_cgroup_files_are_errors(raw):
    with pytest.raises(CgroupFormatError):
        parse_cgroup(raw)

import pytest

from leftover.cgroup import CgroupFormatError, job_cgroup, parse_cgroup
from tests.conftest import REPO

CGROUPS = REPO / "fixtures" / "cgroup"


def paths(name: str) -> tuple[str, ...]:
    return parse_cgroup((CGROUPS / name).read_bytes())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("v1-job", "/slurm_vm/uid_3001/job_30/step_batch"),  # Slurm 22.05 proctrack/cgroup, this machine
        ("v1-job-plain", "/slurm/uid_1000/job_77/step_0/task_0"),
        ("v2-job", "/system.slice/slurmstepd.scope/job_3385/step_0/user/task_0"),
        ("v2-job-node-in-scope", "/system.slice/node17_slurmstepd.scope/job_12/step_extern/user/task_special"),
        ("v2-stepd-itself", None),
        ("v1-ssh-session", None),
        ("v2-ssh-session", None),
        ("v1-lookalike", None),
    ],
)
def test_job_cgroups_in_both_layouts(name, expected):
    assert job_cgroup(paths(name)) == expected


def test_a_users_delegated_subtree_is_never_a_job():
    fake = ("/user.slice/user-3002.slice/user@3002.service/slurmstepd.scope/job_1/step_0",)
    assert job_cgroup(fake) is None


def test_example_node_job_process():
    assert job_cgroup(parse_cgroup((REPO / "fixtures/example-node/proc/1201/cgroup").read_bytes())).endswith("/job_4242/step_batch")


@pytest.mark.parametrize("raw", [b"", b"\n", b"garbage\n", b"x:cpu:/\n", b"1:cpu\n", b"1:cpu:relative\n"])
def test_malformed_cgroup_files_are_errors(raw):
    with pytest.raises(CgroupFormatError):
        parse_cgroup(raw)

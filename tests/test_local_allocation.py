"""Looking at a node whose only evidence of an allocation is Slurm's own
root-owned processes (the extern step of PrologFlags=Contain, as `salloc
--no-shell` leaves it): what cgroup v1 and v2 let the node itself show."""

import shutil
from pathlib import Path

from leftover.decide import Facts, JobAnswer
from leftover.survey import look
from leftover.userns import INITIAL_USERNS_LINK
from tests.conftest import REPO

CGROUPS = REPO / "fixtures" / "cgroup"
FACTS = Facts(min_uid=1000, protected_uids=frozenset())
LOCAL = FACTS._replace(answer=JobAnswer(frozenset(), 10_000_000))
JOB_USER, OTHER_USER = 3001, 3002


def add_process(proc: Path, pid: int, name: str, uid: int, ppid: int, cgroup: str) -> None:
    directory = proc / str(pid)
    directory.mkdir()
    (directory / "status").write_text(
        f"Name:\t{name}\nState:\tS (sleeping)\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{ppid}\n"
        f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\nKthread:\t0\n"
    )
    (directory / "stat").write_text(f"{pid} ({name}) S {ppid} " + " ".join(["0"] * 17) + " 1100 " + " ".join(["0"] * 30) + "\n")
    shutil.copy(CGROUPS / cgroup, directory / "cgroup")
    (directory / "ns").mkdir()
    (directory / "ns" / "user").symlink_to(INITIAL_USERNS_LINK)


def allocation_without_user_processes(proc: Path, stepd_cgroup: str, sleep_cgroup: str | None) -> None:
    """init, slurmd, the extern step's slurmstepd (and up to 24.11 its root
    sleep), and one process of each test user outside any job (an ssh session
    that pam_slurm_adopt did not adopt, say)."""
    add_process(proc, 1, "systemd", 0, 0, "v1-ssh-session")
    add_process(proc, 400, "slurmd", 0, 1, "v1-ssh-session")
    add_process(proc, 500, "slurmstepd", 0, 1, stepd_cgroup)
    if sleep_cgroup:
        add_process(proc, 501, "sleep", 0, 500, sleep_cgroup)
    add_process(proc, 600, "bash", JOB_USER, 1, "v1-ssh-session")
    add_process(proc, 601, "bash", OTHER_USER, 1, "v1-ssh-session")


def reasons(proc: Path) -> dict[int, str]:
    plan = look(proc, LOCAL).plan
    return {d.process.pid: d.rule.name for d in plan.decisions if d.process.pid >= 600}


def test_v1_up_to_24_11_the_extern_sleep_and_stepd_name_the_user(tmp_path):
    allocation_without_user_processes(tmp_path, "v1-extern-stepd", "v1-extern-sleep")
    assert reasons(tmp_path) == {600: "uid-has-local-job", 601: "no-job-on-node"}


def test_v1_from_25_05_the_extern_stepd_alone_names_the_user(tmp_path):
    allocation_without_user_processes(tmp_path, "v1-extern-stepd", None)
    assert reasons(tmp_path) == {600: "uid-has-local-job", 601: "no-job-on-node"}


def test_v2_an_allocation_without_user_processes_is_invisible_locally(tmp_path):
    """cgroup v2 paths name no user: job_source=local cannot see whose
    allocation the extern step's root processes belong to."""
    allocation_without_user_processes(tmp_path, "v2-stepd-in-job", "v2-job-node-in-scope")
    assert reasons(tmp_path) == {600: "no-job-on-node", 601: "no-job-on-node"}


def test_v2_26_05_sluid_is_invisible_locally_too(tmp_path):
    allocation_without_user_processes(tmp_path, "v2-stepd-in-job", "v2-sluid-node-in-scope")
    assert reasons(tmp_path) == {600: "no-job-on-node", 601: "no-job-on-node"}


def test_v1_evidence_spares_without_asking_the_controller(tmp_path):
    """Without a job answer, the process of the job's user is decided by the
    node alone, so Slurm is never asked about it."""
    allocation_without_user_processes(tmp_path, "v1-extern-stepd", "v1-extern-sleep")
    looked = look(tmp_path, FACTS)
    assert [p.pid for p in looked.plan.undecided] == [601]
    read = {p.pid for p in looked.scan.processes if p.job_cgroup is not None}
    assert read == {500, 501}

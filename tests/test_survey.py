"""The two looks of a run that asks Slurm: each file of a process is read at
most once per look, the look after the answer reads only what can still change
a verdict, and what appeared in between is read in full."""

import shutil
from collections import Counter
from pathlib import Path

import pytest

from leftover import scan as scan_module
from leftover.decide import Facts, JobAnswer
from leftover.scan import boottime_ticks
from leftover.survey import look, look_again
from leftover.userns import INITIAL_USERNS_LINK
from tests.bench.faketree import CGROUP_JOB, CGROUP_OUTSIDE, STAT, STATUS

FACTS = Facts(min_uid=1000, protected_uids=frozenset())
STRAY_UID, JOB_UID, LATE_UID = 9001, 5001, 9002


def put(root: Path, pid: int, uid: int, name: str = "p", ppid: int = 1, cgroup: str = CGROUP_OUTSIDE, start: int = 1000) -> None:
    directory = root / str(pid)
    directory.mkdir(exist_ok=True)
    (directory / "status").write_text(STATUS.format(name=name, pid=pid, ppid=ppid, uid=uid, kthread=0))
    (directory / "stat").write_text(STAT.format(pid=pid, name=name, ppid=ppid, flags=0x400100, start=start))
    (directory / "cgroup").write_text(cgroup)
    (directory / "ns").mkdir(exist_ok=True)
    (directory / "ns" / "user").unlink(missing_ok=True)
    (directory / "ns" / "user").symlink_to(INITIAL_USERNS_LINK)


@pytest.fixture
def node(tmp_path) -> Path:
    put(tmp_path, 1, 0, "init", ppid=0)
    put(tmp_path, 100, 0, "slurmstepd")
    put(tmp_path, 101, JOB_UID, "solver", ppid=100, cgroup=CGROUP_JOB.format(uid=JOB_UID, job=7))
    put(tmp_path, 200, STRAY_UID, "stray")
    put(tmp_path, 300, LATE_UID, "early")
    return tmp_path


@pytest.fixture
def reads(monkeypatch) -> Counter:
    counted: Counter = Counter()
    real = scan_module._read

    def read(path: str):
        counted["/".join(path.rsplit("/", 2)[-2:])] += 1  # "pid/file"
        return real(path)

    monkeypatch.setattr(scan_module, "_read", read)
    return counted


def answered(job_uids=frozenset()) -> Facts:
    return FACTS._replace(answer=JobAnswer(frozenset(job_uids), boottime_ticks()))


def test_each_file_is_read_at_most_once_per_look(node, reads):
    first = look(node, FACTS)
    assert max(reads.values()) == 1
    assert "101/cgroup" not in reads  # decided by its slurmstepd ancestor
    assert not [path for path in reads if path.endswith("/stat")]  # no answer yet: no start times
    reads.clear()
    look_again(node, first, answered())
    assert max(reads.values()) == 1
    assert sorted(reads) == ["200/stat", "300/stat"]  # only the undecided, only their start time


def test_the_look_after_the_answer_targets_the_strays(node):
    first = look(node, FACTS)
    plan = look_again(node, first, answered({LATE_UID})).plan
    assert {d.process.pid: d.rule.name for d in plan.decisions if d.process.pid >= 200} == {
        200: "no-job-on-node",
        300: "job-on-node",
    }


def test_a_job_process_that_appeared_between_the_looks_is_evidence_for_its_user(node, reads):
    first = look(node, FACTS)
    put(node, 400, STRAY_UID, "solver", ppid=1, cgroup=CGROUP_JOB.format(uid=STRAY_UID, job=8))
    reads.clear()
    plan = look_again(node, first, answered()).plan
    rules = {d.process.pid: d.rule.name for d in plan.decisions}
    assert rules[400] == "in-job-cgroup" and rules[200] == "uid-has-local-job"
    assert reads["400/status"] == 1 and reads["400/cgroup"] == 1


def test_a_pid_that_names_a_newcomer_by_the_second_look_is_read_afresh(node):
    first = look(node, FACTS)
    later = first.began_ticks + 10**6
    put(node, 300, STRAY_UID, "newcomer", start=later)  # pid 300 exited and was reused
    plan = look_again(node, first, answered({LATE_UID})).plan
    decision = next(d for d in plan.decisions if d.process.pid == 300)
    assert decision.process.name == "newcomer" and decision.process.uids[0] == STRAY_UID
    assert decision.rule.name == "started-after-slurm-answer"


def test_a_process_gone_between_the_looks_is_dropped(node):
    first = look(node, FACTS)
    shutil.rmtree(node / "200")
    plan = look_again(node, first, answered()).plan
    assert 200 not in {p.pid for p in plan.processes}
    assert [d.process.pid for d in plan.targets] == [300]


def test_what_the_first_look_decided_stands(node):
    first = look(node, FACTS)
    put(node, 101, JOB_UID, "solver", ppid=1)  # left its job since: not read again
    plan = look_again(node, first, answered()).plan
    assert next(d for d in plan.decisions if d.process.pid == 101).rule.name == "under-slurmstepd"


def test_a_child_of_a_process_whose_status_cannot_be_read_is_left_alone(node):
    """slurmstepd 100 -> 150 (a garbled status: skipped) -> 151. Judged with
    no job anywhere (job_source local), 151 could be a job's: it is spared,
    and the stray beside it is still a target."""
    put(node, 150, JOB_UID, "wrapper", ppid=100)
    (node / "150" / "status").write_text("Name:\twrapper\nUid:\tgarbled\n")
    put(node, 151, JOB_UID + 1, "worker", ppid=150)
    first = look(node, answered())
    reasons = {d.process.pid: d.rule.name for d in first.plan.decisions}
    assert 150 in {s.pid for s in first.scan.skipped}
    assert reasons[151] == "ancestor-unreadable" and reasons[200] == "no-job-on-node"


def test_below_an_unreadable_process_a_job_cgroup_is_still_read_as_evidence(node):
    """slurmstepd 100 -> 150 (garbled status) -> 151, in a job cgroup; the
    same user's 152 sits outside it. 151 is spared for its unknown ancestry,
    and its cgroup is still read: the user has a job here, so 152 is spared."""
    put(node, 150, JOB_UID, "wrapper", ppid=100)
    (node / "150" / "status").write_text("Name:\twrapper\nUid:\tgarbled\n")
    put(node, 151, JOB_UID + 7, "worker", ppid=150, cgroup=CGROUP_JOB.format(uid=JOB_UID + 7, job=9))
    put(node, 152, JOB_UID + 7, "tail")
    plan = look(node, answered()).plan
    by_pid = {d.process.pid: d for d in plan.decisions}
    assert by_pid[151].rule.name == "ancestor-unreadable" and by_pid[151].process.job_cgroup is not None
    assert by_pid[152].rule.name == "uid-has-local-job"


def test_a_newcomer_slurmstepd_that_exits_during_the_second_look_still_spares_its_child(node, monkeypatch):
    """Between the looks a root slurmstepd 400 and its child 401 appear; 400
    exits while the second look reads its cgroup. 401 was judged on the
    statuses, with 400 still there: under-slurmstepd, not a target."""
    first = look(node, FACTS)
    put(node, 400, 0, "slurmstepd", start=10**9)
    put(node, 401, STRAY_UID + 5, "task", ppid=400, start=10**9)
    real = scan_module._read

    def read(path: str):
        if path.endswith("/400/cgroup"):
            shutil.rmtree(node / "400")
            return None
        return real(path)

    monkeypatch.setattr(scan_module, "_read", read)
    plan = look_again(node, first, answered()).plan
    assert {d.process.pid: d.rule.name for d in plan.decisions}[401] == "under-slurmstepd"

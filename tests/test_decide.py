"""The decision core, on the example node's real-kernel process files and on
hand-made processes for each rule."""


import pytest

from leftover.decide import RULES, Facts, JobAnswer, Verdict, decide, judge
from leftover.process import Process
from leftover.scan import scan_statuses, with_job_cgroups, with_start_times
from tests.conftest import EXAMPLE_PROC

ASKED_AT = 100_000
FACTS = Facts(min_uid=1000, protected_uids=frozenset({64030, 2004}))
ANSWER = JobAnswer(job_uids=frozenset({2001}), asked_at_ticks=ASKED_AT)
ANSWERED = FACTS._replace(answer=ANSWER)


def process(uids=(2002,) * 4, state="S", kernel_thread=False, start_ticks=500, pid=4000, owner=None, threads=None) -> Process:
    return Process(pid=pid, name="p", state=state, ppid=1, uids=tuple(uids), kernel_thread=kernel_thread, start_ticks=start_ticks,
                   userns_owner=owner, threads=threads)


def reason(p: Process, facts: Facts = ANSWERED) -> str | None:
    rule = judge(p, facts)
    return rule.name if rule else None


def example_plan():
    scan = scan_statuses(EXAMPLE_PROC)
    every = frozenset(p.pid for p in scan.processes)
    scan = with_start_times(EXAMPLE_PROC, with_job_cgroups(EXAMPLE_PROC, scan, every), every)
    return decide(scan.processes, FACTS._replace(answer=ANSWER))


def test_example_node_targets_exactly_the_strays():
    plan = example_plan()
    assert [d.process.pid for d in plan.targets] == [1202, 1203, 1207]
    assert {d.rule.name for d in plan.targets} == {"no-job-on-node"}


def test_example_node_reasons_for_everything_spared():
    reasons = {d.process.pid: d.rule.name for d in example_plan().decisions}
    assert reasons == {
        1: "system-account",
        2: "kernel-thread",
        7: "kernel-thread",
        1201: "in-job-cgroup",
        1202: "no-job-on-node",
        1203: "no-job-on-node",
        1204: "uid-has-local-job",  # real uid carol, effective uid alice, whose job runs here
        1205: "protected-user",
        1206: "system-account",  # uid 900, not in passwd
        1207: "no-job-on-node",
        1208: "zombie",
    }


def test_only_the_last_rule_targets():
    assert [r.verdict for r in RULES[:-1]] == [Verdict.SPARE] * (len(RULES) - 1)
    assert RULES[-1].verdict is Verdict.TARGET


def test_rule_names_are_unique():
    assert len({r.name for r in RULES}) == len(RULES)


@pytest.mark.parametrize(
    "candidate, expected",
    [
        (process(kernel_thread=True, uids=(2002,) * 4), "kernel-thread"),
        (process(state="Z"), "zombie"),
        (process(state="X"), "zombie"),
        (process(state="Z", threads=1), "zombie"),
        (process(state="Z", threads=3), "no-job-on-node"),  # main thread exited, others run: alive
        (process(state="Z", threads=3, uids=(0,) * 4), "system-account"),
        (process(uids=(0, 0, 0, 0)), "system-account"),
        (process(uids=(2002, 2002, 2002, 999)), "system-account"),
        (process(uids=(2002, 2004, 2002, 2002)), "protected-user"),
        (process(uids=(2002, 64030, 2002, 2002)), "system-account"),  # Debian's slurm, in DynamicUser='s range
        (process(uids=(2002, 2002, 2001, 2002)), "job-on-node"),
        (process(start_ticks=None), "start-time-unknown"),
        (process(start_ticks=ASKED_AT), "started-after-slurm-answer"),
        (process(start_ticks=ASKED_AT + 1), "started-after-slurm-answer"),
        (process(start_ticks=ASKED_AT - 1), "no-job-on-node"),
    ],
)
def test_each_rule(candidate, expected):
    assert reason(candidate) == expected


def test_first_matching_rule_wins():
    assert reason(process(state="Z", uids=(0,) * 4)) == "zombie"
    assert reason(process(uids=(2004, 2001, 2001, 2001))) == "protected-user"


def test_min_uid_is_a_setting():
    assert reason(process(uids=(1500,) * 4), FACTS._replace(min_uid=2000, answer=ANSWER)) == "system-account"


def test_without_slurm_answer_nothing_is_targeted_and_candidates_are_undecided():
    plan = decide([process(pid=1), process(pid=2, uids=(0,) * 4), process(pid=3, state="Z")], FACTS)
    assert plan.targets == ()
    assert [p.pid for p in plan.undecided] == [1]


def test_node_of_protected_processes_needs_no_slurm_answer():
    plan = decide([process(uids=(0,) * 4), process(uids=(64030,) * 4), process(kernel_thread=True)], FACTS)
    assert plan.undecided == ()


def test_count_by_reason_follows_rule_order():
    plan = decide([process(pid=1), process(pid=2, state="Z"), process(pid=3, uids=(2001,) * 4)], FACTS._replace(answer=ANSWER))
    assert list(plan.count_by_reason().items()) == [("zombie", 1), ("job-on-node", 1), ("no-job-on-node", 1)]


def stepd_tree():
    """slurmd -> slurmstepd (root) -> job script -> worker, plus a stray and
    a user process that names itself slurmstepd."""
    return [
        process(pid=10, uids=(0,) * 4, start_ticks=1),
        process(pid=11, uids=(0,) * 4)._replace(name="slurmstepd", ppid=10),
        process(pid=12, uids=(3001,) * 4)._replace(ppid=11),
        process(pid=13, uids=(3001,) * 4)._replace(ppid=12),
        process(pid=14, uids=(3002,) * 4)._replace(ppid=1),
        process(pid=15, uids=(3003,) * 4)._replace(name="slurmstepd", ppid=1),
        process(pid=16, uids=(3003,) * 4)._replace(ppid=15),
    ]


def test_descendants_of_root_slurmstepd_are_job_processes_without_asking():
    plan = decide(stepd_tree(), FACTS)
    reasons = {d.process.pid: d.rule.name if d.rule else None for d in plan.decisions}
    assert reasons[12] == reasons[13] == "under-slurmstepd"
    assert reasons[14] is None  # a stray: only Slurm's answer can decide it
    assert reasons[16] is None  # a user's own "slurmstepd" proves nothing
    assert plan.local_job_processes() == 2


def test_a_uid_with_a_local_job_spares_its_other_processes():
    tree = stepd_tree() + [process(pid=17, uids=(3001,) * 4)._replace(ppid=1)]
    plan = decide(tree, FACTS)
    assert judge(tree[-1], plan.facts).name == "uid-has-local-job"


def test_job_cgroup_spares_and_marks_the_uid():
    in_job = process(pid=20, uids=(3005,) * 4)._replace(job_cgroup="/slurm/uid_3005/job_1/step_0")
    outside = process(pid=21, uids=(3005,) * 4)
    plan = decide([in_job, outside], FACTS)
    assert [d.rule.name for d in plan.decisions] == ["in-job-cgroup", "uid-has-local-job"]
    assert plan.undecided == ()


def test_parent_cycles_do_not_hang_the_ancestry_walk():
    looped = [process(pid=30)._replace(ppid=31), process(pid=31)._replace(ppid=30)]
    assert [p.pid for p in decide(looped, FACTS).undecided] == [30, 31]


def test_local_answer_targets_what_no_local_evidence_covers():
    local = JobAnswer(frozenset(), ASKED_AT)
    plan = decide(stepd_tree(), FACTS._replace(answer=local))
    assert [d.process.pid for d in plan.targets] == [14, 15, 16]


def test_below_a_process_that_could_not_be_read_the_ancestry_is_unknown_and_spares():
    """slurmstepd (root) -> 40, whose status could not be read and is
    missing -> 41 -> 42. Whether 41 and 42 run under slurmstepd cannot be
    told, so even with an answer that names no job of theirs they are
    spared, and their user's process 43 elsewhere counts as one with a job
    here; a process whose parent simply vanished is judged as before."""
    tree = [
        process(pid=10, uids=(0,) * 4)._replace(name="slurmstepd"),
        process(pid=41, uids=(3001,) * 4)._replace(ppid=40),
        process(pid=42, uids=(3001,) * 4)._replace(ppid=41),
        process(pid=43, uids=(3001,) * 4)._replace(ppid=1),
        process(pid=51, uids=(3002,) * 4)._replace(ppid=50),  # 50 exited: its child is judged as ever
    ]
    local = FACTS._replace(answer=JobAnswer(frozenset(), ASKED_AT), unreadable_pids=frozenset({40}))
    reasons = {d.process.pid: d.rule.name for d in decide(tree, local).decisions}
    assert reasons == {10: "system-account", 41: "ancestor-unreadable", 42: "ancestor-unreadable",
                       43: "uid-has-local-job", 51: "no-job-on-node"}
    assert [d.process.pid for d in decide(tree, local._replace(unreadable_pids=frozenset())).targets] == [41, 42, 43, 51]


def test_a_deep_process_chain_is_walked_to_its_slurmstepd():
    """A user can fork a chain thousands deep: the walk is iterative (no
    recursion limit) and recognises every member."""
    depth = 20_000
    chain = [process(pid=10, uids=(0,) * 4)._replace(name="slurmstepd")]
    chain += [process(pid=11 + i, uids=(3001,) * 4)._replace(ppid=10 + i) for i in range(depth)]
    plan = decide(chain, FACTS)
    assert plan.local_job_processes() == depth


def test_members_of_protected_groups_are_spared_by_their_own_row():
    facts = ANSWERED._replace(protected_group_uids=frozenset({2002}))
    assert reason(process(), facts) == "protected-group"
    assert reason(process(uids=(3000, 2002, 3000, 3000)), facts) == "protected-group"
    assert reason(process(uids=(2002, 2004, 2002, 2002)), facts) == "protected-user"  # the earlier row decides
    assert reason(process(uids=(3000,) * 4), facts) == "no-job-on-node"


def test_a_root_process_in_a_v1_job_cgroup_is_evidence_for_the_user_its_path_names():
    """The extern step of PrologFlags=Contain holds only root's processes; on
    cgroup v1 their path names the job's user, whose other processes it spares."""
    extern_sleep = process(pid=40, uids=(0,) * 4)._replace(
        job_cgroup="/slurm_vm/uid_3001/job_31/step_extern", job_cgroup_uid=3001)
    session, other = process(pid=41, uids=(3001,) * 4), process(pid=42, uids=(3002,) * 4)
    plan = decide([extern_sleep, session, other], FACTS)
    assert 3001 in plan.facts.local.uids
    assert [d.rule.name if d.rule else None for d in plan.decisions] == ["system-account", "uid-has-local-job", None]


@pytest.mark.parametrize("uid", [60001, 60513, 61184, 65519, 65534, 4294967294])
def test_system_accounts_above_min_uid_are_spared(uid):
    assert reason(process(uids=(uid,) * 4)) == "system-account"
    assert reason(process(uids=(2002, uid, 2002, 2002))) == "system-account"


def test_system_uid_ranges_come_from_the_facts():
    nobody = process(uids=(65534,) * 4)
    assert reason(nobody, ANSWERED._replace(system_uid_ranges=())) == "no-job-on-node"
    assert reason(process(uids=(70005,) * 4), ANSWERED._replace(system_uid_ranges=((70000, 70010),))) == "system-account"


SUBORDINATE = (101000,) * 4  # a container user's UID, from an /etc/subuid range


@pytest.mark.parametrize(
    "candidate, expected",
    [
        (process(uids=SUBORDINATE, owner=2001), "job-on-node"),  # the owner has a job, says squeue
        (process(uids=SUBORDINATE, owner=2002), "no-job-on-node"),  # the owner has none
        (process(uids=SUBORDINATE, owner=2004), "protected-user"),
        (process(uids=SUBORDINATE, owner=0), "system-account"),  # a rootful container with remapped UIDs
        (process(uids=SUBORDINATE, owner=999), "system-account"),
        (process(uids=(2001,) * 4, owner=2002), "job-on-node"),  # its own UIDs still count
        (process(uids=(2004,) * 4, owner=2002), "protected-user"),
        (process(uids=SUBORDINATE), "no-job-on-node"),  # in the initial namespace: only its UIDs
    ],
)
def test_a_container_process_counts_as_its_namespace_owner_too(candidate, expected):
    assert reason(candidate) == expected


def test_an_unreadable_namespace_leaves_the_process_alone_without_asking_slurm():
    unreadable = process(uids=SUBORDINATE)._replace(userns_error="NS_GET_PARENT failed: Permission denied")
    plan = decide([unreadable], FACTS)
    assert plan.undecided == () and [d.rule.name for d in plan.decisions] == ["userns-unreadable"]
    assert reason(unreadable) == "userns-unreadable"


def test_an_unreadable_namespace_is_named_only_when_nothing_else_spares():
    unreadable = process(uids=(2004,) * 4)._replace(userns_error="NS_GET_PARENT failed: Permission denied")
    assert reason(unreadable) == "protected-user"


def test_the_owner_of_a_job_process_namespace_has_a_local_job():
    """A job runs a container: its process in the job cgroup runs as a
    subordinate UID, so only the namespace's owner ties the job to its user;
    that user's container processes outside the job are spared without Slurm."""
    in_job = process(pid=40, uids=SUBORDINATE, owner=3001)._replace(job_cgroup="/slurm/uid_3001/job_7/step_0")
    escaped = process(pid=41, uids=(101005,) * 4, owner=3001)
    own = process(pid=42, uids=(3001,) * 4)
    other = process(pid=43, uids=(102000,) * 4, owner=3002)
    plan = decide([in_job, escaped, own, other], FACTS)
    assert 3001 in plan.facts.local.uids
    assert [d.rule.name if d.rule else None for d in plan.decisions] == ["in-job-cgroup", "uid-has-local-job", "uid-has-local-job", None]

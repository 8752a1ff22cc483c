"""Looking at the node: a /proc tree read into a Plan, each file of a process
at most once per look and only where it can still change a verdict.

look() is a run's first look. Every status is read; a process's cgroup only
when neither its status nor a slurmstepd ancestor decided it, or its ancestry
is unknown (and then also the cgroups of root's slurmstepd processes and
their root children, whose cgroup v1 path names the job's user); its user
namespace only when it is undecided and in no job cgroup; its stat (start
time) only when the job answer is already in hand and is all that is left to
decide it. On an idle node, or one whose user processes all live under
slurmstepd, that is one file per process. It decides at most three times: on
the statuses, on what the cgroups and namespaces add, and on the start times.
A process that the cgroups place in a job is never read again: were it to
exit during a later read it would be dropped, and its evidence with it.

look_again() follows a Slurm answer. It reads the start time of each process
the first look left undecided, and the processes that started since the first
look began (a new pid, or an old pid now naming a newcomer): they may be a
job's, and so evidence for their user. Those are judged on their statuses
first, while all of them are in the scan, then read as the first look reads.
What the first look decided stands (leftover.decide keeps that rule).

with_gpu_devices() is the last read of a run: the open files of its targets
only, to tell which GPU devices they hold.

It signals nothing and asks no one; errors are ProcError from leftover.scan.
"""

from pathlib import Path
from typing import NamedTuple

from leftover.decide import SLURMSTEPD, Facts, Plan, Verdict, decide
from leftover.gpu import gpu_devices
from leftover.scan import (
    Scan,
    boottime_ticks,
    list_pids,
    scan_statuses,
    statuses_of,
    with_job_cgroups,
    with_start_times,
    with_userns_owners,
)


class Survey(NamedTuple):
    plan: Plan
    scan: Scan
    began_ticks: int  # CLOCK_BOOTTIME ticks, read before the look's first file


def look(proc_root: Path, facts: Facts) -> Survey:
    """Read proc_root and decide. Without an answer in facts, the plan's
    undecided processes are those the node cannot judge by itself."""
    began = boottime_ticks()
    plan, scan = _judged(proc_root, scan_statuses(proc_root), facts)
    return Survey(plan, scan, began)


def look_again(proc_root: Path, first: Survey, facts: Facts) -> Survey:
    """The first look brought up to date for facts, which carry the answer."""
    listed = frozenset(list_pids(proc_root))
    seen = _pids(first.scan.processes) | {s.pid for s in first.scan.skipped}
    undecided = _pids(first.plan.undecided) & listed
    timed = with_start_times(proc_root, first.scan, undecided)
    kept, newcomers = [], set(listed - seen)
    for process in timed.processes:
        if process.pid not in listed:
            continue  # gone since the first look
        if process.start_ticks is not None and process.start_ticks >= first.began_ticks:
            newcomers.add(process.pid)  # the pid now names a process the first look never saw
        else:
            kept.append(process)
    fresh = statuses_of(proc_root, sorted(newcomers))
    scan = Scan(tuple(sorted(kept + list(fresh.processes), key=_pid)), timed.skipped + fresh.skipped)
    plan = first.plan
    if fresh.processes:
        # Judged on their statuses first, while every newcomer is still in the
        # scan: a slurmstepd that exits during the reads below still spares
        # the children it had.
        plan = _decided(scan, facts._replace(answer=None), plan)
        arrived = _pids(fresh.processes)
        scan = _with_local_evidence(proc_root, scan, plan, arrived)
        scan = with_start_times(proc_root, scan, _pids(plan.undecided) & _outside_job_cgroups(scan, arrived))
    return Survey(_decided(scan, facts, plan), scan, first.began_ticks)


def _judged(proc_root: Path, scan: Scan, facts: Facts):
    """Decide scan; for what stays undecided read cgroups and user
    namespaces, then (with an answer in facts) start times, judging again
    only what is still open."""
    unanswered = facts._replace(answer=None)
    plan = _decided(scan, unanswered)
    if plan.undecided:
        scan = _with_local_evidence(proc_root, scan, plan, _pids(plan.processes))
        plan = _decided(scan, unanswered, plan)
    if facts.answer is None or not plan.undecided:
        return plan, scan
    scan = with_start_times(proc_root, scan, _pids(plan.undecided))
    return _decided(scan, facts, plan), scan


def _with_local_evidence(proc_root: Path, scan: Scan, plan: Plan, among: frozenset[int]) -> Scan:
    """Of the processes among, the cgroups of those plan left undecided, of
    those whose ancestry is unknown, and of root's own under slurmstepd; then
    the user namespaces of the undecided that no job cgroup holds. A process
    placed in a job is not read again: one that exits during a later read
    would be dropped, and its evidence with it."""
    undecided = _pids(plan.undecided) & among
    scan = with_job_cgroups(proc_root, scan, undecided | ((_slurms_own(plan) | plan.facts.local.ancestry_unknown) & among))
    return with_userns_owners(proc_root, scan, undecided & _outside_job_cgroups(scan, undecided))


def _outside_job_cgroups(scan: Scan, pids: frozenset[int]) -> frozenset[int]:
    return frozenset(p.pid for p in scan.processes if p.pid in pids and p.job_cgroup is None)


def _decided(scan: Scan, facts: Facts, settled: Plan | None = None) -> Plan:
    """decide() on scan, told which processes were there but could not be
    read: the line of ancestors of their children is broken there."""
    unreadable = frozenset(s.pid for s in scan.skipped) - _pids(scan.processes)
    return decide(scan.processes, facts._replace(unreadable_pids=unreadable), settled)


def with_gpu_devices(proc_root: Path, plan: Plan) -> Plan:
    """The same plan, its targets carrying the GPU devices they hold. The
    verdicts are kept as they are: what a process holds never changes one."""
    processes = tuple(
        p._replace(gpu_devices=gpu_devices(proc_root, p.pid)) if rule is not None and rule.verdict is Verdict.TARGET else p
        for p, rule in zip(plan.processes, plan.rules, strict=True)
    )
    return Plan(processes, plan.rules, plan.facts)


def _pid(process) -> int:
    return process.pid



def _pids(processes) -> frozenset[int]:
    return frozenset(p.pid for p in processes)


def _slurms_own(plan: Plan) -> frozenset[int]:
    """Root's slurmstepd processes and root's processes below one (the extern
    step's sleep): a system account decides them, but on cgroup v1 their job
    cgroup names the job's user, which can spare an undecided process."""
    return frozenset(
        p.pid for p in plan.processes
        if p.uid == 0 and not p.kernel_thread and (p.name == SLURMSTEPD or p.pid in plan.facts.local.pids)
    )

"""Looking at the node: a /proc tree read into a Plan, each file of a process
at most once per look and only where it can still change a verdict.

look() is a run's first look. Every status is read; a process's cgroup and
user namespace only when neither its status nor a slurmstepd ancestor decided
it (and then also the cgroups of root's slurmstepd processes and their root
children, whose cgroup v1 path names the job's user); its stat (start time)
only when the job answer is already in hand and is all that is left to decide
it. On an idle node, or one whose user processes all live under slurmstepd,
that is one file per process. It decides at most three times: on the
statuses, on what the cgroups and namespaces add, and on the start times.

look_again() follows a Slurm answer. It reads the start time of each process
the first look left undecided, and reads in full (status, cgroup, user
namespace, stat) only the processes that started since the first look began
(a new pid, or an old pid now naming a newcomer): they may be a job's, and so
evidence for their user. It decides once, with the answer. What the first
look decided stands (leftover.decide keeps that rule).

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
    if fresh.processes:  # few, so each is read in full rather than judged between reads
        arrived = _pids(fresh.processes)
        scan = with_job_cgroups(proc_root, scan, arrived)
        scan = with_userns_owners(proc_root, scan, arrived)
        scan = with_start_times(proc_root, scan, arrived)
    return Survey(_decided(scan, facts, first.plan), scan, first.began_ticks)


def _judged(proc_root: Path, scan: Scan, facts: Facts):
    """Decide scan; for what stays undecided read cgroups and user
    namespaces, then (with an answer in facts) start times, judging again
    only what is still open."""
    unanswered = facts._replace(answer=None)
    plan = _decided(scan, unanswered)
    if plan.undecided:
        undecided = _pids(plan.undecided)
        scan = with_job_cgroups(proc_root, scan, undecided | _slurms_own(plan))
        scan = with_userns_owners(proc_root, scan, undecided)
        plan = _decided(scan, unanswered, plan)
    if facts.answer is None or not plan.undecided:
        return plan, scan
    scan = with_start_times(proc_root, scan, _pids(plan.undecided))
    return _decided(scan, facts, plan), scan


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

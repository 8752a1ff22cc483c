"""Looking at the node: a /proc tree read into a Plan, one file at a time and
only where that file can still change a verdict.

Every status is read; a process's cgroup only when neither its status nor a
slurmstepd ancestor already decided it, and then also the cgroups of root's
slurmstepd processes and their root children, whose cgroup v1 path names the
job's user; its stat (start time) only when the
job answer is all that is left to decide it. On an idle node, or one whose
user processes all live under slurmstepd, that is one file per process.
It signals nothing and asks no one; errors are ProcError from leftover.scan.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from leftover.decide import SLURMSTEPD, Facts, Plan, decide
from leftover.scan import Scan, scan_statuses, with_job_cgroups, with_start_times


@dataclass(frozen=True)
class Survey:
    plan: Plan
    scan: Scan


def survey(proc_root: Path, facts: Facts) -> Survey:
    """Read proc_root and decide. Without an answer in facts, the plan's
    undecided processes are those the node cannot judge by itself."""
    unanswered = replace(facts, answer=None)
    scan = scan_statuses(proc_root)
    plan = decide(scan.processes, unanswered)
    if plan.undecided:
        scan = with_job_cgroups(proc_root, scan, _pids(plan.undecided) | _slurms_own(plan))
        plan = decide(scan.processes, unanswered)
    if facts.answer is None:
        return Survey(plan, scan)
    scan = with_start_times(proc_root, scan, _pids(plan.undecided))
    return Survey(decide(scan.processes, facts), scan)


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

"""Looking at the node: a /proc tree read into a Plan, one file at a time and
only where that file can still change a verdict.

Every status is read; a process's cgroup only when neither its status nor a
slurmstepd ancestor already decided it; its user namespace only when its
cgroup did not decide it either; its stat (start time) only when the job
answer is all that is left to decide it. On an idle node, or one whose
user processes all live under slurmstepd, that is one file per process.
It signals nothing and asks no one; errors are ProcError from leftover.scan.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from leftover.decide import Facts, Plan, decide
from leftover.scan import Scan, scan_statuses, with_job_cgroups, with_start_times, with_userns_owners


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
        scan = with_job_cgroups(proc_root, scan, _pids(plan.undecided))
        plan = decide(scan.processes, unanswered)
    if plan.undecided:
        scan = with_userns_owners(proc_root, scan, _pids(plan.undecided))
        plan = decide(scan.processes, unanswered)
    if facts.answer is None:
        return Survey(plan, scan)
    scan = with_start_times(proc_root, scan, _pids(plan.undecided))
    return Survey(decide(scan.processes, facts), scan)


def _pids(processes) -> frozenset[int]:
    return frozenset(p.pid for p in processes)

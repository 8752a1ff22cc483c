"""Looking at the node: a /proc tree read into a Plan, one file at a time and
only where that file can still change a verdict.

Every status is read; a process's cgroup only when neither its status nor a
slurmstepd ancestor already decided it; its stat (start time) only when the
job answer is all that is left to decide it; its open files only when it is
a target, to tell which GPU devices it holds. On an idle node, or one whose
user processes all live under slurmstepd, that is one file per process.
It signals nothing and asks no one; errors are ProcError from leftover.scan.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from leftover.decide import Facts, Plan, Verdict, decide
from leftover.gpu import gpu_devices
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
        scan = with_job_cgroups(proc_root, scan, _pids(plan.undecided))
        plan = decide(scan.processes, unanswered)
    if facts.answer is None:
        return Survey(plan, scan)
    scan = with_start_times(proc_root, scan, _pids(plan.undecided))
    return Survey(_with_gpu_devices(proc_root, decide(scan.processes, facts)), scan)


def _with_gpu_devices(proc_root: Path, plan: Plan) -> Plan:
    """The same plan, its targets carrying the GPU devices they hold. The
    verdicts are kept as they are: what a process holds never changes one."""
    processes = tuple(
        p._replace(gpu_devices=gpu_devices(proc_root, p.pid)) if rule is not None and rule.verdict is Verdict.TARGET else p
        for p, rule in zip(plan.processes, plan.rules, strict=True)
    )
    return Plan(processes, plan.rules, plan.facts)


def _pids(processes) -> frozenset[int]:
    return frozenset(p.pid for p in processes)

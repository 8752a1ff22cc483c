"""How a run is told: one-line descriptions of targets for the log, the
--dry-run listing, and the --json document.

Formatting only: it decides nothing and signals nothing. Every process name
passes through printable() before it is shown anywhere.
"""

import json
from collections import Counter
from collections.abc import Callable

from leftover.act import Outcome
from leftover.decide import Decision, Plan, Verdict
from leftover.log import printable
from leftover.version import version


class RunReport:
    """What one run found and did, filled in as it goes."""

    def __init__(self, dry_run: bool, plan: Plan | None = None, slurm_seconds: float | None = None) -> None:
        self.dry_run = dry_run
        self.exit_code = 0
        self.bailed_out: str | None = None
        self.bailed_out_label: str | None = None  # config, lock, userns, passwd, group, proc, slurm, stopped, internal
        self.stopped: str | None = None  # stopped by a signal after the kill phase began
        self.duration = 0.0
        self.job_source = "squeue"
        self.scanned = 0
        self.skipped: list[dict] = []
        self.asked_slurm = False
        self.squeue: str | None = None  # the squeue that was run
        self.node_names: tuple[str, ...] = ()
        self.job_uids: tuple[int, ...] = ()
        self.slurm_seconds = slurm_seconds
        self.plan = plan
        self.outcomes: list[Outcome] = []


class Describer:
    """Names processes for people: pid, user, uid, name and age, and who owns
    the user namespace of a process in a container."""

    def __init__(self, user_name: Callable[[int], str], ticks_per_second: int) -> None:
        self.user_name = user_name
        self.ticks_per_second = ticks_per_second

    def age_seconds(self, decision: Decision, plan: Plan) -> int | None:
        start, answer = decision.process.start_ticks, plan.facts.answer
        if start is None or answer is None:
            return None
        return max(0, (answer.asked_at_ticks - start) // self.ticks_per_second)

    def fields(self, decision: Decision, plan: Plan) -> dict:
        process = decision.process
        owner = process.userns_owner
        return {
            "pid": process.pid,
            "user": self.user_name(process.uid),
            "uid": process.uid,
            "uids": list(process.uids),
            "userns_owner": None if owner is None else self.user_name(owner),
            "userns_owner_uid": owner,
            "userns_error": process.userns_error,
            "name": printable(process.name),
            "state": process.state,
            "age_seconds": self.age_seconds(decision, plan),
            "reason": decision.rule.name if decision.rule else "undecided",
            "gpu_devices": [printable(device) for device in process.gpu_devices],
        }

    def line(self, decision: Decision, plan: Plan) -> str:
        f = self.fields(decision, plan)
        age = "?" if f["age_seconds"] is None else f"{f['age_seconds']}s"
        owner = "" if f["userns_owner_uid"] is None else (
            f" userns_owner={printable(f['userns_owner'], 32)} userns_owner_uid={f['userns_owner_uid']}"
        )
        gpus = f" gpu={','.join(f['gpu_devices'])}" if f["gpu_devices"] else ""
        return (
            f"pid={f['pid']} user={printable(f['user'], 32)} uid={f['uid']}{owner} name='{f['name']}' age={age} "
            f"reason={f['reason']}{gpus}"
        )


def summary(report: RunReport) -> str:
    """The one line per run that says what was found and done."""
    if report.bailed_out:
        return f"bailed out, nothing signalled: {report.bailed_out}"
    prefix = f"{report.stopped} during the kill phase; " if report.stopped else ""
    plan = report.plan
    targets = len(plan.targets) if plan else 0
    local = plan.local_job_processes() if plan else 0
    if report.asked_slurm:
        nodes = ",".join(report.node_names)
        slurm = f"controller asked by {report.squeue} for {nodes} in {report.slurm_seconds:.2f}s, {len(report.job_uids)} user(s) with jobs"
    elif report.job_source == "local":
        slurm = "controller never asked (job_source local)"
    else:
        slurm = "controller not asked (no process outside a job left to judge)"
    if report.dry_run:
        done = "dry run, nothing signalled"
    else:
        results = Counter(outcome.result.value for outcome in report.outcomes)
        done = ", ".join(f"{n} {name}" for name, n in sorted(results.items())) or "nothing signalled"
    return f"{prefix}scanned {report.scanned} processes, {local} inside jobs, {targets} target(s); {slurm}; {done}"


def dry_run_listing(report: RunReport, describer: Describer) -> str:
    plan = report.plan
    lines = [f"would kill {describer.line(d, plan)}" for d in (plan.targets if plan else ())]
    lines.append(summary(report))
    return "\n".join(lines)


def json_document(report: RunReport, describer: Describer, every_process: bool = False) -> str:
    """The run as JSON. every_process adds `processes`: every process the plan
    holds (all but those skipped), each with the rule that decided it."""
    plan = report.plan
    results = {o.decision.process.pid: o.result.value for o in report.outcomes}
    targets = []
    for decision in plan.targets if plan else ():
        entry = describer.fields(decision, plan)
        entry["result"] = results.get(decision.process.pid, "planned" if report.dry_run else None)
        targets.append(entry)
    document = {
        "version": version(),
        "dry_run": report.dry_run,
        "exit_code": report.exit_code,
        "bailed_out": report.bailed_out,
        "bailed_out_reason": report.bailed_out_label,
        "stopped": report.stopped,
        "duration_seconds": round(report.duration, 6),
        "scanned": report.scanned,
        "skipped": report.skipped,
        "job_source": report.job_source,
        "local_job_processes": plan.local_job_processes() if plan else 0,
        "asked_slurm": report.asked_slurm,
        "squeue": report.squeue,
        "node_names": list(report.node_names),
        "job_uids": list(report.job_uids),
        "slurm_seconds": report.slurm_seconds,
        "reasons": plan.count_by_reason() if plan else {},
        "judged": [_without_gpu_devices(describer.fields(d, plan)) for d in plan.judged()] if plan else [],
        "targets": targets,
    }
    if every_process:
        document["processes"] = [_gpu_devices_for_targets(describer.fields(d, plan), d) for d in plan.decisions] if plan else []
    return json.dumps(document, indent=2, sort_keys=False)


def _gpu_devices_for_targets(fields: dict, decision: Decision) -> dict:
    is_target = decision.rule is not None and decision.rule.verdict is Verdict.TARGET
    return fields if is_target else _without_gpu_devices(fields)


def _without_gpu_devices(fields: dict) -> dict:
    """Only targets are looked at for GPU devices: an empty list elsewhere
    would claim what was never read."""
    fields.pop("gpu_devices")
    return fields

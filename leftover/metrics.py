"""Each run's figures for node_exporter's textfile collector, so a site can
watch a fleet of nodes, including the ones whose runs keep failing closed.

render() is pure: a finished RunReport in, Prometheus text out. write() puts
the text in place atomically (a temporary file in the same directory, then
rename), so the collector never reads half a file.
"""

import os
import re
import tempfile
from pathlib import Path

from leftover.act import Result

_LAST_SUCCESS = re.compile(r"^leftover_last_success_timestamp_seconds (\d+(?:\.\d+)?)$", re.M)


def previous_success(path: Path) -> float | None:
    """The last success recorded in an earlier run's file, if any."""
    try:
        match = _LAST_SUCCESS.search(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return float(match.group(1)) if match else None


def render(report, finished_at: float, last_success: float | None) -> str:
    """The run as Prometheus text. report is a leftover.report.RunReport."""
    plan = report.plan
    results = {result.value: 0 for result in Result}
    for outcome in report.outcomes:
        results[outcome.result.value] += 1
    bailed = report.bailed_out_label or ""
    lines = [
        ("leftover_run_timestamp_seconds", "gauge", "When the last run finished.", [("", finished_at)]),
        ("leftover_last_success_timestamp_seconds", "gauge", "When a run last completed without bailing out.",
         [("", last_success)] if last_success is not None else []),
        ("leftover_run_duration_seconds", "gauge", "How long the last run took, splay included.", [("", report.duration)]),
        ("leftover_run_bailed_out", "gauge", "1 if the last run bailed out and signalled nothing, by reason.",
         [(f'{{reason="{bailed}"}}', 1)] if bailed else [('{reason=""}', 0)]),
        ("leftover_processes_scanned", "gauge", "Processes read from /proc in the last run.", [("", report.scanned)]),
        ("leftover_local_job_processes", "gauge", "Processes the node showed to be inside a job.",
         [("", plan.local_job_processes() if plan else 0)]),
        ("leftover_controller_asked", "gauge", "1 if the last run asked squeue.", [("", int(report.asked_slurm))]),
        ("leftover_squeue_seconds", "gauge", "How long squeue took in the last run.",
         [("", report.slurm_seconds)] if report.slurm_seconds is not None else []),
        ("leftover_targets", "gauge", "Processes the last run's plan targeted.", [("", len(plan.targets) if plan else 0)]),
        ("leftover_gpu_holding_targets", "gauge", "Targets of the last run that had a GPU device open.",
         [("", sum(1 for d in plan.targets if d.process.gpu_devices) if plan else 0)]),
        ("leftover_signalled_processes", "gauge", "Targets of the last run by what became of them.",
         [(f'{{result="{name}"}}', count) for name, count in results.items()]),
    ]
    text = []
    for name, kind, meaning, samples in lines:
        text.append(f"# HELP {name} {meaning}")
        text.append(f"# TYPE {name} {kind}")
        text.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)
    return "\n".join(text) + "\n"


def write(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6f}"

"""Asking Slurm which users have a job on this node.

This is the only module that runs Slurm's commands. Each runs through
leftover.programs (a path only root controls, its own process group, output
through pipes, a deadline, SIGKILL to the group and a bounded wait after it),
with a scrubbed environment and no stdin; any failure (missing or untrusted
binary, non-zero exit, killed by a signal, timeout, output it cannot read)
raises SlurmError with one line saying why. It never answers "no jobs" for a
failure.
"""

import os
import shutil
import socket
import time
from pathlib import Path
from typing import NamedTuple

from leftover.programs import ProgramError, Unanswered, run
from leftover.squeue import SlurmOutputError, node_list, node_name, parse_job_uid_table, parse_node_names

# Where a site installs Slurm itself comes before the distribution's client:
# a node with both runs the one its own slurmd came with, not Debian's
# (cron's PATH is /usr/bin:/bin).
SITE_PREFIXES = (Path("/opt/slurm/bin"), Path("/usr/local/bin"))
DISTRIBUTION_PREFIXES = (Path("/usr/bin"),)
_KEPT_ENVIRONMENT = ("SLURM_CONF", "PATH", "HOME", "TZ")


class SlurmError(Exception):
    """Slurm did not give an answer leftover can trust."""


class JobQuery(NamedTuple):
    job_uids: frozenset[int]
    node_names: tuple[str, ...]
    seconds: float


def squeue_candidates(configured: Path | None) -> list[Path]:
    """Every squeue leftover would consider, the one it uses first: the
    configured one alone; else the site's prefixes, PATH, then the
    distribution's, each file once."""
    if configured is not None:
        if not os.access(configured, os.X_OK):
            raise SlurmError(f"configured squeue {configured} is not an executable file")
        return [configured]
    on_path = shutil.which("squeue")
    found, seen = [], set()
    for candidate in [p / "squeue" for p in SITE_PREFIXES] + ([Path(on_path)] if on_path else []) + [
        p / "squeue" for p in DISTRIBUTION_PREFIXES
    ]:
        if os.access(candidate, os.X_OK) and os.path.realpath(candidate) not in seen:
            seen.add(os.path.realpath(candidate))
            found.append(candidate)
    if not found:
        places = ", ".join(map(str, SITE_PREFIXES + DISTRIBUTION_PREFIXES))
        raise SlurmError(f"squeue not found in {places} or on PATH; set 'squeue' in the config")
    return found


def node_names(squeue: Path, timeout: float) -> tuple[str, ...]:
    """The Slurm node names this host serves, from `scontrol show aliases` (read
    from slurm.conf, no controller involved) beside squeue; the short host name
    when scontrol is missing or names no node (it prints nothing for a host
    that slurm.conf does not list), if that is a valid node name. Never empty."""
    scontrol = squeue.parent / "scontrol"
    try:
        if os.access(scontrol, os.X_OK):
            names = parse_node_names(_run([str(scontrol), "show", "aliases"], timeout))
            if names:
                return names
        return (node_name(socket.gethostname().split(".")[0], "no node name from scontrol, and the host name is"),)
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None


def query_jobs(squeue: Path, names: tuple[str, ...], timeout: float) -> JobQuery:
    """UIDs with a job in any of Slurm's default states (pending, running,
    suspended, completing, ...) on the given nodes, in every partition. The
    header line is asked for too: output without it was cut off."""
    started = time.monotonic()
    output = _run([str(squeue), "--all", "--format=%U", "--nodelist=" + _node_list(names)], timeout)
    try:
        uids = parse_job_uid_table(output)
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None
    return JobQuery(uids, names, time.monotonic() - started)


def _node_list(names: tuple[str, ...]) -> str:
    try:
        return node_list(names)
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None


def _run(argv: list[str], timeout: float) -> str:
    """Run a Slurm command; its standard output as text, or SlurmError."""
    command = Path(argv[0]).name
    environment = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
    environment["LC_ALL"] = "C"
    try:
        done = run(argv, environment, time.monotonic() + timeout)
    except Unanswered as error:
        raise SlurmError(f"{command} did not answer within {timeout:g}s{error.left_behind}") from None
    except ProgramError as error:
        raise SlurmError(str(error)) from None
    if done.returncode < 0:
        raise SlurmError(f"{command} was killed by signal {-done.returncode}")
    if done.returncode != 0:
        raise SlurmError(f"{command} exited {done.returncode}: {_last_line(done.stderr)}")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise SlurmError(f"{command} printed bytes that are not UTF-8") from None


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return " ".join(lines[-1].split())[:200] if lines else "no error message"

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
from dataclasses import dataclass
from pathlib import Path

from leftover.programs import ProgramError, Unanswered, run
from leftover.squeue import SlurmOutputError, node_list, parse_job_uid_table, parse_node_names

# Where a site installs Slurm itself comes before the distribution's client:
# a node with both runs the one its own slurmd came with, not Debian's
# (cron's PATH is /usr/bin:/bin).
SITE_PREFIXES = (Path("/opt/slurm/bin"), Path("/usr/local/bin"))
DISTRIBUTION_PREFIXES = (Path("/usr/bin"),)
_KEPT_ENVIRONMENT = ("SLURM_CONF", "PATH", "HOME", "TZ")


class SlurmError(Exception):
    """Slurm did not give an answer leftover can trust."""


@dataclass(frozen=True)
class JobQuery:
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
    """The Slurm node names this host serves, as `scontrol show aliases` beside
    squeue prints them (read from slurm.conf, no controller involved). Never
    empty: no scontrol there, or one that names no node, is a SlurmError.

    Only a name scontrol printed is ever asked about; the host name is never a
    stand-in. squeue answers a --nodelist name for the first node whose
    NodeName or NodeHostname it is (_map_node_name, src/squeue/opts.c, Slurm
    22.05 to 26.05), so the host name of a host serving two NodeNames gets the
    first one's jobs alone, with exit 0; and scontrol printing nothing does not
    mean the host serves no node (NodeHostnames written as FQDNs). A NodeName
    is answered for itself: slurmctld refuses to start when a node before it
    has that name as its NodeHostname (_check_callback, src/common/node_conf.c,
    "Duplicated NodeHostName")."""
    scontrol = squeue.parent / "scontrol"
    if not os.access(scontrol, os.X_OK):
        raise SlurmError(f"no scontrol beside {squeue}: this host's node names cannot be learned")
    try:
        names = parse_node_names(_run([str(scontrol), "show", "aliases"], timeout))
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None
    if not names:
        host = socket.gethostname().split(".")[0]
        raise SlurmError(f"scontrol show aliases names no node of this host ({host[:40]!r}); "
                         "squeue is not asked about the host name in their place")
    return names


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

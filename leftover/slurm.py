"""Asking Slurm which users have a job on this node.

This is the only module that looks for and runs Slurm's commands. Both go
through leftover.programs: the looking in a child with a deadline, never in
leftover's own process (a file system that stops answering must not hold the
run), and each command from a path only root controls, in its own process
group, its output through pipes, a deadline, SIGKILL to the group and a
bounded wait after it, with a scrubbed environment and no stdin. Any failure
(missing or untrusted binary, non-zero exit, killed by a signal, timeout,
output it cannot read) raises SlurmError with one line saying why. It never
answers "no jobs" for a failure.
"""

import os
import socket
import time
from pathlib import Path
from typing import NamedTuple

from leftover.programs import ProgramError, Unanswered, executables, run
from leftover.squeue import SlurmOutputError, node_list, parse_job_uid_table, parse_node_names

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


class Commands(NamedTuple):
    squeues: tuple[Path, ...]  # every squeue found, the one used first
    scontrol: Path | None  # beside the first squeue, if there is one


def find_commands(configured: Path | None, deadline: float) -> Commands:
    """Every squeue leftover would consider, the one it uses first: the
    configured one alone; else the site's prefixes, PATH, then the
    distribution's, each file once; and the scontrol beside it. The looking
    is done in a child (leftover.programs.executables), by deadline."""
    if configured is not None:
        site, on_path, distribution = [str(configured)], [], []
    else:
        site = [str(p / "squeue") for p in SITE_PREFIXES]
        search_path = os.environ.get("PATH", os.defpath)
        on_path = [os.path.join(d, "squeue") for d in search_path.split(os.pathsep)] if search_path else []
        distribution = [str(p / "squeue") for p in DISTRIBUTION_PREFIXES]
    squeues = site + on_path + distribution
    scontrols = [os.path.join(os.path.dirname(p), "scontrol") for p in squeues]
    try:
        found = executables(list(dict.fromkeys(squeues + scontrols)), deadline)
    except Unanswered as error:
        raise SlurmError(
            f"looking for squeue did not finish in time (a file system on the way to it did not answer){error.left_behind}"
        ) from None
    except ProgramError as error:
        raise SlurmError(f"cannot look for squeue: {error}") from None
    if configured is not None and str(configured) not in found:
        raise SlurmError(f"configured squeue {configured} is not an executable file")
    first_on_path = [p for p in on_path if p in found][:1]  # as the shell would find it
    chosen, seen = [], set()
    for candidate in site + first_on_path + distribution:
        if candidate in found and found[candidate] not in seen:
            seen.add(found[candidate])
            chosen.append(Path(candidate))
    if not chosen:
        places = ", ".join(map(str, SITE_PREFIXES + DISTRIBUTION_PREFIXES))
        raise SlurmError(f"squeue not found in {places} or on PATH; set 'squeue' in the config")
    scontrol = chosen[0].parent / "scontrol"
    return Commands(tuple(chosen), scontrol if str(scontrol) in found else None)


def node_names(scontrol: Path | None, timeout: float, deadline: float, configured: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The Slurm node names this host serves, as `scontrol show aliases` beside
    squeue prints them (read from slurm.conf, no controller involved), which
    may take until deadline. Never empty: no scontrol there, or one that names
    no node, is a SlurmError, unless the config names the host's nodes
    (configured, node_names): those are then asked about. Where scontrol names
    nodes, configured names must be exactly those, or the config and
    slurm.conf disagree: a SlurmError too.

    Only a name scontrol printed is ever asked about; the host name is never a
    stand-in. squeue answers a --nodelist name for the first node whose
    NodeName or NodeHostname it is (_map_node_name, src/squeue/opts.c, Slurm
    22.05 to 26.05), so the host name of a host serving two NodeNames gets the
    first one's jobs alone, with exit 0; and scontrol printing nothing does not
    mean the host serves no node (NodeHostnames written as FQDNs). A NodeName
    is answered for itself: slurmctld refuses to start when a node before it
    has that name as its NodeHostname (_check_callback, src/common/node_conf.c,
    "Duplicated NodeHostName")."""
    if scontrol is None:
        if configured:
            return configured
        raise SlurmError("no scontrol beside squeue: this host's node names cannot be learned; set node_names in the config")
    try:
        names = parse_node_names(_run([str(scontrol), "show", "aliases"], timeout, deadline))
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None
    if not names:
        if configured:
            return configured
        host = socket.gethostname().split(".")[0]
        raise SlurmError(f"scontrol show aliases names no node of this host ({host[:40]!r}); "
                         "squeue is not asked about the host name in their place; set node_names in the config")
    if configured and set(configured) != set(names):
        raise SlurmError(f"node_names in the config ({','.join(configured)[:80]}) are not the node names scontrol "
                         f"show aliases prints for this host ({','.join(names)[:80]})")
    return names


def query_jobs(squeue: Path, names: tuple[str, ...], timeout: float) -> JobQuery:
    """UIDs with a job in any of Slurm's default states (pending, running,
    suspended, completing, ...) on the given nodes, in every partition. The
    header line is asked for too: output without it was cut off."""
    started = time.monotonic()
    output = _run([str(squeue), "--all", "--format=%U", "--nodelist=" + _node_list(names)], timeout, started + timeout)
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


def _run(argv: list[str], timeout: float, deadline: float) -> str:
    """Run a Slurm command, whose limit is timeout, until deadline; its
    standard output as text, or SlurmError."""
    command = Path(argv[0]).name
    environment = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
    environment["LC_ALL"] = "C"
    try:
        done = run(argv, environment, deadline)
    except Unanswered as error:
        raise SlurmError(f"{command} {error.within(timeout)}") from None
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

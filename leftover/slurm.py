"""Asking Slurm which users have a job on this node.

This is the only module that runs Slurm's commands. Each runs with a timeout,
a scrubbed environment and no stdin; any failure (missing binary, non-zero
exit, killed by a signal, timeout, output it cannot read) raises SlurmError
with one line saying why. It never answers "no jobs" for a failure.
"""

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from leftover.squeue import SlurmOutputError, parse_job_uids, parse_node_names

SLURM_PREFIXES = (Path("/usr/bin"), Path("/usr/local/bin"), Path("/opt/slurm/bin"))
_KEPT_ENVIRONMENT = ("SLURM_CONF", "PATH", "HOME", "TZ")
MAX_OUTPUT = 1 << 20  # one UID line per job on one node: far below this


class SlurmError(Exception):
    """Slurm did not give an answer leftover can trust."""


@dataclass(frozen=True)
class JobQuery:
    job_uids: frozenset[int]
    node_names: tuple[str, ...]
    seconds: float


def find_squeue(configured: Path | None) -> Path:
    """The configured squeue, else squeue on PATH, else in the usual prefixes
    (cron's PATH is minimal)."""
    if configured is not None:
        if not os.access(configured, os.X_OK):
            raise SlurmError(f"configured squeue {configured} is not an executable file")
        return configured
    on_path = shutil.which("squeue")
    if on_path:
        return Path(on_path)
    for prefix in SLURM_PREFIXES:
        if os.access(prefix / "squeue", os.X_OK):
            return prefix / "squeue"
    raise SlurmError("squeue not found on PATH or in " + ", ".join(map(str, SLURM_PREFIXES)) + "; set 'squeue' in the config")


def node_names(squeue: Path, timeout: float) -> tuple[str, ...]:
    """The Slurm node names this host serves, from `scontrol show aliases` (read
    from slurm.conf, no controller involved) beside squeue; the short host name
    when scontrol is missing or names no node."""
    scontrol = squeue.parent / "scontrol"
    if os.access(scontrol, os.X_OK):
        output = _run([str(scontrol), "show", "aliases"], timeout)
        try:
            names = parse_node_names(output)
        except SlurmOutputError as error:
            raise SlurmError(str(error)) from None
        if names:
            return names
    return (socket.gethostname().split(".")[0],)


def query_jobs(squeue: Path, names: tuple[str, ...], timeout: float) -> JobQuery:
    """UIDs with a job in any of Slurm's default states (pending, running,
    suspended, completing, ...) on the given nodes, in every partition."""
    started = time.monotonic()
    output = _run(
        [str(squeue), "--noheader", "--all", "--format=%U", "--nodelist=" + ",".join(names)],
        timeout,
    )
    try:
        uids = parse_job_uids(output)
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None
    return JobQuery(uids, names, time.monotonic() - started)


def _run(argv: list[str], timeout: float) -> str:
    command = Path(argv[0]).name
    environment = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
    environment["LC_ALL"] = "C"
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=environment, check=False
        )
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{command} did not answer within {timeout:g}s") from None
    except OSError as error:
        raise SlurmError(f"cannot run {argv[0]}: {error.strerror}") from None
    if done.returncode < 0:
        raise SlurmError(f"{command} was killed by signal {-done.returncode}")
    if done.returncode != 0:
        raise SlurmError(f"{command} exited {done.returncode}: {_last_line(done.stderr)}")
    if len(done.stdout) > MAX_OUTPUT:
        raise SlurmError(f"{command} printed {len(done.stdout)} bytes, more than the {MAX_OUTPUT} a node's job list can take")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise SlurmError(f"{command} printed bytes that are not UTF-8") from None


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return " ".join(lines[-1].split())[:200] if lines else "no error message"

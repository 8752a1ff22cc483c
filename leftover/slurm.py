"""Asking Slurm which users have a job on this node.

This is the only module that runs Slurm's commands. Each runs with a timeout,
a scrubbed environment and no stdin; any failure (missing binary, non-zero
exit, killed by a signal, timeout, output it cannot read) raises SlurmError
with one line saying why. It never answers "no jobs" for a failure.
"""

import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from leftover.squeue import SlurmOutputError, node_list, node_name, parse_job_uids, parse_node_names

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
    suspended, completing, ...) on the given nodes, in every partition."""
    started = time.monotonic()
    output = _run(
        [str(squeue), "--noheader", "--all", "--format=%U", "--nodelist=" + _node_list(names)],
        timeout,
    )
    try:
        uids = parse_job_uids(output)
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None
    return JobQuery(uids, names, time.monotonic() - started)


def _node_list(names: tuple[str, ...]) -> str:
    try:
        return node_list(names)
    except SlurmOutputError as error:
        raise SlurmError(str(error)) from None


def _run(argv: list[str], timeout: float) -> str:
    """Run a Slurm command; its standard output as text, or SlurmError.

    Output goes to unlinked temporary files under an RLIMIT_FSIZE of
    MAX_OUTPUT, so a command that prints without end is stopped by the kernel
    (SIGXFSZ) at that size instead of filling leftover's memory."""
    command = Path(argv[0]).name
    _trust(argv[0])
    environment = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
    environment["LC_ALL"] = "C"
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                done = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout,
                    env=environment, check=False, preexec_fn=_limit_output,
                )
            except subprocess.TimeoutExpired:
                raise SlurmError(f"{command} did not answer within {timeout:g}s") from None
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(MAX_OUTPUT + 1), err.read(MAX_OUTPUT)
    except OSError as error:
        raise SlurmError(f"cannot run {argv[0]}: {error.strerror}") from None
    if done.returncode == -signal.SIGXFSZ or len(stdout) >= MAX_OUTPUT:
        raise SlurmError(f"{command} printed {MAX_OUTPUT} bytes or more, more than a node's job list can take")
    if done.returncode < 0:
        raise SlurmError(f"{command} was killed by signal {-done.returncode}")
    if done.returncode != 0:
        raise SlurmError(f"{command} exited {done.returncode}: {_last_line(stderr)}")
    try:
        return stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise SlurmError(f"{command} printed bytes that are not UTF-8") from None


def _trust(program: str) -> None:
    """leftover runs Slurm's commands as root: refuse one that someone other
    than root (or the user running leftover) could have replaced."""
    try:
        info = os.stat(program)
    except OSError as error:
        raise SlurmError(f"cannot run {program}: {error.strerror}") from None
    if info.st_uid not in (0, os.geteuid()) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SlurmError(f"{program} is owned by uid {info.st_uid} or writable by group or others; not running it as root")


def _limit_output() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT, MAX_OUTPUT))


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return " ".join(lines[-1].split())[:200] if lines else "no error message"

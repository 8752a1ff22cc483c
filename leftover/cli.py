"""The command line and one run of leftover, start to finish.

This is the I/O shell around the pure core: it reads the config, passwd and
/proc, asks Slurm, hands everything to decide(), and lets the Actor signal
what the plan targets. Every way a run can go wrong ends in _Bail, which
makes it kill nothing, log one line saying why, and exit non-zero.
"""

import argparse
import os
import pwd
import random
import sys
import time
from pathlib import Path

from leftover import config, lock
from leftover.act import Actor
from leftover.config import ConfigError, Settings
from leftover.decide import Facts, SlurmAnswer, decide
from leftover.log import Log
from leftover.passwd import parse_passwd
from leftover.protect import protected_uids, user_names
from leftover.report import Describer, RunReport, dry_run_listing, json_document, summary
from leftover.scan import ProcError, boottime_ticks, clock_ticks_per_second, scan_statuses, with_start_times
from leftover.slurm import SlurmError, find_squeue, node_names, query_jobs
from leftover.version import version

EXIT_OK, EXIT_BAILED, EXIT_CONFIG = 0, 1, 2


class _Bail(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="leftover",
        description="Kill processes of users who hold no Slurm job on this node.",
        epilog="Exit status: 0 run completed, 1 bailed out at run time, 2 usage or config error. "
        "Whenever it is not 0, nothing was signalled.",
    )
    parser.add_argument("--config", type=Path, help=f"config file (default {config.DEFAULT_PATH})")
    parser.add_argument("--dry-run", action="store_true", help="do everything but send signals; print the plan")
    parser.add_argument("--json", action="store_true", help="print the plan or the result as one JSON document")
    parser.add_argument("--no-splay", action="store_true", help="skip the random delay before asking Slurm")
    parser.add_argument("--proc", type=Path, default=Path("/proc"), help="proc tree to read (default /proc)")
    parser.add_argument("--passwd", type=Path, default=Path("/etc/passwd"), help="passwd file (default /etc/passwd)")
    parser.add_argument("--lock-file", type=Path, default=lock.DEFAULT_LOCK, help=f"lock file (default {lock.DEFAULT_LOCK})")
    parser.add_argument("--verbose", action="store_true", help="also log to stderr")
    parser.add_argument("--version", action="version", version=f"leftover {version()}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    log = Log(to_stderr=arguments.verbose or sys.stderr.isatty())
    report = RunReport(version=version(), dry_run=arguments.dry_run)
    describer = Describer(lambda uid: "?", clock_ticks_per_second())
    try:
        describer = _run(arguments, log, report)
    except _Bail as bail:
        report.exit_code = bail.code
        report.bailed_out = bail.why
        log.error(summary(report))
    else:
        log.info(summary(report))
    if arguments.json:
        print(json_document(report, describer))
    elif arguments.dry_run and report.exit_code == EXIT_OK:
        print(dry_run_listing(report, describer))
    return report.exit_code


def _run(arguments: argparse.Namespace, log: Log, report: RunReport) -> Describer:
    settings = _settings(arguments, log)
    if not arguments.dry_run:
        try:
            lock.take_lock(arguments.lock_file)
        except lock.LockHeld as held:
            raise _Bail(EXIT_BAILED, str(held)) from None

    try:
        passwd_text = arguments.passwd.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise _Bail(EXIT_BAILED, f"cannot read {arguments.passwd}: {error.strerror}") from None
    entries = parse_passwd(passwd_text)
    try:
        protected = protected_uids(settings.protected_users, entries, _uid_of_name)
    except ConfigError as error:
        raise _Bail(EXIT_CONFIG, str(error)) from None
    describer = Describer(user_names(entries, _name_of_uid), clock_ticks_per_second())
    facts = Facts(min_uid=settings.min_uid, protected_uids=protected)

    scan = _scan(arguments.proc, report)
    report.plan = decide(scan.processes, facts)
    if not report.plan.undecided:
        return describer

    if not arguments.no_splay:
        delay = random.uniform(settings.slew, settings.slew_max)
        log.debug(f"{len(report.plan.undecided)} candidate process(es); waiting {delay:.1f}s (splay) before asking Slurm")
        time.sleep(delay)

    try:
        squeue = find_squeue(settings.squeue)
        names = node_names(squeue, settings.squeue_timeout)
        asked_at = boottime_ticks()
        jobs = query_jobs(squeue, names, settings.squeue_timeout)
    except SlurmError as error:
        raise _Bail(EXIT_BAILED, f"Slurm gave no usable answer: {error}") from None
    report.asked_slurm = True
    report.node_names, report.job_uids = jobs.node_names, tuple(sorted(jobs.job_uids))
    report.slurm_seconds = jobs.seconds

    scan = _scan(arguments.proc, report)
    candidates = frozenset(p.pid for p in decide(scan.processes, facts).undecided)
    try:
        scan = with_start_times(arguments.proc, scan, candidates)
    except ProcError as error:
        raise _Bail(EXIT_BAILED, str(error)) from None
    _note_skipped(scan, report, log)
    report.plan = decide(scan.processes, Facts(settings.min_uid, protected, SlurmAnswer(jobs.job_uids, asked_at)))

    if arguments.dry_run or not report.plan.targets:
        return describer
    plan = report.plan
    actor = Actor(
        report=lambda level, text: getattr(log, level)(text),
        describe=lambda decision: describer.line(decision, plan),
    )
    report.outcomes = actor.carry_out(plan.targets, settings.grace_seconds)
    return describer


def _settings(arguments: argparse.Namespace, log: Log) -> Settings:
    path = arguments.config or config.DEFAULT_PATH
    try:
        settings = config.load_settings(path, explicit=arguments.config is not None, trusted_owners=frozenset({0, os.geteuid()}))
    except ConfigError as error:
        raise _Bail(EXIT_CONFIG, str(error)) from None
    log.set_level(settings.debuglevel)
    if settings.source != str(path):
        log.info(f"no config file at {path}; using built-in defaults")
    return settings


def _scan(proc_root: Path, report: RunReport):
    try:
        scan = scan_statuses(proc_root)
    except ProcError as error:
        raise _Bail(EXIT_BAILED, str(error)) from None
    report.scanned = len(scan.processes)
    return scan


def _note_skipped(scan, report: RunReport, log: Log) -> None:
    for skipped in scan.skipped:
        log.warning(f"pid {skipped.pid} left alone: {skipped.why}")
        report.skipped.append({"pid": skipped.pid, "why": skipped.why})


def _uid_of_name(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _name_of_uid(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None

"""The command line and one run of leftover, start to finish.

This is the I/O shell around the pure core: it reads the config, passwd and
/proc, asks Slurm only when the node cannot answer itself, hands everything
to decide(), and lets the Actor signal what the plan targets. Every way a run
can go wrong ends in _Bail, which makes it kill nothing, log one line saying
why, and exit non-zero.
"""

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from leftover import config, lock, metrics
from leftover.act import NOT_CARRIED_OUT, OWN_PROC, Actor, KillPhaseStopped, pid_list
from leftover.config import ConfigError, Settings
from leftover.decide import USERNS_UNREADABLE, Facts, JobAnswer, Plan
from leftover.group import GroupEntry, parse_group
from leftover.interrupt import Interrupted, arm_time_bound, stop_signals_raise
from leftover.log import Log, printable
from leftover.names import UserDatabase, UserDatabaseError
from leftover.passwd import parse_passwd
from leftover.protect import GroupMembers, UnknownMember, protected_group_members, protected_uids, user_names
from leftover.report import Describer, RunReport, dry_run_listing, json_document, summary
from leftover.scan import ProcError, Scan, boottime_ticks, clock_ticks_per_second, foreign_pid_namespace
from leftover.slurm import SlurmError, find_commands, node_names, query_jobs
from leftover.survey import Survey, look, look_again, with_gpu_devices
from leftover.tell import KILL_WAIT_SECONDS as NOTIFY_KILL_WAIT_SECONDS
from leftover.tell import run_notify_command, terminal_message, user_terminals, write_to_terminal
from leftover.userns import UsernsError, require_initial_namespace
from leftover.version import version
from leftover.watchdog import HARD_MARGIN_SECONDS, Watchdog

EXIT_OK, EXIT_BAILED, EXIT_CONFIG, EXIT_STOPPED = 0, 1, 2, 3
# Ending two stuck Slurm commands (1 s each), the user look-ups (2 s, and 1 s
# to end a stuck one), the kill phase's wait after SIGKILL (2 s), and 3 s for
# start-up, the /proc scans and logging.
FIXED_MARGIN_SECONDS = 10.0
# Of those 3 s, what the process spends outside main(): the interpreter's start
# before it, and exit after it. The run's own clock stops this much short.
OUTSIDE_MAIN_SECONDS = 1.0


def worst_case_seconds(settings: Settings) -> float:
    """The longest one run can take (README, "How long a run can take"): the
    splay, looking for the commands with scontrol and then squeue each up to
    squeue_timeout, the grace, and the fixed margins above, and the notify
    command's notify_timeout (and the wait after killing it) where one is set.
    A run still going then is stopped like one sent SIGTERM: a last guard
    against a wait nobody foresaw."""
    notify = settings.notify_timeout + NOTIFY_KILL_WAIT_SECONDS if settings.notify_command else 0.0
    return settings.slew_max + 2 * settings.squeue_timeout + settings.grace_seconds + notify + FIXED_MARGIN_SECONDS


class _Bail(Exception):
    def __init__(self, code: int, label: str, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.label = label
        self.why = why


class _KillPhaseIncomplete(Exception):
    """The kill phase ended, but some targets could not be checked or signalled."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="leftover",
        description="Kill processes of users who hold no Slurm job on this node.",
        epilog="Exit status: 0 run completed, 1 bailed out at run time, 2 usage or config error "
        "(after 1 and 2, nothing was signalled; 1 also when no target could be checked or signalled), 3 stopped "
        "by a signal or an unexpected error during the kill phase, or some targets signalled and others could "
        "not be checked or signalled (the log says which).",
    )
    parser.add_argument("--config", type=Path, help=f"config file (default {config.DEFAULT_PATH})")
    parser.add_argument("--dry-run", action="store_true", help="do everything but send signals; print the plan")
    parser.add_argument("--json", action="store_true", help="print the plan or the result as one JSON document")
    parser.add_argument("--all", action="store_true",
                        help="with --json, list every process under 'processes' with the rule that decided it")
    parser.add_argument("--no-splay", action="store_true", help="skip the random delay before asking Slurm")
    parser.add_argument("--proc", type=Path, default=Path("/proc"), help="proc tree to read (default /proc)")
    parser.add_argument("--passwd", type=Path, default=Path("/etc/passwd"), help="passwd file (default /etc/passwd)")
    parser.add_argument("--group", type=Path, default=Path("/etc/group"), help="group file (default /etc/group)")
    parser.add_argument("--lock-file", type=Path, default=lock.DEFAULT_LOCK, help=f"lock file (default {lock.DEFAULT_LOCK})")
    parser.add_argument("--verbose", action="store_true", help="also log to stderr")
    parser.add_argument("--version", action=_PrintVersion, nargs=0, help="print the version and exit")
    arguments = parser.parse_args(argv)
    if arguments.all and not arguments.json:
        parser.error("--all needs --json")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    started = time.monotonic()
    log = Log(to_stderr=arguments.verbose or (sys.stderr is not None and sys.stderr.isatty()))
    report = RunReport(dry_run=arguments.dry_run)
    run = _Run(arguments, log, report)
    try:
        _run_and_report(run, arguments, log, report, started)
    finally:
        if run.watchdog is not None:
            run.watchdog.stop()
    return report.exit_code


def _run_and_report(run: "_Run", arguments: argparse.Namespace, log: Log, report: RunReport, started: float) -> None:
    try:
        with stop_signals_raise():
            run.run()
    except _Bail as bail:
        report.exit_code, report.bailed_out, report.bailed_out_label = bail.code, bail.why, bail.label
    except KillPhaseStopped as stop:
        report.outcomes = stop.outcomes
        _stopped(report, stop.why, "stopped", stop.signalled)
    except _KillPhaseIncomplete as incomplete:
        _stopped(report, str(incomplete), "unchecked", _signalled(report))
    except Interrupted as stop:
        _stopped(report, f"stopped by {stop.name}", "stopped", _signalled(report))
    except Exception as error:  # noqa: BLE001 - any surprise must still end in one line and an exit code
        _stopped(report, f"internal error ({type(error).__name__}: {error})", "internal", _signalled(report))
    report.duration = time.monotonic() - started
    if report.bailed_out or report.stopped:
        log.record("error", summary(report))
    elif report.outcomes:  # a kill phase took place
        log.record("info", summary(report))
    else:
        log.info(summary(report))
    run.write_metrics()
    run.notify()
    run.release_lock()
    try:
        if arguments.json:
            print(json_document(report, run.describer, every_process=arguments.all))
        elif arguments.dry_run and report.exit_code == EXIT_OK:
            print(dry_run_listing(report, run.describer))
    except (OSError, UnicodeEncodeError) as error:
        log.warning(f"cannot print the report: {error}")


def _stopped(report: RunReport, why: str, label: str, signalled: bool) -> None:
    """A run cut short: exit 3 if anything was signalled, else a plain bail-out."""
    if signalled:
        report.exit_code, report.stopped = EXIT_STOPPED, why
    else:
        report.exit_code, report.bailed_out, report.bailed_out_label = EXIT_BAILED, why, label


def _signalled(report: RunReport) -> bool:
    return any(o.signalled for o in report.outcomes)


class _PrintVersion(argparse.Action):
    """--version, looked up only when asked for."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"leftover {version()}")
        parser.exit()


class _Run:
    """One run's steps, in order. Each step either fills in the report or bails."""

    def __init__(self, arguments: argparse.Namespace, log: Log, report: RunReport) -> None:
        self.arguments = arguments
        self.proc = arguments.proc
        self.log = log
        self.report = report
        self.started = time.monotonic()
        self.watchdog: Watchdog | None = None
        self.kill_phase_began = False
        self.settings: Settings | None = None
        self.lock_fd: int | None = None
        self.scan = Scan((), ())
        self.group_members = GroupMembers()
        self.primary_gids: dict[int, int | None] = {}
        self.survey: Survey | None = None
        self.describer = Describer(lambda uid: "?", clock_ticks_per_second())
        self.user_database = UserDatabase()
        self.listed_uids: frozenset[int] = frozenset()
        self.looked_up_names: dict[int, str] = {}

    def run(self) -> None:
        settings = self.settings = self._settings()
        remaining = max(0.01, worst_case_seconds(settings) - OUTSIDE_MAIN_SECONDS - (time.monotonic() - self.started))
        arm_time_bound(remaining)
        self.watchdog = Watchdog(remaining + HARD_MARGIN_SECONDS, lambda: EXIT_STOPPED if self.kill_phase_began else EXIT_BAILED)
        self.watchdog.start()
        self.report.job_source = settings.job_source
        self._check_pid_namespace()
        try:
            require_initial_namespace()
        except UsernsError as error:
            raise _Bail(EXIT_BAILED, "userns", f"leftover cannot judge containers' processes: {error}") from None
        if not self.arguments.dry_run:
            try:
                self.lock_fd = lock.take_lock(self.arguments.lock_file)
            except lock.LockHeld as held:
                raise _Bail(EXIT_BAILED, "lock", str(held)) from None
        facts = self._facts(settings)

        if settings.job_source == "local":
            facts, plan = self._judged(facts._replace(answer=JobAnswer(frozenset(), boottime_ticks())))
        else:
            facts, plan = self._judged(facts)
            if plan.undecided:
                plan = self._plan_with_squeue(facts, settings)
        plan = with_gpu_devices(self.proc, plan)
        self.report.plan = plan
        self._note_skipped()
        self._look_up_names(plan)
        self._note_unreadable_namespaces(plan)

        if self.arguments.dry_run or not plan.targets:
            return
        self.kill_phase_began = True
        if settings.tell_terminals:
            self._tell_terminals(plan, settings.grace_seconds)
        actor = Actor(
            report=self.log.record,  # the kill phase's every line is the record: never filtered out
            describe=lambda decision: self.describer.line(decision, plan),
        )
        self.report.outcomes = actor.carry_out(plan.targets, settings.grace_seconds)
        left = [o for o in self.report.outcomes if o.result in NOT_CARRIED_OUT]
        if left:
            raise _KillPhaseIncomplete(
                f"{len(left)} of {len(plan.targets)} target(s) could not be checked or signalled and were left alone "
                f"(pids {pid_list(sorted(o.decision.process.pid for o in left))}; {left[0].result.value}: {left[0].detail})"
            )

    def _settings(self) -> Settings:
        path = self.arguments.config or config.DEFAULT_PATH
        try:
            settings = config.load_settings(
                path, explicit=self.arguments.config is not None, trusted_owners=frozenset({0, os.geteuid()})
            )
        except ConfigError as error:
            raise _Bail(EXIT_CONFIG, "config", str(error)) from None
        for note in settings.notes:  # before the level applies: a site that chose "err" still learns of them
            self.log.info(note)
        self.log.set_level(settings.debuglevel)
        if settings.source != str(path):
            self.log.info(f"no config file at {path}; using built-in defaults")
        return settings

    def _check_pid_namespace(self) -> None:
        """Pids are read in a /proc and signalled in this process's PID
        namespace: refuse to run unless the /proc signalled through (every real
        run), and a dry run's /proc, are that namespace's own."""
        if self.arguments.dry_run and self.proc != OWN_PROC:
            return
        problem = foreign_pid_namespace(OWN_PROC)
        if problem:
            raise _Bail(EXIT_BAILED, "proc", f"{problem}; its pids would name other processes")

    def _facts(self, settings: Settings) -> Facts:
        try:
            passwd_text = self.arguments.passwd.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as error:
            raise _Bail(EXIT_BAILED, "passwd", f"cannot read {self.arguments.passwd}: {error.strerror}") from None
        entries = parse_passwd(passwd_text)
        listed = {entry.name for entry in entries}
        unlisted = [user for user in settings.protected_users if isinstance(user, str) and user not in listed]
        try:
            found = self.user_database.uids_of(unlisted)
        except UserDatabaseError as error:
            raise _Bail(EXIT_BAILED, "names", f"cannot resolve protected users {', '.join(unlisted)}: {error}") from None
        try:
            protected = protected_uids(settings.protected_users, entries, found.get)
            if settings.protected_groups:
                self.group_members = self._group_members(settings, entries)
        except ConfigError as error:
            raise _Bail(EXIT_CONFIG, "config", str(error)) from None
        except UnknownMember as error:
            raise _Bail(EXIT_BAILED, "group", str(error)) from None
        self.listed_uids = frozenset(entry.uid for entry in entries)
        self.describer = Describer(user_names(entries, self._looked_up_name), clock_ticks_per_second())
        return Facts(
            min_uid=settings.min_uid, protected_uids=protected, system_uid_ranges=settings.system_uid_ranges,
            protected_group_uids=self.group_members.uids,
        )

    def _group_members(self, settings: Settings, entries: list) -> GroupMembers:
        """protected_groups resolved: the group file first, then one bounded
        look-up in the group database for the groups it lacks, and one in the
        user database for the members passwd lacks. Unanswered, nobody can
        say who is protected: the run bails out."""
        try:
            text = self.arguments.group.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as error:
            raise _Bail(EXIT_BAILED, "group", f"cannot read {self.arguments.group}: {error.strerror}") from None
        groups = parse_group(text)
        names, gids = {g.name for g in groups}, {g.gid for g in groups}
        missing = [w for w in settings.protected_groups if w not in (gids if isinstance(w, int) else names)]
        try:
            fetched = self.user_database.groups(missing)
        except UserDatabaseError as error:
            raise _Bail(EXIT_BAILED, "names", f"cannot resolve protected groups {_listed(missing)}: {error}") from None
        by_key: dict[str | int, GroupEntry] = {}
        for group in fetched:
            by_key.setdefault(group.name, group)
            by_key.setdefault(group.gid, group)
        wanted = [g for g in groups if g.name in settings.protected_groups or g.gid in settings.protected_groups]
        listed = {entry.name for entry in entries}
        unlisted = sorted({m for g in wanted + fetched for m in g.members} - listed)
        try:
            found = self.user_database.uids_of(unlisted)
        except UserDatabaseError as error:
            raise _Bail(EXIT_BAILED, "names", f"cannot resolve members of protected groups: {error}") from None
        return protected_group_members(settings.protected_groups, groups, entries, by_key.get, found.get)

    def _judged(self, facts: Facts, first: Survey | None = None) -> tuple[Facts, Plan]:
        """A plan (the first look, or with first the look after Slurm's answer)
        in which every process still in question (undecided or targeted) was
        checked for a user outside the passwd file whose primary group, as the
        user database says, is protected. Only those users are looked up, in
        one bounded look-up per look, so a node with nothing in question costs
        none; unanswered, the run bails out rather than guess."""
        while True:
            plan = self._plan(facts, first)
            if not self.group_members.gids:
                return facts, plan
            in_question = {uid for p in plan.undecided for uid in p.identities} | {
                uid for d in plan.targets for uid in d.process.identities
            }
            unknown = in_question - self.listed_uids - self.primary_gids.keys()
            try:
                found = self.user_database.primary_gids_of(unknown)
            except UserDatabaseError as error:
                raise _Bail(EXIT_BAILED, "names", f"cannot tell whether uids {_listed(sorted(unknown))} belong to a "
                            f"protected group: {error}") from None
            self.primary_gids.update({uid: found.get(uid) for uid in unknown})
            members = {uid for uid in in_question if self.primary_gids.get(uid) in self.group_members.gids}
            if members <= facts.protected_group_uids:
                return facts, plan
            facts = facts._replace(protected_group_uids=facts.protected_group_uids | members)

    def _look_up_names(self, plan: Plan) -> None:
        """Names for the users that will be shown (owners and user-namespace
        owners of targets; of every judged process for --json, of every process
        for --json --all) and that passwd does not list, in one look-up now:
        none can stall the kill phase. Unanswered, the uid is shown instead."""
        if self.arguments.json:
            decisions = plan.decisions if self.arguments.all else plan.judged()
        else:
            decisions = plan.targets
        shown = [decision.process for decision in decisions]
        owners = {process.userns_owner for process in shown if process.userns_owner is not None}
        uids = sorted(({process.uid for process in shown} | owners) - self.listed_uids)
        try:
            self.looked_up_names.update(self.user_database.names_of(uids))
        except UserDatabaseError as error:
            self.log.warning(f"user names of uids {','.join(map(str, uids))} not known: {error}; showing the uids instead")

    def _looked_up_name(self, uid: int) -> str | None:
        if uid in self.looked_up_names:
            return self.looked_up_names[uid]
        return str(uid) if self.user_database.failed else None

    def _plan(self, facts: Facts, first: Survey | None = None) -> Plan:
        """The first look at /proc, or with first, the look after Slurm's answer."""
        try:
            looked = look(self.proc, facts) if first is None else look_again(self.proc, first, facts)
        except ProcError as error:
            raise _Bail(EXIT_BAILED, "proc", str(error)) from None
        self.survey = looked
        self.scan = looked.scan
        self.report.scanned = len(looked.scan.processes)
        return looked.plan

    def _plan_with_squeue(self, facts: Facts, settings: Settings) -> Plan:
        """Some process is outside every job the node shows: ask squeue, then
        look again, so that a process started after the question waits."""
        if not self.arguments.no_splay:
            import random  # here, not at the top: runs with --no-splay (systemd's timer) need not pay for it

            delay = random.uniform(settings.slew, settings.slew_max)
            self.log.debug(f"a process outside any local job; waiting {delay:.1f}s (splay) before asking Slurm")
            time.sleep(delay)
        try:
            first_limit = time.monotonic() + settings.squeue_timeout  # looking for the commands, then scontrol
            commands = find_commands(settings.squeue, first_limit)
            squeue = commands.squeues[0]
            if len(commands.squeues) > 1:
                others = ", ".join(map(str, commands.squeues[1:]))
                self.log.info(f"using {squeue} (also found {others}; set 'squeue' in the config to choose)")
            self.report.squeue = str(squeue)
            names = node_names(commands.scontrol, settings.squeue_timeout, first_limit, settings.node_names)
            asked_at = boottime_ticks()
            jobs = query_jobs(squeue, names, settings.squeue_timeout)
        except SlurmError as error:
            raise _Bail(EXIT_BAILED, "slurm", f"Slurm gave no usable answer: {error}") from None
        self.report.asked_slurm = True
        self.report.node_names, self.report.job_uids = jobs.node_names, tuple(sorted(jobs.job_uids))
        self.report.slurm_seconds = jobs.seconds
        first = self.survey
        return self._judged(facts._replace(answer=JobAnswer(jobs.job_uids, asked_at)), first)[1]

    def _note_skipped(self) -> None:
        for skipped in self.scan.skipped:
            self.log.warning(f"pid {skipped.pid} left alone: {skipped.why}")
            self.report.skipped.append({"pid": skipped.pid, "why": skipped.why})

    def _tell_terminals(self, plan: Plan, grace_seconds: float) -> None:
        """One line on each terminal of each target's user (a container's
        process: its namespace's owner), before SIGTERM."""
        host = socket.gethostname().split(".")[0]
        by_uid: dict[int, list] = {}
        for decision in plan.targets:
            owner = decision.process.userns_owner
            by_uid.setdefault(decision.process.uid if owner is None else owner, []).append(decision)
        for uid, decisions in by_uid.items():
            rule = decisions[0].rule
            text = terminal_message(
                host, [(d.process.pid, printable(d.process.name, 32)) for d in decisions], f"{rule.name}, {rule.meaning}",
                grace_seconds,
            )
            user = printable(self.describer.user_name(uid), 32)
            for terminal in user_terminals(uid):
                problem = write_to_terminal(terminal, uid, text)
                if problem:
                    self.log.warning(f"could not tell user={user} uid={uid} on {terminal}: {problem}; going on")
                else:
                    self.log.info(f"told user={user} uid={uid} on {terminal} that {len(decisions)} process(es) end")

    def notify(self) -> None:
        """The site's notify command, once, after a real run that targeted
        anything. Whatever it does, the run's outcome and exit code stand."""
        settings, plan = self.settings, self.report.plan
        if self.arguments.dry_run or settings is None or settings.notify_command is None or not (plan and plan.targets):
            return
        try:
            with stop_signals_raise():
                problem = run_notify_command(
                    settings.notify_command, json_document(self.report, self.describer), settings.notify_timeout
                )
        except Interrupted as stop:
            problem = f"stopped by {stop.name} while {settings.notify_command} ran; its process group was killed"
        if problem:
            self.log.warning(f"notify command: {problem}; the run's outcome stands")
        else:
            self.log.debug(f"notify command {settings.notify_command} told of {len(plan.targets)} target(s)")
    def _note_unreadable_namespaces(self, plan: Plan) -> None:
        for decision in plan.decisions:
            if decision.rule is not None and decision.rule.name == USERNS_UNREADABLE:
                self.log.warning(
                    f"{self.describer.line(decision, plan)}: left alone, its user namespace cannot be read "
                    f"({decision.process.userns_error})"
                )

    def release_lock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def write_metrics(self) -> None:
        """Real runs only: a dry run (of the example node, say) must not
        overwrite a node's figures."""
        if self.arguments.dry_run or self.settings is None or self.settings.metrics_file is None:
            return
        path = self.settings.metrics_file
        now = time.time()
        last_success = now if self.report.exit_code == EXIT_OK else metrics.previous_success(path)
        try:
            metrics.write(path, metrics.render(self.report, now, last_success))
        except metrics.MetricsError as error:
            self.log.warning(f"metrics file {path} not written: {error}")


def _listed(items) -> str:
    return ", ".join(map(str, items))

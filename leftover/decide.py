"""The decision core: which processes on this node die, and why.

Rules this module keeps:
- It is pure: processes and facts in, a Plan out. No I/O, no clock, no
  randomness; the same input always gives the same plan.
- Every process is judged by RULES, an ordered table: the first rule that
  applies decides, and its name is the reason carried into the plan, the log
  and --dry-run. A new reason is a new row, never an `if` elsewhere.
- Every row but the last spares. The last row, the only one that targets,
  is reached only when the answer to "who has a job here" is known.
- A row that needs that answer is not evaluated without one: the process is
  left undecided, which is how the caller learns whether to ask Slurm.
- What the node itself shows about jobs (a job cgroup, the user a v1 job
  cgroup names, a slurmstepd ancestor) is derived here from the processes,
  and spares before Slurm is asked.
- A process counts as every one of its identities (Process.identities: its
  UIDs and the owner of its user namespace): a row that asks about a user
  asks about all of them, so a container's process is spared whenever its
  owner would be.
- A verdict, once made, stands when more is read: every verdict made without
  the job answer spares, and more evidence only ever spares more. So a later
  decide() is handed the earlier plan and judges only what it left undecided.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import NamedTuple

from leftover.process import Process

SLURMSTEPD = "slurmstepd"
USERNS_UNREADABLE = "userns-unreadable"


class Verdict(Enum):
    SPARE = "spare"
    TARGET = "target"


class JobAnswer(NamedTuple):
    """Who has a job on this node beyond what the node shows, and when that was
    asked (CLOCK_BOOTTIME in clock ticks, read just before asking). Under
    job_source local the controller is never asked and job_uids is empty."""

    job_uids: frozenset[int]
    asked_at_ticks: int


class LocalJobs(NamedTuple):
    """What the node itself shows: processes inside a job, and their UIDs;
    and the processes whose line of ancestors reaches one that could not be
    read, so that whether they run under slurmstepd is unknown."""

    pids: frozenset[int] = frozenset()
    uids: frozenset[int] = frozenset()
    ancestry_unknown: frozenset[int] = frozenset()


# System accounts above any min_uid, inclusive (low, high) UID ranges. From
# systemd.io's "Users, Groups, UIDs and GIDs on systemd Systems" (UIDS-GIDS):
# systemd-homed's and DynamicUser='s ranges, nobody (65534) and the unusable
# 16-bit (uid_t)-1 (65535). Beside them (uid_t)-2, the 32-bit nobody that
# some NFS setups map unknown users to.
SYSTEM_UID_RANGES: tuple[tuple[int, int], ...] = (
    (60001, 60513),
    (61184, 65519),
    (65534, 65535),
    (4294967294, 4294967294),
)


class Facts(NamedTuple):
    """Everything but the processes that a decision depends on. local is
    filled in by decide() from the processes; callers leave it empty.
    system_uid_ranges are inclusive (low, high) UID ranges of system accounts
    above min_uid. unreadable_pids are processes that were there but whose
    files could not be read, so they are missing from the processes."""

    min_uid: int
    protected_uids: frozenset[int]
    answer: JobAnswer | None = None
    local: LocalJobs = LocalJobs()
    system_uid_ranges: tuple[tuple[int, int], ...] = SYSTEM_UID_RANGES
    protected_group_uids: frozenset[int] = frozenset()
    unreadable_pids: frozenset[int] = frozenset()


class Rule(NamedTuple):
    name: str
    verdict: Verdict
    needs_answer: bool
    applies: Callable[[Process, Facts], bool]
    meaning: str


def _system_account(process: Process, facts: Facts) -> bool:
    identities = process.identities
    if min(identities) < facts.min_uid:
        return True
    for low, high in facts.system_uid_ranges:
        for uid in identities:
            if low <= uid <= high:
                return True
    return False


RULES: tuple[Rule, ...] = (
    Rule("kernel-thread", Verdict.SPARE, False,
         lambda p, f: p.kernel_thread,
         "kernel threads are never signalled"),
    Rule("zombie", Verdict.SPARE, False,
         lambda p, f: p.exited,
         "already dead (no live thread left); only its parent can reap it"),
    Rule("system-account", Verdict.SPARE, False,
         _system_account,
         "a UID, or its user namespace's owner, below min_uid or in system_uid_ranges"),
    Rule("protected-user", Verdict.SPARE, False,
         lambda p, f: not f.protected_uids.isdisjoint(p.identities),
         "a UID, or its user namespace's owner, listed in protected_users"),
    Rule("protected-group", Verdict.SPARE, False,
         lambda p, f: not f.protected_group_uids.isdisjoint(p.identities),
         "a UID, or its user namespace's owner, that is a member of a group listed in protected_groups"),
    Rule("in-job-cgroup", Verdict.SPARE, False,
         lambda p, f: p.job_cgroup is not None,
         "inside a Slurm job's cgroup"),
    Rule("under-slurmstepd", Verdict.SPARE, False,
         lambda p, f: p.pid in f.local.pids,
         "a descendant of a root-owned slurmstepd"),
    Rule("ancestor-unreadable", Verdict.SPARE, False,
         lambda p, f: p.pid in f.local.ancestry_unknown,
         "a parent or further ancestor could not be read, so whether it runs under slurmstepd is unknown; next run decides"),
    Rule("uid-has-local-job", Verdict.SPARE, False,
         lambda p, f: not f.local.uids.isdisjoint(p.identities),
         "a UID, or its user namespace's owner, with a job process on this node (or one that may be: its ancestry "
         "cannot be read) or named by a cgroup v1 job cgroup here"),
    Rule(USERNS_UNREADABLE, Verdict.SPARE, False,
         lambda p, f: p.userns_error is not None,
         "in a user namespace whose owner could not be read; left alone, with a warning"),
    Rule("job-on-node", Verdict.SPARE, True,
         lambda p, f: not f.answer.job_uids.isdisjoint(p.identities),
         "a UID, or its user namespace's owner, with a Slurm job on this node, says squeue"),
    Rule("start-time-unknown", Verdict.SPARE, True,
         lambda p, f: p.start_ticks is None,
         "start time could not be read"),
    Rule("started-after-slurm-answer", Verdict.SPARE, True,
         lambda p, f: p.start_ticks >= f.answer.asked_at_ticks,
         "may belong to a job that started while Slurm was asked; next run decides"),
    Rule("no-job-on-node", Verdict.TARGET, True,
         lambda p, f: True,
         "neither a UID of the process nor its user namespace's owner has a Slurm job on this node"),
)


class Decision(NamedTuple):
    process: Process
    rule: Rule | None  # None: undecided until the job answer is known


class Plan(NamedTuple):
    """The verdict on every process: rules[i] decided processes[i] (None:
    undecided). Two parallel tuples rather than one Decision per process keep
    a node of 50,000 processes small; Decisions are made for the few asked for."""

    processes: tuple[Process, ...]
    rules: tuple[Rule | None, ...]
    facts: Facts

    @property
    def decisions(self) -> Iterator[Decision]:
        return map(Decision, self.processes, self.rules)

    @property
    def targets(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.rule is not None and d.rule.verdict is Verdict.TARGET)

    @property
    def undecided(self) -> tuple[Process, ...]:
        return tuple(p for p, rule in zip(self.processes, self.rules, strict=True) if rule is None)

    def count_by_reason(self) -> dict[str, int]:
        counts = Counter(rule.name if rule else "undecided" for rule in self.rules)
        return {name: counts[name] for name in [r.name for r in RULES] + ["undecided"] if counts[name]}

    def judged(self) -> tuple[Decision, ...]:
        """Decisions about processes of regular, unprotected users: the ones an
        administrator asks about when a process was, or was not, killed."""
        return tuple(d for d in self.decisions if d.rule is None or d.rule.name not in _STATUS_RULES)

    def local_job_processes(self) -> int:
        """Processes spared because the node itself shows they are in a job."""
        return sum(1 for rule in self.rules if rule is not None and rule.name in _LOCAL_JOB_RULES)


_LOCAL_JOB_RULES = frozenset({"in-job-cgroup", "under-slurmstepd"})
_STATUS_RULES = frozenset({"kernel-thread", "zombie", "system-account", "protected-user", "protected-group"})


# The rows judged without the job answer: those before the first row that needs it.
_BEFORE_ANSWER = RULES[: next(i for i, rule in enumerate(RULES) if rule.needs_answer)]


def judge(process: Process, facts: Facts) -> Rule | None:
    """The first rule that applies to process, or None if that needs the job answer."""
    for rule in RULES if facts.answer is not None else _BEFORE_ANSWER:
        if rule.applies(process, facts):
            return rule
    if facts.answer is None:
        return None
    raise AssertionError("the last rule applies to every process")


def local_jobs(processes: Iterable[Process], unreadable_pids: frozenset[int] = frozenset()) -> LocalJobs:
    """Processes the node shows to be in a job (a job cgroup, or a root-owned
    slurmstepd among their ancestors), every UID they count as, and every UID
    their job cgroup's path names (cgroup v1's uid_<N>: the job's user, also
    where the only process in the job is root's). Kernel threads are never in
    a job, and are not walked. A line of ancestors that reaches one of
    unreadable_pids before a slurmstepd ends in the unknown, and the UIDs of
    such a process count as a local job's too."""
    by_pid = {p.pid: p for p in processes}
    ancestry: dict[int, bool | None] = {}  # True: under slurmstepd; None: unknown

    def walk(pid: int) -> bool | None:
        """Walk up the parents until an answer is known, then remember it for
        the whole chain: linear in the number of processes overall."""
        chain: dict[int, None] = {}  # ordered, and a parent cycle is seen in O(1)
        found: bool | None = False
        current = by_pid.get(pid)
        while current is not None and current.pid not in chain:
            if current.pid in ancestry:
                found = ancestry[current.pid]
                break
            chain[current.pid] = None
            parent = by_pid.get(current.ppid)
            if parent is not None and parent.name == SLURMSTEPD and parent.uid == 0:
                found = True
                break
            if parent is None and current.ppid in unreadable_pids:
                found = None
                break
            current = parent
        for member in chain:
            ancestry[member] = found
        return ancestry.get(pid, found)

    walked = {p.pid: walk(p.pid) for p in by_pid.values() if not p.kernel_thread and p.job_cgroup is None}
    pids = {p.pid for p in by_pid.values() if not p.kernel_thread and (p.job_cgroup is not None or walked[p.pid])}
    unknown = frozenset(pid for pid, found in walked.items() if found is None)
    # A process that may run under slurmstepd counts for its user as one that
    # does: its user may have a job here.
    uids = {uid for pid in pids | unknown for uid in by_pid[pid].identities}
    uids.update(p.job_cgroup_uid for p in by_pid.values() if p.job_cgroup_uid is not None and not p.kernel_thread)
    return LocalJobs(frozenset(pids), frozenset(uids), unknown)


def decide(processes: Iterable[Process], facts: Facts, settled: Plan | None = None) -> Plan:
    """Judge every process. Without a job answer in facts, nothing is targeted
    and the processes that need the answer come back undecided. With settled,
    an earlier plan of the same look, a process it decided keeps that verdict
    and only the others are judged; processes must then not reuse a pid that
    settled holds for another process."""
    processes = tuple(processes)
    facts = facts._replace(local=local_jobs(processes, facts.unreadable_pids))
    if settled is None:
        return Plan(processes, tuple(judge(p, facts) for p in processes), facts)
    earlier = {p.pid: rule for p, rule in zip(settled.processes, settled.rules, strict=True) if rule is not None}
    return Plan(processes, tuple(earlier.get(p.pid) or judge(p, facts) for p in processes), facts)

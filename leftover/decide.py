"""The decision core: which processes on this node die, and why.

Rules this module keeps:
- It is pure: processes and facts in, a Plan out. No I/O, no clock, no
  randomness; the same input always gives the same plan.
- Every process is judged by RULES, an ordered table: the first rule that
  applies decides, and its name is the reason carried into the plan, the log
  and --dry-run. A new reason is a new row, never an `if` elsewhere.
- Every row but the last spares. The last row, the only one that targets,
  is reached only when the Slurm answer is known.
- A row that needs the Slurm answer is not evaluated without one: the process
  is left undecided, which is how the caller learns whether Slurm must be asked.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from leftover.process import Process


class Verdict(Enum):
    SPARE = "spare"
    TARGET = "target"


@dataclass(frozen=True)
class SlurmAnswer:
    """What Slurm said: UIDs with a job on this node, and when it was asked
    (CLOCK_BOOTTIME in clock ticks, read just before squeue ran)."""

    job_uids: frozenset[int]
    asked_at_ticks: int


@dataclass(frozen=True)
class Facts:
    """Everything but the processes that a decision depends on."""

    min_uid: int
    protected_uids: frozenset[int]
    slurm: SlurmAnswer | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    verdict: Verdict
    needs_slurm: bool
    applies: Callable[[Process, Facts], bool]
    meaning: str


RULES: tuple[Rule, ...] = (
    Rule("kernel-thread", Verdict.SPARE, False,
         lambda p, f: p.kernel_thread,
         "kernel threads are never signalled"),
    Rule("zombie", Verdict.SPARE, False,
         lambda p, f: p.state in ("Z", "X"),
         "already dead; only its parent can reap it"),
    Rule("system-account", Verdict.SPARE, False,
         lambda p, f: any(uid < f.min_uid for uid in p.uids),
         "a UID below min_uid"),
    Rule("protected-user", Verdict.SPARE, False,
         lambda p, f: any(uid in f.protected_uids for uid in p.uids),
         "a UID listed in protected_users"),
    Rule("job-on-node", Verdict.SPARE, True,
         lambda p, f: any(uid in f.slurm.job_uids for uid in p.uids),
         "a UID with a Slurm job on this node"),
    Rule("start-time-unknown", Verdict.SPARE, True,
         lambda p, f: p.start_ticks is None,
         "start time could not be read"),
    Rule("started-after-slurm-answer", Verdict.SPARE, True,
         lambda p, f: p.start_ticks >= f.slurm.asked_at_ticks,
         "may belong to a job that started while Slurm was asked; next run decides"),
    Rule("no-job-on-node", Verdict.TARGET, True,
         lambda p, f: True,
         "no UID of the process has a Slurm job on this node"),
)


@dataclass(frozen=True)
class Decision:
    process: Process
    rule: Rule | None  # None: undecided until Slurm answers


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    facts: Facts

    @property
    def targets(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.rule is not None and d.rule.verdict is Verdict.TARGET)

    @property
    def undecided(self) -> tuple[Process, ...]:
        return tuple(d.process for d in self.decisions if d.rule is None)

    def count_by_reason(self) -> dict[str, int]:
        counts = Counter(d.rule.name if d.rule else "undecided" for d in self.decisions)
        return {rule.name: counts[rule.name] for rule in RULES if counts[rule.name]} | (
            {"undecided": counts["undecided"]} if counts["undecided"] else {}
        )


def judge(process: Process, facts: Facts) -> Rule | None:
    """The first rule that applies to process, or None if that needs Slurm's answer."""
    for rule in RULES:
        if rule.needs_slurm and facts.slurm is None:
            return None
        if rule.applies(process, facts):
            return rule
    raise AssertionError("the last rule applies to every process")


def decide(processes: Iterable[Process], facts: Facts) -> Plan:
    """Judge every process. Without a Slurm answer in facts, nothing is targeted
    and the processes that need the answer come back undecided."""
    return Plan(tuple(Decision(p, judge(p, facts)) for p in processes), facts)

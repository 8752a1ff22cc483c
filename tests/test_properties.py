"""Property tests: every parser meets arbitrary input and either parses or
raises its own declared error; the decision core keeps its invariants for any
processes and facts hypothesis can think of."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leftover.cgroup import CgroupFormatError, job_cgroup, parse_cgroup
from leftover.config import ConfigError, parse_settings
from leftover.decide import Facts, JobAnswer, Verdict, decide
from leftover.passwd import parse_passwd
from leftover.process import Process, ProcFormatError, parse_nspid, parse_stat, parse_status
from leftover.squeue import SlurmOutputError, parse_job_uid_table, parse_job_uids, parse_node_names
from tests.conftest import fixture_bytes

REAL_STATUS = fixture_bytes(1202, "status")
REAL_STAT = fixture_bytes(1202, "stat")
EXAMPLES = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])


def mutations(real: bytes):
    """Real kernel output with a slice replaced by arbitrary bytes."""
    return st.tuples(st.integers(0, len(real)), st.integers(0, 40), st.binary(max_size=60)).map(
        lambda m: real[: m[0]] + m[2] + real[m[0] + m[1] :]
    )


@EXAMPLES
@given(st.integers(1, 2**22), st.one_of(st.binary(max_size=400), mutations(REAL_STATUS)))
def test_status_parses_or_raises_its_own_error(pid, raw):
    try:
        process = parse_status(pid, raw)
    except ProcFormatError:
        return
    assert len(process.uids) == 4 and all(0 <= uid < 2**32 for uid in process.uids)
    assert process.state.isalpha() and len(process.state) == 1


@EXAMPLES
@given(st.one_of(st.binary(max_size=400), mutations(REAL_STATUS)))
def test_nspid_parses_or_raises_its_own_error(raw):
    try:
        pids = parse_nspid(raw)
    except ProcFormatError:
        return
    assert pids is None or (pids and all(0 <= pid < 2**32 for pid in pids))


@EXAMPLES
@given(st.one_of(st.binary(max_size=400), mutations(REAL_STAT)))
def test_stat_parses_or_raises_its_own_error(raw):
    try:
        stat = parse_stat(raw)
    except ProcFormatError:
        return
    assert stat.start_ticks >= 0 and stat.state.isalpha()


@EXAMPLES
@given(st.text(max_size=400))
def test_passwd_never_raises(text):
    for entry in parse_passwd(text):
        assert entry.name and ":" not in entry.name and 0 <= entry.uid < 2**32 - 1


@EXAMPLES
@given(st.text(max_size=200))
def test_squeue_output_parses_or_raises_its_own_error(text):
    try:
        uids = parse_job_uids(text)
    except SlurmOutputError:
        return
    assert all(0 <= uid < 2**32 - 1 for uid in uids)
    assert len(uids) <= text.count("\n")


@EXAMPLES
@given(st.text(max_size=200), st.integers(0, 200))
def test_squeue_table_cut_anywhere_is_never_no_job(text, cut):
    """squeue's answer with its header, cut off at any point short of a whole
    line: never read as "no job"."""
    answer = "UID\n" + text
    try:
        uids = parse_job_uid_table(answer[:cut])
    except SlurmOutputError:
        return
    assert uids or answer[:cut] == "UID\n"


@EXAMPLES
@given(st.text(max_size=200))
def test_node_names_parse_or_raise_their_own_error(text):
    try:
        parse_node_names(text)
    except SlurmOutputError:
        pass


@EXAMPLES
@given(st.one_of(st.binary(max_size=300), st.builds(lambda d: __import__("json").dumps(d).encode(), st.dictionaries(
    st.sampled_from(["protected_users", "debuglevel", "slew", "slew_max", "grace_seconds", "min_uid", "squeue",
                     "squeue_timeout", "job_source", "metrics_file", "other"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 2**33), st.floats(allow_nan=True), st.text(max_size=10),
              st.lists(st.one_of(st.integers(-2, 2**33), st.text(max_size=8)), max_size=3)),
    max_size=5))))
def test_config_parses_or_raises_its_own_error(raw):
    try:
        settings_ = parse_settings(raw, Path("/etc/leftover.conf"))
    except ConfigError:
        return
    assert settings_.min_uid >= 1 and 0 <= settings_.slew <= settings_.slew_max


@EXAMPLES
@given(st.binary(max_size=300))
def test_cgroup_parses_or_raises_its_own_error(raw):
    try:
        job_cgroup(parse_cgroup(raw))
    except CgroupFormatError:
        pass


UID_POOL = st.sampled_from([0, 1, 999, 1000, 2001, 2002, 2003, 3001, 3002, 64030, 101000, 4294967294])
ASKED_AT = 10_000


@st.composite
def processes(draw):
    pids = draw(st.lists(st.integers(1, 400), min_size=1, max_size=40, unique=True))
    made = []
    for pid in pids:
        uid = draw(UID_POOL)
        uids = draw(st.one_of(st.just((uid,) * 4), st.tuples(UID_POOL, UID_POOL, UID_POOL, UID_POOL)))
        made.append(Process(
            pid=pid,
            name=draw(st.sampled_from(["sleep", "slurmstepd", "python3", "x\n"])),
            state=draw(st.sampled_from("SRDZXIT")),
            ppid=draw(st.sampled_from(pids + [0, 1, 2])),
            uids=uids,
            kernel_thread=draw(st.booleans()),
            start_ticks=draw(st.one_of(st.none(), st.integers(0, 2 * ASKED_AT))),
            job_cgroup=draw(st.one_of(st.none(), st.just("/slurm/uid_1/job_1/step_0"))),
            job_cgroup_uid=draw(st.one_of(st.none(), UID_POOL)),
            userns_owner=draw(st.one_of(st.none(), UID_POOL)),
            userns_error=draw(st.one_of(st.none(), st.just("NS_GET_PARENT failed: Permission denied"))),
            threads=draw(st.one_of(st.none(), st.integers(1, 3))),
        ))
    return made


FACTS = st.builds(
    lambda min_uid, protected, jobs, group_members: Facts(
        min_uid, frozenset(protected), JobAnswer(frozenset(jobs), ASKED_AT), protected_group_uids=frozenset(group_members)
    ),
    st.sampled_from([1, 1000, 2500]),
    st.sets(UID_POOL, max_size=3),
    st.sets(UID_POOL, max_size=3),
    st.sets(UID_POOL, max_size=2),
)


@EXAMPLES
@given(processes(), FACTS)
def test_no_target_is_ever_protected_in_any_way(procs, facts):
    plan = decide(procs, facts)
    local = plan.facts.local
    for decision in plan.targets:
        p = decision.process
        assert not p.kernel_thread and not (p.state in ("Z", "X") and (p.threads or 1) <= 1)
        identities = set(p.uids) | ({p.userns_owner} - {None})
        assert min(identities) >= facts.min_uid
        assert not identities & (facts.protected_uids | facts.protected_group_uids | facts.answer.job_uids | local.uids)
        assert p.job_cgroup is None and p.pid not in local.pids
        assert not set(p.uids) & {q.job_cgroup_uid for q in procs if not q.kernel_thread}
        assert not any(low <= uid <= high for low, high in facts.system_uid_ranges for uid in p.uids)
        assert p.userns_error is None
        assert p.start_ticks is not None and p.start_ticks < ASKED_AT
        assert decision.rule.verdict is Verdict.TARGET


@EXAMPLES
@given(processes(), FACTS, UID_POOL)
def test_a_namespace_owner_never_adds_a_target(procs, facts, owner):
    """Knowing who owns a process's namespace only ever adds an identity."""
    before = {d.process.pid for d in decide(procs, facts).targets}
    owned = [p._replace(userns_owner=owner) if p.userns_owner is None else p for p in procs]
    assert {d.process.pid for d in decide(owned, facts).targets} <= before


@EXAMPLES
@given(processes(), FACTS)
def test_without_an_answer_nothing_is_targeted(procs, facts):
    assert decide(procs, facts._replace(answer=None)).targets == ()


@EXAMPLES
@given(processes(), FACTS, UID_POOL)
def test_adding_a_job_or_a_protected_user_never_adds_a_target(procs, facts, uid):
    before = {d.process.pid for d in decide(procs, facts).targets}
    with_job = facts._replace(answer=facts.answer._replace(job_uids=facts.answer.job_uids | {uid}))
    with_protection = facts._replace(protected_uids=facts.protected_uids | {uid})
    with_member = facts._replace(protected_group_uids=facts.protected_group_uids | {uid})
    assert {d.process.pid for d in decide(procs, with_job).targets} <= before
    assert {d.process.pid for d in decide(procs, with_protection).targets} <= before
    assert {d.process.pid for d in decide(procs, with_member).targets} <= before
    with_system_range = facts._replace(system_uid_ranges=facts.system_uid_ranges + ((uid, uid),))
    assert {d.process.pid for d in decide(procs, with_system_range).targets} <= before


@EXAMPLES
@given(processes(), FACTS)
def test_the_same_input_always_gives_the_same_plan(procs, facts):
    assert decide(procs, facts) == decide(list(procs), facts)

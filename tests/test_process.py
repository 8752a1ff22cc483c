import pytest

from leftover.process import ProcFormatError, parse_stat, parse_status
from tests.conftest import fixture_bytes


def test_regular_process_from_real_kernel():
    process = parse_status(1202, fixture_bytes(1202, "status"))
    assert (process.name, process.state, process.ppid, process.uids) == ("python3", "S", 1, (2002, 2002, 2002, 2002))
    assert not process.kernel_thread
    assert process.start_ticks is None


@pytest.mark.parametrize("pid", [2, 7])
def test_kernel_threads_are_recognised(pid):
    assert parse_status(pid, fixture_bytes(pid, "status")).kernel_thread


def test_kernel_thread_without_kthread_field_falls_back_to_kthreadd_parentage():
    raw = fixture_bytes(7, "status").replace(b"Kthread:\t1\n", b"")
    assert b"Kthread" not in raw
    assert parse_status(7, raw).kernel_thread
    user = fixture_bytes(1202, "status").replace(b"Kthread:\t0\n", b"")
    assert not parse_status(1202, user).kernel_thread


def test_zombie_state():
    zombie = parse_status(1208, fixture_bytes(1208, "status"))
    assert zombie.state == "Z" and zombie.threads == 1 and zombie.exited
    assert parse_stat(fixture_bytes(1208, "stat")).state == "Z"


def test_a_zombie_leader_whose_other_threads_run_is_not_exited():
    leader = parse_status(1208, fixture_bytes(1208, "status").replace(b"Threads:\t1\n", b"Threads:\t3\n"))
    assert leader.state == "Z" and leader.threads == 3 and not leader.exited


def test_threads_are_read_only_for_a_zombie():
    running = parse_status(1202, fixture_bytes(1202, "status"))
    assert running.threads is None and not running.exited


def test_all_four_uids_kept_when_real_and_effective_differ():
    assert parse_status(1204, fixture_bytes(1204, "status")).uids == (2003, 2001, 2001, 2001)


def test_hostile_name_keeps_its_bytes_for_the_log_to_escape():
    name = parse_status(1203, fixture_bytes(1203, "status")).name
    assert name == "x\n\x1b[31mroot\\"


def test_undecodable_name_bytes_survive_as_surrogates():
    raw = fixture_bytes(1202, "status").replace(b"Name:\tpython3", b"Name:\tpy\xff")
    assert parse_status(1202, raw).name == "py\udcff"


def test_stat_fields_from_real_kernel():
    stat = parse_stat(fixture_bytes(1204, "stat"))
    assert (stat.state, stat.ppid, stat.start_ticks) == ("S", 1, 1300)


def test_stat_name_with_parentheses_and_spaces():
    raw = fixture_bytes(1202, "stat").replace(b"(python3)", b"(a) S 9 (b )")
    assert parse_stat(raw).start_ticks == 1100


def test_kernel_thread_flag_in_stat():
    assert parse_stat(fixture_bytes(7, "stat")).flags & 0x00200000


def test_first_occurrence_of_a_field_is_taken():
    raw = fixture_bytes(1202, "status") + b"Uid:\t0\t0\t0\t0\n"
    assert parse_status(1202, raw).uids == (2002, 2002, 2002, 2002)


def test_truncated_status_is_an_error():
    with pytest.raises(ProcFormatError, match="missing"):
        parse_status(1302, fixture_bytes(1302, "status"))


def test_garbled_stat_is_an_error():
    with pytest.raises(ProcFormatError):
        parse_stat(fixture_bytes(1303, "stat"))


@pytest.mark.parametrize(
    "replace_from, replace_to",
    [
        (b"Uid:\t2002\t2002\t2002\t2002", b"Uid:\t2002\t2002\t2002"),
        (b"Uid:\t2002\t2002\t2002\t2002", b"Uid:\t2002\t-1\t2002\t2002"),
        (b"Uid:\t2002\t2002\t2002\t2002", b"Uid:\t2002\t99999999999\t2002\t2002"),
        (b"PPid:\t1", b"PPid:\tone"),
        (b"State:\tS (sleeping)", b"State:\t? (what)"),
        (b"Kthread:\t0", b"Kthread:\tmaybe"),
        (b"PPid:\t1", b"PPid:\t"),
    ],
)
def test_malformed_status_fields_are_errors(replace_from, replace_to):
    raw = fixture_bytes(1202, "status")
    assert replace_from in raw
    with pytest.raises(ProcFormatError):
        parse_status(1202, raw.replace(replace_from, replace_to))


@pytest.mark.parametrize("raw", [b"", b"1 (x", b"1 x) S 1", b"1 (x) S 1 2 3", b"\x00" * 50])
def test_malformed_stat_is_an_error(raw):
    with pytest.raises(ProcFormatError):
        parse_stat(raw)

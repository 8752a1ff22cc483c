import pytest

from leftover.squeue import SlurmOutputError, node_list, parse_job_uids, parse_node_names


def test_one_uid_per_job_line():
    assert parse_job_uids("2001\n2002\n2001\n") == {2001, 2002}


def test_no_output_means_no_job():
    assert parse_job_uids("") == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "alice\n",
        "2001\n\n",
        "\n",
        "2001",
        "2001\nslurm_load_jobs error: Unable to contact slurm controller\n",
        "-1\n",  # (uid_t)-1: no user has it
        "4294967295\n",
        "-2147483649\n",  # below what %d can print
        "-0\n",
        "-02\n",  # %d never pads
        "--5\n",
        "- 5\n",
        "+5\n",
        "-\n",
        "−5\n",  # U+2212
        "-５\n",
        "-99999999999\n",
        "20 01\n",
        "２００１\n",
        "USERID\n2001\n",
    ],
)
def test_anything_but_uid_lines_is_refused(text):
    with pytest.raises(SlurmOutputError):
        parse_job_uids(text)


def test_node_names():
    assert parse_node_names("node1 node2\n") == ("node1", "node2")
    assert parse_node_names("\n") == ()


@pytest.mark.parametrize("text", ["node1,node2\n", "-w\n", "node[1-2]\n"])
def test_unusable_node_names_are_refused(text):
    with pytest.raises(SlurmOutputError):
        parse_node_names(text)


@pytest.mark.parametrize(
    "printed, uid",
    [
        ("-2147483648", 2**31),  # the first UID %d prints negative
        ("-1294967296", 3_000_000_000),
        ("-2", 4294967294),  # (uid_t)-2
        ("2147483647", 2**31 - 1),
        ("4294967294", 4294967294),  # 26.05.3 and later print %u
    ],
)
def test_negative_uids_of_squeue_before_26_05_3_are_the_unsigned_uids(printed, uid):
    """src/squeue/print.c: _print_job_user_id() prints job->user_id with
    _print_int ("%d") up to slurm-26-05-2-1, _print_uint from slurm-26-05-3-1."""
    assert parse_job_uids(f"2001\n{printed}\n") == {2001, uid}


def test_node_list_is_never_empty_and_never_a_list_or_range():
    assert node_list(("node1", "gpu-2.rack3")) == "node1,gpu-2.rack3"
    for names in [(), ("",), ("node1", ""), ("node[1-2]",), ("-w",), ("a,b",)]:
        with pytest.raises(SlurmOutputError):
            node_list(names)


def test_the_table_starts_with_squeues_header_line():
    from leftover.squeue import parse_job_uid_table

    assert parse_job_uid_table("UID\n2001\n2002\n") == {2001, 2002}
    assert parse_job_uid_table("UID\n") == frozenset()


@pytest.mark.parametrize("text", ["", "UID", "2001\n", "USER\nalice\n", "UID\n20"])
def test_a_table_without_its_header_or_cut_off_is_an_error_never_no_job(text):
    from leftover.squeue import parse_job_uid_table

    with pytest.raises(SlurmOutputError):
        parse_job_uid_table(text)

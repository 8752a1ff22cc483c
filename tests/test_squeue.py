import pytest

from leftover.squeue import SlurmOutputError, parse_job_uids, parse_node_names


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
        "-1\n",
        "4294967295\n",
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


def test_the_table_starts_with_squeues_header_line():
    from leftover.squeue import parse_job_uid_table

    assert parse_job_uid_table("UID\n2001\n2002\n") == {2001, 2002}
    assert parse_job_uid_table("UID\n") == frozenset()


@pytest.mark.parametrize("text", ["", "UID", "2001\n", "USER\nalice\n", "UID\n20"])
def test_a_table_without_its_header_or_cut_off_is_an_error_never_no_job(text):
    from leftover.squeue import parse_job_uid_table

    with pytest.raises(SlurmOutputError):
        parse_job_uid_table(text)

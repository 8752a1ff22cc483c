"""Reading what Slurm's commands print: squeue's UID list, scontrol's node names.

Pure: text in, values out. Anything that is not exactly the expected shape raises
SlurmOutputError; leftover then kills nothing, because a misread answer is how
the tool it replaces came to kill every user on a node.
"""

import re

_MAX_UID = 2**32 - 2
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class SlurmOutputError(ValueError):
    """Output that leftover cannot read with certainty."""


def parse_job_uids(text: str) -> frozenset[int]:
    """`squeue --noheader --format=%U`: one decimal UID per line, one line per job.
    No output at all means no job; a blank or other line is an error."""
    if text == "":
        return frozenset()
    if not text.endswith("\n"):
        raise SlurmOutputError("squeue output does not end with a newline")
    uids = set()
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        word = line.strip(" ")
        if not (word.isascii() and word.isdigit()) or len(word) > 10 or int(word) > _MAX_UID:
            raise SlurmOutputError(f"squeue output line {number} is not a UID: {line[:40]!r}")
        uids.add(int(word))
    return frozenset(uids)


def parse_job_uid_table(text: str) -> frozenset[int]:
    """`squeue --format=%U` with its header: the line `UID`, then one UID per
    job. squeue prints the header once it has the job list, jobs or none
    (print_jobs_array in src/squeue/print.c, Slurm 22.05 to 26.05), so output
    without it was cut off, or came from something that is not squeue: never
    "no job"."""
    header, newline, jobs = text.partition("\n")
    if header.strip(" ") != "UID" or not newline:
        raise SlurmOutputError(f"squeue output does not start with its header line 'UID' (cut off?): {header[:40]!r}")
    return parse_job_uids(jobs)


def parse_node_names(text: str) -> tuple[str, ...]:
    """`scontrol show aliases`: node names separated by white space (empty when
    the host serves no node of its own name)."""
    names = tuple(text.split())
    for name in names:
        if not _NODE_NAME.match(name):
            raise SlurmOutputError(f"scontrol printed a node name leftover cannot use: {name[:40]!r}")
    return names

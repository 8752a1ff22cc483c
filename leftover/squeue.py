"""Reading what Slurm's commands print: squeue's UID list, scontrol's node names.

Pure: text in, values out. Anything that is not exactly the expected shape raises
SlurmOutputError; leftover then kills nothing, because a misread answer is how
the tool it replaces came to kill every user on a node.
"""

import re

_MAX_UID = 2**32 - 2
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_SIGNED_32 = re.compile(r"-[1-9][0-9]{0,9}\Z")


class SlurmOutputError(ValueError):
    """Output that leftover cannot read with certainty."""


def parse_job_uids(text: str) -> frozenset[int]:
    """The lines after squeue's `UID` header (see parse_job_uid_table): one
    decimal UID per line, one line per job.
    No output at all means no job; a blank or other line is an error.

    squeue before 26.05.3 prints %U with "%d" (_print_job_user_id() calls
    _print_int(), src/squeue/print.c at slurm-22-05-11-1 to slurm-26-05-2-1;
    _print_uint() from slurm-26-05-3-1), so a UID of 2^31 or more comes out
    as a negative number. Exactly that form, '-' and digits standing for a
    value in [-2^31, -1], is read as the unsigned 32-bit UID it stands for."""
    if text == "":
        return frozenset()
    if not text.endswith("\n"):
        raise SlurmOutputError("squeue output does not end with a newline")
    uids = set()
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        uid = _uid(line.strip(" "))
        if uid is None:
            raise SlurmOutputError(f"squeue output line {number} is not a UID: {line[:40]!r}")
        uids.add(uid)
    return frozenset(uids)


def _uid(word: str) -> int | None:
    """A UID as squeue prints it (unsigned, or signed 32-bit), else None."""
    if _SIGNED_32.match(word):
        value = int(word)
        uid = value + 2**32 if -(2**31) <= value <= -1 else None
    elif word.isascii() and word.isdigit() and len(word) <= 10:
        uid = int(word)
    else:
        return None
    return uid if uid is not None and uid <= _MAX_UID else None


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
    return tuple(node_name(name, "scontrol printed") for name in text.split())


def node_name(name: str, source: str) -> str:
    """name, if squeue's --nodelist takes it as one node's name (no list, no
    range to expand, no option); source says where it came from."""
    if not _NODE_NAME.match(name):
        raise SlurmOutputError(f"{source} {name[:40]!r}, not a node name leftover can use")
    return name


def node_list(names: tuple[str, ...]) -> str:
    """The value of squeue's --nodelist for names: never empty (squeue reads an
    empty list as every node's jobs being none), never a name to expand."""
    if not names:
        raise SlurmOutputError("no node name to ask squeue about")
    return ",".join(node_name(name, "squeue would be asked about") for name in names)

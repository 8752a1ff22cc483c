"""Stand-ins for squeue that fail in ways the real one cannot be made to on
demand, each beside a stand-in scontrol that names one node (leftover asks
squeue only about names `scontrol show aliases` beside it prints). Used for
fault injection only; everything else asks the real Slurm."""

from pathlib import Path

FAULTY_SQUEUES = {
    "exits-1": "echo 'squeue: error: Invalid user' >&2; exit 1",
    "prints-garbage": "echo UID; echo 2001; echo 'slurm_load_jobs error: Socket timed out'",
    "prints-user-names": "echo UID; echo alice",
    "hangs": "exec sleep 30",
    "killed-by-signal": "kill -9 $$",
    "prints-blank-line": "printf 'UID\\n2001\\n\\n'",
    "prints-megabytes": "yes 2001 | head -n 400000",
    "prints-nothing": "exit 0",
    "cut-off-in-a-line": "printf 'UID\\n20'",
}


STANDIN_NODE = "lo-standin"


def faulty_squeue(directory: Path, fault: str) -> Path:
    path = directory / "squeue"
    path.write_text(f"#!/bin/sh\n{FAULTY_SQUEUES[fault]}\n")
    path.chmod(0o755)
    standin_scontrol(directory)
    return path


def standin_scontrol(directory: Path) -> Path:
    """An scontrol in directory whose `show aliases` names STANDIN_NODE."""
    path = directory / "scontrol"
    path.write_text(f"#!/bin/sh\n[ \"$*\" = 'show aliases' ] || exit 1\nprintf '%s\\n' {STANDIN_NODE}\n")
    path.chmod(0o755)
    return path


def config(directory: Path, text: str) -> Path:
    path = directory / "leftover.conf"
    path.write_text(text)
    path.chmod(0o644)
    return path

"""What a process is, as read from /proc/[pid]/status and /proc/[pid]/stat.

Pure parsers: bytes in, fields out. They never open a file, never guess a missing
field and never crash on hostile bytes: anything they cannot read with certainty
raises ProcFormatError, and the caller leaves that process alone.
"""

from dataclasses import dataclass

PF_KTHREAD = 0x00200000
KTHREADD_PID = 2


class ProcFormatError(ValueError):
    """A status or stat file that does not have the shape the kernel gives it."""


@dataclass(frozen=True)
class Process:
    """One process (thread-group leader) on the node.

    uids are (real, effective, saved, filesystem). start_ticks is field 22 of
    /proc/[pid]/stat, clock ticks since boot on CLOCK_BOOTTIME; None until read.
    job_cgroup is the Slurm job cgroup the process is in; None when it is in
    none, or /proc/[pid]/cgroup was not read.
    """

    pid: int
    name: str
    state: str
    ppid: int
    uids: tuple[int, int, int, int]
    kernel_thread: bool
    start_ticks: int | None = None
    job_cgroup: str | None = None

    @property
    def uid(self) -> int:
        return self.uids[0]


@dataclass(frozen=True)
class Stat:
    """The fields leftover needs from /proc/[pid]/stat."""

    state: str
    ppid: int
    flags: int
    start_ticks: int


def parse_status(pid: int, raw: bytes) -> Process:
    """Parse /proc/[pid]/status. Raises ProcFormatError if a needed field is
    missing, repeated or malformed."""
    fields: dict[bytes, bytes] = {}
    for line in raw.split(b"\n"):
        key, sep, value = line.partition(b":")
        if not sep or key not in _STATUS_KEYS:
            continue
        if key in fields:
            raise ProcFormatError(f"field {key.decode()} appears twice")
        fields[key] = value.strip(b" \t")
    missing = [k.decode() for k in _REQUIRED_STATUS_KEYS if k not in fields]
    if missing:
        raise ProcFormatError(f"missing {', '.join(missing)}")
    state = fields[b"State"][:1].decode("ascii", "replace")
    if not state.isalpha():
        raise ProcFormatError("State is not a letter")
    ppid = _decimal(fields[b"PPid"], "PPid")
    uid_words = fields[b"Uid"].split()
    if len(uid_words) != 4:
        raise ProcFormatError("Uid does not have four values")
    uids = tuple(_decimal(word, "Uid") for word in uid_words)
    kthread = fields.get(b"Kthread")
    if kthread is None:
        kernel_thread = pid == KTHREADD_PID or ppid == KTHREADD_PID
    elif kthread in (b"0", b"1"):
        kernel_thread = kthread == b"1"
    else:
        raise ProcFormatError("Kthread is not 0 or 1")
    return Process(
        pid=pid,
        name=_unescape_name(fields[b"Name"]),
        state=state,
        ppid=ppid,
        uids=uids,  # type: ignore[arg-type]
        kernel_thread=kernel_thread,
    )


def parse_stat(raw: bytes) -> Stat:
    """Parse /proc/[pid]/stat. The command name (field 2) may hold spaces and
    parentheses, so the fixed fields are counted from the last ')'."""
    close = raw.rfind(b")")
    if close < 0 or b"(" not in raw[:close]:
        raise ProcFormatError("no (comm) field")
    rest = raw[close + 1 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    if len(rest) < 20:
        raise ProcFormatError("stat is truncated")
    state = rest[0].decode("ascii", "replace")
    if len(state) != 1 or not state.isalpha():
        raise ProcFormatError("state is not a letter")
    return Stat(
        state=state,
        ppid=_decimal(rest[1], "ppid"),
        flags=_decimal(rest[6], "flags"),
        start_ticks=_decimal(rest[19], "starttime"),
    )


_REQUIRED_STATUS_KEYS = (b"Name", b"State", b"PPid", b"Uid")
_STATUS_KEYS = frozenset(_REQUIRED_STATUS_KEYS + (b"Kthread",))
_MAX_ID = 2**32 - 1


def _decimal(word: bytes, what: str) -> int:
    if not word.isdigit() or not word.isascii():
        raise ProcFormatError(f"{what} is not a number")
    value = int(word)
    if value > _MAX_ID and what not in ("flags", "starttime"):
        raise ProcFormatError(f"{what} is out of range")
    return value


def _unescape_name(value: bytes) -> str:
    """The kernel writes Name with '\\n' and '\\\\' escaped; undo only that and
    keep every other byte (undecodable ones as surrogates) for the log to escape."""
    out = bytearray()
    i = 0
    while i < len(value):
        byte = value[i : i + 1]
        if byte == b"\\" and value[i + 1 : i + 2] in (b"n", b"\\"):
            out += b"\n" if value[i + 1 : i + 2] == b"n" else b"\\"
            i += 2
            continue
        out += byte
        i += 1
    return out.decode("utf-8", "surrogateescape")

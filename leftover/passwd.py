"""A reader for passwd(5) text, written by hand so it cannot be surprised.

Pure: text in, entries out. Comment, blank, NIS compat ('+'/'-') and malformed
lines are skipped, never fatal; the parser never raises on any input.
"""

from typing import NamedTuple

_MAX_UID = 2**32 - 2  # (uid_t)-1 is not a user


class PasswdEntry(NamedTuple):
    name: str
    uid: int
    gid: int | None = None  # the primary group; None only where a caller built the entry by hand


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Every well-formed `name:password:uid:gid:gecos:home:shell` line."""
    entries = []
    for line in text.splitlines():
        if not line or line[0] in "#+-":
            continue
        fields = line.split(":")
        if len(fields) != 7:
            continue
        name, _password, uid, gid = fields[:4]
        if not name or not _is_id(uid) or not _is_id(gid):
            continue
        entries.append(PasswdEntry(name=name, uid=int(uid), gid=int(gid)))
    return entries


def _is_id(word: str) -> bool:
    return word.isascii() and word.isdigit() and len(word) <= 10 and int(word) <= _MAX_UID

"""A reader for group(5) text, written by hand so it cannot be surprised.

Pure: text in, entries out. Comment, blank, NIS compat ('+'/'-') and malformed
lines are skipped, never fatal; the parser never raises on any input. It only
reads: which groups protect whom is leftover.protect's business.
"""

from typing import NamedTuple

_MAX_GID = 2**32 - 2  # (gid_t)-1 is not a group


class GroupEntry(NamedTuple):
    name: str
    gid: int
    members: tuple[str, ...]  # supplementary members, by user name, as listed


def parse_group(text: str) -> list[GroupEntry]:
    """Every well-formed `name:password:gid:member,member` line."""
    entries = []
    for line in text.splitlines():
        if not line or line[0] in "#+-":
            continue
        fields = line.split(":")
        if len(fields) != 4:
            continue
        name, _password, gid, members = fields
        if not name or not (gid.isascii() and gid.isdigit() and len(gid) <= 10 and int(gid) <= _MAX_GID):
            continue
        entries.append(GroupEntry(name, int(gid), tuple(m for m in members.split(",") if m)))
    return entries

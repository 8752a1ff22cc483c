"""Who is protected: the UIDs named by the config's protected_users, and the
members of its protected_groups.

Pure: the passwd and group entries and fallback lookups (the system's user and
group databases, supplied by the caller) in, sets of UIDs out. A user or group
name that resolves nowhere is a ConfigError: the administrator meant to protect
someone, and guessing wrong would kill them. A group member whose name resolves
to no user is UnknownMember: that person cannot be told apart from anyone else,
so the run must kill nothing. UIDs below min_uid are protected by a rule of the
decision core, not here, whether passwd lists them or not.
"""

from collections.abc import Callable, Iterable
from typing import NamedTuple

from leftover.config import ConfigError
from leftover.group import GroupEntry
from leftover.passwd import PasswdEntry


class UnknownMember(Exception):
    """A protected group lists a member that is no user anywhere; one line says which."""


class GroupMembers(NamedTuple):
    """What protected_groups resolve to. uids: every supplementary member, and
    every passwd-file user whose primary group is protected. gids: the groups
    themselves, for users outside the passwd file whose primary group only the
    user database knows (a directory need not list its users; the caller looks
    those up by the UIDs of the processes in question)."""

    uids: frozenset[int] = frozenset()
    gids: frozenset[int] = frozenset()


def protected_uids(
    protected_users: Iterable[str | int],
    entries: Iterable[PasswdEntry],
    lookup: Callable[[str], int | None],
) -> frozenset[int]:
    by_name = {}
    for entry in entries:
        by_name.setdefault(entry.name, entry.uid)
    uids = set()
    for user in protected_users:
        if isinstance(user, int):
            uids.add(user)
            continue
        uid = by_name.get(user)
        if uid is None:
            uid = lookup(user)
        if uid is None:
            raise ConfigError(f"protected user {user!r} is in neither passwd nor the user database (a UID must be a JSON number)")
        uids.add(uid)
    return frozenset(uids)


def user_names(entries: Iterable[PasswdEntry], lookup: Callable[[int], str | None]) -> Callable[[int], str]:
    """uid -> user name for reports: passwd first, then lookup, else '?'."""
    by_uid: dict[int, str] = {}
    for entry in entries:
        by_uid.setdefault(entry.uid, entry.name)

    def name(uid: int) -> str:
        if uid not in by_uid:
            by_uid[uid] = lookup(uid) or "?"
        return by_uid[uid]

    return name


def protected_group_members(
    protected_groups: Iterable[str | int],
    groups: Iterable[GroupEntry],
    entries: Iterable[PasswdEntry],
    group_lookup: Callable[[str | int], GroupEntry | None],
    user_lookup: Callable[[str], int | None],
) -> GroupMembers:
    """Resolve each group (a name or a GID) through the group entries first,
    then group_lookup; each listed member through passwd first, then
    user_lookup. A name listed twice in the group file: the first line wins,
    as for getgrnam. Unlike a UID, a GID must resolve: its listed members are
    known only from its entry, and a group database that is down must stop
    the run, not quietly leave those members unprotected."""
    by_name: dict[str, GroupEntry] = {}
    by_gid: dict[int, GroupEntry] = {}
    for group in groups:
        by_name.setdefault(group.name, group)
        by_gid.setdefault(group.gid, group)
    entries = list(entries)
    uid_by_name: dict[str, int] = {}
    for entry in entries:
        uid_by_name.setdefault(entry.name, entry.uid)
    uids, gids = set(), set()
    for wanted in protected_groups:
        group = (by_gid if isinstance(wanted, int) else by_name).get(wanted) or group_lookup(wanted)
        if group is None:
            what = f"GID {wanted}" if isinstance(wanted, int) else f"{wanted!r}"
            raise ConfigError(f"protected group {what} is in neither the group file nor the group database")
        gids.add(group.gid)
        for member in group.members:
            uid = uid_by_name.get(member)
            if uid is None:
                uid = user_lookup(member)
            if uid is None:
                raise UnknownMember(
                    f"protected group {group.name!r} lists member {member!r}, who is in neither passwd nor the user "
                    "database; that user's processes cannot be recognised"
                )
            uids.add(uid)
    uids.update(entry.uid for entry in entries if entry.gid in gids)
    return GroupMembers(frozenset(uids), frozenset(gids))

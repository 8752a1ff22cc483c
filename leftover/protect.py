"""Who is protected: the UIDs named by the config's protected_users.

Pure: the passwd entries and a fallback lookup (the system's user database,
supplied by the caller) in, a set of UIDs out. A name that resolves nowhere
is a ConfigError: the administrator meant to protect someone, and guessing
wrong would kill them. UIDs below min_uid are protected by a rule of the
decision core, not here, whether passwd lists them or not.
"""

from collections.abc import Callable, Iterable

from leftover.config import ConfigError
from leftover.passwd import PasswdEntry


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

"""Look-ups in the system's user and group databases (NSS: sssd, LDAP, ...)
for the users and groups that the passwd and group files do not list, with a
bound.

Each look-up is one `getent passwd` (or `getent group`) child run through leftover.programs: a name
service that does not answer, or a file system on getent's path that does not,
costs at most LOOKUP_SECONDS in the whole run, and the stuck child is killed
with its group (or left behind), never waited for. An
in-process pwd.getpwnam could not be abandoned: a thread stuck in it keeps
glibc's NSS state, and the main thread cannot be interrupted inside it.

It decides nothing: the caller chooses what an unanswered look-up means
(protection fails closed; a label shows the number instead).
"""

import time
from collections.abc import Iterable

from leftover.group import GroupEntry, parse_group
from leftover.passwd import parse_passwd
from leftover.programs import ProgramError, Unanswered, run

LOOKUP_SECONDS = 2.0
GETENT = "/usr/bin/getent"
_FOUND, _SOME_NOT_FOUND = 0, 2  # getent(1) exit statuses


class UserDatabaseError(Exception):
    """The user database gave no answer leftover can use; one line says why."""


class UserDatabase:
    """The run's look-ups, sharing one budget of LOOKUP_SECONDS. After one
    goes unanswered, later ones fail at once with the same reason."""

    def __init__(self, budget_seconds: float = LOOKUP_SECONDS, getent: str = GETENT) -> None:
        self.budget = budget_seconds
        self.getent = getent
        self.failed: str | None = None

    def uids_of(self, names: Iterable[str]) -> dict[str, int]:
        """name -> uid for each name the database knows."""
        wanted = set(names)
        return {e.name: e.uid for e in self._entries(sorted(wanted)) if e.name in wanted}

    def names_of(self, uids: Iterable[int]) -> dict[int, str]:
        """uid -> name for each uid the database knows."""
        wanted = set(uids)
        return {e.uid: e.name for e in self._entries([str(uid) for uid in sorted(wanted)]) if e.uid in wanted}

    def primary_gids_of(self, uids: Iterable[int]) -> dict[int, int]:
        """uid -> the gid of its primary group, for each uid the database knows."""
        wanted = set(uids)
        return {e.uid: e.gid for e in self._entries([str(uid) for uid in sorted(wanted)]) if e.uid in wanted}

    def groups(self, keys: Iterable[str | int]) -> list[GroupEntry]:
        """The group entries for the names and GIDs the database knows."""
        wanted = sorted({str(key) for key in keys})
        return parse_group(self._answer("group", wanted).decode("utf-8", "surrogateescape")) if wanted else []

    def _entries(self, keys: list[str]):
        if not keys:
            return []
        return parse_passwd(self._answer("passwd", keys).decode("utf-8", "surrogateescape"))

    def _answer(self, database: str, keys: list[str]) -> bytes:
        if self.failed:
            raise UserDatabaseError(self.failed)
        started = time.monotonic()
        try:
            done = run([self.getent, database, "--", *keys], {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, started + self.budget)
        except Unanswered as error:
            asked = "the user database" if error.started else "getent"
            self.failed = f"{asked} {error.within(self.budget)}"
        except ProgramError as error:
            self.failed = f"cannot ask the user database: {error}"
        else:
            if done.returncode not in (_FOUND, _SOME_NOT_FOUND):
                self.failed = f"cannot ask the user database: getent exited {done.returncode}"
        finally:
            self.budget = max(0.0, self.budget - (time.monotonic() - started))
        if self.failed:
            raise UserDatabaseError(self.failed)
        return done.stdout

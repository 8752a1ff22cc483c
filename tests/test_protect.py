import pytest

from leftover.config import ConfigError
from leftover.passwd import PasswdEntry
from leftover.protect import protected_uids, user_names

ENTRIES = [PasswdEntry("alice", 2001), PasswdEntry("bob", 2002), PasswdEntry("alice", 9999)]


def nobody(_):
    return None


def test_names_resolve_through_passwd_first_entry_wins():
    assert protected_uids(["alice", 3005], ENTRIES, nobody) == {2001, 3005}


def test_names_missing_from_passwd_fall_back_to_the_user_database():
    assert protected_uids(["ldapuser"], ENTRIES, {"ldapuser": 5000}.get) == {5000}


def test_a_name_that_resolves_nowhere_is_a_config_error():
    with pytest.raises(ConfigError, match="'ghost'"):
        protected_uids(["alice", "ghost"], ENTRIES, nobody)


def test_user_names_for_reports():
    name = user_names(ENTRIES, {7000: "ldapuser"}.get)
    assert (name(2001), name(7000), name(8000)) == ("alice", "ldapuser", "?")

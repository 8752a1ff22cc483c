import pytest

from leftover.config import ConfigError
from leftover.group import GroupEntry
from leftover.passwd import PasswdEntry
from leftover.protect import GroupMembers, UnknownMember, protected_group_members, protected_uids, user_names

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


GROUPS = [
    GroupEntry("staff", 50, ("alice", "ldapuser")),
    GroupEntry("primary", 2002, ()),
    GroupEntry("staff", 51, ("bob",)),
]
WITH_GIDS = [PasswdEntry("alice", 2001, 2001), PasswdEntry("bob", 2002, 2002), PasswdEntry("carol", 2003, 2002)]


def database(groups=(), users=None):
    by_key = {g.name: g for g in groups} | {g.gid: g for g in groups}
    return by_key.get, (users or {}).get


def test_supplementary_members_resolve_through_passwd_then_the_user_database():
    groups, users = database(users={"ldapuser": 5000})
    members = protected_group_members(["staff"], GROUPS, WITH_GIDS, groups, users)
    assert members == GroupMembers(frozenset({2001, 5000}), frozenset({50}))


def test_primary_group_members_in_passwd_are_protected_by_name_or_gid():
    groups, users = database()
    assert protected_group_members(["primary"], GROUPS, WITH_GIDS, groups, users).uids == {2002, 2003}
    assert protected_group_members([2002], GROUPS, WITH_GIDS, groups, users).uids == {2002, 2003}


def test_groups_missing_from_the_file_come_from_the_group_database():
    groups, users = database([GroupEntry("ldapstaff", 7000, ("bob",))])
    members = protected_group_members(["ldapstaff", 7000], GROUPS, WITH_GIDS, groups, users)
    assert members == GroupMembers(frozenset({2002}), frozenset({7000}))


def test_a_group_that_resolves_nowhere_is_a_config_error():
    groups, users = database()
    with pytest.raises(ConfigError, match="'ghosts'"):
        protected_group_members(["staff", "ghosts"], GROUPS, WITH_GIDS, groups, {"ldapuser": 5000}.get)
    with pytest.raises(ConfigError, match="GID 4242"):
        protected_group_members([4242], GROUPS, WITH_GIDS, groups, users)


def test_a_member_who_is_no_user_anywhere_stops_the_run():
    groups, users = database()
    with pytest.raises(UnknownMember, match="'staff' lists member 'ldapuser'"):
        protected_group_members(["staff"], GROUPS, WITH_GIDS, groups, users)

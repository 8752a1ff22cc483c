from leftover.group import GroupEntry, parse_group
from leftover.names import UserDatabase


def test_members_are_listed_in_order_and_empty_lists_are_empty():
    text = "root:x:0:\nstaff:x:50:alice,bob\n"
    assert parse_group(text) == [GroupEntry("root", 0, ()), GroupEntry("staff", 50, ("alice", "bob"))]


def test_comments_blanks_nis_and_malformed_lines_are_skipped_never_fatal():
    text = "\n".join([
        "# a comment",
        "",
        "+@netgroup",
        "-blocked:x:60:",
        "three:x:61",  # three fields
        "five:x:62:a:b",  # five fields
        ":x:63:",  # no name
        "bad:x:sixty:",
        "max:x:4294967295:",  # (gid_t)-1
        "arabic:x:٣:",  # a non-ASCII digit
        "ok:x:64:carol,,dave,\r",
    ])
    assert parse_group(text) == [GroupEntry("ok", 64, ("carol", "dave"))]


def test_groups_and_primary_groups_come_from_the_system_databases():
    """Real getent against this machine's NSS, with names and GIDs mixed."""
    database = UserDatabase()
    found = database.groups(["root", 0, "leftover-no-such-group"])
    assert {(g.name, g.gid) for g in found} == {("root", 0)}  # once per key asked: root and 0
    assert database.primary_gids_of([0, 4_000_000_000]) == {0: 0}

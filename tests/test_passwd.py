from leftover.passwd import PasswdEntry, parse_passwd
from tests.conftest import EXAMPLE_NODE


def test_example_passwd_skips_comments_blanks_nis_and_broken_lines():
    entries = parse_passwd((EXAMPLE_NODE / "passwd").read_text())
    assert [e.name for e in entries] == ["root", "daemon", "slurm", "alice", "bob", "carol", "dave", "longusername"]
    assert PasswdEntry("longusername", 2010, 2010) in entries


def test_malformed_lines_never_crash():
    text = "\n".join([
        "a:x:notanumber:1:::",
        "b:x:1:1::",  # six fields
        "c:x:1:1:::/bin/sh:extra",
        ":x:5:5:::",
        "d:x:4294967295:1:::",  # (uid_t)-1
        "e:x:٣:1:::",  # a non-ASCII digit
        "f:x:1500:1500:::",
    ])
    assert parse_passwd(text) == [PasswdEntry("f", 1500, 1500)]


def test_windows_line_endings_do_not_hide_entries():
    assert parse_passwd("g:x:1600:1600::/home/g:/bin/sh\r\n") == [PasswdEntry("g", 1600, 1600)]

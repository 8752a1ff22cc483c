"""protected_groups, the whole run in process on the example node: members by
the group file, by primary group, by the group and user databases, and every
way a group can fail to resolve (nothing signalled)."""

import json
from pathlib import Path

import pytest

from leftover import cli
from leftover.act import Actor
from leftover.names import UserDatabase
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC
from tests.faults import config

SQUEUE = str(EXAMPLE_NODE / "squeue")


@pytest.fixture
def signalled(monkeypatch):
    calls = []
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: calls.append(list(targets)) or [])
    return calls


def run(capsys, tmp_path, groups, group_text, *arguments, passwd=EXAMPLE_NODE / "passwd"):
    conf = config(tmp_path, json.dumps({"protected_users": ["slurm", "dave"], "protected_groups": groups, "squeue": SQUEUE}))
    group_file = tmp_path / "group"
    group_file.write_text(group_text)
    code = cli.main([
        "--no-splay", "--json", "--config", str(conf), "--proc", str(EXAMPLE_PROC), "--passwd", str(passwd),
        "--group", str(group_file), "--lock-file", str(tmp_path / "lock"), *arguments,
    ])
    return code, json.loads(capsys.readouterr().out)


def directory(tmp_path, monkeypatch, passwd: str = "", group: str = "", answers: bool = True) -> Path:
    """A getent standing in for the site's directory (LDAP, SSSD): it answers
    `getent passwd|group -- KEY...` from two files, as getent does, and notes
    every question in `asked`. One that never answers stands for a directory
    that hangs."""
    root = tmp_path / "directory"
    root.mkdir()
    (root / "passwd").write_text(passwd)
    (root / "group").write_text(group)
    body = (
        f'db=$1; shift; shift; echo "$db $*" >> {root}/asked; status=0\n'
        f'for key in "$@"; do line=$(awk -F: -v k="$key" \'$1 == k || $3 == k\' {root}/$db | head -n 1)\n'
        '  if [ -n "$line" ]; then echo "$line"; else status=2; fi; done; exit $status\n'
    ) if answers else "exec sleep 60\n"
    getent = root / "getent"
    getent.write_text("#!/bin/sh\n" + body)
    getent.chmod(0o755)
    monkeypatch.setattr(cli, "UserDatabase", lambda: UserDatabase(budget_seconds=1.0, getent=str(getent)))
    return root / "asked"


def asked(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_supplementary_member_is_spared_as_protected_group(capsys, signalled, tmp_path):
    code, report = run(capsys, tmp_path, ["hpc-admins"], "hpc-admins:x:4000:longusername\n")
    assert code == 0
    assert [[d.process.pid for d in targets] for targets in signalled] == [[1202, 1203]]
    assert report["reasons"]["protected-group"] == 1


def test_users_whose_primary_group_it_is_are_spared_by_name_or_gid(capsys, signalled, tmp_path):
    code, report = run(capsys, tmp_path, ["bob", 2010], "bob:x:2002:\nlongusername:x:2010:\n", "--dry-run")
    assert code == 0 and report["targets"] == [] and signalled == []
    assert report["reasons"]["protected-group"] == 4  # bob's job process 1303 too: the earlier row decides


def test_a_primary_group_only_the_user_database_knows_is_looked_up_for_the_processes_in_question(
    capsys, signalled, tmp_path, monkeypatch
):
    """bob is missing from the passwd file: his primary group comes from the
    user database, asked only about the users of processes still in question."""
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line for line in (EXAMPLE_NODE / "passwd").read_text().splitlines(True) if not line.startswith("bob:")))
    questions = directory(tmp_path, monkeypatch, passwd="bob:x:2002:4000::/home/bob:/bin/sh\n")
    code, report = run(capsys, tmp_path, ["hpc-admins"], "hpc-admins:x:4000:\n", "--dry-run", passwd=passwd)
    assert code == 0 and [t["pid"] for t in report["targets"]] == [1207]
    assert report["reasons"]["protected-group"] == 3  # and bob's job process 1303
    assert asked(questions)[0] == "passwd 2002"  # only bob's uid was in question and not in passwd


def test_groups_missing_from_the_file_come_from_the_group_database(capsys, signalled, tmp_path, monkeypatch):
    questions = directory(tmp_path, monkeypatch, group="ldap-admins:*:9000:bob,ldapuser\n",
                          passwd="ldapuser:x:7000:7000::/:/bin/sh\n")
    code, report = run(capsys, tmp_path, ["ldap-admins"], "other:x:1:\n", "--dry-run")
    assert code == 0 and [t["pid"] for t in report["targets"]] == [1207]
    assert asked(questions)[:2] == ["group ldap-admins", "passwd ldapuser"]


@pytest.mark.parametrize("groups, group_text", [
    (["ldap-admins"], "other:x:1:\n"),  # the group itself
    (["hpc-admins"], "hpc-admins:x:4000:ldapuser\n"),  # a member passwd lacks
])
def test_a_directory_that_does_not_answer_in_time_kills_nothing(capsys, signalled, tmp_path, monkeypatch,
                                                                 groups, group_text):
    directory(tmp_path, monkeypatch, answers=False)
    code, report = run(capsys, tmp_path, groups, group_text)
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "names"
    assert "did not answer within 1s" in report["bailed_out"]


def test_a_primary_group_the_directory_cannot_tell_in_time_kills_nothing(capsys, signalled, tmp_path, monkeypatch):
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line for line in (EXAMPLE_NODE / "passwd").read_text().splitlines(True) if not line.startswith("bob:")))
    directory(tmp_path, monkeypatch, answers=False)
    code, report = run(capsys, tmp_path, ["hpc-admins"], "hpc-admins:x:4000:\n", passwd=passwd)
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "names"
    assert "cannot tell whether uids 2002 belong to a protected group" in report["bailed_out"]


def test_a_group_that_resolves_nowhere_exits_2_and_signals_nothing(capsys, signalled, tmp_path):
    code, report = run(capsys, tmp_path, ["leftover-no-such-group"], "other:x:1:\n")
    assert code == 2 and signalled == [] and report["bailed_out_reason"] == "config"
    assert "protected group 'leftover-no-such-group' is in neither" in report["bailed_out"]


def test_a_member_who_is_no_user_anywhere_bails_out_and_signals_nothing(capsys, signalled, tmp_path):
    code, report = run(capsys, tmp_path, ["hpc-admins"], "hpc-admins:x:4000:bob,leftover-no-such-user\n")
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "group"
    assert "lists member 'leftover-no-such-user'" in report["bailed_out"]


def test_a_group_file_that_cannot_be_read_bails_out_and_signals_nothing(capsys, signalled, tmp_path):
    code, report = run(capsys, tmp_path, ["hpc-admins"], "", "--group", str(tmp_path / "absent"))
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "group"
    assert "cannot read" in report["bailed_out"]


def test_without_protected_groups_the_group_file_is_never_read(capsys, signalled, tmp_path):
    code, report = run(capsys, tmp_path, [], "", "--group", str(tmp_path / "absent"), "--dry-run")
    assert code == 0 and [t["pid"] for t in report["targets"]] == [1202, 1203, 1207]

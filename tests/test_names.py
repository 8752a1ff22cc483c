"""Look-ups in the user database: real getent against this machine's NSS, a
getent that never answers (the real hang, sssd accepting and never replying,
is in e2e/test_bounds.py), and one on a file system that never answers."""

import json
import os
import re
import time

import pytest

from leftover import cli
from leftover.act import Actor
from leftover.lock import take_lock
from leftover.names import UserDatabase, UserDatabaseError
from leftover.programs import KILL_WAIT_SECONDS
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC, state_of
from tests.faults import config


def hanging_getent(directory):
    path = directory / "getent"
    path.write_text("#!/bin/sh\nexec sleep 60\n")
    path.chmod(0o755)
    return str(path)


def test_names_and_uids_come_from_the_system_user_database():
    database = UserDatabase()
    assert database.uids_of(["root", "no-such-user-anywhere"]) == {"root": 0}
    assert database.names_of([0, 4_000_000_000]) == {0: "root"}
    assert database.failed is None


def test_an_unanswered_look_up_ends_within_the_budget_and_later_ones_fail_at_once(tmp_path):
    database = UserDatabase(budget_seconds=0.5, getent=hanging_getent(tmp_path))
    started = time.monotonic()
    with pytest.raises(UserDatabaseError, match="did not answer within 0.5s"):
        database.uids_of(["someone"])
    assert time.monotonic() - started < 0.5 + KILL_WAIT_SECONDS
    started = time.monotonic()
    with pytest.raises(UserDatabaseError, match="did not answer within 0.5s"):
        database.names_of([3002])
    assert time.monotonic() - started < 0.1


@pytest.fixture
def signalled(monkeypatch):
    calls = []
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: calls.append(list(targets)) or [])
    return calls


def run(capsys, conf, *arguments):
    code = cli.main(["--no-splay", "--json", "--config", str(conf), "--proc", str(EXAMPLE_PROC),
                     "--passwd", str(EXAMPLE_NODE / "passwd"), *arguments])
    return code, json.loads(capsys.readouterr().out)


def test_a_protected_user_that_cannot_be_looked_up_in_time_fails_closed(capsys, signalled, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "UserDatabase", lambda: UserDatabase(budget_seconds=0.5, getent=hanging_getent(tmp_path)))
    conf = config(tmp_path, json.dumps({"protected_users": ["ldap-only-admin"], "squeue": str(EXAMPLE_NODE / "squeue")}))
    code, report = run(capsys, conf, "--lock-file", str(tmp_path / "lock"))
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "names"
    assert report["bailed_out"] == ("cannot resolve protected users ldap-only-admin: "
                                    "the user database did not answer within 0.5s")


def test_a_getent_on_a_file_system_that_never_answers_fails_closed_in_time(
    hung_file_system, capsys, signalled, monkeypatch, tmp_path
):
    """Its exec waits where not even SIGKILL ends it: the child is left behind,
    without a copy of the lock, and the run bails out within the budget."""
    getent = hung_file_system.mount("taken") / "getent"
    monkeypatch.setattr(cli, "UserDatabase", lambda: UserDatabase(budget_seconds=0.5, getent=str(getent)))
    conf = config(tmp_path, json.dumps({"protected_users": ["ldap-only-admin"], "squeue": str(EXAMPLE_NODE / "squeue")}))
    started = time.monotonic()
    code, report = run(capsys, conf, "--lock-file", str(tmp_path / "lock"))
    assert time.monotonic() - started < 0.5 + KILL_WAIT_SECONDS + 1
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "names"
    said = re.fullmatch(
        rf"cannot resolve protected users ldap-only-admin: getent did not start within 0.5s \(a file system on the way "
        rf"to {re.escape(str(getent))} did not answer\); pid (\d+) still there 1s after SIGKILL \(state D\), left behind",
        report["bailed_out"],
    )
    assert said, report["bailed_out"]
    assert state_of(int(said[1])) == "D"
    os.close(take_lock(tmp_path / "lock"))


def test_a_label_that_cannot_be_looked_up_in_time_shows_the_uid(capsys, signalled, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "UserDatabase", lambda: UserDatabase(budget_seconds=0.5, getent=hanging_getent(tmp_path)))
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line + "\n" for line in (EXAMPLE_NODE / "passwd").read_text().splitlines()
                              if not line.startswith("bob:")))
    conf = config(tmp_path, json.dumps({"protected_users": ["dave"], "squeue": str(EXAMPLE_NODE / "squeue")}))
    code, report = run(capsys, conf, "--lock-file", str(tmp_path / "lock"), "--passwd", str(passwd))
    assert code == 0 and [[d.process.pid for d in targets] for targets in signalled] == [[1202, 1203, 1207]]
    assert [t["user"] for t in report["targets"]] == ["2002", "2002", "longusername"]


def test_json_all_labels_every_process_without_asking_the_database_again(capsys, signalled, monkeypatch, tmp_path):
    """--json --all shows every process, judged or not: their names are looked
    up in the same single look-up, so an unanswered one shows uids there too."""
    monkeypatch.setattr(cli, "UserDatabase", lambda: UserDatabase(budget_seconds=0.5, getent=hanging_getent(tmp_path)))
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line + "\n" for line in (EXAMPLE_NODE / "passwd").read_text().splitlines()
                              if not line.startswith("bob:")))
    conf = config(tmp_path, json.dumps({"protected_users": ["dave", 2002], "squeue": str(EXAMPLE_NODE / "squeue")}))
    code, report = run(capsys, conf, "--dry-run", "--all", "--passwd", str(passwd))  # bob (2002): protected, so not judged
    assert code == 0
    assert {p["user"] for p in report["processes"] if p["uid"] == 2002} == {"2002"}

"""Telling the owner in a whole run on the example node: the terminal line is
written before the Actor is handed the targets, the notify command gets the
run's document, and nothing either does changes the outcome or exit code."""

import json
import os
import select
from pathlib import Path

import pytest

from leftover import cli
from leftover.act import Actor
from leftover.config import Settings
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC
from tests.faults import config

BOB = 2002  # the example node's stray user (pids 1202 and 1203)


def settings(**extra) -> dict:
    return {"protected_users": ["slurm", "dave"], "squeue": str(EXAMPLE_NODE / "squeue"), "grace_seconds": 8} | extra


def run(tmp_path, capsys, conf: dict, *arguments):
    code = cli.main([
        "--no-splay", "--json", "--config", str(config(tmp_path, json.dumps(conf))), "--proc", str(EXAMPLE_PROC),
        "--passwd", str(EXAMPLE_NODE / "passwd"), "--lock-file", str(tmp_path / "lock"), *arguments,
    ])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def bobs_terminal():
    """A real pty whose slave is bob's, its master held here as sshd holds a session's."""
    if os.geteuid() != 0:
        pytest.skip("giving a pty to another UID needs root")
    master, slave = os.openpty()
    path = Path(os.ttyname(slave))
    os.close(slave)
    os.chown(path, BOB, -1)
    yield master
    os.close(master)


def pending(master: int) -> bytes:
    data = b""
    while select.select([master], [], [], 0.1)[0]:
        try:
            data += os.read(master, 65536)
        except OSError:  # EIO: no one holds the slave side open, and nothing is left to read
            break
    return data.replace(b"\r", b"")


def test_the_owner_is_told_on_their_terminal_before_any_signal(tmp_path, capsys, monkeypatch, bobs_terminal):
    seen_by_then = []
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: seen_by_then.append(pending(bobs_terminal)) or [])
    code, _ = run(tmp_path, capsys, settings(tell_terminals=True))
    assert code == 0
    (said,) = seen_by_then
    assert b"ending 2 process(es) of yours, pid 1202 (python3), 1203 (x\\x0a\\x1b[31mroot\\\\): no-job-on-node" in said
    assert b"SIGTERM now, SIGKILL in 8s if still running." in said
    assert said.count(b"\n") == 2  # one line, and nothing for the other users' targets


def test_no_terminal_is_told_by_default_or_in_a_dry_run(tmp_path, capsys, monkeypatch, bobs_terminal):
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: [])
    assert run(tmp_path, capsys, settings())[0] == 0
    assert run(tmp_path, capsys, settings(tell_terminals=True), "--dry-run")[0] == 0
    assert pending(bobs_terminal) == b""


def notify_command(directory: Path, body: str) -> Path:
    path = directory / "notify"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_the_notify_command_gets_the_runs_document(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: [])
    got = tmp_path / "got"
    code, report = run(tmp_path, capsys, settings(notify_command=str(notify_command(tmp_path, f"cat > {got}"))))
    assert code == 0
    told = json.loads(got.read_text())
    assert [t["pid"] for t in told["targets"]] == [1202, 1203, 1207] and told["exit_code"] == 0


@pytest.mark.parametrize("body", ["exit 1", "exec sleep 600"])
def test_a_failing_or_hanging_notify_command_changes_nothing(tmp_path, capsys, monkeypatch, body):
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: [])
    warnings = []
    monkeypatch.setattr(cli.Log, "warning", lambda self, text: warnings.append(text))
    conf = settings(notify_command=str(notify_command(tmp_path, body)), notify_timeout=0.5)
    code, report = run(tmp_path, capsys, conf)
    assert code == 0 and report["bailed_out"] is None
    assert [w for w in warnings if w.startswith("notify command: ") and w.endswith("; the run's outcome stands")]


def test_the_notify_command_is_not_run_for_a_dry_run_or_a_run_without_targets(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: [])
    ran = tmp_path / "ran"
    command = str(notify_command(tmp_path, f"touch {ran}"))
    assert run(tmp_path, capsys, settings(notify_command=command), "--dry-run")[0] == 0
    every_user = ["slurm", "alice", "bob", "carol", "dave", "longusername"]
    assert run(tmp_path, capsys, settings(notify_command=command, protected_users=every_user))[0] == 0
    assert not ran.exists()


def test_the_runs_time_bound_makes_room_for_the_notify_command():
    plain = cli.worst_case_seconds(Settings())
    assert cli.worst_case_seconds(Settings(notify_command=Path("/x"), notify_timeout=30)) == plain + 30 + 2

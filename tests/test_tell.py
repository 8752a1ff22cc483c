"""Telling the owner: real pseudo-terminals (opened here, their slave side
given to a UID as sshd gives a session's to its user) and real notify commands."""

import json
import os
import select
import stat
import time
from pathlib import Path

import pytest

from leftover.tell import run_notify_command, terminal_message, user_terminals, write_to_terminal

NOBODY_UID = 4_000_000  # no user and no process: a pty can be given to it safely

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a pty to another UID needs root")


@pytest.fixture
def pty():
    """(master fd, slave path) of a fresh pty, the slave owned by NOBODY_UID."""
    master, slave = os.openpty()
    path = Path(os.ttyname(slave))
    os.close(slave)
    os.chown(path, NOBODY_UID, -1)
    yield master, path
    os.close(master)


def read_all(master: int) -> bytes:
    data = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


@needs_root
def test_the_users_terminals_are_found_by_pty_ownership(pty):
    _, path = pty
    assert path in user_terminals(NOBODY_UID)
    assert path not in user_terminals(NOBODY_UID + 1)


@needs_root
def test_a_line_reaches_the_terminal(pty):
    master, path = pty
    assert write_to_terminal(path, NOBODY_UID, "leftover on n1: ending 1 process(es) of yours") is None
    assert b"leftover on n1: ending 1 process(es) of yours" in read_all(master).replace(b"\r", b"")


@needs_root
def test_a_terminal_whose_output_does_not_drain_is_given_up_at_once(pty):
    """Nobody reads the master side: the pty's buffer fills, and the write
    fails with EAGAIN instead of waiting for a reader that never comes."""
    master, path = pty
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        refused = 0
        while refused < 3:  # the line discipline moves data on a moment later: full means full three times running
            try:
                os.write(fd, b"x" * 4096)
                refused = 0
            except BlockingIOError:
                refused += 1
                time.sleep(0.05)
    finally:
        os.close(fd)
    started = time.monotonic()
    assert write_to_terminal(path, NOBODY_UID, "hello") == "its output is not draining (stopped or full)"
    assert time.monotonic() - started < 1


@needs_root
def test_a_terminal_that_is_no_longer_the_users_is_not_written(pty):
    master, path = pty
    assert write_to_terminal(path, NOBODY_UID + 1, "not for you") == "no longer the user's terminal"
    assert b"not for you" not in read_all(master)


def test_a_terminal_that_is_gone_is_a_logged_failure(tmp_path):
    assert write_to_terminal(tmp_path / "99999", NOBODY_UID, "hello") == "No such file or directory"


def test_the_message_says_what_ends_why_and_when():
    text = terminal_message("n1", [(101, "python3"), (102, "sleep")], "no-job-on-node, no job here", 8)
    assert text == ("leftover on n1: ending 2 process(es) of yours, pid 101 (python3), 102 (sleep): "
                    "no-job-on-node, no job here. SIGTERM now, SIGKILL in 8s if still running.")
    many = terminal_message("n1", [(pid, "p") for pid in range(20)], "why", 8)
    assert "7 (p) and 12 more:" in many


def command(directory: Path, body: str, mode: int = 0o755) -> Path:
    path = directory / "notify"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


DOCUMENT = json.dumps({"targets": [{"pid": 1, "user": "bob"}]})


def test_the_command_reads_the_document_on_stdin(tmp_path):
    got = tmp_path / "got"
    assert run_notify_command(command(tmp_path, f"cat > {got}"), DOCUMENT, 5) is None
    assert json.loads(got.read_text()) == json.loads(DOCUMENT)


def test_a_failing_command_is_reported(tmp_path):
    assert run_notify_command(command(tmp_path, "exit 3"), DOCUMENT, 5).endswith("exited 3")
    assert "killed by signal 9" in run_notify_command(command(tmp_path, "kill -9 $$"), DOCUMENT, 5)


def test_a_command_that_never_reads_stdin_does_not_hold_the_run(tmp_path):
    assert run_notify_command(command(tmp_path, "exit 0"), "x" * (4 << 20), 5) is None


def test_a_hanging_command_is_killed_with_its_whole_process_group_at_the_bound(tmp_path):
    grandchild = tmp_path / "grandchild"
    body = f"sleep 600 & echo $! > {grandchild}; sleep 600"
    started = time.monotonic()
    problem = run_notify_command(command(tmp_path, body), DOCUMENT, 1)
    assert problem.endswith("did not finish within 1s; its process group was killed")
    assert time.monotonic() - started < 5
    pid = int(grandchild.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and b") Z" not in Path(f"/proc/{pid}/stat").read_bytes():
        assert time.monotonic() < deadline, "the command's background child survived"
        time.sleep(0.05)


def test_a_command_others_could_have_replaced_is_not_run(tmp_path):
    ran = tmp_path / "ran"
    path = command(tmp_path, f"touch {ran}", mode=0o757)
    assert "not running" in (said := run_notify_command(path, DOCUMENT, 5)) and "writable by group or others" in said
    assert not ran.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o757


def test_a_command_that_is_missing_is_reported(tmp_path):
    assert "No such file or directory" in run_notify_command(tmp_path / "absent", DOCUMENT, 5)


def test_a_command_in_a_directory_others_can_write_is_not_run(tmp_path):
    """Anyone could swap the file in such a directory: the whole path is checked, as for squeue."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    ran = tmp_path / "ran"
    said = run_notify_command(command(shared, f"touch {ran}"), DOCUMENT, 5)
    assert "not running" in said and f"directory {shared} on its path is writable by group or others" in said
    assert not ran.exists()

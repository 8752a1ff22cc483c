import socket
import threading

from leftover.log import MAX_NAME, printable


def test_plain_names_are_unchanged():
    assert printable("python3") == "python3"


def test_control_characters_cannot_forge_a_log_line():
    shown = printable("x\n\x1b[31mroot\r")
    assert "\n" not in shown and "\x1b" not in shown and "\r" not in shown
    assert shown == "x\\x0a\\x1b[31mroot\\x0d"


def test_backslash_is_escaped_so_escapes_stay_unambiguous():
    assert printable("a\\x0a") == "a\\\\x0a"


def test_undecodable_bytes_are_shown_as_bytes():
    assert printable("py\udcff") == "py\\xff"


def test_length_is_bounded():
    shown = printable("A" * 1000)
    assert len(shown) == MAX_NAME + 3 and shown.endswith("...")


def test_unicode_letters_stay_but_invisible_ones_are_escaped():
    assert printable("ñ\u202e") == "ñ\\u202e"


def test_unreachable_syslog_socket_sends_every_line_to_stderr(tmp_path, capsys):
    from leftover.log import Log

    log = Log(to_stderr=False, dev_log=str(tmp_path / "no-such-socket"))
    log.info("sent SIGTERM to pid=1")
    err = capsys.readouterr().err
    assert "no syslog at" in err and "logging to stderr instead" in err
    assert "leftover: info: sent SIGTERM to pid=1" in err


class StuckSyslog:
    """syslog(3) as it behaves when the receiver stops reading: the first call
    blocks (here until the test ends), and records every line it was given."""

    def __init__(self):
        self.given = []
        self.release = threading.Event()

    def __call__(self, priority, line):
        self.given.append(line)
        self.release.wait(60)


def test_a_stuck_syslog_is_left_after_a_bounded_wait_said_once_and_every_line_goes_to_stderr(capsys, monkeypatch, tmp_path):
    from leftover import log as log_module

    monkeypatch.setattr(log_module, "SYSLOG_WAIT_SECONDS", 0.2)
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "log"))  # for the probe at start-up only: syslog(3) is the stand-in below
    stuck = StuckSyslog()
    try:
        log = log_module.Log(to_stderr=False, dev_log=str(tmp_path / "log"), deliver=stuck)
        log.info("sent SIGTERM to pid=1")
        log.info("sent SIGTERM to pid=2")
        log.warning("pid 3 left alone")
    finally:
        stuck.release.set()
        receiver.close()
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "accepted no line within 0.2s" in line] == [
        f"leftover: warning: syslog at {tmp_path}/log accepted no line within 0.2s (its reader is stuck or its queue full); "
        "logging to stderr only for the rest of this run"
    ]
    assert "leftover: info: sent SIGTERM to pid=1" in err and "leftover: info: sent SIGTERM to pid=2" in err
    assert "leftover: warning: pid 3 left alone" in err
    assert stuck.given[-1] == "sent SIGTERM to pid=1"  # not tried again behind the stuck call


class Recorded:
    def __init__(self):
        self.lines = []

    def __call__(self, priority, line):
        self.lines.append((priority, line))


def test_records_of_what_was_done_reach_syslog_whatever_debuglevel_says():
    import syslog

    from leftover.log import Log

    sent = Recorded()
    log = Log(to_stderr=False, deliver=sent)
    sent.lines.clear()
    log.set_level("critical")
    log.info("scanned 3 processes")
    log.error("an error below critical")
    log.record("info", "sent SIGTERM to pid=1")
    log.record("error", "bailed out, nothing signalled: why")
    assert sent.lines == [(syslog.LOG_INFO, "sent SIGTERM to pid=1"), (syslog.LOG_ERR, "bailed out, nothing signalled: why")]

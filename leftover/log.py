"""Where leftover says what it did: syslog (ident leftover, facility daemon), and
stderr when that is a terminal or --verbose asks for it.

Every message is one line. Text that users control (process names) goes
through printable() first, so it can neither forge a log line nor flood one.
Logging must never stop or stall a run: syslog(3) blocks for as long as the
receiver does not read (journald or rsyslog hung, its queue full), so it runs
in a thread of its own and is waited for at most SYSLOG_WAIT_SECONDS; after
that, every line goes to stderr (which cron mails), and a note says so once.
Lines that record what was done (signals sent, a bail-out) are sent whatever
debuglevel says: they are the account an administrator needs afterwards.
"""

import queue
import socket
import sys
import syslog
import threading
from collections.abc import Callable

MAX_NAME = 64
SYSLOG_WAIT_SECONDS = 1.0

_PRIORITIES = {
    "debug": syslog.LOG_DEBUG,
    "info": syslog.LOG_INFO,
    "warning": syslog.LOG_WARNING,
    "error": syslog.LOG_ERR,
    "critical": syslog.LOG_CRIT,
}


def printable(text: str, limit: int = MAX_NAME) -> str:
    """text with every control, non-printable or undecodable character written
    as an escape, cut to about limit characters with a marker."""
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    escaped = "".join(out)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


class Log:
    def __init__(self, to_stderr: bool, dev_log: str = "/dev/log", deliver: Callable[[int, str], None] | None = None) -> None:
        self.to_stderr = to_stderr
        self.level = "info"
        self.dev_log = dev_log
        syslog.openlog("leftover", syslog.LOG_PID, syslog.LOG_DAEMON)
        self.syslog: _Sender | None = _Sender(deliver or syslog.syslog)
        problem = _unreachable(dev_log)
        if problem:
            # syslog(3) drops lines it cannot deliver without a word: say so,
            # and keep every line on stderr, which cron mails to root.
            self.to_stderr = True
            self.warning(f"no syslog at {dev_log} ({problem}); logging to stderr instead")

    def set_level(self, level: str) -> None:
        self.level = level

    def debug(self, message: str) -> None:
        self._emit("debug", message)

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warning(self, message: str) -> None:
        self._emit("warning", message)

    def error(self, message: str) -> None:
        self._emit("error", message)

    def record(self, level: str, message: str) -> None:
        """A line of the record of what was done (a signal, a bail-out): sent
        at its own priority, whatever debuglevel says."""
        self._emit(level, message, always=True)

    def _emit(self, level: str, message: str, always: bool = False) -> None:
        """Never raises, never waits for syslog longer than SYSLOG_WAIT_SECONDS:
        a log that cannot be written must not stop a run half-way through its
        kill phase."""
        if not always and _PRIORITIES[level] > _PRIORITIES[self.level]:
            return
        line = " ".join(message.split("\n")).encode("utf-8", "backslashreplace").decode("utf-8")
        if self.syslog is not None:
            try:
                delivered = self.syslog.send(_PRIORITIES[level], line, SYSLOG_WAIT_SECONDS)
            except Exception:  # noqa: BLE001 - whatever syslog(3) raised, the line goes to stderr
                self.to_stderr = True
            else:
                if not delivered:
                    self.syslog = None  # its thread may hold syslog(3)'s lock for ever
                    self.to_stderr = True
                    self._print(
                        "warning",
                        f"syslog at {self.dev_log} accepted no line within {SYSLOG_WAIT_SECONDS:g}s (its reader is stuck "
                        "or its queue full); logging to stderr only for the rest of this run",
                    )
        if self.to_stderr:
            self._print(level, line)

    def _print(self, level: str, line: str) -> None:
        try:
            print(f"leftover: {level}: {line}", file=sys.stderr, flush=True)
        except (OSError, ValueError, AttributeError):
            self.to_stderr = False


class _Sender:
    """syslog(3) in a thread of its own: a receiver that stops reading blocks
    that thread, never the run. Started with the first line."""

    def __init__(self, deliver: Callable[[int, str], None]) -> None:
        self.deliver = deliver
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None

    def send(self, priority: int, line: str, seconds: float) -> bool:
        """Whether line was handed to syslog(3) within seconds; raises what it raised."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._deliver_each, name="leftover-syslog", daemon=True)
            self.thread.start()
        done, failure = threading.Event(), []
        self.lines.put((priority, line, done, failure))
        if not done.wait(seconds):
            return False
        if failure:
            raise failure[0]
        return True

    def _deliver_each(self) -> None:
        while True:
            priority, line, done, failure = self.lines.get()
            try:
                self.deliver(priority, line)
            except Exception as error:  # noqa: BLE001 - handed back to the caller, which never raises
                failure.append(error)
            done.set()


def _unreachable(dev_log: str) -> str | None:
    """Why a datagram cannot be sent to the syslog socket, or None if it can."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(dev_log)
    except OSError as error:
        return error.strerror or str(error)
    finally:
        probe.close()
    return None

"""Where leftover says what it did: syslog (ident leftover, facility daemon), and
stderr when that is a terminal or --verbose asks for it.

Every message is one line. Text that users control (process names) goes
through printable() first, so it can neither forge a log line nor flood one.
"""

import socket
import sys
import syslog

MAX_NAME = 64

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
    def __init__(self, to_stderr: bool, dev_log: str = "/dev/log") -> None:
        self.to_stderr = to_stderr
        self.level = "info"
        syslog.openlog("leftover", syslog.LOG_PID, syslog.LOG_DAEMON)
        self.set_level("info")
        problem = _unreachable(dev_log)
        if problem:
            # syslog(3) drops lines it cannot deliver without a word: say so,
            # and keep every line on stderr, which cron mails to root.
            self.to_stderr = True
            self.warning(f"no syslog at {dev_log} ({problem}); logging to stderr instead")

    def set_level(self, level: str) -> None:
        self.level = level
        syslog.setlogmask(syslog.LOG_UPTO(_PRIORITIES[level]))

    def debug(self, message: str) -> None:
        self._emit("debug", message)

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warning(self, message: str) -> None:
        self._emit("warning", message)

    def error(self, message: str) -> None:
        self._emit("error", message)

    def _emit(self, level: str, message: str) -> None:
        """Never raises: a log that cannot be written must not stop a run
        half-way through its kill phase."""
        line = " ".join(message.split("\n")).encode("utf-8", "backslashreplace").decode("utf-8")
        try:
            syslog.syslog(_PRIORITIES[level], line)
        except (OSError, ValueError):
            self.to_stderr = True
        if self.to_stderr and _PRIORITIES[level] <= _PRIORITIES[self.level]:
            try:
                print(f"leftover: {level}: {line}", file=sys.stderr, flush=True)
            except (OSError, ValueError, AttributeError):
                self.to_stderr = False


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

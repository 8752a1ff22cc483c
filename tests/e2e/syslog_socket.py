"""A real /dev/log: a datagram socket the tests bind, collecting what leftover
sends through syslog(3)."""

import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEV_LOG = Path("/dev/log")
_LINE = re.compile(r"<(?P<pri>\d+)>(?:\w{3} [ \d]\d \d\d:\d\d:\d\d )?(?P<ident>[^\[:]+)\[(?P<pid>\d+)\]: (?P<text>.*)", re.S)


@dataclass(frozen=True)
class SyslogLine:
    facility: int
    severity: int
    ident: str
    pid: int
    text: str


def stale_socket(path: Path) -> bool:
    """A socket file nobody listens on: what a test session killed before its
    collector closed leaves behind."""
    if not path.is_socket():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False


class SyslogCollector:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(DEV_LOG))
        DEV_LOG.chmod(0o666)
        self.lines: list[SyslogLine] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            match = _LINE.match(data.decode("utf-8", "replace").rstrip("\n\0"))
            if match:
                pri = int(match["pri"])
                line = SyslogLine(pri >> 3, pri & 7, match["ident"], int(match["pid"]), match["text"])
                with self.lock:
                    self.lines.append(line)

    def since(self, mark: int, settle: float = 0.3) -> list[SyslogLine]:
        """Lines received after mark(), once late datagrams had time to arrive."""
        time.sleep(settle)
        with self.lock:
            return self.lines[mark:]

    def texts_since(self, mark: int, ident: str = "leftover") -> list[str]:
        return [line.text for line in self.since(mark) if line.ident == ident]

    def mark(self) -> int:
        with self.lock:
            return len(self.lines)

    def close(self) -> None:
        self.sock.close()
        DEV_LOG.unlink(missing_ok=True)


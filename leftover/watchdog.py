"""The last guard on how long a run takes.

The run stops itself at its bound with SIGALRM (leftover.interrupt), which
reaches the main thread only between Python steps. A main thread held where no
handler can run (a stat on a file system that hangs, in a killable kernel wait)
is ended by this module instead: HARD_MARGIN_SECONDS after the bound, a thread
says so in one line (stderr, and a datagram to /dev/log that is never waited
for) and ends the process with os._exit, which releases the lock.

It never signals any other process and never waits on anything but its timer.
"""

import os
import socket
import syslog
import threading

HARD_MARGIN_SECONDS = 5.0
DEV_LOG = "/dev/log"


class Watchdog:
    def __init__(self, seconds: float, exit_code, dev_log: str = DEV_LOG) -> None:
        """exit_code() is called at the end to choose the status (whether the
        kill phase had begun)."""
        self.seconds = seconds
        self.exit_code = exit_code
        self.dev_log = dev_log
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="leftover-watchdog", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()

    def _watch(self) -> None:
        if self.done.wait(self.seconds):
            return
        code = self.exit_code()
        line = (f"still running {HARD_MARGIN_SECONDS:g}s past its time bound, held where it cannot be stopped; "
                f"exiting with status {code} (the lines above say what was signalled)")
        try:
            os.write(2, f"leftover: error: {line}\n".encode())
        except OSError:
            pass
        self._send_to_syslog(line)
        os._exit(code)

    def _send_to_syslog(self, line: str) -> None:
        message = f"<{syslog.LOG_DAEMON | syslog.LOG_ERR}>leftover[{os.getpid()}]: {line}".encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(message, self.dev_log)
        except OSError:
            pass

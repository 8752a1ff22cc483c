"""SIGTERM, SIGINT and SIGHUP sent to leftover itself become an ordinary
exception, Interrupted, so that a run stopped half-way can still log what it
did and what it did not do. Nothing else here: no logging, no signalling."""

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(Exception):
    """leftover was asked to stop."""

    def __init__(self, signum: int) -> None:
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


@contextmanager
def stop_signals_raise():
    """While inside, the first stop signal raises Interrupted in the main
    thread; later ones are ignored, so that the account of what was done is
    not cut short. A signal the caller already ignored (nohup) stays ignored."""
    stopping = []

    def handler(signum: int, _frame) -> None:
        if not stopping:
            stopping.append(signum)
            raise Interrupted(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.getsignal(signum)
        if previous[signum] is not signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

"""SIGTERM, SIGINT and SIGHUP sent to leftover itself become an ordinary
exception, Interrupted, so that a run stopped half-way can still log what it
did and what it did not do. Nothing else here: no logging, no signalling."""

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(Exception):
    """leftover was asked to stop. outcomes, when the kill phase had begun,
    says what became of each target."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.outcomes: list = []


def _raise(signum: int, _frame) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_signals_raise():
    """While inside, the stop signals raise Interrupted in the main thread."""
    previous = {signum: signal.signal(signum, _raise) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

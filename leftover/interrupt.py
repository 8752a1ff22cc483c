"""SIGTERM, SIGINT and SIGHUP sent to leftover itself, and the run's own time
bound (SIGALRM, armed with arm_time_bound), become an ordinary exception,
Interrupted, so that a run stopped half-way can still log what it did and what
it did not do. Nothing else here: no logging, no signalling."""

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
TIME_BOUND_SIGNAL = signal.SIGALRM


class Interrupted(Exception):
    """leftover was asked to stop, or ran past its time bound."""

    def __init__(self, signum: int) -> None:
        self.name = "its time bound" if signum == TIME_BOUND_SIGNAL else signal.Signals(signum).name
        super().__init__(self.name)


def arm_time_bound(seconds: float) -> None:
    """Raise Interrupted in the main thread once seconds have passed (only
    inside stop_signals_raise, which disarms it on the way out)."""
    signal.setitimer(signal.ITIMER_REAL, seconds)


@contextmanager
def stop_signals_raise():
    """While inside, the first stop signal (or the time bound) raises
    Interrupted in the main thread; later ones are ignored, so that the account
    of what was done is not cut short. A signal the caller already ignored
    (nohup) stays ignored."""
    stopping = []

    def handler(signum: int, _frame) -> None:
        if not stopping:
            stopping.append(signum)
            raise Interrupted(signum)

    previous = {}
    for signum in (*STOP_SIGNALS, TIME_BOUND_SIGNAL):
        previous[signum] = signal.getsignal(signum)
        if previous[signum] is not signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, old in previous.items():
            signal.signal(signum, old)

"""The stop signals, SIGTERM, SIGINT and SIGHUP (a closed terminal), from the first instant of
the `streamlstm` command to the handler of the command that runs. SIGHUP ignored when the
command started stays ignored: `nohup` asked for that.

Loading the CLI (numpy, numba, the detector) takes ~0.6 s. A supervisor's SIGTERM in that
window used to kill the process with the default action (status -15), although nothing was
lost. `catch_early` (called by the console script before importing anything else) records
such a signal instead; `take_over` hands it to the command's own handler once that is
installed, so `streamlstm run` then stops cleanly (checkpoint, exit 0). Commands without a
clean stop call `release`, which restores the default behaviour and re-delivers a recorded
signal. `score` runs the steps before it scores, and its plot, in `raising`, where a signal
raises `Stopped` (even in a read that waits on a pipe), so that it can stop with one line;
between its steps signals are recorded, for the next step's handler.
"""

import signal
from contextlib import contextmanager

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_previous: dict = {}  # handlers `catch_early` replaced; empty when it was not called
_arrived: list[int] = []  # signals recorded since `catch_early`


def _stops() -> list[signal.Signals]:
    """The stop signals to handle now: all but an ignored SIGHUP."""
    return [s for s in _SIGNALS if s != signal.SIGHUP or signal.getsignal(s) is not signal.SIG_IGN]


def _record(signum, frame) -> None:
    _arrived.append(signum)


def catch_early() -> None:
    """Record the stop signals until a command takes them over or releases them."""
    _previous.update({s: signal.signal(s, _record) for s in _stops()})


def take_over(handler) -> dict:
    """Install `handler` for the stop signals and pass it any signal recorded before;
    returns the handlers it replaced."""
    previous = {s: signal.signal(s, handler) for s in _stops()}
    while _arrived:
        handler(_arrived.pop(0), None)
    return previous


def release() -> None:
    """Give the stop signals their previous handlers back, delivering a recorded signal."""
    for s, handler in _previous.items():
        signal.signal(s, handler)
    _previous.clear()
    while _arrived:
        signal.raise_signal(_arrived.pop(0))


class Stopped(BaseException):
    """A stop signal inside `raising`; a BaseException, as KeyboardInterrupt, so that no
    `except Exception` takes it for an error of its own."""

    def __init__(self, signum: int):
        self.signal = signal.Signals(signum)
        super().__init__(self.signal.name)


def _stop(signum, frame) -> None:
    raise Stopped(signum)


@contextmanager
def raising():
    """Inside the block the stop signals, a recorded one first, raise `Stopped`; after it
    they have the handlers they had before the block: recorded again where `catch_early`
    caught them, so that one arriving between two steps (`score`'s scoring and its plot)
    goes to the next step's handler instead of the default action."""
    previous = {s: signal.getsignal(s) for s in _stops()}
    try:
        take_over(_stop)
        yield
    finally:
        _arrived.clear()  # a second signal recorded before the block asked for the same stop
        for s, handler in previous.items():
            signal.signal(s, handler)

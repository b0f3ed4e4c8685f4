"""The `streamlstm` command's entry point: catch SIGTERM and SIGINT before the slow imports.

Loading the CLI (numpy, numba, the detector) takes ~0.6 s. A supervisor's SIGTERM in that
window used to kill the process with the default action (status -15), although nothing was
lost. `main` records such a signal instead, before importing anything else; `take_over`
hands it to the command's own handler once that is installed, so `streamlstm run` then
stops cleanly (checkpoint, exit 0). Commands without a clean stop call `release`, which
restores the default behaviour and re-delivers a recorded signal.
"""

import signal

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_previous: dict = {}  # handlers `main` replaced; empty when not started through `main`
_arrived: list[int] = []  # signals recorded since `main` started


def _record(signum, frame) -> None:
    _arrived.append(signum)


def main() -> None:
    """The console script: record early signals, then run the CLI."""
    _previous.update({s: signal.signal(s, _record) for s in _SIGNALS})
    from .cli import main as cli

    cli()


def take_over(handler) -> dict:
    """Install `handler` for SIGTERM and SIGINT and pass it any signal recorded before;
    returns the handlers it replaced."""
    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    while _arrived:
        handler(_arrived.pop(0), None)
    return previous


def release() -> None:
    """Give SIGTERM and SIGINT their previous handlers back, delivering a recorded signal."""
    for s, handler in _previous.items():
        signal.signal(s, handler)
    _previous.clear()
    while _arrived:
        signal.raise_signal(_arrived.pop(0))

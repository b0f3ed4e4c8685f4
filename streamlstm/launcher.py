"""The `streamlstm` command's entry point: catch the stop signals (SIGTERM, SIGINT, SIGHUP)
before the slow imports (see signals.py), then run the CLI."""

from . import signals


def main() -> None:
    """The console script."""
    signals.catch_early()
    from .cli import main as cli

    cli()

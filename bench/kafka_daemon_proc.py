"""Run the Kafka daemon for bench_kafka.py.

    python bench/kafka_daemon_proc.py CONFIG.yaml [--output-mode batch|event]

As `streamlstm run --source kafka` does (SIGTERM/SIGINT set the stop event, the exit status
is the daemon's), plus `--output-mode` (overrides `kafka.output_mode`). Logs at INFO to stderr, including the daemon's
per-stage time breakdown at every checkpoint and at shutdown. (The tests run the CLI itself,
`python -m streamlstm.cli run` with `source: kafka`; this script is for what the CLI lacks.)
"""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamlstm.config import load_config  # noqa: E402
from streamlstm.kafka.daemon import KafkaDaemon  # noqa: E402

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--output-mode", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamlstm.kafka").setLevel(logging.DEBUG)  # stage times at every checkpoint
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    daemon = KafkaDaemon(load_config(args.config), stop, output_mode=args.output_mode)
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())

"""Run the Kafka daemon in a subprocess for tests: ``python tests/kafka_daemon_proc.py CONFIG.yaml``.

SIGTERM/SIGINT set the stop event; the exit status is run_kafka's. Group joins on the test
broker take session_timeout_ms / 2, so a short session timeout is used here.
(The lead may switch the tests to ``streamlstm run --source kafka`` later.)
"""

import logging
import signal
import sys
import threading

from streamlstm.config import load_config
from streamlstm.kafka.daemon import run_kafka

CLIENT_OPTIONS = {"consumer": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}}


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(sys.argv[1])
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    return run_kafka(config, stop, client_options=CLIENT_OPTIONS)


if __name__ == "__main__":
    sys.exit(main())

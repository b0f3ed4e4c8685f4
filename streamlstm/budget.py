"""`StateBudget`: the process-wide limits on model state, enforced by LRU eviction.

A process may hold many models (one `MultiStreamDetector` per model group and feature set,
and in the Kafka daemon one `DetectorPool` per assigned partition). One budget, shared by
all of them, bounds

* the streams held, at most `max_streams`;
* the bytes of state allocated, at most `max_state_bytes`: every model's slot tables
  (held streams, free slots and room to grow) and fixed buffers, plus PY_BYTES_PER_MODEL
  per model and PY_BYTES_PER_STREAM per stream of bookkeeping;
* the models held, at most `max_models`: an event that would need one more is rejected
  (`too_many_models`), since its feature set is most likely a mistake or an attack.

When a micro-batch brings new streams beyond these limits, the least recently seen streams
of any model are evicted (as if never seen: one that returns starts again with warm-up),
and a model left without streams is dropped. Streams of the micro-batch itself are never
evicted for it, so one micro-batch with more new streams than the limits allow exceeds them
until the next. A model grows its tables by doubling while the budget has room, and only
by what it needs when it has not; a stream evicted for bytes gives its slot back (the
model's tables shrink, moving at most as many rows as were evicted), one evicted for the
stream cap leaves its slot to the model's next new stream.

Planning happens when a micro-batch is routed (the main thread) and eviction when it is
advanced (the kernel thread, in routing order), so the budget's view is the state after
every routed micro-batch.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .multistream import MultiStreamDetector

__all__ = ["PY_BYTES_PER_MODEL", "PY_BYTES_PER_STREAM", "Model", "StateBudget"]

log = logging.getLogger("streamlstm")

# Python bookkeeping per held stream, measured with tracemalloc over 100,000 streams: the
# budget's ordered-dict entry and key, the detector's StreamTable entry, the parser's
# per-stream memory and the stream id itself (docs/operations.md).
PY_BYTES_PER_STREAM = 560
# Memory a model costs beyond its tables' data, measured as RSS over 1,000 one-stream
# models: the detector's Python objects, array headers and the allocator's overhead on
# its ~30 small arrays (docs/operations.md).
PY_BYTES_PER_MODEL = 24 * 1024


@dataclass(eq=False)
class Model:
    """One detector as the budget sees it, after every routed micro-batch.

    A new model's detector is built where its first events are advanced (`detector()`),
    after the evictions that make room for it: built when routed, a flood of new models
    would hold its memory beside that of the streams evicted for it."""

    owner: Any  # the DetectorPool holding it
    key: tuple[str, tuple[str, ...]]  # (group, features) in the owner
    row_bytes: int
    fixed_bytes: int
    det: MultiStreamDetector | None = None
    build: Callable[[], MultiStreamDetector] | None = None  # makes `det` when there is none
    live: int = 0  # streams held
    capacity: int = 0  # slots allocated

    @property
    def bytes(self) -> int:
        return self.fixed_bytes + self.capacity * self.row_bytes

    def detector(self) -> MultiStreamDetector:
        if self.det is None:
            self.det = self.build()
        return self.det


class StateBudget:
    def __init__(self, max_streams: int, max_state_bytes: int, max_models: int):
        self.max_streams = max_streams
        self.max_state_bytes = max_state_bytes
        self.max_models = max_models
        # (owner, stream, features) -> its Model, least recently seen first
        self.lru: OrderedDict[tuple[Any, str, tuple[str, ...]], Model] = OrderedDict()
        self.models: set[Model] = set()
        self.bytes = 0  # allocated: sum of Model.bytes + PY_BYTES_PER_STREAM per stream
        self.evictions: Counter[str] = Counter()  # by reason: max_streams, max_state_bytes
        # Changes planned by `settle` that the detectors have not seen yet: the streams to
        # evict from each model, and its capacity (0: dropped, tables freed). The next
        # micro-batch to be advanced applies them first (or a snapshot does). A dropped
        # model's tables go then, not when the last micro-batch that used it is written:
        # that would hold its memory beside its successors'.
        self.pending: dict[Model, list[str]] = {}

    def take_pending(self) -> list[tuple[Model, list[str], int]]:
        """(model, streams to evict, capacity to resize to) of every planned change."""
        pending, self.pending = self.pending, {}
        return [(model, streams, model.capacity) for model, streams in pending.items()]

    def add_model(self, model: Model) -> None:
        self.models.add(model)
        self.bytes += model.bytes

    def drop_model(self, model: Model) -> None:
        self.models.discard(model)
        self.bytes -= model.bytes + PY_BYTES_PER_STREAM * model.live
        model.capacity = 0
        self.pending.setdefault(model, [])
        model.owner.forget(model)

    def release(self, owner: Any) -> None:
        """Forget every stream and model of `owner` (a pool whose state goes elsewhere)."""
        for key in [k for k in self.lru if k[0] is owner]:
            del self.lru[key]
        for model in [m for m in self.models if m.owner is owner]:
            self.models.discard(model)
            self.bytes -= model.bytes + PY_BYTES_PER_STREAM * model.live
            self.pending.pop(model, None)

    def add_stream(self, key: tuple[Any, str, tuple[str, ...]], model: Model) -> None:
        """Hold a new stream `key` (owner, stream id, features) of `model`, as the most
        recently seen; `lru.move_to_end(key)` marks a held one seen (the pool does it per
        event)."""
        self.lru[key] = model
        model.live += 1
        self.bytes += PY_BYTES_PER_STREAM

    def settle(self, touched: int, growing: list[Model]) -> None:
        """Evict least recently seen streams until the limits hold again, sparing the last
        `touched` (the micro-batch's own), counting the slots that the models in `growing`
        lack for their streams; then grow those models, by doubling where the budget has
        room. A stream evicted for bytes gives its slot back (its model shrinks to fit),
        unless its model's new streams take the slot. Changes are queued in `pending`."""
        lru = self.lru
        lacking = {m for m in growing if m.live > m.capacity}
        need = sum((m.live - m.capacity) * m.row_bytes for m in lacking)
        while len(lru) > touched and (len(lru) > self.max_streams or self.bytes + need > self.max_state_bytes):
            reason = "max_streams" if len(lru) > self.max_streams else "max_state_bytes"
            (_, stream, _), model = lru.popitem(last=False)
            if not self.evictions:
                log.warning("state limits reached (%d streams, %d bytes; max_streams %d, max_state_bytes %d): "
                            "evicting the least recently seen streams, which start over when they return",
                            len(lru) + 1, self.bytes + need, self.max_streams, self.max_state_bytes)
            self.evictions[reason] += 1
            self.pending.setdefault(model, []).append(stream)
            model.live -= 1
            self.bytes -= PY_BYTES_PER_STREAM
            if model in lacking:
                need -= model.row_bytes
                if model.live == model.capacity:
                    lacking.discard(model)
            elif model.live == 0:
                self.drop_model(model)
            elif reason == "max_state_bytes":
                self._resize(model, model.live)
        for model in lacking:
            room = (self.max_state_bytes - self.bytes) // (model.row_bytes + PY_BYTES_PER_STREAM)
            self._resize(model, max(model.live, min(2 * model.capacity, model.capacity + room)))
            self.pending.setdefault(model, [])

    def _resize(self, model: Model, capacity: int) -> None:
        self.bytes += (capacity - model.capacity) * model.row_bytes
        model.capacity = capacity

    @property
    def n_streams(self) -> int:
        return len(self.lru)

"""`StateBudget`: the process-wide limits on model state, enforced by LRU eviction.

A process may hold many models (one `MultiStreamDetector` per model group and feature set,
and in the Kafka daemon one `DetectorPool` per assigned partition). One budget, shared by
all of them, bounds

* the streams held, at most `max_streams`;
* the bytes of state allocated, at most `max_state_bytes`: every model's slot tables
  (held streams, free slots and room to grow) and fixed buffers, plus PY_BYTES_PER_STREAM
  of bookkeeping per stream;
* the models held, at most `max_models`: an event that would need one more is rejected
  (`too_many_models`), since its feature set is most likely a mistake or an attack.

When a micro-batch brings new streams beyond these limits, the least recently seen streams
of any model are evicted (as if never seen: one that returns starts again with warm-up),
and a model left without streams is dropped. Streams of the micro-batch itself are never
evicted for it, so one micro-batch with more new streams than the limits allow exceeds them
until the next. A model grows its tables by doubling while the budget has room, and only
by what it needs when it has not. Its allocation is not given back while it holds any
stream; its free slots take its next new streams.

Planning happens when a micro-batch is routed (the main thread) and eviction when it is
advanced (the kernel thread, in routing order), so the budget's view is the state after
every routed micro-batch.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from .multistream import MultiStreamDetector

__all__ = ["PY_BYTES_PER_STREAM", "Model", "StateBudget"]

log = logging.getLogger("streamlstm")

# Python bookkeeping per held stream, measured with tracemalloc over 100,000 streams: the
# budget's and the detector's ordered-dict entries, the parser's per-stream memory and the
# stream id itself (docs/operations.md).
PY_BYTES_PER_STREAM = 600


@dataclass(eq=False)
class Model:
    """One detector as the budget sees it, after every routed micro-batch."""

    det: MultiStreamDetector
    owner: Any  # the DetectorPool holding it
    key: tuple[str, tuple[str, ...]]  # (group, features) in the owner
    row_bytes: int
    fixed_bytes: int
    live: int = 0  # streams held
    capacity: int = 0  # slots allocated

    @property
    def bytes(self) -> int:
        return self.fixed_bytes + self.capacity * self.row_bytes


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
        # Streams evicted by `settle` whose detectors still hold them: the next micro-batch
        # to be advanced (or a snapshot) evicts them first.
        self.pending: dict[MultiStreamDetector, list[str]] = {}

    def take_pending(self) -> list[tuple[MultiStreamDetector, list[str]]]:
        pending, self.pending = self.pending, {}
        return list(pending.items())

    def add_model(self, model: Model) -> None:
        self.models.add(model)
        self.bytes += model.bytes

    def drop_model(self, model: Model) -> None:
        self.models.discard(model)
        self.bytes -= model.bytes + PY_BYTES_PER_STREAM * model.live
        self.pending.pop(model.det, None)
        model.owner.forget(model)

    def release(self, owner: Any) -> None:
        """Forget every stream and model of `owner` (a pool whose state goes elsewhere)."""
        for key in [k for k in self.lru if k[0] is owner]:
            del self.lru[key]
        for model in [m for m in self.models if m.owner is owner]:
            self.models.discard(model)
            self.bytes -= model.bytes + PY_BYTES_PER_STREAM * model.live
            self.pending.pop(model.det, None)

    def touch(self, key: tuple[Any, str, tuple[str, ...]], model: Model) -> None:
        """Record an event of stream `key` of `model`: most recently seen from now on."""
        held = self.lru.get(key)
        if held is not None:
            self.lru.move_to_end(key)
            return
        self.lru[key] = model
        model.live += 1
        self.bytes += PY_BYTES_PER_STREAM

    def settle(self, touched: int, growing: list[Model]) -> None:
        """Evict least recently seen streams until the limits hold again, sparing the last
        `touched` (the micro-batch's own), counting the slots that the models in `growing`
        lack for their streams; then grow those models, by doubling where the budget has
        room. Evicted streams are queued in `pending`."""
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
            if model in lacking:  # its new streams take the slot
                need -= model.row_bytes
                if model.live - 1 == model.capacity:
                    lacking.discard(model)
            model.live -= 1
            self.bytes -= PY_BYTES_PER_STREAM
            if model.live == 0:
                self.drop_model(model)
            else:
                self.pending.setdefault(model.det, []).append(stream)
        for model in lacking:
            room = (self.max_state_bytes - self.bytes) // (model.row_bytes + PY_BYTES_PER_STREAM)
            self._resize(model, max(model.live, min(2 * model.capacity, model.capacity + room)))

    def _resize(self, model: Model, capacity: int) -> None:
        self.bytes += (capacity - model.capacity) * model.row_bytes
        model.capacity = capacity

    @property
    def n_streams(self) -> int:
        return len(self.lru)

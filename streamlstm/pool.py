"""`DetectorPool`: one process serving heterogeneous streams.

Streams are routed by the config's model groups (stream-id patterns) and by their feature
set: each (group, features) pair has its own `MultiStreamDetector`, so streams with
different feature sets never share a model. A micro-batch of events is split per
detector (keeping each stream's order), each detector advances its part in one call,
and results come back in input order.

`process` does all three steps. The stdin filter calls them one by one — `route`,
`advance`, then `scored` or `records.result_lines` — so that the kernel (`advance`, the
only step that reads or changes model state) can run in a worker thread while the main
thread routes the next micro-batch and writes the previous one's results.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import snapshot
from .config import Config, ModelConfig
from .events import Event
from .multistream import BatchResult, MultiStreamDetector


class Scored(NamedTuple):
    event: Event
    prediction: tuple[float, ...]  # forecast of this event, NaN where none yet
    error: float
    score: float
    is_anomaly: bool


class Part(NamedTuple):
    """The events of one micro-batch that go to one detector, in input order."""
    detector: MultiStreamDetector
    rows: list[int]          # their positions in the micro-batch
    stream_ids: list[str]
    X: np.ndarray            # (len(rows), D) values, NaN = missing
    T: np.ndarray            # (len(rows),) timestamps in epoch seconds, NaN = none given
    group: str               # the detector's model group (`Config.model_for`)


class Routed(NamedTuple):
    """A micro-batch split per detector (see `DetectorPool.route`)."""
    events: Sequence[Event]
    parts: list[Part]


def detector_for(model: ModelConfig, n_features: int, max_streams: int) -> MultiStreamDetector:
    settings = {k: getattr(model, k) for k in model.__slots__ if k not in ("weight_mode", "backend")}
    return MultiStreamDetector(n_features, weight_mode=model.weight_mode, max_streams=max_streams,
                               backend=model.backend, **settings)


def advance(routed: Routed) -> list[BatchResult]:
    """Score then learn every event of `routed`: one batched kernel call per detector.

    The only step that reads or changes model state; safe to run in another thread while
    the caller routes the next micro-batch, as long as one `advance` runs at a time.
    """
    return [part.detector.process(part.stream_ids, part.X, part.T) for part in routed.parts]


def scored(routed: Routed, results: Sequence[BatchResult]) -> list[Scored]:
    """`Scored` results in input order, from `advance(routed)`."""
    out: list[Scored | None] = [None] * len(routed.events)
    for part, res in zip(routed.parts, results):
        for n, s in scored_part(routed.events, part, res):
            out[n] = s
    return out  # type: ignore[return-value]


def scored_part(events: Sequence[Event], part: Part, res: BatchResult) -> Iterator[tuple[int, Scored]]:
    """(position in the micro-batch, `Scored`) of each event of one part."""
    columns = zip(part.rows, res.predictions.tolist(), res.errors.tolist(), res.scores.tolist(),
                  res.flags.tolist())
    for n, pred, error, score, flag in columns:
        yield n, Scored(events[n], tuple(pred), error, score, flag)


class DetectorPool:
    def __init__(self, config: Config):
        self.config = config
        self.detectors: dict[tuple[str, tuple[str, ...]], MultiStreamDetector] = {}
        # (stream, features) -> its detector: spares `model_for` (pattern matching) per event.
        # A cache, cleared when it outgrows the streams the detectors can hold.
        self._routes: dict[tuple[str, tuple[str, ...]], MultiStreamDetector] = {}

    def detector(self, stream: str, features: tuple[str, ...]) -> MultiStreamDetector:
        group, model = self.config.model_for(stream)
        key = (group, features)
        det = self.detectors.get(key)
        if det is None:
            det = self.detectors[key] = detector_for(model, len(features), self.config.max_streams)
        return det

    def route(self, events: Sequence[Event]) -> Routed:
        """Split `events` per detector, keeping each stream's order; creates detectors as needed."""
        routes = self._routes
        if len(routes) > 2 * self.config.max_streams * max(1, len(self.detectors)):
            routes.clear()
        groups: dict[MultiStreamDetector, list[int]] = {}
        for n, ev in enumerate(events):
            key = (ev.stream, ev.features)
            det = routes.get(key)
            if det is None:
                det = routes[key] = self.detector(*key)
            rows = groups.get(det)
            if rows is None:
                rows = groups[det] = []
            rows.append(n)
        nan = float("nan")
        group_of = {det: group for (group, _), det in self.detectors.items()}
        return Routed(events, [Part(det, rows, [events[n].stream for n in rows],
                                    np.array([v for n in rows for v in events[n].values],
                                             dtype=np.float64).reshape(len(rows), det.n_features),
                                    np.array([nan if events[n].ts is None else events[n].ts for n in rows]),
                                    group_of[det])
                               for det, rows in groups.items()])

    def process(self, events: Sequence[Event]) -> list[Scored]:
        """Score then learn each event; one batched call per detector."""
        routed = self.route(events)
        return scored(routed, advance(routed))

    @property
    def n_streams(self) -> int:
        return sum(d.n_streams for d in self.detectors.values())

    # ------------------------------------------------------------------ snapshots

    def to_bytes(self, extra: dict[str, Any] | None = None) -> bytes:
        """All detectors in one pickle-free snapshot; `extra` is stored as JSON alongside."""
        keys = list(self.detectors)
        arrays = {f"detector.{i}": np.frombuffer(self.detectors[k].to_bytes(), dtype=np.uint8)
                  for i, k in enumerate(keys)}
        meta = {"kind": "DetectorPool", "keys": [[g, list(f)] for g, f in keys], "extra": extra or {}}
        return snapshot.pack(arrays, meta)

    def restore(self, data: bytes) -> dict[str, Any]:
        """Replace all detectors by those in `data`; returns the snapshot's `extra`."""
        arrays, meta = snapshot.unpack(data)
        if meta.get("kind") != "DetectorPool":
            raise snapshot.SnapshotError(f"not a DetectorPool snapshot: {meta.get('kind')!r}")
        self.detectors = {
            (g, tuple(f)): MultiStreamDetector.from_bytes(arrays[f"detector.{i}"].tobytes())
            for i, (g, f) in enumerate(meta["keys"])
        }
        self._routes.clear()
        return meta["extra"]

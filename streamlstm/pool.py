"""`DetectorPool`: one process serving heterogeneous streams.

Streams are routed by the config's model groups (stream-id patterns) and by their feature
set: each (group, features) pair has its own `MultiStreamDetector`, so streams with
different feature sets never share a model. A micro-batch of events is split per
detector (keeping each stream's order), each detector advances its part in one call,
and results come back in input order.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from . import snapshot
from .config import Config, ModelConfig
from .events import Event
from .multistream import MultiStreamDetector


class Scored(NamedTuple):
    event: Event
    prediction: tuple[float, ...]  # forecast of this event, NaN where none yet
    error: float
    score: float
    is_anomaly: bool


def detector_for(model: ModelConfig, n_features: int, max_streams: int) -> MultiStreamDetector:
    settings = {k: getattr(model, k) for k in model.__slots__ if k not in ("weight_mode", "backend")}
    return MultiStreamDetector(n_features, weight_mode=model.weight_mode, max_streams=max_streams,
                               backend=model.backend, **settings)


class DetectorPool:
    def __init__(self, config: Config):
        self.config = config
        self.detectors: dict[tuple[str, tuple[str, ...]], MultiStreamDetector] = {}

    def detector(self, stream: str, features: tuple[str, ...]) -> MultiStreamDetector:
        group, model = self.config.model_for(stream)
        key = (group, features)
        det = self.detectors.get(key)
        if det is None:
            det = self.detectors[key] = detector_for(model, len(features), self.config.max_streams)
        return det

    def process(self, events: Sequence[Event]) -> list[Scored]:
        """Score then learn each event; one batched call per detector."""
        parts: dict[int, tuple[MultiStreamDetector, list[int]]] = {}
        route: dict[tuple[str, tuple[str, ...]], list[int]] = {}  # this batch's routing, per stream
        for n, ev in enumerate(events):
            key = (ev.stream, ev.features)
            rows = route.get(key)
            if rows is None:
                det = self.detector(*key)
                rows = route[key] = parts.setdefault(id(det), (det, []))[1]
            rows.append(n)
        out: list[Scored | None] = [None] * len(events)
        for det, rows in parts.values():
            X = np.array([events[n].values for n in rows], dtype=np.float64)
            res = det.process([events[n].stream for n in rows], X)
            preds = res.predictions.tolist()
            for k, n in enumerate(rows):
                out[n] = Scored(events[n], tuple(preds[k]), float(res.errors[k]), float(res.scores[k]),
                                bool(res.flags[k]))
        return out  # type: ignore[return-value]

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
        return meta["extra"]

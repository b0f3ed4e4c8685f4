"""`DetectorPool`: one process serving heterogeneous streams.

Streams are routed by the config's model groups (stream-id patterns) and by their feature
set: each (group, features) pair has its own `MultiStreamDetector`, so streams with
different feature sets never share a model. A micro-batch of events is split per
detector (keeping each stream's order), each detector advances its part in one call,
and results come back in input order.

Every pool lives within a `StateBudget` (budget.py): the process-wide limits on streams,
state bytes and models, kept by evicting the least recently seen streams of any model.

`process` does all three steps. The stdin filter calls them one by one — `route`,
`advance`, then `scored` or `records.result_lines` — so that the kernel (`advance`, the
only step that reads or changes model state) can run in a worker thread while the main
thread routes the next micro-batch and writes the previous one's results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from .budget import PY_BYTES_PER_MODEL, Model, StateBudget
from .config import DEFAULT_GROUP, Config, ModelConfig
from .engine import snapshot
from .engine.hyperparams import MAX_STREAMS
from .event import RAW_LIMIT, Event, Rejected
from .multistream import BatchResult, MultiStreamDetector

log = logging.getLogger("streamlstm")

UNBOUNDED = int(MAX_STREAMS.spec.hi)  # a pool's detectors: the budget bounds their streams


class Scored(NamedTuple):
    """One event's results (multistream.BatchResult's columns)."""
    event: Event
    prediction: tuple[float, ...]  # forecast of this event, NaN where none yet
    error: float
    score: float
    is_anomaly: bool
    alert_score: float
    regime: float
    abnormal: bool
    attribution: tuple[float, ...] = ()  # what `contributors` ranks: an alert's contributions, else the blame


class Part(NamedTuple):
    """The events of one micro-batch that go to one detector, in input order."""
    model: Model
    rows: list[int]          # their positions in the micro-batch
    stream_ids: list[str]
    X: np.ndarray            # (len(rows), D) values, NaN = missing
    T: np.ndarray            # (len(rows),) timestamps in epoch seconds, NaN = none given
    group: str               # the detector's model group (`Config.model_for`)
    score: bool = True       # False: known-good history, learnt and not scored (baseline priming)


class Routed(NamedTuple):
    """A micro-batch split per detector (see `DetectorPool.route`)."""
    events: Sequence[Event]  # the accepted events; `Part.rows` index them
    parts: list[Part]
    changes: list[tuple[Model, list[str], int]]  # to apply before the parts (see apply)
    rejected: list[Rejected]  # events no model could take (too_many_models)


def detector_for(model: ModelConfig, n_features: int, max_streams: int = UNBOUNDED) -> MultiStreamDetector:
    """A detector with `model`'s settings. In a pool its streams are bounded by the pool's
    budget, not by its own `max_streams`."""
    settings = {k: getattr(model, k) for k in model.__slots__ if k not in ("weight_mode", "backend", "threads")}
    return MultiStreamDetector(n_features, weight_mode=model.weight_mode, max_streams=max_streams,
                               backend=model.backend, threads=model.threads, **settings)


def warm_up(config: Config) -> None:
    """Compile (or load from Numba's cache) the kernels of every model `config` names: one
    known-good event through a throwaway detector of one feature each (the kernels' types do
    not depend on the number of features). The Kafka daemon does it before it joins its
    group, so that its first partitions do not wait for the compiler (with a cold cache, as
    in a fresh container, about half a minute on two cores)."""
    for model in dict.fromkeys((config.model, *(g.model for g in config.groups))):
        detector_for(model, 1, max_streams=1).process(["warm-up"], np.zeros((1, 1)), score=False)


def apply(changes: Sequence[tuple[Model, list[str], int]]) -> None:
    """Make the changes the budget planned: evict the streams, then resize the tables
    (a model dropped before its detector was built has none to change)."""
    for model, streams, capacity in changes:
        if model.det is None and capacity == 0:
            continue
        det = model.detector()
        det.evict(streams)
        det.resize(capacity)


def advance(routed: Routed) -> list[BatchResult]:
    """Make the changes to the detectors that `routed` carries (budget.py), then score and
    learn its events: one batched kernel call per detector.

    The only step that reads or changes model state; safe to run in another thread while
    the caller routes the next micro-batch, as long as one `advance` runs at a time, in
    routing order.
    """
    apply(routed.changes)
    return [part.model.detector().process(part.stream_ids, part.X, part.T, score=part.score) for part in routed.parts]


def scored(routed: Routed, results: Sequence[BatchResult]) -> list[Scored]:
    """`Scored` results in input order, from `advance(routed)`."""
    out: list[Scored | None] = [None] * len(routed.events)
    for part, res in zip(routed.parts, results):
        for n, s in scored_part(routed.events, part, res):
            out[n] = s
    return out  # type: ignore[return-value]


def scored_part(events: Sequence[Event], part: Part, res: BatchResult) -> Iterator[tuple[int, Scored]]:
    """(position in the micro-batch, `Scored`) of each event of one part."""
    attribution = np.where(res.flags[:, None], res.contributions, res.blame)
    columns = zip(part.rows, res.predictions.tolist(), res.errors.tolist(), res.scores.tolist(),
                  res.flags.tolist(), res.alert_scores.tolist(), res.regime.tolist(), res.abnormal.tolist(),
                  attribution.tolist())
    for n, pred, error, score, flag, alert, regime, abnormal, shares in columns:
        yield n, Scored(events[n], tuple(pred), error, score, flag, alert, regime, abnormal, tuple(shares))


class DetectorPool:
    """The detectors of one process (or, in the Kafka daemon, of one input partition),
    within a `StateBudget` that may be shared with other pools."""

    def __init__(self, config: Config, budget: StateBudget | None = None):
        self.config = config
        self.budget = budget or StateBudget(config.max_streams, config.max_state_bytes, config.max_models)
        self.models: dict[tuple[str, tuple[str, ...]], Model] = {}  # by (group, features)
        self._sizes: dict[tuple[str, int], tuple[int, int]] = {}  # (group, D) -> a detector's sizes

    @property
    def detectors(self) -> dict[tuple[str, tuple[str, ...]], MultiStreamDetector]:
        """The detectors built so far (see budget.Model), by (group, features)."""
        return {key: model.det for key, model in self.models.items() if model.det is not None}

    def _model(self, stream: str, features: tuple[str, ...]) -> Model | None:
        """The model of a stream new to the budget, created if needed; None when that would
        exceed max_models."""
        group, settings = self.config.model_for(stream)
        model = self.models.get((group, features))
        if model is None:
            if len(self.budget.models) >= self.budget.max_models:
                return None
            sizes = self._sizes.get((group, len(features)))
            if sizes is None:
                probe = detector_for(settings, len(features))
                sizes = self._sizes[group, len(features)] = (probe.bytes_per_stream(), probe.fixed_bytes())
            model = self._add(Model(self, (group, features), sizes[0], sizes[1] + PY_BYTES_PER_MODEL,
                                    build=partial(detector_for, settings, len(features))))
        return model

    def _add(self, model: Model) -> Model:
        self.models[model.key] = model
        self.budget.add_model(model)
        return model

    def forget(self, model: Model) -> None:
        """Drop a model the budget left without streams."""
        if self.models.get(model.key) is model:
            del self.models[model.key]

    def route(self, events: Sequence[Event], baseline: Sequence[bool] | None = None) -> Routed:
        """Split `events` per detector, keeping each stream's order; creates detectors as
        needed and plans the evictions the budget needs (see budget.py). With `baseline`,
        the events it marks are known-good history, learnt and not scored: they go into
        parts of their own, ahead of the scored ones, so a stream's baseline must come
        before its scored events."""
        budget = self.budget
        lru_get, move_to_end = budget.lru.get, budget.lru.move_to_end
        touched: set = set()
        groups: dict[tuple[Model, bool], list[int]] = {}  # by (model, scored)
        accepted: list[Event] = []
        rejected: list[Rejected] = []
        for i, ev in enumerate(events):
            key = (self, ev.stream, ev.features)
            model = lru_get(key)
            if model is not None:
                move_to_end(key)  # most recently seen
            else:
                model = self._model(ev.stream, ev.features)
                if model is None:
                    rejected.append(_too_many_models(ev, budget.max_models))
                    continue
                budget.add_stream(key, model)
            touched.add(key)
            group = (model, baseline is None or not baseline[i])
            rows = groups.get(group)
            if rows is None:
                rows = groups[group] = []
            rows.append(len(accepted))
            accepted.append(ev)
        budget.settle(len(touched), list(dict.fromkeys(m for m, _ in groups if m.live > m.capacity)))
        nan = float("nan")
        parts = [Part(m, rows, [accepted[n].stream for n in rows],
                      np.array([v for n in rows for v in accepted[n].values],
                               dtype=np.float64).reshape(len(rows), len(m.key[1])),
                      np.array([nan if accepted[n].ts is None else accepted[n].ts for n in rows]),
                      m.key[0], scored)
                 for (m, scored), rows in sorted(groups.items(), key=lambda g: g[0][1])]  # baselines first
        return Routed(accepted, parts, budget.take_pending(), rejected)

    def process(self, events: Sequence[Event]) -> list[Scored]:
        """Score then learn each accepted event; one batched call per detector."""
        routed = self.route(events)
        return scored(routed, advance(routed))

    @property
    def n_streams(self) -> int:
        return sum(d.n_streams for d in self.detectors.values())

    # ------------------------------------------------------------------ snapshots

    def to_bytes(self, extra: dict[str, Any] | None = None) -> bytes:
        """All detectors in one pickle-free snapshot; `extra` is stored as JSON alongside.
        Call it with no micro-batch in flight: it applies the budget's pending changes."""
        apply(self.budget.take_pending())
        keys = list(self.models)
        arrays = {f"detector.{i}": np.frombuffer(self.models[k].detector().to_bytes(), dtype=np.uint8)
                  for i, k in enumerate(keys)}
        meta = {"kind": "DetectorPool", "keys": [[g, list(f)] for g, f in keys], "extra": extra or {}}
        return snapshot.pack(arrays, meta)

    def restore(self, data: bytes) -> dict[str, Any]:
        """Replace all detectors by those in `data`; returns the snapshot's `extra`. Their
        streams count as seen most recently; the budget evicts others (or, at the next
        micro-batch, them) if they do not fit."""
        arrays, meta = snapshot.unpack(data)
        if meta.get("kind") != "DetectorPool":
            raise snapshot.SnapshotError(f"not a DetectorPool snapshot: {meta.get('kind')!r}")
        models = {DEFAULT_GROUP: self.config.model, **{group.name: group.model for group in self.config.groups}}
        # The backend and threads are how a detector runs, not what it learnt: the configuration's.
        detectors = {}
        for i, (g, f) in enumerate(meta["keys"]):
            model = models.get(g, self.config.model)
            detectors[g, tuple(f)] = MultiStreamDetector.from_bytes(arrays[f"detector.{i}"], backend=model.backend,
                                                                    threads=model.threads)
        # Every other setting is the snapshot's: its state was learnt with them (a hidden_size
        # cannot change under learnt weights), so a changed configuration is said, not applied.
        changed = {g: _changed_settings(det, models.get(g, self.config.model)) for (g, _), det in detectors.items()}
        for group, settings in changed.items():
            if settings:
                log.warning("the restored state keeps the model settings it was learnt with%s: %s; to apply the "
                            "configured ones, start from an empty state directory", "" if group == DEFAULT_GROUP
                            else f" (group {group!r})", ", ".join(settings))
        _warn_of_moved_groups(self.config, detectors)
        self.budget.release(self)
        self.models = {}
        touched = 0
        for key, det in detectors.items():
            model = self._add(Model(self, key, det.bytes_per_stream(), det.fixed_bytes() + PY_BYTES_PER_MODEL,
                                    det, capacity=det.capacity))
            for stream in det.stream_ids:
                self.budget.add_stream((self, stream, key[1]), model)
            touched += det.n_streams
        self.budget.settle(touched, [])
        return meta["extra"]


def _warn_of_moved_groups(config: Config, detectors: dict[tuple[str, tuple[str, ...]], MultiStreamDetector]) -> None:
    """Say which restored streams the configuration's `groups` now match to another model
    group: they stay in the one they were learnt in (their state belongs to its weights)."""
    if not config.groups and all(g == DEFAULT_GROUP for g, _ in detectors):
        return
    moved = [(stream, g, now) for (g, _), det in detectors.items() for stream in det.stream_ids
             if (now := config.model_for(stream)[0]) != g]
    if moved:
        stream, was, now = moved[0]
        log.warning("%d restored streams stay in the model group they were learnt in, where the configured groups "
                    "now match another (e.g. %r: group %r, now %r); to move them, start from an empty state "
                    "directory", len(moved), stream, was, now)


def _changed_settings(det: MultiStreamDetector, model: ModelConfig) -> list[str]:
    """The settings of restored `det` that differ from `model`'s, as "model.name <det's> (configured <model's>)"
    (a setting the configuration no longer has is not named)."""
    learnt = {**det.settings, "weight_mode": det.weight_mode}
    return [f"model.{k} {v!r} (configured {getattr(model, k)!r})" for k, v in learnt.items()
            if getattr(model, k, v) != v]


def _too_many_models(ev: Event, max_models: int) -> Rejected:
    raw = json.dumps({"stream": ev.stream, "features": list(ev.features)})[:RAW_LIMIT]
    return Rejected(ev.seq, "too_many_models",
                    f"max_models ({max_models}) models are held, and stream {ev.stream!r} with features "
                    f"{list(ev.features)} would need another: one per model group and feature set", raw)

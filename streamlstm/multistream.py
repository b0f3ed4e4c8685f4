"""`MultiStreamDetector`: many streams keyed by id, advanced in micro-batches."""

from __future__ import annotations

import datetime
import math
import numbers
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from .engine import hyperparams, snapshot
from .engine.backend import make_engine, resolve_backend
from .engine.compact import BF16, f16_bits_of, narrow_bits_of, pack_bins, uf16_bits_of
from .engine.hyperparams import BACKEND, DEFAULTS, MAX_STREAMS, THREADS, WEIGHT_MODE
from .engine.kernels_cpu import Outputs, new_outputs
from .engine.layout import (C_SEEN, C_TICKS, C_WIN, CYC_DEV, CYC_LAG, STATS32_ORDER_V11, STATS_ORDER_V9, TAIL_LEVELS,
                            StatsLayout, stats_columns)
from .engine.params import init_params
from .engine.scoring import LONG_INTERVAL
from .engine.state import ParamArrays, StreamArrays, StreamTable, alloc_params, alloc_streams, stream_rng_seed
from .event import TS_MAX, TS_MIN


class BatchResult(NamedTuple):
    """What `process` gives for N events: three outputs, each for one need.

    scores: how unusual each event is, continuous, never zeroed by alert suppression (to
    rank events); flags: the de-duplicated alerts, one per incident, with their strength
    alert_scores; regime and abnormal: the probability that the stream is in an abnormal
    state, and whether it is at least 0.5 (up for the duration of an incident). All are
    0/False during warm-up and for baseline events (`score=False`). Attribution:
    contributions, what each feature says on its own; blame, the regime's probability
    that each feature is the one that is abnormal, if the stream is (records name the
    largest shares of an alert's contributions, or of an abnormal event's blame, as
    `contributors`).
    """

    scores: np.ndarray  # (N,) float64 in [0, 1)
    flags: np.ndarray  # (N,) bool: an alert
    predictions: np.ndarray  # (N, D) forecast of each event made before seeing it (NaN for a stream's first)
    errors: np.ndarray  # (N,) RMS prediction error in the stream's normalised units (NaN if none or not judged)
    alert_scores: np.ndarray  # (N,) float64 in [0, 1): an alert when >= threshold; 0 in a cooldown
    regime: np.ndarray  # (N,) float64 in [0, 1]: P(abnormal state)
    contributions: np.ndarray  # (N, D) float64 >= 0: each feature's own evidence, -log10 units
    blame: np.ndarray  # (N, D) float64 in [0, 1]: P(feature d is the abnormal one | the stream is abnormal)
    abnormal: np.ndarray  # (N,) bool: regime >= 0.5


def _batch_result(N: int, D: int) -> BatchResult:
    return BatchResult(*new_outputs(N, D), np.zeros(N, dtype=bool))


def _check_ids(stream_ids) -> list[str]:
    """The stream ids as a list, read by position (a pandas Series' labels are not
    positions); TypeError before anything changes unless each is a str (the snapshot keeps
    them as JSON strings, the stream's seed hashes its text) and they come as a sequence,
    not as one str whose characters would be taken for ids."""
    if isinstance(stream_ids, str):
        raise TypeError(f"stream ids must be a sequence of str, got one str {stream_ids[:50]!r}")
    ids = stream_ids if type(stream_ids) is list else list(stream_ids)
    for sid in ids:
        if not isinstance(sid, str):
            raise TypeError(f"stream ids must be str, got {type(sid).__name__} {sid!r:.50}")
    return ids


def _values(X, name: str) -> np.ndarray:
    """X as a contiguous float64 array with +-inf as missing (NaN), as every input path
    reads them; TypeError naming the argument for values that are not numbers."""
    try:
        X = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must hold numbers (NaN or None where missing): {e}") from None
    inf = np.isinf(X)
    return np.where(inf, np.nan, X) if inf.any() else X


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _seconds(t) -> float:
    """One event time as epoch seconds: a number, a numpy datetime64, or a datetime (a
    pandas Timestamp is one; naive means UTC, as a naive datetime64 does); NaN for None
    and NaT."""
    if t is None:
        return math.nan
    if isinstance(t, datetime.datetime):
        if t != t:  # pandas' NaT
            return math.nan
        return ((t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)) - _EPOCH).total_seconds()
    if isinstance(t, np.datetime64):
        return math.nan if np.isnat(t) else float((t - np.datetime64(0, "s")) / np.timedelta64(1, "s"))
    try:
        return float(t)
    except (TypeError, ValueError) as e:
        raise TypeError(f"a timestamp must be epoch seconds, a datetime or a numpy datetime64, got "
                        f"{type(t).__name__} {t!r:.50}") from e


def _epoch_seconds(timestamps) -> np.ndarray:
    """(N,) float64 epoch seconds of timestamps given as numbers, numpy datetime64 (of any
    unit; NaT is unknown) or datetimes (see _seconds), NaN where not finite; ValueError for
    a time outside years 1 to 9999, as the parsers bound them (epoch milliseconds would
    hold the time-of-day channel off for good: it waits until a stream is a day past its
    first time)."""
    T = np.asarray(timestamps)
    numeric = T.dtype.kind in "biuf"
    if T.dtype.kind == "M":
        T = (T - np.datetime64(0, "s")) / np.timedelta64(1, "s")
    elif T.dtype.kind == "O":  # datetimes with a time zone, None
        T = np.array([_seconds(t) for t in T.ravel()], dtype=np.float64).reshape(T.shape)
    elif T.dtype.kind == "m":
        raise TypeError("timestamps must be epoch seconds, datetimes or numpy datetime64, got timedelta64 durations")
    T = _values(T, "timestamps")
    bad = (T < TS_MIN) | (T > TS_MAX)
    if bad.any():
        raise _bad_time(T[bad][0], numeric)
    return T


def _bad_time(t: float, numeric: bool = True) -> ValueError:
    return ValueError(f"timestamps must be epoch seconds from year 1 to 9999, got {float(t)!r}"
                      + (" (epoch milliseconds? divide by 1000)" if numeric else ""))


def _check_width(x: np.ndarray, D: int) -> None:
    if x.shape != (1, D):
        raise ValueError(f"x must have {D} values, got {x.shape[1]}")


class MultiStreamDetector:
    """Online LSTM/GRU anomaly detection for many streams of `n_features` values each.

    Every event is first scored against the forecast its stream made, then learnt.
    `weight_mode="per_stream"` gives each stream its own weights and optimiser state;
    `"shared"` learns one set of weights from all streams, each stream keeping only its
    own recurrent state, BPTT window and statistics (about 1 KiB at the default size).
    At most `max_streams` streams are held; the least recently seen is evicted first.
    `threads` (0 = every core) advance a micro-batch's streams at once in per_stream mode
    on the CPU, with the same results as one; shared mode and one-event calls use one.

    >>> import numpy as np
    >>> m = MultiStreamDetector(n_features=1, warmup=20, seed=1)
    >>> t = np.arange(200)
    >>> ids = ["a", "b"] * 100
    >>> X = np.sin(t / 5.0)[:, None]
    >>> res = m.process(ids, X)
    >>> res.scores.shape, res.flags.dtype, m.n_streams
    ((200,), dtype('bool'), 2)
    >>> bool(res.scores[:40].max() == 0.0)  # warm-up: 20 events per stream
    True
    >>> m2 = MultiStreamDetector.from_bytes(m.to_bytes())
    >>> x = np.array([[0.5]])
    >>> bool(m.process(["a"], x).scores[0] == m2.process(["a"], x).scores[0])
    True
    """

    def __init__(self, n_features: int = 1, *, weight_mode: str = WEIGHT_MODE.default,
                 max_streams: int = MAX_STREAMS.default, backend: str = BACKEND.default,
                 threads: int = THREADS.default, **hyperparameters: Any):
        unknown = set(hyperparameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
        if isinstance(n_features, (bool, np.bool_)) or not isinstance(n_features, numbers.Integral) or n_features < 1:
            raise ValueError(f"n_features: expected an integer >= 1, got {n_features!r}")
        checked = hyperparams.validate({**DEFAULTS, **hyperparameters, "weight_mode": weight_mode,
                                        "max_streams": max_streams, "backend": backend, "threads": threads})
        self.settings = {name: checked[name] for name in DEFAULTS}
        max_streams, threads = checked["max_streams"], checked["threads"]
        self.n_features = n_features = int(n_features)
        self.weight_mode = weight_mode
        self.max_streams = max_streams
        s = self.settings
        self.hyper = hyperparams.kernel_hyper(s, n_features, shared=weight_mode == "shared")
        self.dtype = np.dtype(s["dtype"])
        self.theta0 = init_params(self.hyper.cell, n_features, s["hidden_size"], s["seed"], self.dtype)
        self.table = StreamTable(max_streams)
        self.backend = resolve_backend(backend)
        self.threads = threads
        # The tables and the kernels that advance them: engine.cpu_engine or .cuda_engine.
        self.engine = make_engine(self.backend, self.hyper, alloc_streams(0, self.hyper, self.dtype),
                                  alloc_params(1 if self.hyper.shared else 0, self.theta0, s["optimizer"] == "adam"),
                                  self.theta0, threads)
        # One-event buffers of the *_one methods (outputs, slot, timestamp), reused per call.
        self._one = (new_outputs(1, n_features), np.zeros(1, dtype=np.int64), np.empty(1))

    # ------------------------------------------------------------------ processing

    def process(self, stream_ids: Sequence[str], X, timestamps=None, learn: bool = True,
                score: bool = True) -> BatchResult:
        """Score then learn each event in order; X (N, D) with NaN for missing values.

        stream_ids: (N,) str, each event's stream, from any iterable, read by position.
        timestamps: optional (N,) event times in epoch seconds (UTC), numpy datetime64 or
        datetimes (naive: UTC), NaN (NaT, None) where unknown; they feed the
        time-of-day (seasonal) channel, which is skipped for events without; a time outside
        years 1 to 9999 (epoch milliseconds, say) is a ValueError. A value or time that is
        not a finite number (NaN, +-inf) is missing; values beyond +-1e18
        (scoring.VALUE_LIMIT) count as +-1e18, so that no finite input can make the state
        overflow. score=False learns the events as known-good history (baseline priming):
        weights, statistics and ranges learn them; nothing is scored, alerted or counted
        toward an incident, and their results are 0/False. learn=False judges each event
        against its stream's state and changes nothing: an unknown stream's events are
        judged as a new stream's (0, no forecast) and the stream is not held.
        """
        stream_ids = _check_ids(stream_ids)
        N = len(stream_ids)
        X = _values(X, "X")
        if X.size == 0 and N == 0:
            X = X.reshape(0, self.n_features)
        if X.ndim != 2 or X.shape != (N, self.n_features):
            raise ValueError(f"X must have shape ({N}, {self.n_features}), got {X.shape}")
        T = np.full(N, np.nan) if timestamps is None else _epoch_seconds(timestamps)
        if T.shape != (N,):
            raise ValueError(f"timestamps must have shape ({N},), got {T.shape}")
        if not learn:
            return self._judge(stream_ids, X, T, score)
        out = _batch_result(N, self.n_features)
        done = 0
        while done < N:
            slots, new = self.table.assign(stream_ids[done:])
            self._reset_slots(new)
            end = done + len(slots)
            self.engine.process(slots, X[done:end], learn, T[done:end], tuple(a[done:end] for a in out[:-1]), score)
            done = end
        np.greater_equal(out.regime, 0.5, out=out.abnormal)
        return out

    def _judge(self, stream_ids: Sequence[str], X: np.ndarray, T: np.ndarray, score: bool) -> BatchResult:
        """process(learn=False): the events of held streams judged, the others left as a
        new stream's judgement reads (0, no forecast, no error)."""
        out = _batch_result(len(stream_ids), self.n_features)
        out.predictions.fill(math.nan)
        out.errors.fill(math.nan)
        slots = self.table.slots
        rows = np.array([n for n, sid in enumerate(stream_ids) if sid in slots], dtype=np.int64)
        if len(rows):
            held = _batch_result(len(rows), self.n_features)
            self.engine.process(np.array([slots[stream_ids[n]] for n in rows], dtype=np.int64), X[rows], False,
                                T[rows], tuple(held[:-1]), score)
            for mine, theirs in zip(out, held):
                mine[rows] = theirs
        np.greater_equal(out.regime, 0.5, out=out.abnormal)
        return out

    def learn_one(self, stream_id: str, x, timestamp: float = math.nan) -> None:
        self.process_one(stream_id, x, timestamp)

    def process_one(self, stream_id: str, x, timestamp: float = math.nan, score: bool = True) -> tuple[float, bool]:
        """`process` of one event (scored, then learnt; with `score=False` learnt as
        known-good history); returns its (score, flag)."""
        _check_ids((stream_id,))
        return self._process_one(stream_id, _values(x, "x").reshape(1, -1), _seconds(timestamp), score)

    def _process_one(self, stream_id: str, x: np.ndarray, timestamp: float, score: bool) -> tuple[float, bool]:
        """process_one of a str id and x (1, D) float64 without infinities, as LSTMDetector
        gives them: the checks cost it a fifth of an event's time."""
        slot = self.table.get(stream_id)
        if slot is None:  # a new stream: its slot as process() assigns it, then the one-event kernel
            slots, new = self.table.assign([stream_id])
            self._reset_slots(new)
            slot = int(slots[0])
        else:
            self.table.touch(stream_id)  # as process() touches it
        out = self._event(slot, x, timestamp, True, score)
        return float(out.scores[0]), bool(out.flags[0])

    def score_one(self, stream_id: str, x, timestamp: float = math.nan) -> float:
        """Score of `x` for `stream_id`; changes nothing (an unknown stream scores 0)."""
        _check_ids((stream_id,))
        return self._score_one(stream_id, _values(x, "x").reshape(1, -1), _seconds(timestamp))

    def _score_one(self, stream_id: str, x: np.ndarray, timestamp: float) -> float:
        """score_one of x (1, D) float64 without infinities (see _process_one)."""
        slot = self.table.get(stream_id)
        if slot is None:
            _check_width(x, self.n_features)
            return 0.0
        return float(self._event(slot, x, timestamp, False).scores[0])

    def forecast_one(self, stream_id: str) -> np.ndarray:
        """The forecast (D,) of `stream_id`'s next event, in its units (NaN before any, for
        context features and for an unknown stream); changes nothing."""
        _check_ids((stream_id,))
        slot = self.table.get(stream_id)
        if slot is None:
            return np.full(self.n_features, math.nan)
        return self._event(slot, np.full((1, self.n_features), math.nan), math.nan, False).preds[0].copy()

    def _event(self, slot: int, x: np.ndarray, timestamp: float, learn: bool, score: bool = True) -> Outputs:
        """One event x (1, D) of held slot `slot`; the result lies in the one-event buffers,
        valid until the next call. process()'s general bookkeeping costs about 4 us of
        Python per call, several times what the kernel takes to score one event. The
        engine's process_one does not judge twice an event scored (score_one), then learnt
        (process_one)."""
        _check_width(x, self.n_features)
        out, slots, T = self._one
        slots[0] = slot
        if not TS_MIN <= timestamp <= TS_MAX:  # NaN fails both: unknown, as inf is
            if math.isfinite(timestamp):
                raise _bad_time(timestamp)
            timestamp = math.nan
        T[0] = timestamp
        return self.engine.process_one(slots, x, learn, T, out, score)

    @property
    def n_streams(self) -> int:
        return len(self.table)

    @property
    def stream_ids(self) -> list[str]:
        """Held stream ids, least recently seen first."""
        return [sid for sid, _ in self.table.items()]

    @property
    def streams(self) -> StreamArrays:
        """The stream tables (device arrays on the CUDA backend)."""
        return self.engine.streams

    @property
    def params(self) -> ParamArrays:
        """The parameter tables (device arrays on the CUDA backend)."""
        return self.engine.params

    def bytes_per_stream(self) -> int:
        """State bytes one more stream costs (its parameter rows included in per_stream mode)."""
        return self.engine.bytes_per_stream()

    def fixed_bytes(self) -> int:
        """State bytes that do not grow with the streams: initial and shared weights, scratch."""
        return self.engine.fixed_bytes()

    @property
    def capacity(self) -> int:
        """Stream slots allocated (held streams, free slots and room to grow)."""
        return self.engine.capacity

    def evict(self, stream_ids: Sequence[str]) -> None:
        """Forget these held streams (unknown ids are ignored); their slots are reused first."""
        _check_ids(stream_ids)
        for sid in stream_ids:
            if sid in self.table.slots:
                self.table.remove(sid)

    # ------------------------------------------------------------------ slots

    def _grow(self, needed: int) -> None:
        """Double the slot capacity (up to max_streams) until `needed` slots fit."""
        if needed <= self.capacity:
            return
        cap = max(self.capacity, 16)
        while cap < needed:
            cap *= 2
        self.resize(min(cap, self.max_streams))

    def resize(self, capacity: int) -> None:
        """Allocate exactly `capacity` stream slots (at least the streams held), keeping the
        held streams: those in slots above it move into free slots below it first."""
        if isinstance(capacity, (bool, np.bool_)) or not isinstance(capacity, numbers.Integral):
            raise TypeError(f"capacity: expected an integer, got {capacity!r:.50}")
        if capacity > self.max_streams:
            raise ValueError(f"capacity {capacity} is above max_streams ({self.max_streams})")
        if capacity < len(self.table):
            raise ValueError(f"capacity {capacity} is below the {len(self.table)} streams held")
        if capacity != self.capacity:
            self.engine.resize(capacity, self.table.pack(capacity))

    def _reset_slots(self, new: list[tuple[int, str]]) -> None:
        """Give each (slot, id) a fresh state (and fresh weights in per_stream mode)."""
        if not new:
            return
        self._grow(max(slot for slot, _ in new) + 1)
        self.engine.reset_slots([slot for slot, _ in new], [stream_rng_seed(self.settings["seed"], sid) for _, sid in new])

    # ------------------------------------------------------------------ snapshots

    def to_bytes(self) -> bytes:
        """The whole detector (settings and state) as a pickle-free snapshot.

        The held streams' rows are stored in least-recently-seen order, as slots 0..n-1."""
        n = self.n_streams
        streams, params = self.engine.to_host()
        rows = np.array([slot for _, slot in self.table.items()], dtype=np.int64)
        arrays = {f"stream.{k}": v[rows] for k, v in streams._asdict().items()}
        arrays.update({f"param.{k}": v[:1] if self.hyper.shared else v[rows] for k, v in params._asdict().items()})
        meta = {
            "kind": "MultiStreamDetector",
            "n_features": self.n_features,
            "weight_mode": self.weight_mode,
            "max_streams": self.max_streams,
            "settings": self.settings,
            "stream_ids": self.stream_ids,
            "slots": list(range(n)),
            "evicted": self.table.evicted,
        }
        return snapshot.pack(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview | np.ndarray, backend: str = "cpu",
                   threads: int = THREADS.default) -> MultiStreamDetector:
        """The detector `to_bytes` stored, on this backend with this many threads (neither
        is part of a snapshot: they change how it runs, not what it computes)."""
        arrays, meta = snapshot.unpack(data)
        if meta.get("kind") != "MultiStreamDetector":
            raise snapshot.SnapshotError(f"not a MultiStreamDetector snapshot: {meta.get('kind')!r}")
        version = meta["format_version"]
        # A snapshot from before the own cycle (format 16) goes on without it, as it was
        # ("auto" says so in shared mode, where a configuration's "auto" then matches it).
        none = "auto" if meta["weight_mode"] == "shared" else 0
        settings = hyperparams.as_learnt(meta["settings"] if version >= 16 else {"cycle_max": none, **meta["settings"]})
        det = cls(meta["n_features"], weight_mode=meta["weight_mode"], max_streams=meta["max_streams"],
                  backend=backend, threads=threads, **settings)
        n = len(meta["stream_ids"])
        D = det.n_features
        if version < 10:
            _upgrade_to_v10(arrays, version, n, D, det.hyper)
        if version < 11:
            _upgrade_to_v11(arrays, n, D)
        if version < 12:
            _upgrade_to_v12(arrays, n, D, det.hyper)
        if version < 13:
            _upgrade_to_v13(arrays, n, D, det.hyper)
        if 12 <= version < 15:
            _upgrade_to_v15(arrays, n, det.hyper)
        if version < 16:
            _upgrade_to_v16(arrays, n, D)
        if version < 17:
            arrays["stream.records"] = np.zeros((n, D, 2, 2), dtype=np.uint16)  # none counted yet (format 17)
        if 15 <= version < 18:  # format 18's count of abnormal events, the last column: none yet
            arrays["stream.stats32"] = np.pad(arrays["stream.stats32"], ((0, 0), (0, 1)))
        if 16 <= version < 19 and det.hyper.cycle_max > 0:
            _upgrade_to_v19(arrays, n, D)
        if version < 22:
            _upgrade_to_v22(arrays, version, det.hyper)
        if version < 23:
            _upgrade_to_v23(arrays, n, det.hyper)
        if version < 24:
            _upgrade_to_v24(arrays, det.hyper)
        if version < 25:
            _upgrade_to_v25(arrays, version, det.hyper)
        col = det.hyper.stats
        if version < 26:  # format 26's own cycle's levels unlearnt, the last columns: none (held, as learnt)
            arrays["stream.stats32"] = np.pad(arrays["stream.stats32"], ((0, 0), (0, col.width32 - col.cycle_unlearnt)))
        if version < 27:  # format 27's first values of each baseline, the last columns: unknown (as learnt)
            stats = np.pad(arrays["stream.stats"], ((0, 0), (0, col.width - arrays["stream.stats"].shape[1])))
            stats[:, col.first_high:col.first_high + det.n_features] = np.nan
            arrays["stream.stats"] = stats
        streams = {}
        for name, empty in alloc_streams(0, det.hyper, det.dtype)._asdict().items():
            src = arrays.get(f"stream.{name}")
            if src is None or src.shape != (n, *empty.shape[1:]):
                raise snapshot.SnapshotError(f"snapshot from an incompatible version: stream.{name} "
                                             f"{'missing' if src is None else src.shape} vs {(n, *empty.shape[1:])}")
            streams[name] = src.astype(empty.dtype, copy=False)
        params = ParamArrays(*(arrays[f"param.{name}"] for name in ParamArrays._fields))
        det.engine.from_host(StreamArrays(**streams), params)  # the one copy of the snapshot's arrays
        det.table.load(zip(meta["stream_ids"], meta["slots"]))
        det.table.evicted = meta["evicted"]
        return det

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path, backend: str = "cpu", threads: int = THREADS.default) -> MultiStreamDetector:
        return cls.from_bytes(Path(path).read_bytes(), backend, threads)


def _upgrade_to_v10(arrays: dict[str, np.ndarray], version: int, n: int, D: int, hy) -> None:
    """Convert the stream arrays of an `n`-stream snapshot of format 6 to 9 in place to
    format 10, where the statistics row split into float64 `stats` and float32 `stats32`,
    the channel inputs became bfloat16, the seasonal bins packed bytes (layout.BIN_*), the
    window's loss weights flags, a float32 model's window-start state float16, and each
    stream records when it is a day old (the time-of-day profile answers from then on)."""
    columns = stats_columns(D)
    at = dict(zip(STATS_ORDER_V9, np.cumsum([0] + [columns[name] for name in STATS_ORDER_V9])))
    stats = arrays["stream.stats"]
    if version == 6:  # the regime's columns are new: a baseline equal to the scaler
        mean, var = stats[:, at["mean"]:at["mean"] + D], stats[:, at["var"]:at["var"] + D]
        stats = np.concatenate([stats, np.zeros((n, 1)), mean, var], axis=1)
    if version in (6, 7):  # the tail frequencies are new: a Gaussian's
        gaussian = np.tile([math.erfc(k / math.sqrt(2.0)) for k in range(1, TAIL_LEVELS + 1)], (n, D))
        stats = np.concatenate([stats, gaussian], axis=1)
    if version in (6, 7, 8):  # the resolution is new: none yet (no floor until a feature's next change)
        stats = np.concatenate([stats, np.zeros((n, D))], axis=1)
    col, at32 = hy.stats, _stats32_v11(D)
    wide = set(StatsLayout._fields[:StatsLayout._fields.index("width")])
    arrays["stream.stats"] = np.zeros((n, col.width))
    stats32 = arrays["stream.stats32"] = np.zeros((n, at32["day_old"] + 1), dtype=np.float32)
    for name in STATS_ORDER_V9:
        dst, to = (arrays["stream.stats"], getattr(col, name)) if name in wide else (stats32, at32[name])
        dst[:, to:to + columns[name]] = stats[:, at[name]:at[name] + columns[name]]
    if hy.f16_window:
        for name in ("stream.h0", "stream.c0"):
            arrays[name] = f16_bits_of(arrays[name])
    stats32[:, at32["day_old"]] = -np.inf  # a day old long ago: warm bins answer as before
    arrays["stream.ring"] = narrow_bits_of(arrays["stream.ring"], BF16).astype(np.uint16)
    bins = arrays["stream.bins"]
    arrays["stream.bins"] = pack_bins(bins[..., 0], bins[..., 1], bins[..., 2])
    # A weight other than 1 was a flagged event's; the positions past the window's fill are unused.
    used = np.arange(arrays["stream.winw"].shape[1]) < arrays["stream.counters"][:, C_WIN, None]
    arrays["stream.winflag"] = ((arrays.pop("stream.winw") != 1.0) & used).astype(np.uint8)


def _upgrade_to_v11(arrays: dict[str, np.ndarray], n: int, D: int) -> None:
    """Complete the `stats32` rows of an `n`-stream snapshot of format 10 (or one converted
    to it) in place with format 11's persistence columns, which follow format 10's: nothing
    learnt yet (a feature counts as independent until it has shown otherwise, so the
    regime judges as format 10's did) and the innovation's tail frequencies equal to the
    level's, which is what the innovation is for a feature without persistence."""
    at32 = _stats32_v11(D)
    old = arrays["stream.stats32"]
    stats32 = np.zeros((n, at32["width32"]), dtype=np.float32)
    stats32[:, :old.shape[1]] = old
    tails = TAIL_LEVELS * D
    stats32[:, at32["innov_tail"]:at32["innov_tail"] + tails] = stats32[:, at32["base_tail"]:at32["base_tail"] + tails]
    arrays["stream.stats32"] = stats32


def _upgrade_to_v12(arrays: dict[str, np.ndarray], n: int, D: int, hy) -> None:
    """Convert the stream arrays of an `n`-stream snapshot of format 11 (or one converted
    to it) in place to format 12, whose tail frequencies moved from `stats32` into the
    `tails` table as unsigned 16-bit floats (compact.UF16, rounded to nearest), each
    feature's recent mean is new (0, with the spread its persistence implies), and a
    float32 model's re-run window keeps its inputs as float16, as its start state."""
    col, at32, columns = hy.stats, _stats32_v11(D), stats_columns(D)
    old = arrays["stream.stats32"]
    stats32 = np.zeros((n, col.width32), dtype=np.float32)
    for name in STATS32_ORDER_V11:
        if name not in ("base_tail", "innov_tail"):
            to, at = getattr(col, name), at32[name]
            stats32[:, to:to + columns[name]] = old[:, at:at + columns[name]]
    tails = [old[:, at32[name]:at32[name] + TAIL_LEVELS * D].reshape(n, D, TAIL_LEVELS)
             for name in ("base_tail", "innov_tail")]  # in the order TAILS_LEVEL, TAILS_NEWS
    # The recent means' spread starts from what format 11's persistence says of z: a mean
    # over the short window of independent z's, or, for a persistent feature, up to z's own.
    h = 1.0 / hy.short_window
    sq = stats32[:, col.base_sq:col.base_sq + D]
    tau = np.clip(stats32[:, col.base_run_sq:col.base_run_sq + D] / np.where(sq > 0.0, sq, 1.0), 1.0, None)
    stats32[:, col.base_recent_sq:col.base_recent_sq + D] = sq * np.minimum(1.0, tau * h / (2.0 - h))
    arrays["stream.stats32"] = stats32
    arrays["stream.tails"] = uf16_bits_of(np.stack(tails, axis=2))
    if hy.f16_window:
        arrays["stream.win"] = f16_bits_of(arrays["stream.win"])


def _upgrade_to_v13(arrays: dict[str, np.ndarray], n: int, D: int, hy) -> None:
    """Complete the `stats` rows of an `n`-stream snapshot of format 12 (or one converted
    to it) in place with format 13's count of the observations each feature's baseline
    learnt while normal, taken as all its observations, which is what format 12's
    calibration counted."""
    col = hy.stats
    old = arrays["stream.stats"]
    stats = np.zeros((n, col.width))
    stats[:, :old.shape[1]] = old
    stats[:, col.base_count:col.base_count + D] = stats[:, col.count:col.count + D]
    arrays["stream.stats"] = stats


def _upgrade_to_v15(arrays: dict[str, np.ndarray], n: int, hy) -> None:
    """Complete the `stats32` rows of an `n`-stream snapshot of format 12 to 14 in place
    with format 15's blame of each feature, the last feature block: none yet (an incident
    in progress goes on with its features weighed alike, as format 14 weighed them)."""
    old = arrays["stream.stats32"]
    stats32 = np.zeros((n, hy.stats.width32), dtype=np.float32)
    stats32[:, :old.shape[1]] = old
    arrays["stream.stats32"] = stats32


def _upgrade_to_v16(arrays: dict[str, np.ndarray], n: int, D: int) -> None:
    """Complete the stream arrays of an `n`-stream snapshot of format 15 or before in place
    with format 16's own cycle, which such a snapshot goes on without (`cycle_max` 0, so no
    state of it but its clock, C_TICKS, which starts from the count of events seen)."""
    arrays["stream.cycle"] = np.zeros((n, D, 2, 0), dtype=np.float32)  # format 16's two rows
    counters = arrays["stream.counters"]
    arrays["stream.counters"] = np.concatenate([counters, counters[:, C_SEEN:C_SEEN + 1]], axis=1)


def _upgrade_to_v19(arrays: dict[str, np.ndarray], n: int, D: int) -> None:
    """Complete the stream arrays of an `n`-stream snapshot of format 16 to 18 with an own
    cycle in place with format 19's residuals counted against each feature's period and
    the stream's mean spacing and rate of long intervals (`stats32`, before its last
    column), the residuals' tail frequencies (the `tails` row TAILS_CYCLE) and the last
    event's time (`stats`, its last column): none yet, so the point test asks each feature's
    innovation alone until its cycle's residuals, counted from the restore, pass
    TAIL_MIN_COUNT, and no rows are taken as dropped until the spacing is learnt again."""
    stats32 = arrays["stream.stats32"]
    arrays["stream.stats32"] = np.concatenate([stats32[:, :-1], np.zeros((n, D + 2), stats32.dtype), stats32[:, -1:]],
                                              axis=1)
    arrays["stream.stats"] = np.pad(arrays["stream.stats"], ((0, 0), (0, 1)), constant_values=np.nan)
    arrays["stream.tails"] = np.pad(arrays["stream.tails"], ((0, 0), (0, 0), (0, 1), (0, 0)))


def _upgrade_to_v22(arrays: dict[str, np.ndarray], version: int, hy) -> None:
    """Complete the statistics rows of a snapshot of format 21 or before (or one converted
    to it) in place: format 20's one second mode of each feature becomes format 22's first
    (its mean, count, moves and run), the others free, and with an own cycle format 21's
    forecasts left that straddle a gap come last; all none yet (zeros) where the snapshot
    is older."""
    col, D = hy.stats, hy.D
    arrays["stream.stats"] = np.pad(arrays["stream.stats"], ((0, 0), (0, col.width - arrays["stream.stats"].shape[1])))
    old = arrays["stream.stats32"]
    new = np.zeros((len(old), col.absent), dtype=old.dtype)  # format 22's columns end there
    new[:, :col.mode_count] = old[:, :col.mode_count]
    if version >= 20:
        at = col.mode_count  # format 20's count, moves and run of its one mode, D columns each
        for start in (col.mode_count, col.mode_switches, col.mode_run):
            new[:, start:start + D] = old[:, at:at + D]
            at += D
        new[:, col.after_gap:col.after_gap + old.shape[1] - at] = old[:, at:]  # format 21's after_gap, if any
    arrays["stream.stats32"] = new


def _upgrade_to_v23(arrays: dict[str, np.ndarray], n: int, hy) -> None:
    """Complete a snapshot of format 22 or before (or one converted to it) in place with
    format 23's test of each feature's news given the others' (scoring.news_given_others):
    no innovation learnt yet (the counts, the last columns of `stats`; the second moments
    at their prior, the tail frequencies empty)."""
    empty = alloc_streams(n, hy, np.float32)
    stats = arrays["stream.stats"]
    arrays["stream.stats"] = np.pad(stats, ((0, 0), (0, hy.stats.width - stats.shape[1])))
    arrays["stream.corr"], arrays["stream.corr_tails"] = empty.corr, empty.corr_tails


def _upgrade_to_v24(arrays: dict[str, np.ndarray], hy) -> None:
    """Complete the `stats32` rows of a snapshot of format 23 or before (or one converted to
    it) in place with format 24's rhythm of each feature (scoring.learn_rhythm): none
    absent and an interval of one event, what the earlier formats took every feature's to
    be (a feature read at a rhythm of its own learns it at the scaler's rate)."""
    col = hy.stats
    old = arrays["stream.stats32"]
    new = np.zeros((len(old), col.cycle_unlearnt), dtype=old.dtype)  # format 24's row ends there
    new[:, :col.absent] = old
    new[:, col.interval:col.interval + hy.D] = 1.0
    arrays["stream.stats32"] = new


def _upgrade_to_v25(arrays: dict[str, np.ndarray], version: int, hy) -> None:
    """Complete the own cycle of a snapshot of format 24 or before (or one converted to it)
    in place with format 25's count of the pairs each lag's mean has learnt. A feature read
    at nearly every event gets every event since a lag's first where its mean is learnt
    (not 0), as the earlier formats' exact means took them, so it continues as it would
    have. A feature read at a rhythm of its own (format 24's mean interval, LONG_INTERVAL
    or more; before format 24, given at fewer than one event in LONG_INTERVAL of the
    ring's last `cycle_max` from its first value there) starts its lags afresh: the earlier
    formats took a lag its values never paired at (a mean of 0), or paired at once or twice
    across a shift of its phase (a mean near 0), for a perfect fit, a period it was never
    seen at (scoring.find_period)."""
    cycle, ticks = arrays["stream.cycle"], arrays["stream.counters"][:, C_TICKS]
    n, D, _, Lc = cycle.shape
    if version >= 24:
        rhythm = arrays["stream.stats32"][:, hy.stats.interval:hy.stats.interval + D] >= LONG_INTERVAL
    elif Lc > 0:  # the ring's values of its last events, the oldest first, from the feature's first there
        t = ticks[:, None] - Lc + np.arange(Lc)
        ring = np.take_along_axis(cycle[:, :, CYC_DEV], (t % Lc)[:, None, :], axis=2)
        given = ~np.isnan(ring) & (t >= 0)[:, None, :]
        span = Lc - given.argmax(axis=2)  # rows dropped before a feature's first value there are no rhythm
        rhythm = given.any(axis=2) & (given.sum(axis=2) * LONG_INTERVAL < span)
    else:
        rhythm = np.zeros((n, D), dtype=bool)
    pairs = np.maximum(ticks[:, None, None] - np.arange(1, Lc + 1), 0)
    pairs = np.where((cycle[:, :, CYC_LAG] != 0.0) & ~rhythm[:, :, None], pairs, 0).astype(np.float32)
    arrays["stream.cycle"] = np.concatenate([cycle, pairs[:, :, None]], axis=2)


def _stats32_v11(D: int) -> dict[str, int]:
    """The first column of each statistic in format 11's `stats32` row, by name, and its
    width ("width32")."""
    columns = stats_columns(D)
    ends = np.cumsum([0] + [columns[name] for name in STATS32_ORDER_V11])
    return {**dict(zip(STATS32_ORDER_V11, ends.tolist())), "width32": int(ends[-1])}

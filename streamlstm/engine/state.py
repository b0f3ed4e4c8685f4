"""Per-stream state tables and the mapping from stream ids to their rows (slots).

Shape legend: D inputs, H hidden, Hc = H (LSTM) or 0 (GRU), K BPTT window, P parameters,
S stream slots, Q parameter sets (S in per_stream mode, 1 in shared mode), w short window,
B seasonal bins, Lc the longest cycle looked for (`cycle_max`), C scoring channels (layout.channels), T x TAIL_LEVELS tail frequencies (T = layout.tail_rows),
Dc the features of the test of the news given the others' (layout.corr_features); the
columns of `stats` and `counters` are named in layout.py.
"""

from __future__ import annotations

import zlib
from array import array
from typing import NamedTuple

import numpy as np

from .hyperparams import KernelHyper
from .layout import BIN_BYTES, N_COUNTERS, N_CYC, TAIL_LEVELS, channels, corr_features, tail_rows
from .params import LSTM, gate_width


class StreamArrays(NamedTuple):
    """Everything a stream owns besides (in per_stream mode) its weights; row s = slot s."""

    h: np.ndarray  # (S, H)  carried hidden state
    c: np.ndarray  # (S, Hc) carried cell state
    h0: np.ndarray  # (S, H)  state at the start of the BPTT window (re-run windows only),
    c0: np.ndarray  # (S, Hc) float16 bit patterns (uint16) in float32 models (hy.f16_window)
    # Forward cache of the last K carried steps (cached windows only; 0 rows otherwise):
    hs: np.ndarray  # (S, K+1, H)  hidden states, hs[t] before and hs[t+1] after step t
    cs: np.ndarray  # (S, K+1, Hc) cell states
    acts: np.ndarray  # (S, K, G)  activated gates
    aux: np.ndarray  # (S, K, H)  tanh(c) (LSTM)
    win: np.ndarray  # (S, K+1, D) last K+1 normalised inputs, oldest first (float16 as h0)
    # Whether each of them was flagged (its loss weight is anomaly_weight, else 1): a flag,
    # not the weight, so that a byte is enough.
    winflag: np.ndarray  # (S, K+1) uint8
    pred: np.ndarray  # (S, D)  forecast of the next event, normalised units
    # The scoring state, in the narrowest types that keep what the scores need (layout.py):
    stats: np.ndarray  # (S, stats_layout(D, cycle).width) float64: levels (mean, last value, range, baseline), counts
    stats32: np.ndarray  # (S, stats_layout(D, cycle).width32) float32: spreads, step unit, channels, alerts, regime
    ring: np.ndarray  # (S, C, w) uint16 bfloat16: channel inputs of the last w events (NaN: none)
    tails: np.ndarray  # (S, D, T, TAIL_LEVELS) uint16 compact.UF16: the regime's tail frequencies, and the cycle residual's
    records: np.ndarray  # (S, D, 2, 2) uint16: each feature's new highs and lows by block (layout REC_*)
    bins: np.ndarray  # (S, D, B, BIN_BYTES) uint8: seasonal mean, variance and visits per feature and bin
    cycle: np.ndarray  # (S, D, N_CYC, Lc) float32: the last Lc deviations, mean squared differences by lag, pairs
    # The news given the others' (scoring.news_given_others): the innovations' second moments
    # less the identity (CORR_COV) and their precision (CORR_PREC); each residual's tail frequencies.
    corr: np.ndarray  # (S, 2, Dc, Dc) float32
    corr_tails: np.ndarray  # (S, Dc, TAIL_LEVELS) uint16 compact.UF16
    counters: np.ndarray  # (S, N_COUNTERS) int64: events, window fill, BPTT phase, rng, cooldown


class ParamArrays(NamedTuple):
    theta: np.ndarray  # (Q, P) flat parameters
    m: np.ndarray  # (Q, P) first moment (Adam) or momentum (SGD)
    v: np.ndarray  # (Q, P) Adam second moment; (Q, 0) for SGD
    step: np.ndarray  # (Q,) int64 optimiser steps taken


def alloc_streams(S: int, hy: KernelHyper, dtype) -> StreamArrays:
    """Zeroed tables of S slots for the model described by `hy` (hyperparams.KernelHyper)."""
    H, D, K = hy.H, hy.D, hy.K
    Hc = H if hy.cell == LSTM else 0
    G = gate_width(hy.cell, H)
    # A cached window replaces the window-start state with the recorded forward pass.
    k = K if hy.cached_window else 0
    h0 = 0 if hy.cached_window else H
    col = hy.stats
    Dc = corr_features(D)
    z = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    f16 = np.uint16 if hy.f16_window else dtype
    return StreamArrays(
        h=z(S, H), c=z(S, Hc), h0=np.zeros((S, h0), dtype=f16), c0=np.zeros((S, min(h0, Hc)), dtype=f16),
        hs=z(S, k + 1 if k else 0, H), cs=z(S, k + 1 if k else 0, Hc), acts=z(S, k, G), aux=z(S, k, H),
        win=np.zeros((S, K + 1, D), dtype=f16), winflag=np.zeros((S, K + 1), dtype=np.uint8), pred=z(S, D),
        stats=np.zeros((S, col.width)), stats32=np.zeros((S, col.width32), dtype=np.float32),
        ring=np.zeros((S, channels(hy.cycle_max > 0), hy.short_window), dtype=np.uint16),
        tails=np.zeros((S, D, tail_rows(hy.cycle_max > 0), TAIL_LEVELS), dtype=np.uint16),
        records=np.zeros((S, D, 2, 2), dtype=np.uint16),
        bins=np.zeros((S, D, hy.seasonal_bins, BIN_BYTES), dtype=np.uint8),
        cycle=np.zeros((S, D, N_CYC, hy.cycle_max), dtype=np.float32),
        corr=np.zeros((S, 2, Dc, Dc), dtype=np.float32),
        corr_tails=np.zeros((S, Dc, TAIL_LEVELS), dtype=np.uint16),
        counters=np.zeros((S, N_COUNTERS), dtype=np.int64),
    )


def alloc_params(Q: int, theta0: np.ndarray, adam: bool) -> ParamArrays:
    P = theta0.shape[0]
    return ParamArrays(
        theta=np.tile(theta0, (Q, 1)).copy(),  # its own buffer, which MultiStreamDetector.resize resizes
        m=np.zeros((Q, P), dtype=theta0.dtype),
        v=np.zeros((Q, P if adam else 0), dtype=theta0.dtype),
        step=np.zeros(Q, dtype=np.int64),
    )


def slot_tables(streams: StreamArrays, params: ParamArrays, shared: bool) -> tuple:
    """The arrays with a row per stream slot: the stream tables, and in per_stream mode
    the parameter tables."""
    return (*streams, *(() if shared else params))


def move_rows(tables: tuple, moves) -> None:
    """Copy row src to row dst of every array in `tables`, for each (src, dst) of `moves`."""
    for src, dst in moves:
        for a in tables:
            a[dst] = a[src]


def row_bytes(arrays: tuple) -> int:
    """Bytes one slot occupies across a tuple of (rows, ...) arrays."""
    return sum(a.itemsize * int(np.prod(a.shape[1:])) for a in arrays)


def stream_rng_seed(seed: int, stream_id: str) -> int:
    """Nonzero xorshift64 state from the model seed and the stream id (as signed int64).
    Lone surrogates are encoded as they are ("surrogatepass"): any str is a valid id."""
    x = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(stream_id.encode("utf-8", "surrogatepass"))) & (2**64 - 1)
    x = (x ^ (x >> 31)) | 1
    return x - 2**64 if x >= 2**63 else x


class StreamTable:
    """Stream id -> slot, least-recently-seen order, and slot (re)initialisation.

    Eviction policy: when a new stream arrives and `max_streams` are held, the stream seen
    least recently is forgotten and its slot reset for the newcomer (its state is lost; if
    it returns it starts again with warm-up). `remove` forgets a stream on request (the
    DetectorPool's process-wide budget); its slot is reused before any new one.

    The order is a doubly linked list over slots in two int32 arrays, beside a plain dict
    and a list of each slot's id: 83 bytes per stream besides the id itself, where an
    OrderedDict took 119 (tracemalloc over 200,000 streams; docs/operations.md), for
    ~0.15 us more per event in `assign`.
    """

    def __init__(self, max_streams: int):
        self.max_streams = max_streams
        self.slots: dict[str, int] = {}
        self.ids: list[str | None] = []  # slot -> its stream (None: free)
        self.older = array("i")  # slot -> the slot seen just before it (-1: none)
        self.newer = array("i")  # slot -> the slot seen just after it (-1: none)
        self.oldest = self.newest = -1
        self.free: list[int] = []  # slots below the highest in use that no stream holds
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.slots)

    def get(self, stream_id: str) -> int | None:
        return self.slots.get(stream_id)

    def items(self) -> list[tuple[str, int]]:
        """(id, slot) of every held stream, least recently seen first."""
        out, slot, ids, newer = [], self.oldest, self.ids, self.newer
        while slot >= 0:
            out.append((ids[slot], slot))
            slot = newer[slot]
        return out

    def _unlink(self, slot: int) -> None:
        older, newer = self.older[slot], self.newer[slot]
        if older >= 0:
            self.newer[older] = newer
        else:
            self.oldest = newer
        if newer >= 0:
            self.older[newer] = older
        else:
            self.newest = older

    def _append(self, slot: int) -> None:
        """Link `slot` as the most recently seen."""
        self.older[slot], self.newer[slot] = self.newest, -1
        if self.newest >= 0:
            self.newer[self.newest] = slot
        else:
            self.oldest = slot
        self.newest = slot

    def _move(self, src: int, dst: int) -> None:
        """The stream of slot `src` to the free slot `dst` (< src), keeping its place in the order."""
        older, newer = self.older[src], self.newer[src]
        self.older[dst], self.newer[dst] = older, newer
        if older >= 0:
            self.newer[older] = dst
        else:
            self.oldest = dst
        if newer >= 0:
            self.older[newer] = dst
        else:
            self.newest = dst
        stream_id = self.ids[src]
        self.ids[dst], self.ids[src] = stream_id, None
        self.slots[stream_id] = dst

    def _hold(self, stream_id: str, slot: int) -> None:
        if slot >= len(self.ids):
            grow = slot + 1 - len(self.ids)
            self.ids.extend([None] * grow)
            self.older.extend([-1] * grow)
            self.newer.extend([-1] * grow)
        self.slots[stream_id] = slot
        self.ids[slot] = stream_id
        self._append(slot)

    def touch(self, stream_id: str) -> None:
        """Mark a held stream as the most recently seen."""
        slot = self.slots[stream_id]
        if slot != self.newest:
            self._unlink(slot)
            self._append(slot)

    def load(self, items) -> None:
        """Hold (id, slot) pairs, given least recently seen first (a snapshot's), in a table
        that holds none; the order's links are set in bulk (~3 us a stream one by one)."""
        if self.slots:
            raise ValueError("StreamTable.load needs an empty table")
        pairs = list(items)
        if not pairs:
            return
        self.slots = dict(pairs)
        order = np.fromiter((slot for _, slot in pairs), dtype=np.int32, count=len(pairs))
        size = int(order.max()) + 1
        self.ids = [None] * size
        for stream_id, slot in pairs:
            self.ids[slot] = stream_id
        older, newer = np.full(size, -1, dtype=np.int32), np.full(size, -1, dtype=np.int32)
        older[order[1:]], newer[order[:-1]] = order[:-1], order[1:]
        self.older, self.newer = array("i", older.tobytes()), array("i", newer.tobytes())
        self.oldest, self.newest = int(order[0]), int(order[-1])

    def remove(self, stream_id: str) -> None:
        """Forget a held stream; its slot is free for the next new one."""
        slot = self.slots.pop(stream_id)
        self._unlink(slot)
        self.ids[slot] = None
        self.free.append(slot)

    def pack(self, capacity: int) -> list[tuple[int, int]]:
        """Renumber the held streams so that every slot is below `capacity` (>= the number
        held), moving those above it into the lowest free slots; returns the (from, to)
        moves to make in the tables."""
        movers = [(sid, slot) for sid, slot in self.items() if slot >= capacity]
        free = sorted((slot for slot in self.free if slot < capacity), reverse=True)
        fresh = min(len(self.slots) + len(self.free), capacity)  # slots below are held or free
        moves = []
        for sid, src in movers:
            if free:
                dst = free.pop()
            else:
                dst, fresh = fresh, fresh + 1
            self._move(src, dst)
            moves.append((src, dst))
        self.free = free
        del self.ids[capacity:], self.older[capacity:], self.newer[capacity:]
        return moves

    def assign(self, stream_ids) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Slots for `stream_ids` in order, touching each as most recent.

        Returns (slots, new) where `new` lists (slot, id) of slots that must be reset
        before use. Stops early (returns fewer slots) rather than evict a stream that an
        earlier event of the same call still needs; the caller processes the prefix and
        calls again.
        """
        slots = np.empty(len(stream_ids), dtype=np.int64)
        new: list[tuple[int, str]] = []
        used_now: set[int] = set()
        table, free = self.slots, self.free
        older, newer = self.older, self.newer
        for n, sid in enumerate(stream_ids):
            slot = table.get(sid)
            if slot is not None:
                newest = self.newest
                if slot != newest:  # _unlink and _append, inline: this is the per-event path
                    before, after = older[slot], newer[slot]
                    if before >= 0:
                        newer[before] = after
                    else:
                        self.oldest = after
                    older[after] = before
                    older[slot], newer[slot], newer[newest] = newest, -1, slot
                    self.newest = slot
            elif len(table) < self.max_streams:
                slot = free.pop() if free else len(table)  # without free slots, 0..len-1 are held
                self._hold(sid, slot)
                new.append((slot, sid))
            else:
                slot = self.oldest
                if slot in used_now:
                    return slots[:n], new
                self._unlink(slot)
                del table[self.ids[slot]]
                self.evicted += 1
                self._hold(sid, slot)
                new.append((slot, sid))
            used_now.add(slot)
            slots[n] = slot
        return slots, new

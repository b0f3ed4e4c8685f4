"""NAB-compatible anomaly-detection scoring (pure numpy / stdlib).

Reproduces the rules of the Numenta Anomaly Benchmark scorer
(``nab/sweeper.py`` of numenta/NAB, v1.x):

* Each series has a probationary period: the first
  ``min(floor(0.15 * N), 0.15 * 5000)`` rows are not scored at all (no TP,
  no FP, and a window lying wholly inside it costs nothing when missed).
* A row is a *detection* when its anomaly score is ``>= threshold``.
* ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` (NAB's ``scaledSigmoid``), except
  ``sigma(y) = -1`` for ``y > 3``.
* Inside a window of width ``w`` (rows, inclusive) whose last row is ``r``,
  a detection at row ``i`` is worth
  ``A_TP * sigma(-(r - i + 1) / w) / sigma(-1)``; a detection on the first
  window row is worth exactly ``A_TP``, one on the last row
  ``A_TP * sigma(-1/w) / sigma(-1)``.  Only the best (= earliest) detection
  of a window counts; a window with no detection costs ``-A_FN``.
* A detection outside every window, after a window ending at row ``r`` of
  width ``w``, is worth ``A_FP * sigma((i - r) / (w - 1))`` (note the
  ``w - 1``; it is negative).  Before the first window it is worth
  ``-A_FP``.
* One threshold per profile for the whole corpus: all distinct score values
  are swept (descending) and the one maximising the summed raw score wins;
  ties go to the highest threshold (fewest detections), as in NAB where the
  first entry of a stable descending sort wins.
* Normalised score ``100 * (S - S_null) / (S_perfect - S_null)`` with
  ``S_null = -A_FN * n_windows`` and ``S_perfect = A_TP * n_windows``.

Windows are given to the scoring functions as inclusive row-index ranges;
:func:`window_rows` converts NAB's timestamp pairs to row ranges.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "CostProfile",
    "PROFILES",
    "PROBATION_PERCENT",
    "scaled_sigmoid",
    "probation_rows",
    "parse_timestamp",
    "load_windows",
    "read_nab_csv",
    "window_rows",
    "row_weights",
    "SeriesScores",
    "SeriesOutcome",
    "CategoryResult",
    "CorpusResult",
    "evaluate_series",
    "score_series",
    "sweep_thresholds",
    "score_corpus",
]

PROBATION_PERCENT = 0.15


class CostProfile(NamedTuple):
    """NAB application profile weights (``tpWeight``, ``fnWeight``, ``fpWeight``)."""

    tp: float
    fn: float
    fp: float


PROFILES: Dict[str, CostProfile] = {
    "standard": CostProfile(tp=1.0, fn=1.0, fp=0.11),
    "reward_low_FP_rate": CostProfile(tp=1.0, fn=1.0, fp=0.22),
    "reward_low_FN_rate": CostProfile(tp=1.0, fn=2.0, fp=0.11),
}

Window = Tuple[int, int]  # inclusive (first_row, last_row)


# ---------------------------------------------------------------------------
# basic rules
# ---------------------------------------------------------------------------

def scaled_sigmoid(y: float) -> float:
    """NAB's ``scaledSigmoid``: ``2/(1+exp(5y)) - 1``, and ``-1`` for ``y > 3``."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(n: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Number of leading rows of an ``n``-row series that are not scored.

    NAB: ``min(math.floor(0.15 * n), 0.15 * 5000)``.
    """
    return int(min(math.floor(probation_percent * n), probation_percent * 5000))


# ---------------------------------------------------------------------------
# I/O helpers
# ---------------------------------------------------------------------------

def parse_timestamp(s: str) -> datetime:
    """Parse NAB timestamps ("2014-04-01 00:00:00", "2014-04-10 07:15:00.000000",
    ISO forms with ``T``)."""
    s = s.strip()
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M"):
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    raise ValueError(f"unrecognised timestamp: {s!r}")


def load_windows(labels_json_path) -> Dict[str, List[Tuple[str, str]]]:
    """Load NAB ``combined_windows.json``: ``{"category/file.csv": [(start, end), ...]}``."""
    with open(labels_json_path) as f:
        raw = json.load(f)
    return {name: [(str(a), str(b)) for a, b in wins] for name, wins in raw.items()}


def read_nab_csv(path) -> Tuple[List[str], np.ndarray]:
    """Read a NAB data file (columns ``timestamp,value``) -> (timestamps, values)."""
    timestamps: List[str] = []
    values: List[float] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        ti = header.index("timestamp") if "timestamp" in header else 0
        vi = header.index("value") if "value" in header else 1
        for row in reader:
            if not row:
                continue
            timestamps.append(row[ti])
            values.append(float(row[vi]))
    return timestamps, np.asarray(values, dtype=np.float64)


def window_rows(timestamps: Sequence, windows: Sequence[Tuple]) -> List[Window]:
    """Convert (start, end) timestamp windows to inclusive row-index ranges.

    Timestamps may be strings or ``datetime``.  As in NAB, the window starts at
    the row whose timestamp equals ``start`` and ends at the first row whose
    timestamp equals ``end``.  If a boundary timestamp is not present, the
    window is the run of rows from the first row with ``t >= start`` up to the
    last consecutive row with ``t <= end``.  Windows containing no row are
    dropped.  The result is sorted by start row.
    """
    ts = [t if isinstance(t, datetime) else parse_timestamp(str(t)) for t in timestamps]
    first_index: Dict[datetime, int] = {}
    for i, t in enumerate(ts):
        first_index.setdefault(t, i)
    out: List[Window] = []
    for a, b in windows:
        a = a if isinstance(a, datetime) else parse_timestamp(str(a))
        b = b if isinstance(b, datetime) else parse_timestamp(str(b))
        if a in first_index:
            s = first_index[a]
        else:
            s = next((i for i, t in enumerate(ts) if t >= a), None)
            if s is None:
                continue
        e = first_index.get(b)
        if e is None or e < s:
            e = s - 1
            while e + 1 < len(ts) and a <= ts[e + 1] <= b:
                e += 1
        if e >= s:
            out.append((s, e))
    out.sort()
    return out


# ---------------------------------------------------------------------------
# per-row weights (NAB calcSweepScore)
# ---------------------------------------------------------------------------

def _check_windows(n: int, windows: Sequence[Window]) -> List[Window]:
    wins = sorted((int(s), int(e)) for s, e in windows)
    prev_end = -1
    for s, e in wins:
        if not (0 <= s <= e < n):
            raise ValueError(f"window {(s, e)} out of range for {n} rows")
        if s <= prev_end:
            raise ValueError("windows overlap")
        prev_end = e
    return wins


def row_weights(n: int, windows: Sequence[Window], profile: CostProfile,
                probation: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """NAB per-row sweep scores.

    Returns ``(weights, window_id)``, both of length ``n``.  ``weights[i]`` is
    what a detection at row ``i`` is worth (for in-window rows: the value if it
    is the window's best detection).  ``window_id[i]`` is the index (into the
    sorted windows) of the window containing row ``i``, ``-1`` for rows outside
    all windows and ``-2`` for probationary rows (not scored).
    """
    wins = _check_windows(n, windows)
    if probation is None:
        probation = probation_rows(n)
    weights = np.empty(n, dtype=np.float64)
    wid = np.full(n, -1, dtype=np.int64)
    prev_end: Optional[int] = None
    prev_width = 0
    idx = np.arange(n)
    cursor = 0
    bounds = wins + [(n, n)]
    for k, (s, e) in enumerate(bounds):
        # outside rows [cursor, s)
        if s > cursor:
            if prev_end is None:
                weights[cursor:s] = -profile.fp
            elif prev_width <= 1:
                # NAB divides by (width - 1) = 0 here; treat as infinitely far.
                weights[cursor:s] = -profile.fp
            else:
                y = (idx[cursor:s] - prev_end) / float(prev_width - 1)
                sig = np.where(y > 3.0, -1.0,
                               2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)
                weights[cursor:s] = sig * profile.fp
        if k == len(wins):
            break
        w = float(e - s + 1)
        pos = -(e - idx[s:e + 1] + 1) / w
        weights[s:e + 1] = (2.0 / (1.0 + np.exp(5.0 * pos)) - 1.0) * profile.tp / _MAX_TP
        wid[s:e + 1] = k
        prev_end, prev_width = e, int(w)
        cursor = e + 1
    wid[:probation] = -2
    return weights, wid


# ---------------------------------------------------------------------------
# direct scoring of one series at one threshold
# ---------------------------------------------------------------------------

class SeriesOutcome(NamedTuple):
    """Result of scoring one series at one threshold.

    ``tp``: windows detected; ``fn``: scored windows missed; ``fp``: detections
    outside windows (rows, after probation); ``n_windows``: scored windows
    (those with at least one row after probation).
    """

    score: float
    tp: int
    fn: int
    fp: int
    n_windows: int


def evaluate_series(scores, windows: Sequence[Window], threshold: float,
                    profile: CostProfile, probation: Optional[int] = None) -> SeriesOutcome:
    """Score one series directly (no sweep): detections are ``scores >= threshold``."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    weights, wid = row_weights(n, windows, profile, probation)
    det = scores >= threshold  # NaN never detects
    total = 0.0
    tp = fn = 0
    n_win = 0
    for k in range(len(_check_windows(n, windows))):
        rows = np.flatnonzero(wid == k)
        if rows.size == 0:
            continue  # window wholly inside probation: not scored
        n_win += 1
        hit = rows[det[rows]]
        if hit.size:
            tp += 1
            total += float(weights[hit[0]])  # earliest detection = best
        else:
            fn += 1
            total -= profile.fn
    fp_rows = (wid == -1) & det
    total += float(weights[fp_rows].sum())
    return SeriesOutcome(total, tp, fn, int(fp_rows.sum()), n_win)


def score_series(scores, windows: Sequence[Window], threshold: float,
                 profile: CostProfile, probation: Optional[int] = None) -> float:
    """Raw NAB score of one series at ``threshold`` (direct rule)."""
    return evaluate_series(scores, windows, threshold, profile, probation).score


# ---------------------------------------------------------------------------
# corpus sweep
# ---------------------------------------------------------------------------

@dataclass
class SeriesScores:
    """Anomaly scores of one series plus its windows (inclusive row ranges).

    ``name`` is NAB's relative path, e.g. ``"realKnownCause/nyc_taxi.csv"``;
    the category is the part before the first ``/``.
    """

    name: str
    scores: np.ndarray
    windows: List[Window] = field(default_factory=list)
    probation: Optional[int] = None  # None: NAB default probation_rows(N)

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if np.any(self.scores == np.inf):
            raise ValueError(f"{self.name}: +inf anomaly scores are not supported")
        self.windows = [(int(s), int(e)) for s, e in self.windows]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else ""


class CategoryResult(NamedTuple):
    raw_score: float
    normalized_score: float  # nan if the category has no windows
    tp: int
    fn: int
    fp: int
    n_windows: int


@dataclass
class CorpusResult:
    """Outcome of :func:`score_corpus` for one profile.

    ``threshold`` is ``inf`` when detecting nothing is optimal.  ``tp``/``fn``
    count windows, ``fp`` counts detections outside windows.
    """

    profile: CostProfile
    threshold: float
    raw_score: float
    normalized_score: float
    null_score: float
    perfect_score: float
    tp: int
    fn: int
    fp: int
    n_windows: int
    per_series: Dict[str, float]
    per_category: Dict[str, CategoryResult]


def _normalize(raw: float, null: float, perfect: float) -> float:
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def sweep_thresholds(series: Sequence[SeriesScores],
                     profile: CostProfile) -> Tuple[np.ndarray, np.ndarray]:
    """Summed raw corpus score for every candidate threshold, O(N log N).

    Returns ``(thresholds, scores)``: ``thresholds[0] = inf`` (no detection),
    then every distinct (non-NaN) score of a scored row in descending order;
    ``scores[j]`` is the corpus raw score when detecting ``score >= thresholds[j]``.
    """
    all_scores: List[np.ndarray] = []
    all_delta: List[np.ndarray] = []
    n_windows = 0
    for s in series:
        n = len(s.scores)
        weights, wid = row_weights(n, s.windows, profile, s.probation)
        sc = np.where(np.isnan(s.scores), -np.inf, s.scores)
        fp_mask = wid == -1
        all_scores.append(sc[fp_mask])
        all_delta.append(weights[fp_mask])
        in_mask = wid >= 0
        if not in_mask.any():
            continue
        rows = np.flatnonzero(in_mask)
        k = wid[rows]
        n_windows += len(np.unique(k))
        # within each window: rows by descending score (stable -> ties in row
        # order; the tie order does not change the value after a whole tie group).
        order = np.lexsort((rows, -sc[rows], k))
        rows, k = rows[order], k[order]
        w = weights[rows]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        seg_len = np.diff(np.r_[starts, len(rows)])
        # cumulative max per window, starting from -A_FN
        delta = np.empty_like(w)
        for st, ln in zip(starts, seg_len):
            seg = np.maximum.accumulate(np.maximum(w[st:st + ln], -profile.fn))
            delta[st:st + ln] = np.diff(np.r_[-profile.fn, seg])
        all_scores.append(sc[rows])
        all_delta.append(delta)
    base = -profile.fn * n_windows
    if all_scores:
        sc = np.concatenate(all_scores)
        de = np.concatenate(all_delta)
    else:
        sc = np.empty(0)
        de = np.empty(0)
    keep = np.isfinite(sc)  # NaN (mapped to -inf) never detects
    sc, de = sc[keep], de[keep]
    order = np.argsort(-sc, kind="stable")
    sc, de = sc[order], de[order]
    cum = base + np.cumsum(de)
    if sc.size:
        last_of_group = np.flatnonzero(np.r_[sc[1:] != sc[:-1], True])
        thr = np.r_[np.inf, sc[last_of_group]]
        val = np.r_[base, cum[last_of_group]]
    else:
        thr = np.array([np.inf])
        val = np.array([base], dtype=np.float64)
    return thr, val


def score_corpus(series: Sequence[SeriesScores], profile) -> CorpusResult:
    """Choose the corpus-wide threshold (NAB sweep) and score every series.

    ``profile`` is a :class:`CostProfile` or a key of :data:`PROFILES`.
    Per-series and total raw scores are recomputed directly at the chosen
    threshold with :func:`evaluate_series`.
    """
    if isinstance(profile, str):
        profile = PROFILES[profile]
    thr, val = sweep_thresholds(series, profile)
    best = int(np.argmax(val))  # first maximum = highest threshold on ties
    threshold = float(thr[best])

    per_series: Dict[str, float] = {}
    cat_acc: Dict[str, List[float]] = {}
    tot = [0.0, 0, 0, 0, 0]
    for s in series:
        out = evaluate_series(s.scores, s.windows, threshold, profile, s.probation)
        per_series[s.name] = out.score
        acc = cat_acc.setdefault(s.category, [0.0, 0, 0, 0, 0])
        for a in (acc, tot):
            a[0] += out.score
            a[1] += out.tp
            a[2] += out.fn
            a[3] += out.fp
            a[4] += out.n_windows
    per_category = {
        c: CategoryResult(a[0], _normalize(a[0], -profile.fn * a[4], profile.tp * a[4]),
                          a[1], a[2], a[3], a[4])
        for c, a in cat_acc.items()
    }
    raw, n_win = tot[0], tot[4]
    null, perfect = -profile.fn * n_win, profile.tp * n_win
    return CorpusResult(
        profile=profile, threshold=threshold, raw_score=raw,
        normalized_score=_normalize(raw, null, perfect),
        null_score=null, perfect_score=perfect,
        tp=tot[1], fn=tot[2], fp=tot[3], n_windows=n_win,
        per_series=per_series, per_category=per_category,
    )

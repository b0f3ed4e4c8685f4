"""SKAB's leaderboard metrics (pure numpy), written from their definitions.

SKAB (Skoltech Anomaly Benchmark, waico/SKAB, GPL-3.0) scores its "Proposed
Leaderboard" on the *test* rows of each file: rows 400 onwards
(``train_test_split(..., train_size=400, shuffle=False)`` in SKAB's
``core/utils.py``), each file its own series. Its metric code is TSAD's
(waico/tsad: ``tsad/evaluating/evaluating.py`` ``evaluating``,
``src.py`` ``single_detecting_boundaries`` / ``extract_cp_confusion_matrix``,
``univariate_funcs.py`` ``single_evaluate_nab`` / ``my_scale``; the same
functions are copied into SKAB's ``core/metrics.py`` as ``chp_score``), called
with ``metric="nab"``, a 60 s window and ``anomaly_window_destination=
"righter"``. Nothing here is copied from either; the definitions below were
read off them and are implemented independently.

Outlier detection (:func:`outlier_metrics`, defined in :mod:`.labelled` and used
by ``evaluate labelled`` too), over the rows of all files concatenated, ``anomaly``
column against the predicted 0/1 rows:
``F1 = TP / (TP + (FN + FP) / 2)``, ``FAR = 100 FP / (FP + TN)`` %,
``MAR = 100 FN / (FN + TP)`` %.

Changepoint detection (:func:`match_changepoints`, :func:`changepoint_score`),
per file, from the labelled changepoint rows (``changepoint == 1``) and the
predicted changepoint rows (any nonzero prediction):

1. **Windows** are times, not rows: ``[t_cp, t_cp + 60 s]``, both ends
   inclusive, one per labelled changepoint (SKAB's rows are about 1 s apart
   but not exactly; a gap in the data shortens the window in rows).
2. **Overlaps** ("cut right window"): where a window ends at or after the
   start of the next, the next one starts where the previous ends, so two
   windows may share that one instant (a detection there counts in both).
   A changepoint less than 60 s after the previous one thus lies in the
   previous window, not its own: on SKAB's test rows, alerting exactly at the
   127 labelled changepoints scores 92.91, not 100 (9 missed).
3. In each window only the **first** detection counts; it is a TP worth
   ``A_fp + (A_tp - A_fp) / 2 * (1 - tanh(x) / tanh(pi / 2))`` where ``x`` is
   the ``k``-th of 1000 evenly spaced points from ``-pi/2`` to ``pi/2``
   (``np.linspace``), ``k = min(floor(1000 u), 999)`` and
   ``u = (t_det - start) / (end - start)`` -- TSAD's ``"improved"`` scale
   function with ``scale_koef = 1``: ``A_tp`` at the window's first instant,
   falling smoothly to ``A_fp`` at its last. Later detections in the same
   window are neither TP nor FP. A window without detection costs ``A_fn``.
4. Every detection outside all windows is an FP worth ``A_fp``, wherever it
   lies.
5. Profiles: NAB's weights (``A_tp = 1``; ``A_fp = -0.11 / -0.22 / -0.11``,
   ``A_fn = -1 / -1 / -2`` for standard / low FP / low FN), taken from
   :data:`.nab_scoring.PROFILES` (which stores the magnitudes).
6. **Aggregation**: the raw score ``S``, the null score ``-A_fn * n_windows``
   and the perfect score ``A_tp * n_windows`` are each summed over all files
   first, then ``100 (S - S_null) / (S_perfect - S_null)``. The leaderboard
   prints it rounded to 2 decimals; :func:`changepoint_score` does not round.
7. "Number of missed CPs" is the number of windows without detection and
   "Number of FPs" the number of detections outside all windows, summed over
   files (TSAD's ``metric="average_time"`` with the same windows).

Where this differs from NAB (:mod:`.nab_scoring`), following SKAB/TSAD: the
input is already binary (no threshold sweep); no probationary period; windows
start at the changepoint instead of being centred on it, and are cut rather
than merged where they overlap; the in-window reward is the tanh curve above,
quantised to 1000 steps, ending at ``A_fp`` (NAB: a scaled sigmoid of the
relative position, ending near 0); an FP costs a flat ``A_fp`` (NAB weighs it
by its distance after the preceding window); scores are summed over files
before normalising (as NAB does), there being no per-category step.

The two data-free references the report prints are flag-every-row and
:func:`evenly_spaced` alerts.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from .labelled import _as_bool, outlier_metrics
from .nab_scoring import PROFILES, CostProfile

__all__ = [
    "WINDOW_SECONDS",
    "outlier_metrics",
    "changepoint_windows",
    "window_reward",
    "FileChangepoints",
    "match_changepoints",
    "ChangepointResult",
    "changepoint_score",
    "evenly_spaced",
]

WINDOW_SECONDS = 60.0
_STEPS = 1000  # TSAD's `detalization`: the reward curve is sampled at this many points
_GRID = np.linspace(-math.pi / 2, math.pi / 2, _STEPS)


def changepoint_windows(changepoint_times, width: float = WINDOW_SECONDS) -> list[tuple[float, float]]:
    """The scoring windows ``(start, end)`` (inclusive, in the times' units) of sorted
    changepoint times: ``[t, t + width]``, each cut to start where the previous ends
    when they overlap (rule 2 of the module docstring).

    >>> changepoint_windows([0.0, 30.0, 200.0])
    [(0.0, 60.0), (60.0, 90.0), (200.0, 260.0)]
    """
    times = [float(t) for t in changepoint_times]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("changepoint times must be strictly increasing")
    windows: list[tuple[float, float]] = []
    for t in times:
        start = t if not windows or windows[-1][1] < t else windows[-1][1]
        windows.append((start, t + width))
    return windows


def window_reward(u: float, profile: CostProfile) -> float:
    """What the first detection at relative position ``u`` (0 = the window's first
    instant, 1 = its last) of a window is worth under ``profile`` (rule 3).

    >>> p = PROFILES["standard"]
    >>> window_reward(0.0, p), window_reward(1.0, p)
    (1.0, -0.11)
    """
    k = min(int(u * _STEPS), _STEPS - 1)
    a_tp, a_fp = profile.tp, -profile.fp
    return a_fp + (a_tp - a_fp) / 2 * (1.0 - math.tanh(_GRID[k]) / math.tanh(math.pi / 2))


class FileChangepoints(NamedTuple):
    """One file's changepoints matched against its predictions, before weighting.

    ``positions``: the relative position ``u`` in its window of each detected
    window's first detection; ``missed``: windows without detection;
    ``false_positives``: detections outside every window; ``n_windows``: labelled
    changepoints.
    """

    positions: tuple[float, ...]
    missed: int
    false_positives: int
    n_windows: int

    def raw_score(self, profile: CostProfile) -> float:
        """The file's raw score under ``profile`` (rules 3-4)."""
        return (sum(window_reward(u, profile) for u in self.positions)
                - profile.fn * self.missed - profile.fp * self.false_positives)


def match_changepoints(timestamps, changepoints, predicted, width: float = WINDOW_SECONDS) -> FileChangepoints:
    """Match one file's predicted changepoints (nonzero rows of ``predicted``) to the
    windows of its labelled ones (nonzero rows of ``changepoints``).

    ``timestamps`` are the rows' times in seconds (non-decreasing), e.g. epoch
    seconds; the windows are ``width`` seconds long.

    >>> t = np.arange(10.0)
    >>> match_changepoints(t, t == 2, (t == 4) | (t == 9), width=3.0)
    FileChangepoints(positions=(0.6666666666666666,), missed=0, false_positives=1, n_windows=1)
    """
    t = np.asarray(timestamps, dtype=np.float64)
    cp = _as_bool(changepoints, "changepoints")
    det = _as_bool(predicted, "predicted")
    if not (t.shape == cp.shape == det.shape):
        raise ValueError("timestamps, changepoints and predicted must have the same length")
    if np.isnan(t).any() or np.any(np.diff(t) < 0):
        raise ValueError("timestamps must be known and non-decreasing")
    inside = np.zeros(len(t), dtype=bool)
    positions = []
    missed = 0
    windows = changepoint_windows(t[cp], width)
    for start, end in windows:
        rows = (t >= start) & (t <= end)
        inside |= rows
        hits = np.flatnonzero(rows & det)
        if hits.size:
            positions.append(float((t[hits[0]] - start) / (end - start)))
        else:
            missed += 1
    return FileChangepoints(tuple(positions), missed, int(np.sum(det & ~inside)), len(windows))


class ChangepointResult(NamedTuple):
    """SKAB's changepoint figures over a set of files.

    ``scores``: the normalised score per profile name (keys of
    :data:`.nab_scoring.PROFILES`; ``nan`` without changepoints); ``raw``: the
    summed raw score per profile; ``missed``, ``false_positives``,
    ``n_changepoints``: summed over files.
    """

    scores: dict[str, float]
    raw: dict[str, float]
    missed: int
    false_positives: int
    n_changepoints: int


def changepoint_score(files: Sequence[FileChangepoints]) -> ChangepointResult:
    """Sum the files' raw, null and perfect scores, then normalise (rule 6).

    >>> one = FileChangepoints((0.0,), missed=1, false_positives=0, n_windows=2)
    >>> changepoint_score([one]).scores["standard"]  # (1 - 1 + 2) / 4
    50.0
    """
    n = sum(f.n_windows for f in files)
    scores, raw = {}, {}
    for name, profile in PROFILES.items():
        s = sum(f.raw_score(profile) for f in files)
        null, perfect = -profile.fn * n, profile.tp * n
        raw[name] = s
        scores[name] = 100.0 * (s - null) / (perfect - null) if n else math.nan
    return ChangepointResult(scores, raw, sum(f.missed for f in files),
                             sum(f.false_positives for f in files), n)


def evenly_spaced(n_alerts: int, n_rows: int) -> np.ndarray:
    """``n_alerts`` alerts spread evenly over ``n_rows`` rows: row
    ``floor((k + 1/2) n_rows / n_alerts)`` for ``k = 0 .. n_alerts - 1`` (a data-free
    reference detector).

    >>> np.flatnonzero(evenly_spaced(4, 200)).tolist()
    [25, 75, 125, 175]
    """
    if not 0 <= n_alerts <= n_rows:
        raise ValueError(f"cannot place {n_alerts} alerts on {n_rows} rows")
    out = np.zeros(n_rows, dtype=bool)
    if n_alerts:
        out[(2 * np.arange(n_alerts) + 1) * n_rows // (2 * n_alerts)] = True
    return out

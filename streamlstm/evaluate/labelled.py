"""Metrics for series with a per-row 0/1 anomaly label (pure numpy / stdlib).

* Row level: precision, recall and F1 of the flagged rows against the labels.
* Event level: a maximal contiguous run of label 1 is an *event*; it is
  detected when at least one row inside it is flagged.  The detection delay of
  a detected event is ``first_flagged_row - first_event_row`` (in rows, 0 when
  the first row of the event is flagged).
* Ranking of continuous scores, threshold-free: ROC AUC (:func:`roc_auc`) and
  the area under the precision-recall curve as average precision
  (:func:`average_precision`); both are ``nan`` when a class is absent.

Conventions for empty denominators: precision is 0.0 when nothing is flagged,
recall is 0.0 when there are no positive rows, F1 is 0.0 when precision +
recall is 0; event recall is ``nan`` when there are no events, and the mean
delay is ``nan`` when no event was detected.
"""
from __future__ import annotations

import csv
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["label_events", "labelled_metrics", "read_labelled_csv", "roc_auc", "average_precision"]


def _as_bool(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D")
    if a.dtype == bool:
        return a
    a = a.astype(np.float64)
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN")
    return a != 0


def label_events(labels) -> List[Tuple[int, int]]:
    """Maximal runs of nonzero labels as inclusive ``(first_row, last_row)`` pairs."""
    lab = _as_bool(labels, "labels").astype(np.int8)
    d = np.diff(np.r_[0, lab, 0])
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def labelled_metrics(labels, flags) -> Dict[str, float]:
    """Row- and event-level metrics of binary ``flags`` against ``labels``.

    Returns a dict with keys: ``tp``, ``fp``, ``fn``, ``tn`` (row counts),
    ``precision``, ``recall``, ``f1`` (row level), ``n_events``,
    ``events_detected``, ``event_recall`` and ``mean_delay`` (rows, over
    detected events).
    """
    lab = _as_bool(labels, "labels")
    flg = _as_bool(flags, "flags")
    if lab.shape != flg.shape:
        raise ValueError("labels and flags must have the same length")
    tp = int(np.sum(lab & flg))
    fp = int(np.sum(~lab & flg))
    fn = int(np.sum(lab & ~flg))
    tn = int(np.sum(~lab & ~flg))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    events = label_events(lab)
    delays: List[int] = []
    for s, e in events:
        hit = np.flatnonzero(flg[s:e + 1])
        if hit.size:
            delays.append(int(hit[0]))
    n_events = len(events)
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n_events": n_events,
        "events_detected": len(delays),
        "event_recall": len(delays) / n_events if n_events else float("nan"),
        "mean_delay": float(np.mean(delays)) if delays else float("nan"),
    }


def _ranked(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    lab = _as_bool(labels, "labels")
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != lab.shape:
        raise ValueError("labels and scores must have the same length")
    if np.isnan(sc).any():
        raise ValueError("scores contain NaN")
    return lab, sc


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the probability that a random positive row scores
    above a random negative one, ties counting one half (Mann-Whitney U / (P N)).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    lab, sc = _ranked(labels, scores)
    pos = int(lab.sum())
    neg = lab.size - pos
    if not pos or not neg:
        return float("nan")
    # Average ranks (1-based) of tied scores, so that a tie is worth one half.
    _, inverse, counts = np.unique(sc, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    ranks = (last - (counts - 1) / 2.0)[inverse]
    return float((ranks[lab].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(labels, scores) -> float:
    """Area under the precision-recall curve as average precision:
    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds, highest first
    (no interpolation; rows with equal scores enter together).

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # (1/2)(1) + (1/2)(2/3)
    0.8333333333333333
    """
    lab, sc = _ranked(labels, scores)
    pos = int(lab.sum())
    if not pos:
        return float("nan")
    order = np.argsort(-sc, kind="stable")
    sc, lab = sc[order], lab[order]
    last_of_tie = np.flatnonzero(np.r_[sc[1:] != sc[:-1], True])
    tp = np.cumsum(lab)[last_of_tie]
    precision = tp / (last_of_tie + 1.0)
    recall_gain = np.diff(np.r_[0, tp]) / pos
    return float(np.sum(recall_gain * precision))


def read_labelled_csv(path, label_column: str = "label",
                      value_column: Optional[str] = "value") -> Tuple[np.ndarray, np.ndarray]:
    """Read a CSV with a per-row 0/1 label column -> ``(values, labels)``.

    ``values`` is empty when ``value_column`` is None or absent.
    """
    values: List[float] = []
    labels: List[int] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or label_column not in reader.fieldnames:
            raise ValueError(f"{path}: no column {label_column!r}")
        use_val = value_column is not None and value_column in reader.fieldnames
        for row in reader:
            labels.append(int(float(row[label_column])))
            if use_val:
                values.append(float(row[value_column]))
    return np.asarray(values, dtype=np.float64), np.asarray(labels, dtype=np.int64)

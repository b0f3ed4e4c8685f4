"""Metrics for series with a per-row 0/1 anomaly label, and the labelled CSVs they come from.

* Row level: precision, recall and F1 of the flagged rows against the labels
  (:func:`labelled_metrics`), and SKAB's point-wise F1, false-alarm rate (FAR) and
  missed-alarm rate (MAR) (:func:`outlier_metrics`).
* Event level: a maximal contiguous run of label 1 is an *event*; it is
  detected when at least one row inside it is flagged.  The detection delay of
  a detected event is ``first_flagged_row - first_event_row`` (in rows, 0 when
  the first row of the event is flagged).
* Ranking of continuous scores, threshold-free: ROC AUC (:func:`roc_auc`) and
  the area under the precision-recall curve as average precision
  (:func:`average_precision`); both are ``nan`` when a class is absent.
* A reference beside ours: river's HalfSpaceTrees on the same rows
  (:func:`half_space_trees`), ranked the same way.
* The detector's three outputs against the labels (:func:`detection_metrics`):
  F1 / FAR / MAR of ``abnormal``, event recall and delay of the alerts, and the
  ranking of ``score`` and of ``regime``, over one file or several pooled.

Conventions for empty denominators: precision is 0.0 when nothing is flagged,
recall is 0.0 when there are no positive rows, F1 is 0.0 when precision +
recall is 0; event recall is ``nan`` when there are no events, and the mean
delay is ``nan`` when no event was detected; F1 / FAR / MAR are ``nan`` when
their own denominator is 0.

:func:`score_labelled` reads a labelled CSV with the parser `streamlstm score`
uses (io/parsers.py's CsvParser: the same delimiter, time and feature columns) and
runs the detector over it.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    from ..config import Config
    from ..multistream import BatchResult

__all__ = ["label_events", "labelled_metrics", "outlier_metrics", "roc_auc", "average_precision",
           "detection_metrics", "score_labelled"]

log = logging.getLogger("streamlstm")


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


def outlier_metrics(labels, predictions) -> dict:
    """SKAB's point-wise F1, FAR (%) and MAR (%) of 0/1 ``predictions`` against ``labels``:
    ``F1 = TP / (TP + (FN + FP) / 2)``, ``FAR = 100 FP / (FP + TN)``,
    ``MAR = 100 FN / (FN + TP)``. Returns ``f1, far, mar, tp, fp, tn, fn``; a rate whose
    denominator is 0 is ``nan``.

    >>> m = outlier_metrics([0, 0, 1, 1], [0, 1, 1, 0])
    >>> m["f1"], m["far"], m["mar"]
    (0.5, 50.0, 50.0)
    """
    m = labelled_metrics(labels, predictions)
    tp, fp, tn, fn = m["tp"], m["fp"], m["tn"], m["fn"]
    return {
        "f1": tp / (tp + (fn + fp) / 2) if tp + fn + fp else math.nan,
        "far": 100.0 * fp / (fp + tn) if fp + tn else math.nan,
        "mar": 100.0 * fn / (fn + tp) if fn + tp else math.nan,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
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



def half_space_trees(X: np.ndarray, seed: int, baseline: int = 0) -> np.ndarray:
    """River's HalfSpaceTrees as river's documentation runs it, `MinMaxScaler() |
    HalfSpaceTrees(seed=seed)`, over the rows of X (N, D): the first `baseline` rows learnt
    only (score 0), every later row scored then learnt. Returns its scores (N,)."""
    from river import anomaly, preprocessing

    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)
    scores = np.zeros(len(X))
    for i, row in enumerate(X.tolist()):
        x = dict(enumerate(row))
        if i >= baseline:
            scores[i] = model.score_one(x)
        model.learn_one(x)
    return scores


def detection_metrics(parts: Sequence[Tuple[np.ndarray, BatchResult]]) -> Dict[str, float]:
    """The detector's three outputs against the labels, over ``parts`` (``(labels,
    results)`` of one file or stream each, the rows in the same order).

    Returns ``rows``; ``f1``, ``far``, ``mar`` (:func:`outlier_metrics` of
    ``abnormal``); ``n_events``, ``events_detected``, ``event_recall`` and
    ``mean_delay`` (rows, over all detected events) of the alerts (``flags``);
    ``ap_score``, ``roc_score``, ``ap_regime``, ``roc_regime`` (average precision
    and ROC AUC of ``scores`` and of ``regime``). Rows are pooled over the parts; events
    are found within each part, so none spans two files.
    """
    labels = np.concatenate([np.asarray(lab) for lab, _ in parts])

    def pooled(field: str) -> np.ndarray:
        return np.concatenate([getattr(res, field) for _, res in parts])

    point = outlier_metrics(labels, pooled("abnormal"))
    events = [labelled_metrics(lab, res.flags) for lab, res in parts]
    n_events = sum(e["n_events"] for e in events)
    detected = sum(e["events_detected"] for e in events)
    delays = sum(e["mean_delay"] * e["events_detected"] for e in events if e["events_detected"])
    scores, regime = pooled("scores"), pooled("regime")
    return {
        "rows": labels.size, "f1": point["f1"], "far": point["far"], "mar": point["mar"],
        "n_events": n_events, "events_detected": detected,
        "event_recall": detected / n_events if n_events else math.nan,
        "mean_delay": delays / detected if detected else math.nan,
        "ap_score": average_precision(labels, scores), "roc_score": roc_auc(labels, scores),
        "ap_regime": average_precision(labels, regime), "roc_regime": roc_auc(labels, regime),
    }


def score_labelled(config: Config, path: str | Path, label_column: str = "label") -> Tuple[np.ndarray, BatchResult]:
    """Run the detector over a labelled CSV: ``(labels, results)`` of its accepted rows.

    The file is read as `streamlstm score` reads it (``config.input``: delimiter, time
    column, ``columns`` / ``exclude_columns``), with ``label_column`` taken out of the
    features as the 0/1 label; every row is scored, in file order, each stream (the
    stream column's, which a `stream_field` other than ``stream`` requires in every file,
    else the file's name without suffix) with the model of the file's
    name (``config.model_for``). Rejected rows are left out, with a warning.
    """
    # Imported here, so that the metrics load without the engine (skab_scoring uses them).
    from ..event import Rejected
    from ..io.parsers import CsvParser, InputFormatError
    from ..pool import detector_for

    path = Path(path)
    with path.open("rb") as f:
        first = f.readline()
        try:
            parser = CsvParser(dataclasses.replace(config.input, default_stream=path.stem), first,
                               label_column=label_column)
        except InputFormatError as exc:
            raise exc.of(path) from None
        if label_column not in parser.names or len(parser.names) < 2:
            raise InputFormatError(f"{path}: the columns read ({', '.join(parser.names)}) must be the label "
                                   f"column {label_column!r} and at least one value column")
        lines = itertools.chain([] if parser.header_lines else [first], f)
        parsed = [parser.parse(seq, line) for seq, line in enumerate(lines, start=1 + parser.header_lines)]
    events = [p for p in parsed if type(p) is not Rejected]
    rejected = [p for p in parsed if type(p) is Rejected and p.reason != "empty_line"]
    if rejected:
        log.warning("%s: %d of %d rows rejected and left out (first: line %d, %s: %s)", path, len(rejected),
                    len(parsed), rejected[0].seq, rejected[0].reason, rejected[0].detail)
    if not events:
        raise InputFormatError(f"{path}: no row accepted")
    label_at = parser.names.index(label_column)
    values = np.array([e.values for e in events], dtype=np.float64)
    labels, X = values[:, label_at], np.delete(values, label_at, axis=1)
    if np.isnan(labels).any():
        raise InputFormatError(f"{path}: line {events[int(np.isnan(labels).argmax())].seq} has no label")
    T = np.array([math.nan if e.ts is None else e.ts for e in events])
    det = detector_for(config.model_for(path.stem)[1], X.shape[1])
    return labels, det.process([e.stream for e in events], X, T)

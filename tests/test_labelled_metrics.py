"""Tests for streamlstm.evaluate.labelled on hand-made cases."""
import math
from typing import NamedTuple

import numpy as np
import pytest

from streamlstm.evaluate.labelled import (
    average_precision,
    detection_metrics,
    label_events,
    labelled_metrics,
    outlier_metrics,
    roc_auc,
)

TOL = 1e-9


def test_label_events():
    assert label_events([0, 1, 1, 0, 0, 1, 0, 1]) == [(1, 2), (5, 5), (7, 7)]
    assert label_events([1, 1, 1]) == [(0, 2)]
    assert label_events([0, 0]) == []


def test_row_and_event_metrics():
    # rows:    0 1 2 3 4 5 6 7 8 9
    labels = [0, 1, 1, 1, 0, 0, 1, 1, 0, 0]   # events (1,3) and (6,7)
    flags = [1, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    m = labelled_metrics(labels, flags)
    # TP rows 2,3 -> 2; FP rows 0,9 -> 2; FN rows 1,6,7 -> 3; TN rows 4,5,8 -> 3
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 2, 3, 3)
    # precision 2/4, recall 2/5, F1 = 2*0.5*0.4/0.9 = 4/9
    assert abs(m["precision"] - 0.5) < TOL
    assert abs(m["recall"] - 0.4) < TOL
    assert abs(m["f1"] - 4.0 / 9.0) < TOL
    # event (1,3) detected first at row 2 -> delay 1; event (6,7) missed
    assert m["n_events"] == 2 and m["events_detected"] == 1
    assert abs(m["event_recall"] - 0.5) < TOL
    assert abs(m["mean_delay"] - 1.0) < TOL


def test_mean_delay_over_detected_events():
    labels = [1, 1, 0, 1, 1, 1, 1, 0]          # events (0,1), (3,6)
    flags = [True, True, False, False, False, False, True, True]
    m = labelled_metrics(labels, flags)
    # delays: event 1 at row 0 -> 0, event 2 at row 6 -> 3; mean 1.5
    assert m["events_detected"] == 2 and abs(m["event_recall"] - 1.0) < TOL
    assert abs(m["mean_delay"] - 1.5) < TOL
    # rows: TP 0,1,6 = 3; FP row 7 = 1; FN rows 3,4,5 = 3
    assert abs(m["precision"] - 0.75) < TOL
    assert abs(m["recall"] - 0.5) < TOL
    assert abs(m["f1"] - 0.6) < TOL  # 2*0.75*0.5/1.25


def test_degenerate_cases():
    m = labelled_metrics([0, 0, 0], [0, 0, 0])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["n_events"] == 0 and math.isnan(m["event_recall"]) and math.isnan(m["mean_delay"])
    m = labelled_metrics([0, 1, 0], [0, 0, 0])
    assert m["event_recall"] == 0.0 and math.isnan(m["mean_delay"])
    with pytest.raises(ValueError):
        labelled_metrics([0, 1], [0, 1, 0])


def test_outlier_metrics_hand_case():
    # labels 0 0 1 1 1 0, predictions 0 1 1 1 0 0: TP 2 (rows 2,3), FP 1 (row 1),
    # FN 1 (row 4), TN 2 (rows 0,5); F1 = 2/(2 + 2/2) = 2/3, FAR = 1/3, MAR = 1/3
    m = outlier_metrics([0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0])
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 2, 1)
    assert (m["f1"], m["far"], m["mar"]) == pytest.approx((2 / 3, 100 / 3, 100 / 3))


def test_outlier_metrics_perfect_and_null_match_the_leaderboard():
    labels = [0, 1, 1, 0]
    perfect = outlier_metrics(labels, labels)
    assert (perfect["f1"], perfect["far"], perfect["mar"]) == (1.0, 0.0, 0.0)
    null = outlier_metrics(labels, [0, 0, 0, 0])
    assert (null["f1"], null["far"], null["mar"]) == (0.0, 0.0, 100.0)
    assert math.isnan(outlier_metrics([0, 0], [0, 0])["mar"])  # no positive row


class Outputs(NamedTuple):
    """The fields of a BatchResult that the metrics read."""
    scores: np.ndarray
    flags: np.ndarray
    regime: np.ndarray
    abnormal: np.ndarray


def test_detection_metrics_pool_rows_but_not_events():
    a = (np.array([0, 0, 1, 1]), Outputs(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 0, 1], bool),
                                         np.array([0.9, 0.8, 0.1, 0.2]), np.array([0, 1, 1, 1], bool)))
    b = (np.array([1, 0, 0, 0]), Outputs(np.array([0.7, 0.3, 0.0, 0.05]), np.array([1, 0, 0, 0], bool),
                                         np.array([0.0, 0.5, 0.5, 0.5]), np.array([0, 0, 0, 1], bool)))
    m = detection_metrics([a, b])
    # abnormal pooled 0 1 1 1 | 0 0 0 1 against 0 0 1 1 | 1 0 0 0: TP 2, FP 2, FN 1, TN 3
    # -> F1 = 2/(2 + 3/2) = 4/7, FAR = 2/5, MAR = 1/3
    assert m["rows"] == 8
    assert (m["f1"], m["far"], m["mar"]) == pytest.approx((4 / 7, 40.0, 100 / 3))
    # one event per file (pooled rows would make one event of rows 2-4): a's alerted one
    # row late, b's at once -> recall 1, mean delay 1/2
    assert (m["n_events"], m["event_recall"], m["mean_delay"]) == (2, 1.0, 0.5)
    # the score ranks the three positives first; the regime ranks them last, below a
    # three-way tie of negatives: AP = (1/6 + 2/7 + 3/8) / 3
    assert (m["ap_score"], m["roc_score"], m["roc_regime"]) == (1.0, 1.0, 0.0)
    assert m["ap_regime"] == pytest.approx((1 / 6 + 2 / 7 + 3 / 8) / 3)
    assert detection_metrics([a])["mean_delay"] == 1.0


def test_roc_auc_and_average_precision_hand_cases():
    # scores 0.9(+) 0.8(-) 0.7(+) 0.1(-): positive-negative pairs won: 0.9 beats both,
    # 0.7 beats 0.1 -> ROC AUC 3/4. Descending: 0.9 -> P 1, R 1/2; 0.8 -> P 1/2;
    # 0.7 -> P 2/3, R 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    labels, scores = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]
    assert abs(roc_auc(labels, scores) - 0.75) < TOL
    assert abs(average_precision(labels, scores) - 5 / 6) < TOL
    # perfect ranking: 1 and 1; reversed: ROC 0, AP = 1/2 * 1/3 + 1/2 * 2/4 = 5/12
    assert roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0 and average_precision([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [4, 3, 2, 1]) == 0.0
    assert abs(average_precision([0, 0, 1, 1], [4, 3, 2, 1]) - 5 / 12) < TOL


def test_ties_and_constant_scores():
    # a constant score ranks like chance: ROC AUC 1/2, AP = the positive rate (all rows
    # enter at one threshold: R 1, P 2/5)
    labels = [0, 1, 0, 1, 0]
    assert roc_auc(labels, [0.3] * 5) == 0.5
    assert abs(average_precision(labels, [0.3] * 5) - 0.4) < TOL
    # a tie between a positive and a negative counts 1/2: pairs (0.5+, 0.5-) = 1/2,
    # (0.5+, 0.2-) = 1, (0.9+, both) = 2 -> 3.5/4
    assert abs(roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.2]) - 0.875) < TOL
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2])) and math.isnan(average_precision([0, 0], [0.1, 0.2]))
    with pytest.raises(ValueError):
        roc_auc([0, 1], [0.1, float("nan")])


def test_roc_auc_and_average_precision_agree_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(50):
        labels = rng.integers(0, 2, 40)
        scores = rng.integers(0, 6, 40) / 5.0  # many ties
        if labels.min() == labels.max():
            continue
        assert abs(roc_auc(labels, scores) - metrics.roc_auc_score(labels, scores)) < TOL
        assert abs(average_precision(labels, scores) - metrics.average_precision_score(labels, scores)) < TOL

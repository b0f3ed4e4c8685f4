"""Tests for streamlstm.evaluate.labelled on hand-made cases."""
import math

import numpy as np
import pytest

from streamlstm.evaluate.labelled import (
    average_precision,
    label_events,
    labelled_metrics,
    read_labelled_csv,
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


def test_read_labelled_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("timestamp,value,label\n2020-01-01 00:00:00,1.5,0\n"
                 "2020-01-01 00:01:00,2.5,1\n")
    values, labels = read_labelled_csv(p)
    assert np.allclose(values, [1.5, 2.5]) and list(labels) == [0, 1]


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

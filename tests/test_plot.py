"""The results plot: a panel per feature on its own scale, time on the x axis when the events
have it, and the features most often named in alerts first when not all fit."""

import csv
import json
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from streamlstm.io import plot
from streamlstm.io.parsers import InputFormatError
from streamlstm.io.plot import MAX_FEATURE_PANELS, MAX_STREAMS, draw_results, plot_results, read_results
from streamlstm.io.records import csv_header, csv_row, record_features

matplotlib.use("Agg")


def records(n=60, features=("a", "b", "c"), scales=(1.0, 100.0, 1e4), ts=lambda t: 1_700_000_000 + 60 * t,
            named="b"):
    """Multivariate result records; an alert at event 40 naming `named` first."""
    out = []
    for t in range(n):
        values = {f: s * math.sin(t / 5 + k) for k, (f, s) in enumerate(zip(features, scales))}
        rec = {"seq": t, "stream": "pump", "values": values, "prediction": dict(values), "error": 0.1,
               "score": 0.9 if t == 40 else 0.1, "is_anomaly": t == 40, "alert_score": 0.9 if t == 40 else 0.1,
               "regime": 0.7 if 40 <= t < 50 else 0.0, "abnormal": 40 <= t < 50}
        if ts is not None:
            rec["ts"] = ts(t)
        if rec["is_anomaly"] or rec["abnormal"]:
            rec["contributors"] = [{"feature": named, "share": 0.8}]
        out.append(rec)
    return out


def test_each_feature_has_its_own_panel_and_scale():
    fig = draw_results(records())
    axes = fig.axes
    assert len(axes) == 3 + 1  # three features, then the outputs
    spans = [ax.get_ylim()[1] - ax.get_ylim()[0] for ax in axes[:3]]
    assert spans[1] > 50 * spans[0] and spans[2] > 50 * spans[1]  # a (~1), b (~100), c (~1e4)
    assert [t.get_text() for ax in axes[:3] for t in ax.texts] == ["a", "b", "c"]
    # the alert's dot (each panel's last collection) is on the feature it names, and only there
    assert [len(ax.collections[-1].get_offsets()) for ax in axes[:3]] == [0, 1, 0]
    plt.close(fig)


def test_time_axis_when_every_event_has_a_timestamp_in_order():
    iso = records(ts=lambda t: f"2026-01-05T00:{t:02d}:00Z")
    assert plot._times(iso)[0] == np.datetime64("2026-01-05T00:00:00", "ms")
    assert plot._times(records())[1] - plot._times(records())[0] == np.timedelta64(60, "s")
    missing = records()
    missing[5]["ts"] = None
    assert plot._times(missing) is None
    assert plot._times(records(ts=None)) is None
    backwards = records()
    backwards[5]["ts"] = backwards[0]["ts"] - 1
    assert plot._times(backwards) is None
    assert plot._times(records(ts=lambda t: "yesterday")) is None


@pytest.mark.parametrize("start", [253_402_300_770.0, -62_135_596_790.0])  # 30 s before 10000, 10 s into year 1
def test_times_near_the_bounds_of_a_date_axis_are_drawn_against_the_event_index(tmp_path, start):
    """Timestamps that parse but sit so near year 9999's end or year 1's start that
    matplotlib's padded date axis leaves its range raised a traceback from the plot (Date
    ordinal ... converts to 10000-01-01). They are drawn against the event index, as a
    plot without times is; a week away they keep the time axis."""
    near = records(ts=lambda t: start + 0.1 * t)
    assert plot._times(near) is None
    assert plot_results(near, tmp_path / "near.png") == 1 and (tmp_path / "near.png").stat().st_size > 0
    away = -7 * 86400.0 if start > 0 else 7 * 86400.0
    assert plot._times(records(ts=lambda t: start + away + 0.1 * t)) is not None


def test_results_with_epoch_milliseconds_are_drawn_against_the_event_index(tmp_path):
    # Results written before timestamps were bounded: year 56302 is beyond what a date axis draws.
    ms = records(ts=lambda t: 1_714_564_800_000 + 60_000 * t)
    assert plot._times(ms) is None
    assert plot_results(ms, tmp_path / "ms.png") == 1 and (tmp_path / "ms.png").stat().st_size > 0


def test_many_features_show_those_named_in_alerts_first_then_measurements():
    """Beyond MAX_FEATURE_PANELS: the features named first most often, then those with more
    than two values (constant columns and flags filled a wide file's panels)."""
    rng = np.random.default_rng(0)
    series = {f"f{k}": (rng.normal(size=6), np.zeros(6)) for k in range(12)}
    series["f0"] = series["f2"] = (np.array([1.0, 1.0, np.nan, 1.0, 1.0, 1.0]), np.zeros(6))  # constant
    series["f4"] = (np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0]), np.zeros(6))  # a flag
    top = [None, "f9", "f9", "f3", None, "f9"]
    shown = plot._shown_features(series, top)
    assert len(shown) == MAX_FEATURE_PANELS
    assert shown[:2] == ["f9", "f3"] and shown[2:] == ["f1", "f5", "f6", "f7", "f8", "f10"]
    few = {f: series[f] for f in ["f0", "f1", "f2", "f3", "f4"]}
    assert plot._shown_features(few, top) == list(few)
    fig = draw_results(records(features=list(series), scales=[1.0] * 12, named="f11"))
    assert len(fig.axes) == MAX_FEATURE_PANELS + 1
    assert fig.axes[0].texts[0].get_text() == "f11"
    assert f"{MAX_FEATURE_PANELS} of 12 features shown" in fig.axes[0].get_title(loc="left")
    plt.close(fig)


def test_of_many_streams_those_with_the_most_alerts_are_drawn():
    """200 streams made an image of 200 panels, 99,000 pixels tall, in 85 s; now
    MAX_STREAMS of them, those with the most alerts first, in their order."""
    quiet = [dict(r, is_anomaly=False, abnormal=False) for r in records(n=20, features=("a",), scales=(1.0,))]
    loud = [dict(r, is_anomaly=r["seq"] % 5 == 0) for r in quiet]
    recs = [dict(r, stream=f"s{k}") for k in range(MAX_STREAMS + 5) for r in (loud if k in (3, 12) else quiet)]
    titles = [ax.get_title(loc="left").split()[0] for ax in draw_results(recs).axes if ax.get_title(loc="left")]
    assert len(titles) == MAX_STREAMS and titles[:4] == ["s0", "s1", "s2", "s3"] and "s12" in titles


def test_csv_results_keep_their_contributors(tmp_path):
    recs = records()
    path = tmp_path / "r.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(csv_header(record_features(recs[0])))
        w.writerows(csv_row(r) for r in recs)
    back = read_results(path)
    assert back[40]["contributors"] == [{"feature": "b", "share": 0.8}]
    assert "contributors" not in back[0]
    assert plot_results(back, tmp_path / "r.png") == 1
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_a_file_that_is_not_results_is_one_error_naming_the_file_and_line(tmp_path):
    good = json.dumps({"seq": 1, "stream": "s", "value": 1.0, "prediction": None, "error": None, "score": 0.1,
                       "is_anomaly": False, "alert_score": 0.1, "regime": 0.0, "abnormal": False})
    cases = {"input.csv": ("timestamp,cpu\n2024-05-01T00:00:00,0.1\n", "line 2", "no 'seq'"),
             "input.jsonl": ('{"stream": "s", "value": 1}\n', "line 1", "no 'seq'"),
             "cut.jsonl": (good + "\n" + good[:40] + "\n", "line 2", "Expecting property name"),
             "no_value.jsonl": (good.replace('"value"', '"valu"') + "\n", "line 1", "no 'values'"),
             "some.log": ("abc 1 2\n", "line 1", "Expecting value"),
             "array.jsonl": ("[1, 2]\n", "line 1", "a JSON list, not an object")}
    for name, (text, line, why) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputFormatError, match=f"{name} {line}: not a results line .*{why}"):
            read_results(tmp_path / name)
    error_record = '{"seq": 2, "error": "not_numeric", "detail": "d", "raw": "x"}'
    (tmp_path / "ok.jsonl").write_text(good + "\n\n" + error_record + "\n")
    assert [r["seq"] for r in read_results(tmp_path / "ok.jsonl")] == [1]

"""Output records: the fast line formatter writes exactly what the generic encoder does."""

import json
import math

import pytest

from streamlstm.event import Event
from streamlstm.io.records import dumps, result_line, result_record
from streamlstm.pool import Scored


@pytest.mark.parametrize("ts_raw", [None, "2024-05-01T12:00:00Z", 1714564800, 1714564800.5])
@pytest.mark.parametrize("value,pred,err", [(0.73, 0.71, 0.08), (1e-300, math.nan, math.nan), (-2.0, 1e20, 3.0)])
def test_fast_line_equals_generic_encoding(ts_raw, value, pred, err):
    ev = Event(7, 'host "1"/cpu\u00e9', ("value",), (value,), None, ts_raw, {"value": value})
    s = Scored(ev, (pred,), err, 0.123456789, True, 0.1, 0.75, True)
    line = result_line(s)
    assert line == dumps(result_record(s))
    assert json.loads(line)["prediction"] == (None if math.isnan(pred) else pred)


def test_multivariate_record():
    ev = Event(3, "db", ("cpu", "mem"), (0.5, math.nan), None, None, {"cpu": 0.5, "mem": None})
    rec = json.loads(result_line(Scored(ev, (0.4, 0.3), 0.1, 0.2, False, 0.0, 0.01, False)))
    assert rec == {"seq": 3, "stream": "db", "values": {"cpu": 0.5, "mem": None},
                   "prediction": {"cpu": 0.4, "mem": 0.3}, "error": 0.1, "score": 0.2, "is_anomaly": False,
                   "alert_score": 0.0, "regime": 0.01, "abnormal": False}

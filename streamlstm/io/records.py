"""Output records: what is written for a scored event (stdin filter and Kafka alike).

A result record is `result_record`'s dict as compact JSON; from Kafka it also names its
source (`Source`: topic, partition, and the offset, which is the event's `seq`).
`result_lines` formats a whole micro-batch and is what the sinks use; `result_line` and
`result_record` are the one-event definitions it must equal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, NamedTuple

import orjson

from ..event import UNIVARIATE, Event
from ..multistream import BatchResult
from ..pool import Routed, Scored, scored_part


def _num(v: float) -> float | None:
    """JSON has no NaN: a missing number is null."""
    return None if math.isnan(v) else v


class Source(NamedTuple):
    """Where a Kafka event came from; its record ends with these and `"offset": seq`."""
    topic: str
    partition: int


CONTRIBUTORS = 3  # features a record names as the ones that drove it


def contributors(features: Sequence[str], evidence: Sequence[float]) -> list[dict[str, Any]]:
    """The features that drove an event, largest share first: the CONTRIBUTORS largest
    shares (3 decimals) of `evidence` in its total (an alert's features' own evidence,
    BatchResult.contributions; an abnormal event's blame, BatchResult.blame); only
    features with some, [] when none has any."""
    total = sum(evidence)
    if not total > 0.0:
        return []
    ranked = sorted(zip(features, evidence), key=lambda fe: -fe[1])[:CONTRIBUTORS]
    return [{"feature": f, "share": round(e / total, 3)} for f, e in ranked if e > 0.0]


def result_record(s: Scored, source: Source | None = None) -> dict[str, Any]:
    """`seq`, `stream`, `ts` (if given), the input value(s), `prediction`, `error`, the three
    outputs (`score`; `is_anomaly` and `alert_score`; `regime` and `abnormal`: see
    multistream.BatchResult), and with a `source` its `topic`, `partition` and `offset`.
    Univariate streams carry `value`/`prediction` as numbers, multivariate ones
    `values`/`prediction` as objects keyed by feature, and when the event is an alert or
    abnormal, `contributors` (see `contributors`: of the features' own evidence for an
    alert, of the regime's blame for an abnormal event that is not one)."""
    ev = s.event
    rec: dict[str, Any] = {"seq": ev.seq, "stream": ev.stream}
    if ev.ts_raw is not None:
        rec["ts"] = ev.ts_raw
    if ev.features == UNIVARIATE:
        rec["value"] = _num(ev.values[0])
        rec["prediction"] = _num(s.prediction[0])
    else:
        rec["values"] = {f: _num(v) for f, v in zip(ev.features, ev.values)}
        rec["prediction"] = {f: _num(v) for f, v in zip(ev.features, s.prediction)}
    rec["error"] = _num(s.error)
    rec["score"] = s.score
    rec["is_anomaly"] = s.is_anomaly
    rec["alert_score"] = s.alert_score
    rec["regime"] = s.regime
    rec["abnormal"] = s.abnormal
    if ev.features != UNIVARIATE and (s.is_anomaly or s.abnormal):
        rec["contributors"] = contributors(ev.features, s.attribution)
    if source is not None:
        rec.update(topic=source.topic, partition=source.partition, offset=ev.seq)
    return rec


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def _f(v: float) -> str:
    return "null" if v != v else repr(v)


def _bool(b: bool) -> str:
    return "true" if b else "false"


def _source_tail(source: Source | None) -> str:
    """What a record's JSON has after `is_anomaly`, before the offset (see result_line)."""
    return "" if source is None else f',"topic":{_quote(source.topic)},"partition":{int(source.partition)},"offset":'


def result_line(s: Scored, source: Source | None = None) -> str:
    """`dumps(result_record(s, source))`, several times faster for the common univariate
    case (output formatting is a large share of the filter's per-event cost)."""
    ev = s.event
    if ev.features != UNIVARIATE or not (ev.ts_raw is None or isinstance(ev.ts_raw, (str, int, float))):
        return dumps(result_record(s, source))
    ts = "" if ev.ts_raw is None else f',"ts":{_quote(ev.ts_raw) if isinstance(ev.ts_raw, str) else repr(ev.ts_raw)}'
    tail = _source_tail(source)
    return (f'{{"seq":{ev.seq},"stream":{_quote(ev.stream)}{ts},"value":{_f(ev.values[0])},'
            f'"prediction":{_f(s.prediction[0])},"error":{_f(s.error)},"score":{s.score!r},'
            f'"is_anomaly":{_bool(s.is_anomaly)},"alert_score":{s.alert_score!r},"regime":{s.regime!r},'
            f'"abnormal":{_bool(s.abnormal)}{tail}{ev.seq if tail else ""}}}')


def _reprs(values: list[float]) -> list[str]:
    """`_f(v)` for each float, formatted in one orjson call (~10x faster than repr each).

    orjson writes the same shortest round-trip digits as repr and null for NaN, but spells
    small magnitudes differently (0.00001 and 1e-7 where repr gives 1e-05 and 1e-07):
    those few are re-formatted with repr.
    """
    text = orjson.dumps(values).decode()[1:-1]
    tokens = text.split(",")
    if "e-" in text or "0.0000" in text:
        tokens = [repr(float(t)) if "e-" in t or t.startswith(("0.0000", "-0.0000")) else t for t in tokens]
    return tokens


def result_lines(routed: Routed, results: Sequence[BatchResult], only_anomalies: bool = False,
                 source: Source | None = None) -> list[tuple[Event, str]]:
    """(event, `result_line`) of every scored event of a micro-batch (`pool.advance(routed)`
    gave `results`), in input order; with `only_anomalies`, of the flagged ones only.

    Univariate parts are formatted column by column, which costs a fraction of formatting
    each `Scored` on its own; multivariate parts go through `result_line`.
    """
    events = routed.events
    lines: list[tuple[Event, str] | None] = [None] * len(events)
    tail = _source_tail(source)
    for part, res in zip(routed.parts, results):
        if events[part.rows[0]].features != UNIVARIATE:
            for n, s in scored_part(events, part, res):
                if s.is_anomaly or not only_anomalies:
                    lines[n] = (s.event, result_line(s, source))
            continue
        columns = zip(part.rows, _reprs(part.X[:, 0].tolist()), _reprs(res.predictions[:, 0].tolist()),
                      _reprs(res.errors.tolist()), _reprs(res.scores.tolist()), res.flags.tolist(),
                      _reprs(res.alert_scores.tolist()), _reprs(res.regime.tolist()), res.abnormal.tolist())
        for n, value, pred, error, score, flag, alert, regime, abnormal in columns:
            if only_anomalies and not flag:
                continue
            ev = events[n]
            ts = ev.ts_raw
            ts = "" if ts is None else f',"ts":{_quote(ts) if type(ts) is str else repr(ts)}'
            lines[n] = (ev, f'{{"seq":{ev.seq},"stream":{_quote(ev.stream)}{ts},"value":{value},'
                            f'"prediction":{pred},"error":{error},"score":{score},"is_anomaly":{_bool(flag)},'
                            f'"alert_score":{alert},"regime":{regime},"abnormal":{_bool(abnormal)}'
                            f'{tail}{ev.seq if tail else ""}}}')
    return [line for line in lines if line is not None]


def csv_header(features: tuple[str, ...]) -> list[str]:
    """CSV columns for the results of events of `features` (see `csv_row`; `record_features`
    gives a record's); multivariate results end with `contributors`, as a compact JSON object
    of feature: share (blank on rows that are neither alerts nor abnormal)."""
    tail = ["error", "score", "is_anomaly", "alert_score", "regime", "abnormal"]
    if features == UNIVARIATE:
        return ["seq", "stream", "ts", "value", "prediction", *tail]
    return (["seq", "stream", "ts"] + [f"value_{f}" for f in features] + [f"prediction_{f}" for f in features]
            + tail + ["contributors"])


def record_features(record: dict[str, Any]) -> tuple[str, ...]:
    """The features of the event a result record is of (UNIVARIATE for one value)."""
    return tuple(record["values"]) if "values" in record else UNIVARIATE


def csv_row(record: dict[str, Any]) -> list[Any]:
    blank = lambda v: "" if v is None else v  # noqa: E731
    head = [record["seq"], record["stream"], blank(record.get("ts"))]
    tail = [blank(record["error"]), record["score"], _bool(record["is_anomaly"]), record["alert_score"],
            record["regime"], _bool(record["abnormal"])]
    if "value" in record:
        return head + [blank(record["value"]), blank(record["prediction"])] + tail
    shares = {c["feature"]: c["share"] for c in record.get("contributors", ())}
    return (head + [blank(v) for v in record["values"].values()] + [blank(v) for v in record["prediction"].values()]
            + tail + [dumps(shares) if shares else ""])

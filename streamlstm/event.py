"""What parsing an input line gives: an `Event`, or a `Rejected` line saying why not.

The parsers (io/parsers.py) make them, the pool routes events to their detectors, and the
outputs write results and error records from them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

__all__ = ["RAW_LIMIT", "TS_MAX", "TS_MIN", "UNIVARIATE", "Event", "Rejected", "error_record"]

RAW_LIMIT = 200  # characters of the offending line kept in a rejection
UNIVARIATE = ("value",)  # the feature names of a univariate event
# Timestamps from year 1 to the last millisecond of year 9999 (the plot's time axis counts
# milliseconds), as ISO 8601 can write them:
# beyond, a number is far more likely epoch milliseconds (or finer) than a real time, and
# admitted it would reject every later event of its stream as ts_backwards.
TS_MIN = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
TS_MAX = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc).timestamp()


class Event(NamedTuple):
    seq: int                      # 1-based line number in the input
    stream: str
    features: tuple[str, ...]     # sorted feature names; ("value",) when univariate
    values: tuple[float, ...]     # in `features` order; NaN = missing
    ts: float | None              # epoch seconds
    ts_raw: str | float | None    # the timestamp as given, for echoing
    raw_values: dict[str, Any]    # the values as given (None = missing), for echoing


class Rejected(NamedTuple):
    seq: int
    reason: str                   # short machine-readable kind (io/parsers.py lists them)
    detail: str                   # human-readable explanation
    raw: str                      # start of the offending line
    source: str | None = None     # the file it came from, when not the input (a baseline)


def error_record(rej: Rejected) -> dict[str, Any]:
    """The JSON error record written for a rejected line."""
    record = {"seq": rej.seq, "error": rej.reason, "detail": rej.detail, "raw": rej.raw}
    if rej.source is not None:
        record["input"] = rej.source
    return record

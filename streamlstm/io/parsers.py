"""Turn raw input lines into events, or into rejections that say why — never raise on input.

JSON lines look like ``{"stream": "host-1/cpu", "ts": "2024-05-01T12:00:00Z", "value": 0.42}``
(univariate) or ``{"stream": "s", "ts": 1714564800, "values": {"user": 0.3, "sys": null}}``
(multivariate; ``null`` is a missing value, NaN to the engine). Field names come from
`InputConfig`. A missing stream field means `InputConfig.default_stream`; a missing
timestamp is allowed.

Per stream the parsers remember the last timestamp (an earlier one is rejected as
``ts_backwards``) and the feature names (a different set is ``feature_set_changed``). That
memory is an LRU bounded by ``max_streams``, so a flood of distinct stream ids cannot grow it
without limit; a stream that falls out is treated as new when it returns, just as the
engine's own stream eviction does.

Rejection kinds (`Rejected.reason`): empty_line, oversized_line, invalid_utf8,
invalid_unicode, malformed_json, malformed_csv, wrong_type, missing_field, not_numeric,
non_finite, out_of_range, bad_timestamp, ts_backwards, feature_set_changed, stream_id_too_long
(longer than `MAX_STREAM_ID` characters), and internal_error: a bug
in the parser, reported with the exception's class, so that even then the line gets its
error record and the input goes on.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import math
import re
import shlex
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from ..config import InputConfig
from ..event import RAW_LIMIT, TS_MAX, TS_MIN, UNIVARIATE, Event, Rejected, error_record

__all__ = ["DELIMITERS", "MAX_STREAM_ID", "TIME_COLUMNS", "WHITESPACE", "CsvParser", "Event", "InputFormatError",
           "JsonlParser", "Rejected", "StreamMemory", "error_record", "npy_as_csv", "parse_ts", "row_series",
           "sniff_delimiter", "split_cells"]

log = logging.getLogger("streamlstm")

# Numbers as float() reads them, minus the spellings we do not want as timestamps
# ("nan", "inf", "1_000").
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?")  # 17:24, 17:24:00, 17:24:00.5
_FINER_UNITS = ((1e3, "milliseconds"), (1e6, "microseconds"), (1e9, "nanoseconds"))
# A stream id is the key of every result message (Kafka) and in every result record: a
# longer one would make each of them too large to produce, so its event is rejected.
MAX_STREAM_ID = 1024  # characters


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some editors put before a file's first line


class InputFormatError(ValueError):
    """The input as a whole cannot be read (a CSV header without usable columns)."""

    def of(self, name: str) -> InputFormatError:
        """This error, naming first the input it is about (a file, stdin)."""
        return InputFormatError(f"{name}: {self}")


class _Bad(ValueError):
    """Internal: a line is rejected with (reason, detail)."""


def parse_ts(raw: Any) -> float:
    """Epoch seconds from a number, a numeric string, or ISO 8601 (naive means UTC), from
    year 1 to year 9999 (`TS_MIN`, `TS_MAX`)."""
    kind = type(raw)  # exact types: JSON gives no subclasses, and bool is not a timestamp
    if kind is int or kind is float:
        try:
            ts = float(raw)
        except OverflowError:  # an integer too large for a double
            raise _Bad("bad_timestamp", f"timestamp is too large: {str(raw)[:50]}") from None
    elif kind is str:
        text = raw.strip()
        if not (text.isascii() and text.isprintable()):  # float() reads other scripts' digits, and
            # fromisoformat() stops at a NUL: "2024-01-01T00:00\0Z" would pass for a time
            raise _Bad("bad_timestamp", f"timestamp {raw[:50]!r} holds characters other than printable ASCII")
        if _NUMBER.fullmatch(text):
            ts = float(text)
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                moment = _day_first(text)
                if moment is None:
                    raise _Bad("bad_timestamp", f"unparseable timestamp {raw!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            ts = moment.timestamp()
            if not TS_MIN <= ts <= TS_MAX:  # year 1 or 9999, moved past it by its UTC offset
                raise _Bad("bad_timestamp", f"timestamp {raw!r} is before year 1 or after year 9999 in UTC")
    else:
        raise _Bad("bad_timestamp", f"timestamp must be a number or ISO 8601 string, got {raw!r}")
    if not math.isfinite(ts):
        raise _Bad("bad_timestamp", f"timestamp is not finite: {raw!r}")
    if not TS_MIN <= ts <= TS_MAX:  # a number: ISO 8601 is checked above
        raise _Bad("bad_timestamp", _implausible(ts, raw))
    return ts


def epoch_in_1970(raw: str, ts: float) -> bool:
    """Whether a time cell `raw`, read as `ts`, is a bare number of epoch seconds in 1970:
    Excel's serial days, seconds since a start, or a measurement named as the time."""
    return ts < YEAR_1971 and _NUMBER.fullmatch(raw) is not None


# A date written day first with points, as European spreadsheets export it (01.03.2024 or
# 01.03.2024 13:05[:07[.5]]): unambiguous, where 03/01/2024 is not.
_DAY_FIRST = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?)?")


def _day_first(text: str) -> datetime | None:
    """The moment a day-first date (_DAY_FIRST) names, or None."""
    m = _DAY_FIRST.fullmatch(text)
    if m is None:
        return None
    day, month, year, hour, minute, second, fraction = m.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                        round(float(fraction or 0) * 1e6))
    except ValueError:  # 31.02.2024, 25:00
        return None


def _iso(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time, to the second or its fraction."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _implausible(ts: float, raw: Any) -> str:
    """Why `ts` (epoch seconds) is refused, naming the finer unit it would be plausible in."""
    detail = f"timestamp {str(raw)[:50]} is {'after year 9999' if ts > 0 else 'before year 1'} in epoch seconds"
    for scale, unit in _FINER_UNITS:
        if 0 <= ts / scale <= TS_MAX:
            moment = datetime.fromtimestamp(ts / scale, timezone.utc)
            return f"{detail}; it looks like epoch {unit} ({moment:%Y-%m-%dT%H:%M:%SZ}): convert it to seconds"
    return detail


def _number(name: str, raw: Any, allow_missing: bool, limit: float) -> float:
    """A feature value as float; None (JSON null) is NaN when missing values are allowed."""
    if type(raw) is float and -limit <= raw <= limit:  # the common case, checked first
        return raw
    if raw is None:
        if allow_missing:
            return math.nan
        raise _Bad("missing_field", f"{name!r} is null")
    if isinstance(raw, bool) or isinstance(raw, (list, dict)):
        raise _Bad("wrong_type", f"{name!r} must be a number, got {type(raw).__name__}")
    if isinstance(raw, str):
        raise _Bad("not_numeric", f"{name!r} must be a number, got string {raw[:50]!r}")
    try:
        value = float(raw)
    except OverflowError:  # an integer literal too large for a double
        raise _Bad("non_finite", f"{name!r} is too large: {str(raw)[:50]}") from None
    return _bounded(name, value, raw, limit)


def _bounded(name: str, value: float, raw: Any, limit: float) -> float:
    """`value`, or a rejection when it is not finite or beyond +-`limit` (input.max_abs_value)."""
    if not math.isfinite(value):
        raise _Bad("non_finite", f"{name!r} is not finite: {str(raw)[:50]}")
    if abs(value) > limit:
        raise _Bad("out_of_range", f"{name!r} is {float(value)!r}, beyond input.max_abs_value {float(limit)!r}")
    return value


def _json_int(text: str) -> int | float:
    """A JSON integer; one beyond int()'s digit limit (4,300 by default: a guard against
    quadratic conversion) is read as a float, which is then infinite and rejected as such
    wherever the line uses it."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _check_unicode(what: str, text: str) -> None:
    """Reject a string holding a lone surrogate: JSON can escape one ("\\ud800"), but it
    is not Unicode, so it has no UTF-8 form (a Kafka key, the stream's seed). Callers test
    `text.isascii()` first: almost every string is ASCII, and this is per event."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise _Bad("invalid_unicode", f"{what} holds a lone surrogate "
                                      f"{text[exc.start]!r} at position {exc.start}") from None


def _check_stream(what: str, stream: str) -> None:
    """Reject a stream id longer than `MAX_STREAM_ID` or holding a lone surrogate."""
    if len(stream) > MAX_STREAM_ID:
        raise _Bad("stream_id_too_long", f"{what} is {len(stream)} characters long, more than {MAX_STREAM_ID}")
    if not stream.isascii():
        _check_unicode(what, stream)


def _not_utf8(header: bytes) -> str:
    """What a first line that is not UTF-8 most likely is, and what to do."""
    if header[:2] in (b"\xff\xfe", b"\xfe\xff"):  # its byte order mark, as Excel's "Unicode text" has
        return " — it is UTF-16: convert it, e.g. iconv -f UTF-16 -t UTF-8"
    if header[:2] == b"\x1f\x8b":
        return " — it is gzip-compressed: score <(zcat FILE), or zcat FILE | streamlstm run --format csv"
    if header[:4] == b"PK\x03\x04":
        return " — it is a zip archive, as an Excel workbook (.xlsx) is: save the sheet as CSV (UTF-8)"
    return " — if it is Latin-1 or Windows-1252 text, convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8"


def _snippet(line: bytes) -> str:
    """At most RAW_LIMIT characters of the line: text when it is UTF-8, else a bytes repr."""
    head = line[: RAW_LIMIT * 4]  # a UTF-8 character is at most 4 bytes
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Cutting `head` may split a character; that is not the line's fault.
        if len(head) < len(line) and exc.end == len(head) and exc.start > 0:
            text = head[: exc.start].decode("utf-8", "replace")
        else:
            return repr(line[:RAW_LIMIT])[:RAW_LIMIT]
    return text.rstrip("\r\n")[:RAW_LIMIT]


_UTC_OFFSET = re.compile(r"(z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)


def _local_time(raw: Any) -> bool:
    """Whether a time as written is a local one: text, not a number (epoch seconds are
    UTC), without a UTC offset (or Z) at its end."""
    return isinstance(raw, str) and not _NUMBER.fullmatch(raw.strip()) and not _UTC_OFFSET.search(raw.strip())


class StreamMemory:
    """Per-stream last timestamp and feature names, bounded as an LRU of `max_streams`."""

    def __init__(self, max_streams: int):
        if max_streams < 1:
            raise ValueError("max_streams must be >= 1")
        self.max_streams = max_streams
        self.streams: OrderedDict[str, tuple[tuple[str, ...], float | None]] = OrderedDict()

    def admit(self, stream: str, features: tuple[str, ...], ts: float | None, ts_raw: Any = None) -> None:
        """Record an event of `stream` at time `ts` (as written: `ts_raw`), or raise `_Bad`
        when it contradicts the stream's past."""
        streams = self.streams
        known = streams.get(stream)
        if known is None:
            streams[stream] = (features, ts)
            if len(streams) > self.max_streams:
                streams.popitem(last=False)
            return
        old_features, last_ts = known
        if features != old_features:
            raise _Bad("feature_set_changed",
                       f"stream {stream!r} had features {list(old_features)}, got {list(features)}")
        if ts is None:
            ts = last_ts  # an event without a timestamp does not reset the ordering check
        elif last_ts is not None and ts < last_ts:
            clocks = " (an hour or less back: local times without a UTC offset as the clocks went back? give " \
                "them the offset)" if last_ts - ts <= 3600.0 and _local_time(ts_raw) else ""
            raise _Bad("ts_backwards", f"stream {stream!r}: time {_iso(ts)} is before the previous {_iso(last_ts)}"
                                       + clocks)
        streams.move_to_end(stream)
        streams[stream] = (features, ts)

    def to_json(self) -> list:
        """The memory in LRU order as JSON-able lists, for checkpoints."""
        return [[s, list(f), ts] for s, (f, ts) in self.streams.items()]

    def load_json(self, items: list) -> None:
        # A checkpoint of a version without parse_ts's bounds may hold a last timestamp beyond
        # them, which would reject every later event of its stream: it is forgotten instead.
        self.streams = OrderedDict((s, (tuple(f), ts if ts is None or TS_MIN <= ts <= TS_MAX else None))
                                   for s, f, ts in items)


class _LineParser:
    """`parse` turns a line into an Event, or a Rejected saying why; subclasses do `_parse`."""

    cfg: InputConfig
    memory: StreamMemory
    header_lines = 0  # lines that come before the first row of data (a CSV's header)

    def parse(self, seq: int, line: bytes, key: bytes | None = None) -> Event | Rejected:
        """`key`: a Kafka message's key, its stream id instead of the line's (JsonlParser only);
        an empty key, as a missing one, leaves the stream id to the line."""
        try:
            if len(line) > self.cfg.max_line_bytes:  # the filter passes on only its first max_line_bytes + 1
                raise _Bad("oversized_line", f"line longer than {self.cfg.max_line_bytes} bytes "
                                             "(input.max_line_bytes)")
            return self._parse(seq, line, key)
        except _Bad as bad:
            reason, detail = bad.args
            return Rejected(seq, reason, detail, _snippet(line))
        except Exception as exc:  # noqa: BLE001 - the last line of defence: see the module docstring
            log.debug("parsing line %d failed", seq, exc_info=True)
            return Rejected(seq, "internal_error", f"{type(exc).__name__}: {exc}"[:RAW_LIMIT], _snippet(line))

    def _parse(self, seq: int, line: bytes, key: bytes | None) -> Event:
        raise NotImplementedError


class JsonlParser(_LineParser):
    """Parse JSON lines; keeps per-stream ordering/feature memory (see module docstring)."""

    def __init__(self, input_config: InputConfig, max_streams: int = 100_000):
        self.cfg = input_config
        self.memory = StreamMemory(max_streams)
        self.timeless = False  # whether an event without a time was looked at (_without_time)

    def _parse(self, seq: int, line: bytes, key: bytes | None) -> Event:
        cfg = self.cfg
        try:
            obj = orjson.loads(line)  # the common case: orjson checks the UTF-8 itself
        except orjson.JSONDecodeError:
            obj = self._load_carefully(line)
        if type(obj) is not dict:
            raise _Bad("wrong_type", f"expected a JSON object, got {type(obj).__name__}")

        if key:
            try:
                stream = key.decode("utf-8")
            except UnicodeDecodeError as exc:  # replacing the bytes would merge distinct keys into one stream
                raise _Bad("invalid_utf8", f"message key not UTF-8: {exc.reason} at byte {exc.start}") from None
            _check_stream("the message key", stream)
        else:
            stream = obj.get(cfg.stream_field, cfg.default_stream)
            if type(stream) is not str or not stream:
                got = "an empty string" if stream == "" else type(stream).__name__
                raise _Bad("wrong_type", f"{cfg.stream_field!r} must be a non-empty string, got {got}")
            _check_stream(repr(cfg.stream_field), stream)

        if cfg.value_field in obj:
            if cfg.values_field in obj:
                raise _Bad("wrong_type", f"give either {cfg.value_field!r} or {cfg.values_field!r}, "
                                         "not both")
            raw = obj[cfg.value_field]
            features = UNIVARIATE
            values = (_number(cfg.value_field, raw, False, cfg.max_abs_value),)
            raw_values = {cfg.value_field: raw}
        elif cfg.values_field in obj:
            raw_values = obj[cfg.values_field]
            if not isinstance(raw_values, dict) or not raw_values:
                raise _Bad("wrong_type", f"{cfg.values_field!r} must be a non-empty object")
            features = tuple(sorted(raw_values))
            for f in features:
                if not f.isascii():
                    _check_unicode(f"feature name {f!r}", f)
            values = tuple(_number(f, raw_values[f], True, cfg.max_abs_value) for f in features)
        else:
            raise _Bad("missing_field", f"neither {cfg.value_field!r} nor "
                                        f"{cfg.values_field!r} present")

        ts_raw = obj.get(cfg.ts_field)
        if ts_raw is None and not self.timeless:
            self._without_time(seq, obj)
        ts = None if ts_raw is None else parse_ts(ts_raw)
        self.memory.admit(stream, features, ts, ts_raw)
        return Event(seq, stream, features, values, ts, ts_raw, raw_values)

    def _without_time(self, seq: int, obj: dict) -> None:
        """Warn once, at the first event without a time, where it likely has one under
        another name (a CSV finds its time column by name; JSON lines read `ts_field` only:
        guessing would turn a field of epoch milliseconds, which a Kafka daemon has scored
        for months, into rejections), or where `ts_field` was named and is not there."""
        self.timeless = True
        named = self.cfg.ts_field != DEFAULT_TS_FIELD
        other = next((k for k in obj if isinstance(k, str) and k.lower() in TIME_COLUMNS), None)
        if named or other is not None:
            log.warning("line %d has no %r (input.ts_field, --time-column)%s: events without it are read without "
                        "a time (no time-of-day channel, no order check)%s", seq, self.cfg.ts_field,
                        f" but a {other!r}" if other else "",
                        f" — name it with --time-column {shlex.quote(other)}" if other else "")

    @staticmethod
    def _load_carefully(line: bytes) -> Any:
        """What orjson refused: say exactly why, or read what only `json` reads (NaN, 1e400,
        integers beyond 64 bits — rejected later with the right reason) and a UTF-8 BOM."""
        if not line.strip():
            raise _Bad("empty_line", "empty line")
        try:
            # Decode explicitly: json.loads(bytes) would guess UTF-16/32 from the first bytes
            # and misreport invalid UTF-8 as malformed JSON.
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Bad("invalid_utf8", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
        if text.startswith("\ufeff"):  # a UTF-8 byte order mark ("utf-8-sig" is much slower)
            text = text[1:]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(text, parse_int=_json_int)
        except json.JSONDecodeError as exc:
            raise _Bad("malformed_json", f"invalid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}") from None
        except RecursionError:
            raise _Bad("malformed_json", "invalid JSON: nested too deeply") from None


# CSV delimiters that sniffing recognises, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
# A space as the delimiter stands for runs of spaces and tabs, as numpy.savetxt writes columns
# and numpy.loadtxt reads them (and as some benchmarks' .txt files hold their values): one
# cell per number however the columns are aligned, no empty cells.
WHITESPACE = " "
# A number written with a decimal comma, as a spreadsheet in a European locale exports it
# into a CSV delimited by ';' (where the comma cannot be a delimiter): read as with a point.
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+([eE][+-]?\d+)?|[+-]?\d+,")
# Numbers whose thousands are grouped, as spreadsheets write them: points group where the
# comma is the decimal mark (1.500,25; and 1.500 in a file that has shown a decimal comma:
# a locale has one decimal mark, and 1.500 read as 1.5 drops a count a thousandfold), commas
# where the point is (1,500.25, quoted in a file delimited by ','). A lone 1,500 stays
# ambiguous and is not read.
_POINTS_GROUPED = re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?")
_COMMAS_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+\.\d*")
# What spreadsheets and pandas write for a value that is not available (pandas' default
# na_values less the NaN spellings, which stay non-finite values): a missing value, as an
# empty cell is.
NOT_AVAILABLE = frozenset(("#N/A", "#N/A N/A", "#NA", "<NA>", "N/A", "NA", "n/a", "NULL", "null", "None"))


def decimal_comma(cell: str) -> bool:
    """Whether a CSV cell is a number written with a decimal comma (grouped or not)."""
    return bool(_DECIMAL_COMMA.fullmatch(cell) or ("," in cell and _POINTS_GROUPED.fullmatch(cell)))


def read_number(cell: str, delimiter: str, comma_decimal: bool) -> float:
    """The number a stripped CSV cell holds (ValueError if none) in a file delimited by
    `delimiter` that has (`comma_decimal`) or has not shown a decimal comma: a decimal comma
    where the delimiter is ';', and thousands grouped (see _POINTS_GROUPED)."""
    try:
        value = float(cell)
    except ValueError:
        if delimiter == ";" and decimal_comma(cell):
            return float(cell.replace(".", "").replace(",", "."))
        if _COMMAS_GROUPED.fullmatch(cell):
            return float(cell.replace(",", ""))
        raise
    if comma_decimal and "." in cell and _POINTS_GROUPED.fullmatch(cell):
        return float(cell.replace(".", ""))
    return value
# Rows rejected for text in a number's place that a CSV parser keeps whole (io/diagnosis.py).
TEXT_ROWS = 50
# A time column of numbers before this (epoch seconds) is no clock reading: Excel's serial
# days (45352 is 2024-03-01), or seconds since a start; CsvParser warns once.
YEAR_1971 = 365 * 86400.0
# Rows over which CsvParser looks for columns that only count up (_watch_counters).
COUNTER_ROWS = 1000
# The name of a header's unnamed first column, as pandas writes a frame's index.
INDEX_NAME = "index"
# Column names taken as a CSV's time column while input.ts_field is left at its default,
# in this order of preference and in any case.
TIME_COLUMNS = ("ts", "timestamp", "time", "datetime", "date")
# Column names that usually hold a benchmark's labels (SKAB's `anomaly` and `changepoint`,
# our own `is_anomaly`), compared in lower case. A label is not a measurement of the system:
# read as a feature it moves the scores (a 0/1 one little, as context) and any label that
# takes three values or more is judged like a sensor, so CsvParser warns.
LABEL_COLUMNS = ("anomaly", "anomalies", "is_anomaly", "label", "labels", "changepoint", "outlier", "attack",
                 "ground_truth")
DEFAULT_TS_FIELD = InputConfig().ts_field  # left so, the time column is found by its name
_DEFAULT_STREAM_FIELD = InputConfig().stream_field


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header line: of `DELIMITERS`, the one it holds most often
    outside double quotes (the first of them on a tie, but ';' on a tie with commas before a
    space, as names hold them, "Energy, kWh"; and ';' where every comma is a decimal comma
    between them), "," when it holds none (one
    column); but `WHITESPACE` where that is a tab or none, and the line is a row of data
    split by whitespace into several cells (`reads_as_data`) and not split by the tab:
    numbers aligned by spaces and tabs. Names with spaces in them stay one column."""
    bare = re.sub(r'"[^"]*"', "", header)
    counts = [bare.count(d) for d in DELIMITERS]
    delimiter = DELIMITERS[counts.index(max(counts))] if max(counts) else ","
    if delimiter == "," and ";" in bare and all(decimal_comma(c.strip()) for c in bare.split(";") if "," in c):
        return ";"  # every comma is a decimal one between ';' (a European row of data)
    if delimiter == "," and counts[1] == counts[0] and ", " in bare:
        return ";"  # as many ';' as commas, each comma before a space: within names ("Energy, kWh")
    if delimiter in ",\t" and counts[DELIMITERS.index(",")] == 0:
        cells = header.split()
        if len(cells) > 1 and reads_as_data(cells) and not reads_as_data([c.strip() for c in header.split("\t")]):
            return WHITESPACE
    return delimiter


def row_series(line: bytes, cfg: InputConfig) -> list[str] | None:
    """The cells of a file's only line when they are several numbers and nothing says the
    line names columns (`header` not True, no `columns`): a series laid out across the
    line, as some files of UCR's anomaly archive hold theirs (a detector needs a sequence,
    so one event of N features cannot be what such a file means); None otherwise."""
    if cfg.header or cfg.columns:
        return None
    try:
        text = line.decode("utf-8-sig").strip()
        cells = split_cells(text, cfg.delimiter or sniff_delimiter(text))
    except (UnicodeDecodeError, csv.Error):
        return None
    cells = [c.strip() for c in cells]
    cells = cells[:-1] if cells and not cells[-1] else cells  # a delimiter at the end of the line
    return cells if len(cells) > 1 and all(map(_is_number, cells)) else None


def split_cells(text: str, delimiter: str) -> list[str]:
    """The cells of a CSV line (newline stripped): the csv module's reading where a cell is
    quoted, a plain split otherwise (much faster); `WHITESPACE` splits at runs of spaces and
    tabs, the line's own leading and trailing ones ignored; none in an empty line. Raises
    csv.Error."""
    if delimiter == WHITESPACE:
        text = text.strip()
        if '"' in text:
            text = text.replace("\t", " ")  # for the csv module, whose delimiter is one character
    if not text:
        return []
    if '"' in text:
        return next(csv.reader([text], delimiter=delimiter, skipinitialspace=delimiter == WHITESPACE), [])
    return text.split() if delimiter == WHITESPACE else text.split(delimiter)


def _names(names) -> str:
    return ", ".join(repr(n) for n in names)


def _is_time(cell: str) -> bool:
    """Whether a CSV cell is a date or time written as text (ISO 8601), not a number."""
    try:
        datetime.fromisoformat(cell)
    except ValueError:
        return False
    return not _NUMBER.fullmatch(cell)


def _is_number(cell: str) -> bool:
    """Whether a CSV cell is a number in some locale (a decimal comma too: read_number)."""
    try:
        read_number(cell, ";", False)
    except ValueError:
        return False
    return True


def reads_as_data(cells: list[str]) -> bool:
    """Whether the first line of a CSV is a row of data rather than column names: each
    cell empty, a number or a time, and at least one a number; but not the column numbers
    0, 1, 2, ... or 1, 2, 3, ... that pandas writes for a frame's unnamed columns."""
    if len(cells) > 1 and cells in ([str(i) for i in range(len(cells))], [str(i + 1) for i in range(len(cells))]):
        return False
    return any(map(_is_number, cells)) and all(not c or _is_number(c) or _is_time(c) for c in cells)


def _positional_names(cells: list[str], cfg: InputConfig) -> list[str]:
    """Column names for a CSV without a header line, from its first row `cells`: col_0,
    col_1, ... (zero-padded, so that sorted they keep the file's order); while `ts_field`
    is the default, the first column holding a time (text, not a number) is named `ts`, the
    time column; a lone other column is `value_field`, univariate."""
    width = len(str(len(cells) - 1))
    names = [f"col_{i:0{width}d}" for i in range(len(cells))]
    times = [i for i, c in enumerate(cells) if _is_time(c)] if cfg.ts_field == DEFAULT_TS_FIELD else []
    if times:
        names[times[0]] = cfg.ts_field
    if len(names) - len(times[:1]) == 1:
        names[next(i for i, n in enumerate(names) if n != cfg.ts_field)] = cfg.value_field
    return names


class CsvParser(_LineParser):
    """Parse CSV rows described by a header line, or by position when there is none.

    The delimiter is `InputConfig.delimiter`, else sniffed from the first line
    (`sniff_delimiter`); a space stands for runs of whitespace (`WHITESPACE`). That line is
    the header unless `InputConfig.header` is False, or None (the default) and each of its
    cells is empty, a number or a time, with at least one number: then it is the first row
    of data (`header_lines` 0), and the columns are named by `_positional_names`. Each
    column has at most one role:

    - time: the column named `ts_field`. While `ts_field` is the default ``ts`` and the header
      has no ``ts`` column, the first of `TIME_COLUMNS` the header has, in any case, that is
      not listed in `columns` or `exclude_columns`; no such column means no timestamps. A
      ``time`` column so found beside a ``date`` one (a logger's Date;Time;...) holds the
      time of day of its date: where a row's time cell is a time of day (17:24:00) and its
      date cell holds none, the time is the two joined by a space. Any other
      `ts_field` must be in the header and in neither list.
    - stream (optional): the column named `stream_field`, unless it is excluded; it cannot
      be listed in `columns`. Any other `stream_field` than the default ``stream`` must be
      in the header and not excluded (else every row would go to one stream, unsaid).
    - features: the columns listed in `columns`, else every column that has no other role
      and is not in `exclude_columns`. A lone `value_field` column is univariate.
    - ignored: the columns in `exclude_columns`.

    A feature column named like a label (`LABEL_COLUMNS`) that `columns` did not choose is
    scored all the same, with a warning naming the flag that leaves it out, unless it is
    `label_column`, the column a caller reads as the labels (`evaluate labelled`).

    In a CSV delimited by ';' a number may have a decimal comma (1,5), as a spreadsheet in a
    European locale writes it, and in any CSV its thousands may be grouped (read_number).
    Empty columns at the end of the header (a line that ends with delimiters) and empty
    cells past the header's columns in a row are ignored. A column
    name in `columns` or `exclude_columns` that the header lacks is an error, and so is a
    column in both. An empty cell, or one that says not available (NOT_AVAILABLE), is a
    missing value. A bad header is a usage error
    and raises InputFormatError here; bad rows are rejected by `parse`.
    """

    def __init__(self, input_config: InputConfig, header: bytes, max_streams: int = 100_000,
                 label_column: str | None = None):
        cfg = self.cfg = input_config
        self.memory = StreamMemory(max_streams)
        try:
            text = header.decode("utf-8-sig").strip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"CSV header is not UTF-8: {exc.reason}{_not_utf8(header)}") from None
        if text.lstrip().startswith("{"):
            raise InputFormatError(f"the CSV header looks like JSON ({text[:60]!r}) — try --format jsonl")
        self.delimiter = cfg.delimiter or sniff_delimiter(text)
        self.comma_decimal = False  # whether a row has shown a decimal comma (read_number)
        self.text_rows: list[list[str]] = []  # the first rows rejected for text in a number's place, whole
        self.warned_1970 = False
        try:
            names = split_cells(text, self.delimiter)
        except csv.Error as exc:
            raise InputFormatError(f"CSV header cannot be read: {exc}") from None
        names = [n.strip() for n in names]
        while len(names) > 1 and not names[-1]:  # delimiters end the line (Excel's ;;): empty columns, ignored
            names.pop()
        has_header = cfg.header if cfg.header is not None else not reads_as_data(names)
        if cfg.header is None and has_header and names and all(map(_is_number, names)):
            log.info("the CSV's first line %s is read as column names (pandas' column numbers), not data; "
                     "--no-header reads it as data", text[:80])
        self.header_lines = int(has_header)
        names = self.header_names = names if has_header else _positional_names(names, cfg)
        # pandas' to_csv writes a frame's unnamed index as a first column without a name: its
        # times are the time column where no other is, and its row numbers are no data.
        self.index_col = 0 if has_header and len(names) > 1 and not names[0] and all(names[1:]) else None
        if self.index_col is not None:
            names[0] = INDEX_NAME
        if len(set(names)) != len(names) or not all(names):
            repeated = [n for n in dict.fromkeys(names) if n and names.count(n) > 1]
            raise InputFormatError(f"CSV header has empty or repeated column names: {names}" + (
                f" ({_names(repeated)} more than once: each column needs a name of its own, a column is chosen "
                "by its name)" if repeated else ""))
        self.n_columns = len(names)
        chosen, dropped = set(cfg.columns), set(cfg.exclude_columns)
        unknown = [n for n in dict.fromkeys((*cfg.columns, *cfg.exclude_columns)) if n not in names]
        if unknown:
            close = list(dict.fromkeys(m for n in unknown for m in difflib.get_close_matches(n, names, n=1)))
            raise InputFormatError(
                f"CSV header has no column {_names(unknown)} (input.columns / input.exclude_columns)"
                + (f"; did you mean {_names(close)}?" if close else f"; its columns: {_names(names)}"))
        if chosen & dropped:
            raise InputFormatError(f"column {_names(sorted(chosen & dropped))} is in both input.columns "
                                   "and input.exclude_columns")

        if cfg.ts_field != DEFAULT_TS_FIELD:  # named: it must be there, in no other role
            if cfg.ts_field not in names:
                raise InputFormatError(f"the time column {cfg.ts_field!r} (input.ts_field, --time-column) is "
                                       f"not in the CSV header; its columns: {_names(names)}")
            if cfg.ts_field in chosen | dropped:
                raise InputFormatError(f"the time column {cfg.ts_field!r} (input.ts_field, --time-column) is "
                                       "also in input.columns or input.exclude_columns")
            ts_name = cfg.ts_field
            date_name = None
        else:  # the default: found by name, unless the column lists claim it
            free = {n.lower(): n for n in reversed(names) if n not in chosen | dropped}
            ts_name = next((free[t] for t in TIME_COLUMNS if t in free), None)
            if ts_name is None and self.index_col is not None and INDEX_NAME in free.values():
                ts_name = INDEX_NAME
            # A `time` of day beside a `date` (a logger's Date;Time;...): the time is both.
            date_name = free["date"] if ts_name is not None and ts_name.lower() == "time" and "date" in free else None
        if cfg.stream_field != _DEFAULT_STREAM_FIELD and (cfg.stream_field not in names or cfg.stream_field in dropped):
            # Named, it must be there: without it every row would go to one stream, unsaid.
            raise InputFormatError(
                f"the stream column {cfg.stream_field!r} (input.stream_field, --stream-column) is "
                + ("also in input.exclude_columns" if cfg.stream_field in names
                   else f"not in the CSV header; its columns: {_names(names)}"))
        stream_name = cfg.stream_field if cfg.stream_field in names and cfg.stream_field not in dropped else None
        if stream_name is not None and stream_name in chosen:
            raise InputFormatError(f"column {stream_name!r} is the stream column (input.stream_field); "
                                   "it cannot be in input.columns")
        if stream_name is not None and stream_name == ts_name:
            raise InputFormatError(f"column {ts_name!r} cannot be both the time and the stream column")
        if date_name is not None and date_name == stream_name:
            date_name = None
        self.ts_col = names.index(ts_name) if ts_name is not None else None
        self.date_col = names.index(date_name) if date_name is not None else None
        self.stream_col = names.index(stream_name) if stream_name is not None else None
        index = INDEX_NAME if self.index_col is not None else None
        feature_cols = {n: i for i, n in enumerate(names) if (n in chosen if chosen else n not in dropped and n not in (
            ts_name, date_name, stream_name, index))}
        if not feature_cols:
            raise InputFormatError(f"CSV header has no value columns: {names}")
        self.univariate = list(feature_cols) == [cfg.value_field]
        self.features = UNIVARIATE if self.univariate else tuple(sorted(feature_cols))
        self.names = [cfg.value_field] if self.univariate else list(self.features)
        self.feature_idx = [feature_cols[n] for n in self.names]
        self.label_idx = feature_cols.get(label_column)
        self.counter_rows = COUNTER_ROWS if self.stream_col is None and len(self.names) > 1 else 0
        self.counter_last = [-math.inf] * len(self.names)
        self.counter_ups = [0.0] * len(self.names)
        labels = [n for n in self.names if n.lower() in LABEL_COLUMNS and n != label_column]
        if labels and not chosen:
            log.warning("scored as features though named like labels: %s; leave out with --exclude-columns %s "
                        "(input.exclude_columns)", _names(labels), ",".join(labels))

    def _parse(self, seq: int, line: bytes, key: bytes | None) -> Event:
        cfg = self.cfg
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise _Bad("invalid_utf8", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
        if text[:1] == "\ufeff":  # a byte order mark before a first row of data
            text = text[1:]
        if not text.strip():
            raise _Bad("empty_line", "empty line")
        if '"' not in text and self.delimiter != WHITESPACE:
            row = text.split(self.delimiter)  # split_cells' common case, inline: the per-line path
        else:
            try:
                row = split_cells(text, self.delimiter)
            except csv.Error as exc:
                raise _Bad("malformed_csv", f"invalid CSV: {exc}") from None
        if len(row) != self.n_columns:
            # Empty cells past the header's columns are the delimiters a spreadsheet ends rows with.
            if len(row) < self.n_columns or any(cell.strip() for cell in row[self.n_columns:]):
                raise _Bad("malformed_csv", f"expected {self.n_columns} columns, got {len(row)}")
            del row[self.n_columns:]

        stream = cfg.default_stream if self.stream_col is None else row[self.stream_col].strip()
        if not stream:
            raise _Bad("missing_field", f"empty {cfg.stream_field!r} column")
        _check_stream(f"column {cfg.stream_field!r}", stream)

        if self.delimiter == ";" and not self.comma_decimal and "," in text:
            self.comma_decimal = any(decimal_comma(row[idx].strip()) for idx in self.feature_idx)
        values, raw_values = [], {}
        for name, idx in zip(self.names, self.feature_idx):
            cell = row[idx].strip()
            try:  # float() first: the common cell, at the cost of one call (read_number for the rest)
                value = read_number(cell, self.delimiter, True) if self.comma_decimal else float(cell)
            except ValueError:
                value = self._localised(cell, idx, name, row)
            if value is None:  # an empty cell, or one that says not available
                if self.univariate:
                    raise _Bad("missing_field",
                               f"{name!r} is not available: {cell!r}" if cell else f"empty {name!r} column")
                values.append(math.nan)
                raw_values[name] = None
                continue
            if "_" in cell:  # float() reads Python's 1_000; no CSV writer means it, and JSON has no such number
                raise _Bad("not_numeric", f"{name!r} is not a number: {cell[:50]!r}")
            values.append(_bounded(name, value, cell, cfg.max_abs_value))
            raw_values[name] = value

        ts_raw = None
        ts = None
        if self.ts_col is not None and row[self.ts_col].strip():
            ts_raw = row[self.ts_col].strip()
            if self.date_col is not None and _TIME_OF_DAY.fullmatch(ts_raw) and ":" not in row[self.date_col]:
                ts_raw = f"{row[self.date_col].strip()} {ts_raw}"
            if self.ts_col == self.index_col and _NUMBER.fullmatch(ts_raw):
                ts_raw = None  # a row number
            else:
                ts = parse_ts(ts_raw)
                if not self.warned_1970 and epoch_in_1970(ts_raw, ts):
                    self.warned_1970 = True
                    log.warning("the time column %r holds numbers read as epoch seconds in 1970 (line %d: %s is %s): "
                                "Excel's serial days, or seconds since a start? The time of day is then wrong; "
                                "convert them to epoch seconds or ISO 8601 times", self.header_names[self.ts_col],
                                seq, ts_raw, _iso(ts))
        self.memory.admit(stream, self.features, ts, ts_raw)
        if self.counter_rows:
            self._watch_counters(values)
        return Event(seq, stream, self.features, tuple(values), ts, ts_raw, raw_values)

    def _localised(self, cell: str, idx: int, name: str, row: list[str]) -> float | None:
        """A cell float() does not read: None where it is empty or says not available, a
        number as read_number reads it, True or False in the label column (as pandas writes
        a bool column), else a not_numeric rejection."""
        if not cell or cell in NOT_AVAILABLE:
            return None
        try:
            return read_number(cell, self.delimiter, self.comma_decimal)
        except ValueError:
            pass
        if idx == self.label_idx and cell.lower() in ("true", "false"):
            return float(cell.lower() == "true")
        if len(self.text_rows) < TEXT_ROWS:  # for diagnosis.py: a rejection keeps only the line's start
            self.text_rows.append(row)
        raise _Bad("not_numeric", f"{name!r} is not a number: {cell[:50]!r}")

    def _watch_counters(self, values: list[float]) -> None:
        """Over the first COUNTER_ROWS accepted rows of a file of one stream and several
        features, warn once of the features whose values are integers that never went down
        and went up at least three times: row numbers, batch numbers, ids, which the
        detector models as measurements (every new batch an incident)."""
        self.counter_rows -= 1
        for i, v in enumerate(values):
            last = self.counter_last[i]
            if math.isnan(v):
                continue
            if not v.is_integer() or v < last:
                self.counter_ups[i] = -math.inf
            elif v > last and last != -math.inf:
                self.counter_ups[i] += 1
            self.counter_last[i] = v
        if not self.counter_rows:
            self._warn_counters(f"the first {COUNTER_ROWS} rows")

    def end(self) -> None:
        """The input ended: a file of fewer than COUNTER_ROWS rows read (accepted) gets the
        counters' warning of `_watch_counters` over those."""
        if self.counter_rows and self.counter_rows < COUNTER_ROWS:
            self._warn_counters(f"the {COUNTER_ROWS - self.counter_rows} rows read")
            self.counter_rows = 0

    def _warn_counters(self, rows: str) -> None:
        counters = [n for n, ups in zip(self.names, self.counter_ups) if ups >= 3]
        if counters:
            log.warning("%s only count up (integers that never went down in %s): ids or counters? "
                        "Scored as measurements, each step can alert; leave them out with --exclude-columns %s",
                        _names(counters), rows, shlex.quote(",".join(counters)))


def npy_as_csv(path: str | Path) -> bytes:
    """A NumPy array file (.npy, as telemanom's SMAP and MSL channels come) as CSV rows
    without a header: (T,) one value per event, (T, D) one row of D features per event;
    NaN a missing value (an empty cell; in a 1-D array "nan", rejected as non_finite, as a
    univariate event must have its value)."""
    import numpy as np

    try:
        # Mapped, not read: a header may claim any shape, and the file must then hold it.
        a = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, EOFError):  # not the format, truncated or empty, or Python objects (only unpickling reads them)
        raise InputFormatError(f"{path}: not a NumPy array file of numbers (or shorter than its header says)") from None
    if not isinstance(a, np.ndarray):  # np.load opens a .npz archive whatever its name
        a.close()
        raise InputFormatError(f"{path}: a NumPy .npz archive of arrays — score reads one array (.npy, np.save)")
    if a.ndim not in (1, 2) or a.dtype.kind not in "biuf" or 0 in a.shape[1:]:
        raise InputFormatError(f"{path}: an array of shape {a.shape} and type {a.dtype} — score reads a "
                               "1-D or 2-D array of numbers (events, or events x features)")
    rows = (a[:, None] if a.ndim == 1 else a).astype(np.float64).tolist()
    nan = "nan" if a.ndim == 1 else ""
    return "".join(",".join(nan if v != v else repr(v) for v in row) + "\n" for row in rows).encode()

import json
import logging
import math

import pytest

from streamlstm.config import InputConfig
from streamlstm.event import Event, Rejected, error_record
from streamlstm.io.parsers import (COUNTER_ROWS, WHITESPACE, CsvParser, InputFormatError, JsonlParser, parse_ts,
                                    row_series, sniff_delimiter)


@pytest.fixture
def parser():
    return JsonlParser(InputConfig())


def reason(result):
    assert isinstance(result, Rejected), result
    return result.reason


# --------------------------------------------------------------------- JSON lines


def test_univariate_event(parser):
    ev = parser.parse(1, b'{"stream": "a", "ts": 1700000000, "value": 2}\n')
    assert ev == Event(1, "a", ("value",), (2.0,), 1700000000.0, 1700000000, {"value": 2})


def test_multivariate_event_sorted_features_and_null_is_missing(parser):
    ev = parser.parse(3, b'{"stream": "h", "values": {"sys": 0.1, "user": null, "idle": 5}}')
    assert ev.features == ("idle", "sys", "user")
    assert ev.values[:2] == (5.0, 0.1) and math.isnan(ev.values[2])
    assert ev.raw_values == {"sys": 0.1, "user": None, "idle": 5}
    assert ev.ts is None and ev.ts_raw is None


def test_default_stream_and_custom_fields():
    cfg = InputConfig(stream_field="s", value_field="v", ts_field="time", default_stream="main")
    p = JsonlParser(cfg)
    assert p.parse(1, b'{"v": 1.5}').stream == "main"
    ev = p.parse(2, b'{"s": "x", "v": 1.5, "time": "2024-01-01T00:00:00Z"}')
    assert (ev.stream, ev.values, ev.raw_values, ev.ts) == ("x", (1.5,), {"v": 1.5}, 1704067200.0)


def test_utf8_bom_accepted(parser):
    assert parser.parse(1, b'\xef\xbb\xbf{"value": 1}').values == (1.0,)


@pytest.mark.parametrize("line, kind", [
    (b"", "empty_line"),
    (b"  \r\n", "empty_line"),
    (b'{"value": 1', "malformed_json"),
    (b"not json", "malformed_json"),
    (b"[" * 200_000, "malformed_json"),
    (b'\xff\xfe{"value": 1}', "invalid_utf8"),
    (b'{"stream": "\xc3\x28", "value": 1}', "invalid_utf8"),
    (b'[1, 2]', "wrong_type"),
    (b'{"stream": 5, "value": 1}', "wrong_type"),
    (b'{"stream": "", "value": 1}', "wrong_type"),
    (b'{"value": true}', "wrong_type"),
    (b'{"value": [1]}', "wrong_type"),
    (b'{"values": [1, 2]}', "wrong_type"),
    (b'{"values": {}}', "wrong_type"),
    (b'{"values": {"a": "x"}}', "not_numeric"),
    (b'{"value": 1, "values": {"a": 1}}', "wrong_type"),
    (b'{"stream": "a"}', "missing_field"),
    (b'{"value": null}', "missing_field"),
    (b'{"value": "1.5"}', "not_numeric"),
    (b'{"value": NaN}', "non_finite"),
    (b'{"value": -Infinity}', "non_finite"),
    (b'{"value": 1e999}', "non_finite"),
    (b'{"value": 1' + b"0" * 400 + b"}", "non_finite"),
    (b'{"value": 1, "ts": "yesterday"}', "bad_timestamp"),
    (b'{"value": 1, "ts": true}', "bad_timestamp"),
    (b'{"value": 1, "ts": [1]}', "bad_timestamp"),
    (b'{"value": 1, "ts": 1' + b"0" * 400 + b"}", "bad_timestamp"),  # too large for a double
    (b'{"stream": "\xed\xa0\x80", "value": 1}', "invalid_utf8"),  # an encoded surrogate
    (b"\xef\xbb\xbf", "malformed_json"),  # a byte order mark alone
    # Integers beyond int()'s 4,300-digit limit, which json.loads raises ValueError for:
    (b'{"value": ' + b"1" * 4301 + b"}", "non_finite"),
    (b'{"value": 1, "ts": ' + b"1" * 5000 + b"}", "bad_timestamp"),
    # Lone surrogates are valid JSON escapes but not Unicode: no UTF-8 Kafka key, no seed.
    (b'{"stream": "\\ud800", "value": 1}', "invalid_unicode"),
    (b'{"stream": "a", "values": {"x\\udfff": 1}}', "invalid_unicode"),
    (b'{"value": 1.5e18}', "out_of_range"),  # beyond input.max_abs_value
    (b'{"value": -2000000000000000000}', "out_of_range"),
    (b'{"values": {"a": 1, "b": -1e300}}', "out_of_range"),
])
def test_bad_input_kinds(parser, line, kind):
    rej = parser.parse(7, line)
    assert reason(rej) == kind
    assert rej.seq == 7 and rej.detail


@pytest.mark.parametrize("line, detail", [
    (b'{"value": 1.0000001e18}', "'value' is 1.0000001e+18, beyond input.max_abs_value 1e+18"),  # not "1e+18, beyond"
    (b'{"value": "a\x01"}', "invalid JSON: Invalid control character at column 13"),  # not "at at column"
])
def test_rejections_say_what_was_wrong_exactly(parser, line, detail):
    assert parser.parse(1, line).detail == detail


def test_a_huge_integer_in_an_unused_field_is_read_and_ignored(parser):
    ev = parser.parse(1, b'{"stream": "a", "value": 2, "note": ' + b"9" * 10_000 + b"}")
    assert isinstance(ev, Event) and ev.values == (2.0,)


def test_a_parser_bug_is_an_error_record_naming_the_exception(parser, monkeypatch):
    def broken(raw):
        raise KeyError("boom")

    monkeypatch.setattr("streamlstm.io.parsers.parse_ts", broken)
    rej = parser.parse(5, b'{"stream": "a", "ts": 1, "value": 1}')
    assert reason(rej) == "internal_error" and "KeyError" in rej.detail and rej.raw.startswith('{"stream"')
    assert isinstance(parser.parse(6, b'{"stream": "a", "value": 1}'), Event)  # and parsing goes on


def test_max_abs_value_is_configurable():
    p = JsonlParser(InputConfig(max_abs_value=100.0))
    assert p.parse(1, b'{"value": -100}').values == (-100.0,)
    assert reason(p.parse(2, b'{"value": 100.5}')) == "out_of_range"
    csv_parser = CsvParser(InputConfig(max_abs_value=100.0), b"timestamp,value\n")
    assert reason(csv_parser.parse(2, b"2024-01-01,1e3")) == "out_of_range"


def test_a_csv_header_that_is_not_utf8_says_what_it_is_and_what_to_do():
    """UTF-16, gzip, a zip archive (.xlsx) and Latin-1 text each named with the command that
    reads them (only UTF-16 was)."""
    import gzip
    for header, hint in (("timestamp,value\n".encode("utf-16"), "it is UTF-16: convert it, e.g. iconv"),
                         (gzip.compress(b"timestamp,value\n"), r"gzip-compressed: score <\(zcat FILE\)"),
                         (b"PK\x03\x04\x14\x00\x06\x00\xc8", "zip archive, as an Excel workbook"),
                         ("zeit,temp [°C]\n".encode("latin-1"), "Latin-1 or Windows-1252 text, convert it")):
        with pytest.raises(InputFormatError, match=f"not UTF-8: .* — .*{hint}"):
            CsvParser(InputConfig(), header)


def test_times_going_back_are_named_as_times_and_an_hour_back_as_a_clock_change():
    """ts_backwards says the times, not epoch floats, and an hour back suggests local times
    without an offset across the autumn's clock change."""
    p = CsvParser(InputConfig(), b"time,v")
    p.parse(2, b"2024-10-27T02:50:00,1")
    rej = p.parse(3, b"2024-10-27T02:05:00,1")
    assert rej.detail == ("stream 'default': time 2024-10-27T02:05:00Z is before the previous "
                          "2024-10-27T02:50:00Z (an hour or less back: local times without a UTC offset as the "
                          "clocks went back? give them the offset)")
    assert p.parse(4, b"2024-10-26T02:05:00,1").detail.endswith("before the previous 2024-10-27T02:50:00Z")
    # Times that carry their offset, or epoch seconds, are no local times: no such hint
    # (it came with every step back; found by a fuzz, 2026-12-07).
    for first, back in (("2024-10-27T02:50:00Z", "2024-10-27T02:05:00Z"),
                        ("2024-10-27T03:50:00+01:00", "2024-10-27T02:05:00Z"),
                        ("2024-10-27T02:50:00-0500", "2024-10-27T02:05:00-0500"), ("1730001000", "1730000500.5")):
        p = CsvParser(InputConfig(), b"time,v")
        p.parse(2, f"{first},1".encode())
        rej = p.parse(3, f"{back},1".encode())
        assert rej.reason == "ts_backwards" and "offset" not in rej.detail, rej.detail
    j = JsonlParser(InputConfig())
    j.parse(1, b'{"value": 1, "ts": "2024-10-27T02:50:00"}')
    assert j.parse(2, b'{"value": 1, "ts": "2024-10-27T02:05:00"}').detail.endswith("give them the offset)")


def test_a_time_column_of_numbers_in_1970_is_warned_about_once(caplog):
    """Excel's serial days (45352.5 is 2024-03-01 noon) read as epoch seconds put every
    event on 1970-01-01: one warning says so; epoch seconds of today say nothing."""
    p = CsvParser(InputConfig(), b"Date,v")
    with caplog.at_level(logging.WARNING, logger="streamlstm"):
        for n in range(3):
            p.parse(2 + n, f"{45352.5 + n},1".encode())
        CsvParser(InputConfig(), b"time,v").parse(2, b"1709294400,1")
    assert len(caplog.records) == 1 and "Excel's serial days" in caplog.records[0].getMessage()


def test_columns_that_only_count_up_are_warned_about(caplog):
    """A row number and a batch number beside a sensor: one warning after COUNTER_ROWS rows
    names both (they were scored as measurements, every new batch an alert, silently); a
    sensor's integer readings that go down, and a file of one column, say nothing."""
    p = CsvParser(InputConfig(), b"row_id,batch_no,sensor,rpm")
    quiet = CsvParser(InputConfig(), b"value")
    with caplog.at_level(logging.WARNING, logger="streamlstm"):
        for n in range(COUNTER_ROWS + 50):
            p.parse(2 + n, f"{n},{n // 250},{math.sin(n):.3f},{1000 + n % 7}".encode())
            quiet.parse(2 + n, f"{n}".encode())
    assert [r.getMessage() for r in caplog.records] == [
        f"'batch_no', 'row_id' only count up (integers that never went down in the first {COUNTER_ROWS} rows): ids "
        "or counters? Scored as measurements, each step can alert; leave them out with --exclude-columns "
        "batch_no,row_id"]


def test_empty_columns_at_a_lines_end_are_ignored():
    """Delimiters that end a line (a spreadsheet writes ;; for empty trailing columns) in
    the header, in the rows or in both: a header ending in two was a fatal "empty or
    repeated column names", one in the header or in the rows alone rejected every row
    as malformed_csv. A cell with text past the header's columns is still malformed."""
    for header, rows in ((b"Date;Energy;;", ["2024-01-01 00:00;1,5;;", "2024-01-01 01:00;2,5"]),
                         (b"ts,value,", ["1709294400,1.5", "1709294460,2.5,"]),
                         (b"ts,value", ["1709294400,1.5,", "1709294460,2.5,,"])):
        p = CsvParser(InputConfig(), header)
        events = [p.parse(2 + n, row.encode()) for n, row in enumerate(rows)]
        assert [e.values for e in events] == [(1.5,), (2.5,)], (header, events)
    p = CsvParser(InputConfig(), b"ts,value,")
    rejected = p.parse(2, b"1709294400,1.5,7")
    assert reason(rejected) == "malformed_csv" and rejected.detail == "expected 2 columns, got 3"
    assert reason(p.parse(3, b"1709294460")) == "malformed_csv"


def test_json_lines_with_their_time_under_another_name_are_warned_about(caplog):
    """A "timestamp" field (a CSV's time column by that name is found) was ignored without
    a word, and so was a named time field that the lines lack: one warning, at the first
    event without a time; lines of no time at all say nothing."""
    lines = [b'{"timestamp": "2024-01-01T00:00:00Z", "value": 1}', b'{"Timestamp": 1709294400, "value": 2}']
    with caplog.at_level(logging.WARNING, logger="streamlstm"):
        for cfg in (InputConfig(), InputConfig(ts_field="when")):
            p = JsonlParser(cfg)
            assert [p.parse(n + 1, line).ts for n, line in enumerate(lines)] == [None, None]
        quiet = JsonlParser(InputConfig())
        assert quiet.parse(1, b'{"value": 1}').ts is None and quiet.parse(2, b'{"ts": 1709294400, "value": 2}').ts
    assert [r.getMessage() for r in caplog.records] == [
        f"line 1 has no {name!r} (input.ts_field, --time-column) but a 'timestamp': events without it are read "
        "without a time (no time-of-day channel, no order check) — name it with --time-column timestamp"
        for name in ("ts", "when")]


def test_a_time_of_day_beside_a_date_is_one_time():
    """A logger's Date;Time;... columns: "Time" was taken for the time column, its times of
    day rejected, and "Date" for a feature, every row rejected as not numeric. Now the time
    is the two joined; a Time column of whole timestamps beside a Date is read alone."""
    p = CsvParser(InputConfig(), b"Date;Time;Global_active_power;Voltage")
    ev = p.parse(2, b"16.12.2006;17:24:00;4,216;234,840")
    assert ev.features == ("Global_active_power", "Voltage") and ev.values == (4.216, 234.84)
    assert ev.ts_raw == "16.12.2006 17:24:00" and ev.ts == parse_ts("2006-12-16T17:24:00Z")
    p = CsvParser(InputConfig(), b"date,time,value")
    assert p.parse(2, b"2024-01-01,00:01,1.5").ts == parse_ts("2024-01-01T00:01:00Z")
    assert p.parse(3, b"2024-01-01,2024-01-01T00:02:00Z,2.5").ts == parse_ts("2024-01-01T00:02:00Z")


def test_evaluate_labelled_reads_true_and_false_labels():
    """pandas writes a bool label column as True/False: read as 1/0 in the label column only."""
    p = CsvParser(InputConfig(), b"time,v,label", label_column="label")
    assert p.parse(2, b"1709294400,1.5,True").values == (1.0, 1.5)
    assert p.parse(3, b"1709294401,2,false").values == (0.0, 2.0)
    assert reason(CsvParser(InputConfig(), b"time,v,w").parse(2, b"1709294400,1.5,True")) == "not_numeric"


def test_a_csv_number_with_underscores_is_not_numeric():
    p = CsvParser(InputConfig(), b"ts,value\n")
    assert reason(p.parse(2, b"1700000000,1_000")) == "not_numeric"
    assert isinstance(p.parse(3, b"1700000060,1000"), Event)


def test_oversized_line():
    p = JsonlParser(InputConfig(max_line_bytes=50))
    rej = p.parse(1, b'{"value": 1, "pad": "' + b"x" * 1000 + b'"}')
    assert reason(rej) == "oversized_line"
    assert rej.detail == "line longer than 50 bytes (input.max_line_bytes)"  # the filter passes on 51 bytes of it
    csv_rej = CsvParser(InputConfig(max_line_bytes=50), b"ts,value\n").parse(2, b"1," + b"1" * 49)
    assert reason(csv_rej) == "oversized_line" and csv_rej.detail == rej.detail
    assert len(rej.raw) == 200 and rej.raw.startswith('{"value": 1')


def test_raw_is_truncated_text_or_bytes_repr(parser):
    rej = parser.parse(1, b"\xe2\x82\xac" * 1000)  # valid UTF-8 ("€"), not JSON
    assert rej.raw == "€" * 200
    rej = parser.parse(1, b"\xff" * 1000)
    assert rej.raw.startswith("b'\\xff") and len(rej.raw) == 200


def test_error_record(parser):
    rej = parser.parse(4, b'{"value": "high"}\n')
    assert error_record(rej) == {"seq": 4, "error": "not_numeric", "detail": rej.detail,
                                 "raw": '{"value": "high"}'}


@pytest.mark.parametrize("raw, expected", [
    (1700000000, 1700000000.0),
    (1700000000.25, 1700000000.25),
    ("1700000000.5", 1700000000.5),
    ("2024-01-01T00:00:00Z", 1704067200.0),
    ("2024-01-01T00:00:00", 1704067200.0),               # naive = UTC
    ("2024-01-01 02:00:00+02:00", 1704067200.0),
    ("2024-01-01T00:00:00.500Z", 1704067200.5),
    ("2024-01-01", 1704067200.0),
    ("9999-12-31T23:59:59.9Z", 253402300799.9),          # within year 9999's last second
])
def test_parse_ts(raw, expected):
    assert parse_ts(raw) == expected


@pytest.mark.parametrize("raw", ["2024-01-01T00:00\0Z", "2024-01-01T00:00:00\0",
                                 "\u0661\u0667" + "\u0660" * 8])  # Arabic-Indic 1700000000
def test_a_timestamp_with_a_nul_or_other_scripts_digits_is_rejected(parser, raw):
    """A NUL ended fromisoformat()'s reading (the time was taken without it) and float() read
    Arabic-Indic digits as 1700000000: both were accepted as times."""
    rej = parser.parse(1, json.dumps({"stream": "s", "ts": raw, "value": 1}).encode())
    assert reason(rej) == "bad_timestamp" and "other than printable ASCII" in rej.detail


@pytest.mark.parametrize("raw, says", [
    (1714564800000, "looks like epoch milliseconds (2024-05-01T12:00:00Z)"),
    ("1e12", "looks like epoch milliseconds (2001-09-09T01:46:40Z)"),
    (1714564800000000, "looks like epoch microseconds (2024-05-01T12:00:00Z)"),
    (1714564800000000000, "looks like epoch nanoseconds (2024-05-01T12:00:00Z)"),
    (1e308, "after year 9999 in epoch seconds"),
    (-1e12, "before year 1 in epoch seconds"),
])
def test_a_timestamp_beyond_year_9999_is_rejected_and_named_by_its_likely_unit(parser, raw, says):
    line = json.dumps({"stream": "s", "ts": raw, "value": 2}).encode()
    assert isinstance(parser.parse(1, b'{"stream": "s", "ts": 1714564800, "value": 1}'), Event)
    rej = parser.parse(2, line)
    assert reason(rej) == "bad_timestamp" and says in rej.detail
    # The stream's time order is not poisoned: the next real time is accepted.
    assert isinstance(parser.parse(3, b'{"stream": "s", "ts": 1714564860, "value": 3}'), Event)
    assert parse_ts("9999-12-31T23:59:59Z") > 2.5e11 and parse_ts(-62135596800) < 0  # the bounds themselves
    rej = parser.parse(4, b'{"stream": "s", "ts": "9999-12-31T23:59:59-01:00", "value": 4}')
    assert reason(rej) == "bad_timestamp" and rej.detail.endswith("after year 9999 in UTC")


def test_a_checkpointed_last_timestamp_beyond_the_bounds_is_forgotten(parser):
    parser.memory.load_json([["s", ["value"], 1e12], ["t", ["value"], 1714564800.0]])
    assert isinstance(parser.parse(1, b'{"stream": "s", "ts": 1714564860, "value": 3}'), Event)
    assert reason(parser.parse(2, b'{"stream": "t", "ts": 1714564700, "value": 3}')) == "ts_backwards"


def test_ts_backwards_is_per_stream_and_state_not_advanced_by_rejects(parser):
    assert isinstance(parser.parse(1, b'{"stream": "a", "ts": 100, "value": 1}'), Event)
    assert isinstance(parser.parse(2, b'{"stream": "b", "ts": 50, "value": 1}'), Event)
    assert reason(parser.parse(3, b'{"stream": "a", "ts": 99, "value": 1}')) == "ts_backwards"
    assert isinstance(parser.parse(4, b'{"stream": "a", "ts": 100, "value": 1}'), Event)  # equal ok
    assert isinstance(parser.parse(5, b'{"stream": "a", "value": 1}'), Event)  # no ts is fine
    assert reason(parser.parse(6, b'{"stream": "a", "ts": 99.9, "value": 1}')) == "ts_backwards"
    # A rejected event (bad value) must not move the stream's clock forward.
    assert reason(parser.parse(7, b'{"stream": "a", "ts": 500, "value": "x"}')) == "not_numeric"
    assert isinstance(parser.parse(8, b'{"stream": "a", "ts": 200, "value": 1}'), Event)


def test_feature_set_changed(parser):
    assert isinstance(parser.parse(1, b'{"stream": "a", "values": {"x": 1, "y": 2}}'), Event)
    assert isinstance(parser.parse(2, b'{"stream": "a", "values": {"y": 3, "x": 1}}'), Event)
    rej = parser.parse(3, b'{"stream": "a", "values": {"x": 1}}')
    assert reason(rej) == "feature_set_changed" and "['x', 'y']" in rej.detail
    assert reason(parser.parse(4, b'{"stream": "a", "value": 1}')) == "feature_set_changed"
    assert isinstance(parser.parse(5, b'{"stream": "b", "value": 1}'), Event)


def test_stream_memory_is_an_lru_bounded_by_max_streams():
    p = JsonlParser(InputConfig(), max_streams=3)
    for i in range(1000):
        assert isinstance(p.parse(i, b'{"stream": "s%d", "ts": 10, "value": 1}' % i), Event)
    assert len(p.memory.streams) == 3
    assert list(p.memory.streams) == ["s997", "s998", "s999"]
    # Touching a stream makes it most recent, so it survives the next insertion.
    p.parse(2000, b'{"stream": "s997", "ts": 11, "value": 1}')
    p.parse(2001, b'{"stream": "new", "ts": 0, "value": 1}')
    assert list(p.memory.streams) == ["s999", "s997", "new"]
    # An evicted stream is new again: its old timestamp is forgotten.
    assert isinstance(p.parse(2002, b'{"stream": "s0", "ts": 1, "value": 1}'), Event)


# --------------------------------------------------------------------- CSV


def test_csv_univariate_with_timestamp_column():
    p = CsvParser(InputConfig(), b"timestamp,value\n")
    ev = p.parse(2, b"2024-01-01T00:00:00Z,1.5\r\n")
    assert ev == Event(2, "default", ("value",), (1.5,), 1704067200.0,
                       "2024-01-01T00:00:00Z", {"value": 1.5})
    assert p.parse(3, b"1704067201,2").ts == 1704067201.0


def test_csv_multivariate_with_stream_column_and_quotes():
    p = CsvParser(InputConfig(), b"ts,stream,mem,cpu\n")
    ev = p.parse(2, b'5,"host,1",10,0.5')
    assert ev.stream == "host,1" and ev.features == ("cpu", "mem") and ev.values == (0.5, 10.0)
    ev = p.parse(3, b"6,host-2,,0.7")
    assert math.isnan(ev.values[1]) and ev.raw_values == {"cpu": 0.7, "mem": None}


@pytest.mark.parametrize("line, kind", [
    (b"", "empty_line"),
    (b"1,2,3", "malformed_csv"),
    (b"1", "malformed_csv"),
    (b"1,abc", "not_numeric"),
    (b"1,nan", "non_finite"),
    (b"1,inf", "non_finite"),
    (b"1,", "missing_field"),
    (b"soon,1", "bad_timestamp"),
    (b"1,\xff", "invalid_utf8"),
])
def test_csv_bad_rows(line, kind):
    p = CsvParser(InputConfig(), b"timestamp,value")
    assert reason(p.parse(1, line)) == kind


def test_csv_ts_backwards():
    p = CsvParser(InputConfig(), b"timestamp,stream,value")
    assert isinstance(p.parse(1, b"10,a,1"), Event)
    assert reason(p.parse(2, b"9,a,1")) == "ts_backwards"
    assert isinstance(p.parse(3, b"9,b,1"), Event)


@pytest.mark.parametrize("header", [b"timestamp", b"a,a", b"ts,,x", b"\xff,value"])
def test_csv_bad_header_raises(header):
    with pytest.raises(ValueError):
        CsvParser(InputConfig(), header)


# --------------------------------------------------------------------- CSV delimiters and columns


@pytest.mark.parametrize("d", [";", "\t", "|", ","])
def test_csv_delimiter_is_sniffed_from_the_header(d):
    p = CsvParser(InputConfig(), f"datetime{d}b{d}a\n".replace("{d}", d).encode())
    assert p.delimiter == d
    ev = p.parse(2, f"2020-03-09 10:14:33{d}1.5{d}-2".encode())
    assert ev.features == ("a", "b") and ev.values == (-2.0, 1.5) and ev.ts == 1583748873.0
    ev = p.parse(3, f'2020-03-09 10:14:34{d}"3"{d}4'.encode())  # the quoted path uses it too
    assert ev.values == (4.0, 3.0)


def test_csv_sniffing_ignores_delimiters_in_quoted_names_and_prefers_the_first_on_a_tie():
    p = CsvParser(InputConfig(), b'"a,b";"c,d";e')
    assert p.delimiter == ";" and p.header_names == ["a,b", "c,d", "e"]
    assert CsvParser(InputConfig(), b"a;b,c").delimiter == ","  # one each: "," comes first
    # ... unless each comma comes before a space, as in a name (was ',': 'Date;Energy' and ' kWh')
    p = CsvParser(InputConfig(), b"Date;Energy, kWh;Power, W")
    assert p.delimiter == ";" and p.header_names == ["Date", "Energy, kWh", "Power, W"]
    assert CsvParser(InputConfig(), b"time, value").delimiter == ","


def test_csv_explicit_delimiter_wins_over_sniffing():
    p = CsvParser(InputConfig(delimiter=";"), b"a;b,c")
    assert p.header_names == ["a", "b,c"]
    assert p.parse(2, b"1;2").values == (1.0, 2.0)
    assert p.parse(3, b"1,5;2").values == (1.5, 2.0)  # a decimal comma, not a delimiter


def test_csv_whitespace_delimiter_splits_at_runs_of_spaces_and_tabs():
    """A space as the delimiter, given or sniffed from a first row of data split by
    whitespace (numpy.savetxt's), splits at runs of spaces and tabs; a header of names
    with spaces in it and no other delimiter stays one column."""
    p = CsvParser(InputConfig(), b"  1.5e+00  -2  \t 3 ")
    assert (p.delimiter, p.header_lines, p.header_names) == (WHITESPACE, 0, ["col_0", "col_1", "col_2"])
    assert p.parse(1, b"1.5e+00  -2  \t 3 ").values == (1.5, -2.0, 3.0)
    assert reason(p.parse(2, b"1 2")) == "malformed_csv"
    assert CsvParser(InputConfig(), b"2020-03-09T10:00:00 4.5").univariate  # a time and a value
    p = CsvParser(InputConfig(delimiter=" "), b'time   "cpu load"\tmem')
    assert p.header_names == ["time", "cpu load", "mem"] and p.ts_col == 0
    ev = p.parse(2, b' 5   "7"  8')
    assert ev.features == ("cpu load", "mem") and ev.values == (7.0, 8.0) and ev.ts == 5.0
    assert CsvParser(InputConfig(), b"cpu load").header_names == ["cpu load"]
    assert sniff_delimiter("a b") == "," and sniff_delimiter("1.5 2") == WHITESPACE == sniff_delimiter("1.5 2\t3")
    assert sniff_delimiter("1.5\t 2") == "\t" and sniff_delimiter("1 2") == ","  # tabs do; pandas' column numbers


def test_a_decimal_comma_is_read_where_the_delimiter_is_a_semicolon():
    """A European spreadsheet's CSV: ';' between cells, ',' in the numbers; elsewhere a
    comma in a cell is no decimal mark, and a cell of two commas is no number."""
    p = CsvParser(InputConfig(), b"time;a;b")
    ev = p.parse(2, b"2020-01-01 00:00:00;1,5;-0,25e1")
    assert ev.features == ("a", "b") and ev.values == (1.5, -2.5)
    assert p.parse(3, b"2020-01-01 00:00:01;,5;7,").values == (0.5, 7.0)
    assert reason(p.parse(4, b"2020-01-01 00:00:02;1,234,5;1")) == "not_numeric"
    p = CsvParser(InputConfig(delimiter="\t"), b"a\tb")
    assert reason(p.parse(2, b"1,5\t2")) == "not_numeric"


def test_grouped_thousands_and_cells_that_say_not_available():
    """Spreadsheets' grouped thousands: 1.500,25 where the comma is the decimal mark, and
    1.001 too once the file has shown a decimal comma (it was read as 1.001, silently); in a
    file delimited by ',' a quoted 1,500.25, while 1,500 alone stays ambiguous. A cell
    saying not available (#N/A, NA) is a missing value (it rejected the whole row), and
    rejects a univariate row as a missing field. A headerless row of decimal commas is
    delimited by ';' (it was split at its commas)."""
    T = b"2024-03-01T00:00:00"
    p = CsvParser(InputConfig(), b"time;a;b")
    assert p.parse(2, T + b";1.500,25;990").values == (1500.25, 990.0)
    assert p.parse(3, T + b";1.001;-1.234.567,5").values == (1001.0, -1234567.5)
    fresh = CsvParser(InputConfig(), b"a;b")
    assert fresh.parse(2, b"1.001;2").values == (1.001, 2.0)  # no decimal comma yet: the point is one
    assert CsvParser(InputConfig(), b"a;b").parse(2, b"1.001;2,5").values == (1001.0, 2.5)  # later in the row
    us = CsvParser(InputConfig(), b"a,b")
    assert us.parse(2, b'"1,500.25",2').values == (1500.25, 2.0)
    assert reason(us.parse(3, b'"1,500",2')) == "not_numeric"
    ev = us.parse(4, b"#N/A,2")
    assert math.isnan(ev.values[0]) and ev.values[1] == 2.0 and math.isnan(us.parse(5, b"7,NA").values[1])
    assert reason(us.parse(6, b"nan,2")) == "non_finite"  # a NaN stays a value that is not finite
    assert reason(CsvParser(InputConfig(), b"time,value").parse(2, T + b",N/A")) == "missing_field"
    assert sniff_delimiter("2024-03-01T00:00:00;10,00;5,14") == ";" and sniff_delimiter("a,b;c") == ","


def test_a_pandas_frames_unnamed_index_column():
    """pandas' to_csv writes a frame's index as a first column without a name (the header
    was refused as having an empty name): its times are the time column where no other is,
    its row numbers are no data and no time; beside a named time column it is left out."""
    p = CsvParser(InputConfig(), b",value")
    ev = p.parse(2, b"2024-03-01 01:00:00+01:00,20.5")
    assert p.features == ("value",) and ev.values == (20.5,) and ev.ts == parse_ts("2024-03-01T00:00:00Z")
    ev = p.parse(3, b"7,20.5")
    assert ev.ts is None and ev.ts_raw is None and ev.values == (20.5,)
    p = CsvParser(InputConfig(), b",time,a,b")
    assert p.features == ("a", "b") and p.parse(2, b"0,2024-03-01T00:00:00,1,2").ts == parse_ts("2024-03-01")
    with pytest.raises(InputFormatError, match="empty or repeated column names: \\['a', '', 'b'\\]$"):
        CsvParser(InputConfig(), b"a,,b")
    with pytest.raises(InputFormatError, match="'temp' more than once: each column needs a name of its own"):
        CsvParser(InputConfig(), b"time,temp,temp,p")


def test_a_day_first_date_with_points_is_a_time():
    """01.03.2024 13:05:07 as European spreadsheets write it (unambiguous, unlike 03/01/2024)."""
    want = parse_ts("2024-03-01T13:05:07.5")
    assert parse_ts("01.03.2024 13:05:07.5") == want and parse_ts("1.3.2024") == parse_ts("2024-03-01")
    for bad in ("31.02.2024", "01.13.2024 10:00", "03/01/2024", "01.03.24"):
        with pytest.raises(ValueError, match="unparseable"):
            parse_ts(bad)


def test_a_row_of_values_is_a_series_when_it_is_a_files_only_line():
    """row_series: the cells of a line of several numbers, whatever the delimiter, unless
    the header is declared or columns are chosen."""
    assert row_series(b"1.5 2  -3e2\n", InputConfig()) == ["1.5", "2", "-3e2"]
    assert row_series(b"\xef\xbb\xbf1;2;3;\r\n", InputConfig()) == ["1", "2", "3"]
    for line, cfg in ((b"7\n", InputConfig()), (b"a b\n", InputConfig()), (b"1,x,3\n", InputConfig()),
                      (b"1 2\n", InputConfig(header=True)), (b"1 2\n", InputConfig(columns=("col_0",))),
                      (b'{"value": 1}\n', InputConfig()), (b"\xff 1\n", InputConfig())):
        assert row_series(line, cfg) is None, line


def test_csv_header_that_sniffs_to_one_column():
    p = CsvParser(InputConfig(), b"value")
    assert (p.delimiter, p.n_columns, p.univariate) == (",", 1, True)
    assert p.parse(2, b"1.5").values == (1.5,)
    # A delimiter given that the header does not use: one column, read as asked.
    p = CsvParser(InputConfig(delimiter=","), b"time;value")
    assert p.header_names == ["time;value"] and p.ts_col is None
    assert reason(p.parse(2, b"1;2")) == "not_numeric"


def test_csv_columns_selects_the_features():
    p = CsvParser(InputConfig(columns=("b",)), b"ts,stream,a,b,label")
    assert p.features == ("b",) and p.ts_col == 0 and p.stream_col == 1
    ev = p.parse(2, b"5,s,1,2,attack")
    assert (ev.stream, ev.features, ev.values, ev.raw_values) == ("s", ("b",), (2.0,), {"b": 2.0})


def test_csv_exclude_columns_drops_them():
    p = CsvParser(InputConfig(exclude_columns=("label", "changepoint")), b"time,a,label,b,changepoint")
    assert p.features == ("a", "b")
    assert p.parse(2, b"5,1,x,2,y").values == (1.0, 2.0)
    # The stream column can be excluded too: its events then go to the default stream.
    p = CsvParser(InputConfig(exclude_columns=("stream",)), b"stream,value")
    assert p.stream_col is None and p.parse(2, b"s,1").stream == "default"


@pytest.mark.parametrize("cfg, header, message", [
    (dict(columns=("nope", "a")), b"ts,a", (r"no column 'nope' \(input.columns / input.exclude_columns\); "
                                             r"its columns: 'ts', 'a'")),
    (dict(exclude_columns=("anomally",)), b"a,anomaly", r"no column 'anomally'.*did you mean 'anomaly'\?"),
    (dict(columns=("x", "y"), exclude_columns=("z",)), b"a,b", r"no column 'x', 'y', 'z'"),
    (dict(columns=("a",), exclude_columns=("a",)), b"a,b", r"'a' is in both input.columns and input.exclude_columns"),
    (dict(ts_field="when"), b"time,a", r"time column 'when' \(input.ts_field, --time-column\) is not in the CSV h"),
    (dict(ts_field="t", columns=("t", "a")), b"t,a", r"time column 't' .* also in input.columns or input.exclude"),
    (dict(ts_field="t", exclude_columns=("t",)), b"t,a", r"time column 't' .* also in input.columns or input.exclude"),
    (dict(columns=("stream", "a")), b"stream,a", r"'stream' is the stream column \(input.stream_field\)"),
    (dict(ts_field="stream"), b"stream,a", r"'stream' cannot be both the time and the stream column"),
    # Named and missing, every row would go to one stream, unsaid (the default's absence is one stream).
    (dict(stream_field="host"), b"ts,a,hots",
     r"stream column 'host' \(input.stream_field, --stream-column\) is not in the CSV header"),
    (dict(stream_field="host", exclude_columns=("host",)), b"ts,a,host",
     r"stream column 'host' \(input.stream_field, --stream-column\) is also in input.exclude_columns"),
    (dict(exclude_columns=("a", "b")), b"time,a,b", r"no value columns"),
])
def test_csv_column_settings_that_contradict_the_header_or_each_other(cfg, header, message):
    with pytest.raises(InputFormatError, match=message):
        CsvParser(InputConfig(**cfg), header)


@pytest.mark.parametrize("header, ts_name", [
    (b"datetime,x", "datetime"),
    (b"x,time", "time"),
    (b"Timestamp,x", "Timestamp"),
    (b"DATE,x", "DATE"),
    (b"date,time,timestamp,x", "timestamp"),  # by preference, not position
    (b"date,time,x", "time"),
])
def test_csv_time_column_is_found_by_name(header, ts_name):
    p = CsvParser(InputConfig(), header)
    assert (p.header_names[p.ts_col] if p.ts_col is not None else None) == ts_name
    assert "x" in p.features and ts_name not in p.features


def test_csv_time_column_named_and_guesses_that_give_way():
    p = CsvParser(InputConfig(ts_field="when"), b"time,when,x")  # --time-column
    assert p.header_names[p.ts_col] == "when" and p.features == ("time", "x")
    assert p.parse(2, b"7,2024-01-01T00:00:00,1").ts == 1704067200.0
    p = CsvParser(InputConfig(columns=("time", "x")), b"time,x")  # a listed feature is not guessed
    assert p.ts_col is None and p.features == ("time", "x")
    p = CsvParser(InputConfig(exclude_columns=("datetime",)), b"datetime,x")  # nor an excluded column
    assert p.ts_col is None and p.features == ("x",)
    assert CsvParser(InputConfig(), b"x,y").ts_col is None  # no such name: no timestamps


# --------------------------------------------------------------------- CSV without a header line


@pytest.mark.parametrize("first, names, features", [
    (b"0.5,-1,2e3", ["col_0", "col_1", "col_2"], ("col_0", "col_1", "col_2")),
    (b"1.5", ["value"], ("value",)),  # one column: univariate
    (b"2020-03-09 10:14:33;1.5", ["ts", "value"], ("value",)),  # a time and one value
    (b"1700000000,1.5", ["col_0", "col_1"], ("col_0", "col_1")),  # epoch seconds look like any number
    (b"1,,-3,2024-01-01T00:00:00Z", ["col_0", "col_1", "col_2", "ts"], ("col_0", "col_1", "col_2")),
])
def test_csv_first_line_of_numbers_is_data_with_columns_named_by_position(first, names, features):
    p = CsvParser(InputConfig(), first)
    assert (p.header_lines, p.header_names, p.features) == (0, names, features)
    ev = p.parse(1, first)  # the first line is the first row, not lost
    assert isinstance(ev, Event) and ev.seq == 1 and len(ev.values) == len(features)


def test_csv_positional_names_sort_in_the_files_order():
    first = ",".join(str(k + 0.5) for k in range(12)).encode()
    p = CsvParser(InputConfig(), first)
    assert p.features == tuple(f"col_{k:02d}" for k in range(12))
    assert p.parse(1, first).values == tuple(k + 0.5 for k in range(12))


@pytest.mark.parametrize("first", [b"ts,value", b"timestamp,1,2", b"a,b", b"2020-01-01,2020-01-02",
                                   b"0,1,2", b"1;2;3;4"])  # pandas' names of unnamed columns
def test_csv_first_line_with_a_name_or_no_number_is_a_header(first):
    assert CsvParser(InputConfig(), first).header_lines == 1


def test_a_first_line_of_numbers_read_as_column_names_is_logged(caplog):
    """pandas' column numbers are names, not data; a one-line input of them would
    otherwise end with no event and no word of the line (found by a fuzz, 2026-12-07)."""
    with caplog.at_level(logging.INFO, logger="streamlstm"):
        CsvParser(InputConfig(), b"1,2,3,4,5")
        CsvParser(InputConfig(), b"0;1;2")
        CsvParser(InputConfig(), b"a,b")  # names: nothing to say
        CsvParser(InputConfig(header=True), b"400,410")  # asked for: nothing to say
        with pytest.raises(InputFormatError):
            CsvParser(InputConfig(), b"")  # no line at all: no names to speak of
    assert [r.getMessage() for r in caplog.records] == [
        f"the CSV's first line {first} is read as column names (pandas' column numbers), not data; "
        "--no-header reads it as data" for first in ("1,2,3,4,5", "0;1;2")]


def test_csv_header_setting_overrides_the_guess():
    p = CsvParser(InputConfig(header=True), b"400,410,420")  # wavelengths as column names
    assert p.header_lines == 1 and p.features == ("400", "410", "420")
    p = CsvParser(InputConfig(header=False), b"a,b")
    assert p.header_lines == 0 and p.features == ("col_0", "col_1")
    assert reason(p.parse(1, b"a,b")) == "not_numeric"
    p = CsvParser(InputConfig(header=False, columns=("col_1",)), b"1;2;3")
    assert p.delimiter == ";" and p.parse(1, b"1;2;3").values == (2.0,)


@pytest.mark.parametrize("first, names, row", [(b"ts,a,b,", ["ts", "a", "b"], b"7,1.5,2,"),
                                               (b"1.5,2,", ["col_0", "col_1"], b"1.5,2,")])
def test_csv_lines_ending_with_the_delimiter_have_an_ignored_empty_last_column(first, names, row):
    p = CsvParser(InputConfig(), first)
    assert p.header_names == names and p.n_columns == len(names)
    assert p.parse(2, row).values == (1.5, 2.0)
    assert p.parse(3, row[:-1]).values == (1.5, 2.0)  # a row may end otherwise (test_empty_columns_at_a_lines_end...)


def test_csv_byte_order_mark_before_a_first_row_of_data():
    p = CsvParser(InputConfig(), "\ufeff1.5,2".encode())
    assert p.header_lines == 0 and p.parse(1, "\ufeff1.5,2".encode()).values == (1.5, 2.0)


def test_csv_header_that_is_json_says_try_format_jsonl():
    with pytest.raises(InputFormatError, match="looks like JSON .* try --format jsonl"):
        CsvParser(InputConfig(), b'{"stream": "a", "value": 1}')


def test_a_csv_column_named_like_a_label_is_scored_with_a_warning(caplog):
    """SKAB's files hold their labels beside the sensors, and `streamlstm score` reads
    them as features. They are scored (the user may mean it) with a warning naming the
    flag that leaves them out; none when the columns are chosen or excluded, nor for the
    label column of `evaluate labelled`."""
    header = b"datetime;Flow;anomaly;Changepoint\n"

    def warned(cfg, **kw):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="streamlstm"):
            p = CsvParser(cfg, header, **kw)
        return p, [r.getMessage() for r in caplog.records if "named like labels" in r.getMessage()]

    p, lines = warned(InputConfig())
    assert p.names == ["Changepoint", "Flow", "anomaly"]  # scored all the same
    assert lines == ["scored as features though named like labels: 'Changepoint', 'anomaly'; leave out with "
                     "--exclude-columns Changepoint,anomaly (input.exclude_columns)"]
    assert warned(InputConfig(exclude_columns=("anomaly", "Changepoint")))[1] == []
    assert warned(InputConfig(columns=("Flow", "anomaly")))[1] == []
    assert warned(InputConfig(), label_column="anomaly")[1] == [
        "scored as features though named like labels: 'Changepoint'; leave out with --exclude-columns Changepoint "
        "(input.exclude_columns)"]


def test_a_stream_id_longer_than_the_limit_is_rejected_saying_so(parser):
    """A stream id is the key of its results (Kafka) and in each of them: a 900 KB one made
    every result too large to produce."""
    from streamlstm.io.parsers import MAX_STREAM_ID

    assert parser.parse(1, json.dumps({"stream": "s" * MAX_STREAM_ID, "value": 1}).encode()).stream
    rej = parser.parse(2, json.dumps({"stream": "s" * 900_000, "value": 1}).encode())
    assert reason(rej) == "stream_id_too_long" and rej.detail == (
        f"'stream' is 900000 characters long, more than {MAX_STREAM_ID}")
    rej = parser.parse(3, b'{"value": 1}', key=b"k" * 1_500_000)
    assert reason(rej) == "stream_id_too_long" and rej.detail.startswith("the message key is 1500000 characters")
    csv_parser = CsvParser(InputConfig(), b"stream,value\n")
    assert reason(csv_parser.parse(2, b"s" * 2000 + b",1\n")) == "stream_id_too_long"

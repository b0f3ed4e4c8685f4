"""Sinks: where the results and error records of scored micro-batches go.

A sink has two methods: `write(batch)` takes one scored micro-batch (io/pipeline.MicroBatch:
its routed events, their results and its rejected lines), in input order; `flush()` returns
once everything written so far is delivered (the checkpoint flushes every sink before it
snapshots state). A new destination is one new class here (or, for Kafka, in kafka/sink.py).
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ..event import UNIVARIATE, error_record
from ..pool import scored
from .parsers import InputFormatError
from .records import csv_header, csv_row, dumps, record_features, result_lines, result_record

if TYPE_CHECKING:
    from .pipeline import MicroBatch

__all__ = ["CsvSink", "JsonLinesSink", "RecordsSink", "Sink"]


class Sink(Protocol):
    def write(self, batch: MicroBatch) -> None: ...

    def flush(self) -> None: ...


class JsonLinesSink:
    """Result records as JSON lines on `out` and error records on `errors` (either None:
    not written). Each micro-batch is flushed as it is written, so a slow pipe gets every
    answer at once. Blank input lines are counted by the filter, not reported one by one."""

    def __init__(self, out: TextIO | None, errors: TextIO | None, only_anomalies: bool = False):
        self.out, self.errors, self.only_anomalies = out, errors, only_anomalies

    def write(self, batch: MicroBatch) -> None:
        if self.out is not None:
            lines = result_lines(batch.routed, batch.results, self.only_anomalies)
            if lines:
                _write_whole(self.out, "\n".join(line for _, line in lines) + "\n")
        if self.errors is not None:
            rejected = [r for r in batch.rejected if r.reason != "empty_line"]
            if rejected:
                _write_whole(self.errors, "".join(dumps(error_record(r)) + "\n" for r in rejected))

    def flush(self) -> None:
        for stream in (self.out, self.errors):
            if stream is not None:
                stream.flush()


def _write_whole(stream: TextIO, text: str) -> None:
    """Write `text` to `stream` and flush it, every byte or an exception. Under
    PYTHONUNBUFFERED (which containers often set) sys.stdout writes straight to the file, and
    a write(2) cut short, by a signal or by a reader that went away, lost the rest of the
    text in silence (CPython 3.11: 64 KiB of 395 KB written, exit 0)."""
    binary = getattr(stream, "buffer", None)
    if binary is None:  # an in-memory stream
        stream.write(text)
        return
    try:
        stream.flush()
        data = memoryview(text.encode(stream.encoding, stream.errors))
        while data:
            data = data[binary.write(data):]
        binary.flush()
    except OSError as exc:  # named as the stream is (cli names stdout and the files it opens)
        raise type(exc)(exc.errno, exc.strerror, getattr(stream, "name", None)) from None


class RecordsSink:
    """Result records kept in memory as dicts (`records.result_record`), e.g. for a plot."""

    def __init__(self, only_anomalies: bool = False):
        self.only_anomalies = only_anomalies
        self.records: list[dict[str, Any]] = []

    def write(self, batch: MicroBatch) -> None:
        self.records += [result_record(s) for s in scored(batch.routed, batch.results)
                         if s.is_anomaly or not self.only_anomalies]

    def flush(self) -> None:
        pass


class CsvSink:
    """Result records as CSV rows on `out`, with the header of the first result's features
    (`records.csv_header`: one value column, or one per feature), written also where
    `only_anomalies` leaves out every row (a file of no alerts reads as an empty table, not
    as no CSV), and by `end` where the input gave no result at all. A record of another
    shape raises InputFormatError once the rows before it are written: one CSV holds one
    shape."""

    def __init__(self, out: TextIO, only_anomalies: bool = False):
        self.out = out
        self.rows = RecordsSink(only_anomalies)
        self.writer = csv.writer(out, lineterminator="\n")
        self.shape: tuple[str, ...] | None = None  # the features of the header's records

    def write(self, batch: MicroBatch) -> None:
        if self.shape is None:
            first = next(iter(scored(batch.routed, batch.results)), None)
            if first is not None:
                self._header(record_features(result_record(first)))
        self.rows.write(batch)
        records, self.rows.records = self.rows.records, []
        misfit = next((n for n, r in enumerate(records) if record_features(r) != self.shape), None)
        self.writer.writerows(csv_row(r) for r in records[:misfit])
        if misfit is not None:
            r = records[misfit]
            raise InputFormatError(
                f"{getattr(self.out, 'name', 'the CSV output')}: the result of line {r['seq']} (stream "
                f"{r['stream']!r}, {_features(record_features(r))}) does not fit the CSV's columns "
                f"({_features(self.shape)}); a CSV holds results of one shape: write JSON lines (-o NAME.jsonl) "
                "for streams of different features")

    def end(self, features: tuple[str, ...]) -> None:
        """The input ended: where it gave no result (a CSV's header alone, no line at all),
        write the header of the `features` the input named, so the file reads as an empty table."""
        if self.shape is None:
            self._header(features)

    def _header(self, features: tuple[str, ...]) -> None:
        self.writer.writerow(csv_header(features))
        self.shape = features

    def flush(self) -> None:
        self.out.flush()


def _features(shape: tuple[str, ...]) -> str:
    return "one value" if shape == UNIVARIATE else f"features {', '.join(shape)}"

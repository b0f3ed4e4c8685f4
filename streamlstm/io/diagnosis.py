"""Why the lines of an input were rejected: one line naming the likely cause.

An input of which every non-empty line was rejected is almost certainly a format mistake
(wrong delimiter, wrong --format, a label or text column read as a feature), not bad data;
the filter then ends with this line at ERROR and exit status 2 (`no_line_accepted`). One of
which most non-empty lines were rejected, while some were read, likely has a column or its
time mistaken (a measurement named as the time, text in a feature); the filter ends with
a like line at WARNING and its usual status, since what was accepted is scored
(`most_lines_rejected`). The per-line error records are written as usual. Both look at
the parser (for CSV: the header and the delimiter) and the first rejected lines, and try
in turn (`most_lines_rejected` skips what 1 and 2 say of the input's format as a whole, a
header, a delimiter or another format, since lines were read as the settings say; JSON
objects spread over lines it still names):

1. CSV whose header is a comment line (``#``) → remove it; whose header is a note above
   the real one (one column, then a line of names with the rows below it) → remove the
   notes; whose header holds a time (the
   first line is data) → ``--no-header``; whose header is one column holding another
   delimiter, or names separated by spaces → ``--delimiter``;
2. JSON lines that look like CSV (no line starts with ``{`` or ``[``, and some hold a
   delimiter or a bare number) → ``--format csv`` (CSV that looks like JSON is refused at
   its header, io/parsers.py); JSON lines whose first rejected line opens an array or a
   lone ``{`` (one pretty-printed document, not an object per line) → one object a line;
3. CSV rows rejected as ``malformed_csv`` that are each one number with a decimal comma →
   ``--delimiter ';'``; CSV rows rejected as ``bad_timestamp`` → the time column, ``--time-column`` or
   ``--exclude-columns``;
4. CSV rows rejected as ``ts_backwards`` where the time column holds numbers read as epoch
   seconds in 1970 (a measurement named as the time) → ``--time-column``, or none; where
   it was taken for the time by its name, ``--columns`` with it among the features;
5. CSV rows rejected as ``not_numeric`` → the feature columns that hold text in every such
   row: ``--time-column`` for one of times (while the file has no time column, or one of
   numbers read as 1970), ``--stream-column`` or ``--exclude-columns`` for one whose values
   repeat (a host: a long format's series), a hint for integers grouped by commas
   (``"1,500"``: thousands or a decimal comma?), ``--exclude-columns`` for the others;
6. lines rejected as ``ts_backwards`` whose times go back line after line → the input (or
   its streams named) sorted newest first: put it oldest first;
7. otherwise the most common rejection reason with one example.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..event import Rejected
from .parsers import (DEFAULT_TS_FIELD, DELIMITERS, NOT_AVAILABLE, CsvParser, JsonlParser, reads_as_data,
                      epoch_in_1970, parse_ts, read_number, sniff_delimiter, split_cells)

__all__ = ["SAMPLE", "most_lines_rejected", "no_line_accepted"]

SAMPLE = 50  # rejected lines the filter keeps for the diagnosis


def no_line_accepted(parser: CsvParser | JsonlParser | None, samples: Sequence[Rejected],
                     counts: Mapping[str, int]) -> str:
    """One line: how many lines were rejected and the likely cause, with the flag to try.
    `samples` are the first rejected lines (possibly none, after a restore), `counts` the
    rejections by reason."""
    return f"no input line was accepted ({_rejected(counts)} rejected): {_cause(parser, samples, counts, 0)}"


def most_lines_rejected(parser: CsvParser | JsonlParser | None, samples: Sequence[Rejected],
                        counts: Mapping[str, int], accepted: int) -> str:
    """One line: how many of the lines were rejected, `accepted` being those that were not,
    and the likely cause, as `no_line_accepted` except for the input's format as a whole (a
    comment or a row of data read as the header, another delimiter, CSV read as JSON
    lines): lines were read as the settings say."""
    n = _rejected(counts)
    return f"{n} of {n + accepted} input lines were rejected: {_cause(parser, samples, counts, accepted)}"


def _rejected(counts: Mapping[str, int]) -> int:
    return sum(n for reason, n in counts.items() if reason != "empty_line")


def _cause(parser: CsvParser | JsonlParser | None, samples: Sequence[Rejected], counts: Mapping[str, int],
           accepted: int) -> str:
    samples = [s for s in samples if s.reason != "empty_line"]
    if isinstance(parser, CsvParser):
        hint = _csv_hint(parser, samples, accepted)
    else:
        hint = _jsonl_hint(samples, accepted)
    return hint or _newest_first(samples, isinstance(parser, CsvParser)) or _commonest(samples, counts)


_BACKWARDS = re.compile(r"stream (.*): time (\S+) is before the previous (\S+)")


def _newest_first(samples: Sequence[Rejected], csv: bool) -> str | None:
    """Lines rejected as ts_backwards, most of them, whose times go back line after line (or
    stay, several lines a time) in each stream with more than one of them: an input, or
    streams of it, sorted newest first (as exports often are), not a few late lines."""
    back = [s for s in samples if s.reason == "ts_backwards"]
    if len(back) < 3 or 2 * len(back) < len(samples):
        return None
    times: dict[str, list[datetime]] = {}
    for s in back:
        m = _BACKWARDS.match(s.detail)
        if m is None:
            return None
        times.setdefault(m[1], []).append(datetime.fromisoformat(m[2]))
    runs = {stream: t for stream, t in times.items() if len(t) > 1}
    if sum(map(len, runs.values())) < 3 or any(t[0] == t[-1] or any(b > a for a, b in zip(t, t[1:]))
                                               for t in runs.values()):
        return None
    m = _BACKWARDS.match(back[0].detail)
    whose = f"stream{'s' * (len(runs) > 1)} {', '.join(list(runs)[:3])}{', ...' if len(runs) > 3 else ''}"
    fix = "(head -n 1 FILE; tail -n +2 FILE | tac) puts a CSV's rows" if csv else "tac FILE puts JSON lines"
    return (f"the times of {whose} go back line after line (line {back[0].seq}: {m[2]} after {m[3]}): sorted "
            f"newest first? — {fix} oldest first")


def _csv_hint(parser: CsvParser, samples: Sequence[Rejected], accepted: int) -> str | None:
    """The CSV's likely cause; `accepted` lines were read, so the header and the delimiter
    were right."""
    first = parser.header_names[0]
    # A comment is one column, or rows that do not fit it; a column named "# id" is none.
    if not accepted and parser.header_lines and first.lstrip().startswith("#") and (
            parser.n_columns == 1 or samples and all(s.reason == "malformed_csv" for s in samples)):
        return f"the first line is a comment ({first[:40]!r}), read as the header — remove comment lines " \
               "(grep -v '^#')"
    # A guessed header holding a time where the rows hold times too is a row of data (a wide
    # file's dates as column names hold numbers below them).
    rows = parser.text_rows
    stamps = [i for i, n in enumerate(parser.header_names) if _is_time(n) and _is_text(n, parser)
              and rows and all(i < len(r) and _is_time(r[i]) and _is_text(r[i], parser) for r in rows)]
    if not accepted and parser.header_lines and parser.cfg.header is None and stamps:
        return f"the header holds a time ({parser.header_names[stamps[0]]!r}): the first line looks like data " \
               "— try --no-header"
    header_below = _header_below_notes(parser, samples) if not accepted and parser.n_columns == 1 else None
    if header_below is not None:
        return (f"line {header_below.seq} ({header_below.raw.strip()[:60]!r}) looks like the header, below "
                f"{header_below.seq - 1} line{'s' * (header_below.seq > 2)} of notes, the first read as the "
                f"header — remove them (tail -n +{header_below.seq} FILE)")
    if not accepted and parser.n_columns == 1:
        header = parser.header_names[0]
        for d in DELIMITERS:
            if d != parser.delimiter and d in header:
                return f"the header contains {d!r} — try --delimiter {d!r}"
        if len(header.split()) > 1:
            return "the header's names are separated by spaces — try --delimiter ' '"
    reasons = Counter(s.reason for s in samples)
    if not reasons:
        return None
    reason = reasons.most_common(1)[0][0]
    example = next(s for s in samples if s.reason == reason)
    if reason == "malformed_csv" and parser.delimiter == "," and all(
            _DECIMAL_COMMAS.fullmatch(s.raw.strip()) for s in samples if s.reason == reason):
        return (f"the rows hold numbers with a decimal comma (line {example.seq}: {example.raw.strip()[:40]!r}), "
                "split at it — try --delimiter ';'")
    if reason == "bad_timestamp" and parser.ts_col is not None:
        name = parser.header_names[parser.ts_col]
        return (f"the time column {name!r} holds no timestamps (line {example.seq}: {example.detail}) — "
                f"name another with --time-column, or ignore it with --exclude-columns {shlex.quote(name)}")
    if reason == "ts_backwards" and parser.ts_col is not None and parser.warned_1970:
        name = parser.header_names[parser.ts_col]
        if parser.cfg.ts_field == DEFAULT_TS_FIELD:  # taken for the time by its name
            features = [name] + [parser.header_names[i] for i in parser.feature_idx]
            fix = "read it as one with --columns " + shlex.quote(",".join(_listed(n) for n in features))
        else:
            fix = "name the time column with --time-column, or leave the option out where the file has none"
        return (f"the time column {name!r} holds numbers read as epoch seconds in 1970, which go back (line "
                f"{example.seq}: {example.detail}) — if it is a measurement, {fix}")
    if reason == "not_numeric":
        rows = parser.text_rows
        text = [i for i in sorted(parser.feature_idx) if rows and all(_is_text(row[i], parser) for row in rows)]
        # Times in a feature column where there is no time column, or one of numbers read as
        # 1970 (a measurement): the wrong one named. (Epoch seconds beside a date are right.)
        stamps = [c for row in rows if parser.ts_col is not None and (c := row[parser.ts_col].strip().strip('"'))
                  and c not in NOT_AVAILABLE]
        numbers = bool(stamps) and all(_in_1970(c) for c in stamps)
        times = [i for i in text if (parser.ts_col is None or numbers) and all(_is_time(row[i]) for row in rows)]
        if times:
            name = parser.header_names[times[0]]
            named = f", and the time column {parser.header_names[parser.ts_col]!r} numbers" if numbers else ""
            return (f"column {name!r} holds times, not numbers{named} (line {example.seq}: {example.detail}) — try "
                    f"--time-column {shlex.quote(name)}")
        if len(text) == 1 and len({row[text[0]].strip() for row in rows}) < len(rows):
            name = parser.header_names[text[0]]
            return (f"column {name!r} is not numeric (line {example.seq}: {example.detail}) — try --stream-column "
                    f"{shlex.quote(name)} if it names each row's series, else --exclude-columns "
                    f"{shlex.quote(_listed(name))}")
        ambiguous = [i for i in text if all(_GROUPED_INTEGER.fullmatch(row[i].strip().strip('"')) for row in rows)]
        if ambiguous:
            name = parser.header_names[ambiguous[0]]
            return (f"column {name!r} holds numbers like {rows[0][ambiguous[0]].strip()} (line {example.seq}), "
                    "whose comma may group thousands or be a decimal comma — write them without it (1500), "
                    "with a decimal point (1,500.0), or delimit the file with ';' if the comma is decimal")
        if text:
            names = [parser.header_names[i] for i in text]
            what = f"column {names[0]!r} is" if len(names) == 1 else \
                "columns " + ", ".join(repr(n) for n in names) + " are"
            return f"{what} not numeric (line {example.seq}: {example.detail}) — try --exclude-columns " \
                   + shlex.quote(",".join(_listed(n) for n in names))
    return None


def _header_below_notes(parser: CsvParser, samples: Sequence[Rejected]) -> Rejected | None:
    """The rejected line that is the header where lines of notes come first (a logger's
    "Device: X"): the first that splits into several cells by the delimiter sniffed from
    it, where they are names (no row of data) and every rejected line from it on splits
    into as many."""
    for k, s in enumerate(samples):
        delimiter = sniff_delimiter(s.raw)
        cells = split_cells(s.raw.strip(), delimiter)
        if len(cells) < 2:
            continue  # a note, or a row of the one column
        if not reads_as_data(cells) and all(len(split_cells(r.raw.strip(), delimiter)) == len(cells)
                                             for r in samples[k:]):
            return s
        return None
    return None


# A row of one number with a decimal comma (4,89): a European spreadsheet's column of them,
# split at the comma.
_DECIMAL_COMMAS = re.compile(r"[+-]?\d+,\d+")

# 1,500 in a file delimited by ',' (quoted) or by another delimiter: thousands grouped, or a
# decimal comma? io/parsers.py reads neither.
_GROUPED_INTEGER = re.compile(r"[+-]?\d{1,3}(,\d{3})+")


def _listed(name: str) -> str:
    """A column name as a comma-separated list of names holds it (quoted where it has a comma)."""
    return '"' + name.replace('"', '""') + '"' if "," in name or '"' in name else name


def _is_text(cell: str, parser: CsvParser) -> bool:
    """Whether a cell is text the parser reads as no number (nor as a missing value)."""
    cell = cell.strip().strip('"')
    if not cell or cell in NOT_AVAILABLE:
        return False
    try:
        read_number(cell, parser.delimiter, parser.comma_decimal)
    except ValueError:
        return True
    return False


def _in_1970(cell: str) -> bool:
    """Whether a time cell (stripped) is a bare number the parser reads as a time in 1970."""
    try:
        return epoch_in_1970(cell, parse_ts(cell))
    except ValueError:
        return False


def _is_time(cell: str) -> bool:
    try:
        parse_ts(cell.strip().strip('"'))
    except ValueError:
        return False
    return True


def _jsonl_hint(samples: Sequence[Rejected], accepted: int) -> str | None:
    """The JSON lines' likely cause; where `accepted` lines were read, not another format."""
    first = samples[0].raw.strip() if samples else ""
    if first in ("{", "[") or first.startswith("[{"):
        what = "objects spread over several lines" if accepted else "one JSON document"
        return (f"the input looks like {what} (line {samples[0].seq}: {first[:60]!r}), not one object "
                "per line — write each event as an object on a line of its own (jq -c '.[]' does it for an array)")
    if not accepted and samples and all(s.reason in ("malformed_json", "wrong_type") for s in samples) \
            and not any(s.raw.lstrip().startswith(("{", "[")) for s in samples) \
            and any(s.reason == "wrong_type" or any(d in s.raw for d in DELIMITERS) for s in samples):
        return f"the input looks like CSV, not JSON lines (line {samples[0].seq}: {samples[0].raw[:60]!r}) " \
               "— try --format csv"
    return None


def _commonest(samples: Sequence[Rejected], counts: Mapping[str, int]) -> str:
    rejected = Counter({r: c for r, c in counts.items() if r != "empty_line"})
    reason, n = rejected.most_common(1)[0]
    example = next((s for s in samples if s.reason == reason), None)
    return (f"all as {reason}" if n == rejected.total() else f"most often as {reason} ({n} lines)") \
        + (f", e.g. line {example.seq}: {example.detail}" if example else "")

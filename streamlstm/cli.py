"""The `streamlstm` command.

Exit status: 0 success, 2 usage or configuration error, 1 fatal I/O error; a `score`
stopped by SIGINT, SIGTERM or SIGHUP writes the results of what it read, then exits 128 +
the signal, with one line also when stopped before it read anything (`run` exits 0: it is meant to be
stopped). A fatal error is one line on stderr saying
what failed, where, and what to do; its traceback is logged only at DEBUG. A closed stdin,
or a closed stdout where results go, is a fatal error before anything is read. An input
of which not one non-empty line was accepted (every line rejected) is taken for a usage
error too — a wrong delimiter, format or column choice, not bad data —
so `run` and `score` then exit 2, after the per-line error records, with one ERROR line
naming the likely cause and the flag to try (io/diagnosis.py).

CSV input flags (`run --format csv`, `score` and `evaluate labelled`): `--delimiter`
(default: sniffed from the first line), `--header` / `--no-header` (default: guessed from
the first line), `--columns` / `--exclude-columns` (comma-separated names) and
`--time-column` and `--stream-column`, which set `input.ts_field` and `input.stream_field`
(one setting each for JSON lines and CSV);
io/parsers.py's CsvParser says how the columns get their roles.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import stat
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import signals

if __name__ == "__main__":  # `python -m streamlstm.cli`: as the console script (launcher.py), before the slow imports
    signals.catch_early()

import click

from . import __version__
from .config import ConfigError, dump_yaml, load_config
from .engine.backend import BackendUnavailable
from .evaluate.splits import SPLITS
from .io.checkpoint import CheckpointError
from .io.parsers import BOM, InputFormatError, npy_as_csv

log = logging.getLogger("streamlstm")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Milliseconds: a daemon logs several lines a second around a rebalance.
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _load(ctx: click.Context, overrides: dict):
    """The effective config (flags > STREAMLSTM_* env > YAML > defaults); exit 2 if invalid."""
    try:
        config = load_config(ctx.obj["config_path"], overrides=overrides)
    except (ConfigError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    setup_logging(ctx.obj["log_format"] or config.log_format, ctx.obj["log_level"] or config.log_level)
    return config


@contextmanager
def _fatal_errors():
    """Checkpoint, I/O and backend errors end the command: one line at ERROR, the traceback at DEBUG,
    exit 1; an input that cannot be read as a whole (a bad CSV header) likewise, exit 2."""
    try:
        yield
    except (CheckpointError, OSError, InputFormatError, BackendUnavailable) as exc:
        log.error("%s", exc)
        log.debug("traceback of the error above", exc_info=True)
        sys.exit(2 if isinstance(exc, InputFormatError) else 1)


_CLOSED = {"stdin": "there is no input to read (give the command one, e.g. < FILE)",
           "stdout": "the results would be lost (give the command an output, e.g. > FILE)",
           "stderr": "the error records of rejected lines would be lost (give the command one, e.g. 2> FILE)"}


def _standard(name: str):
    """sys.stdin, sys.stdout or sys.stderr; an OSError (a fatal error) when the process was
    started with it closed (`<&-`, `>&-`, `2>&-`), which Python shows as None."""
    stream = getattr(sys, name)
    if stream is None:
        raise OSError(f"{name} is closed: {_CLOSED[name]}")
    return stream


class _Named:
    """A text stream whose write errors name it ("No space left on device: 'stdout'"): an
    error writing to an open file or to stdout carries no file name of its own."""

    def __init__(self, stream, name: str):
        self.stream, self.name = stream, name

    def _named(self, call, *args):
        try:
            return call(*args)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, self.name) from None

    def write(self, text: str) -> int:
        return self._named(self.stream.write, text)

    def flush(self) -> None:
        self._named(self.stream.flush)

    def close(self) -> None:  # flushes what is left
        self._named(self.stream.close)

    def __getattr__(self, attr: str):
        return getattr(self.stream, attr)


def _open_named(files: ExitStack, path: str, mode: str) -> _Named:
    """The file at `path` opened for text, closed with `files`, its write errors naming it."""
    named = _Named(open(path, mode, newline=""), path)
    files.callback(named.close)
    return named


def _open_replacing(files: ExitStack, path: str) -> tuple[_Named, Callable[[], None]]:
    """The results file at `path`, written through a temporary file beside it, and the call
    that puts it in place: until then an existing file keeps its results (a run that fails,
    with no line accepted, once emptied it), and the temporary file is removed with
    `files`. A symbolic link is written through, its file replaced; a path that is no
    regular file (a FIFO, /dev/stdout) is written directly (io/files.replaced_file)."""
    from .io.files import replace, replaced_file

    target = replaced_file(path)
    if target is None:  # appended to: a file the shell opened with >> keeps what it held
        return _open_named(files, path, "a"), lambda: None
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        named = _Named(open(partial, "w", newline=""), path)
    except OSError as exc:  # about the file asked for, not its temporary one
        raise type(exc)(exc.errno, exc.strerror, path) from None
    files.callback(partial.unlink, missing_ok=True)
    files.callback(named.close)

    def commit() -> None:
        named.close()
        replace(partial, target)
    return named, commit


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": None})
@click.version_option(__version__, prog_name="streamlstm")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="STREAMLSTM_CONFIG",
              help="YAML configuration file (also $STREAMLSTM_CONFIG).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None, help="Log line format on stderr.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default=None, help="Log verbosity.")
@click.pass_context
def main(ctx: click.Context, config_path, log_format, log_level) -> None:
    """Streaming, online-learning LSTM anomaly detection.

    \b
    cat events.jsonl | streamlstm run > scores.jsonl
    streamlstm score series.csv --output scores.csv --plot scores.png
    """
    ctx.obj = {"config_path": config_path, "log_format": log_format, "log_level": log_level}
    # `run` stops cleanly on SIGTERM/SIGINT/SIGHUP from its first instant (FilterRunner takes
    # them over), `score` with one line and exit 128 + the signal (its own `_stopped`, then
    # FilterRunner, then `_stopped` while it plots), `plot` so while it reads and draws, the
    # other commands not at all.
    if ctx.invoked_subcommand not in ("run", "score"):
        signals.release()


def _input_options(command):
    """The input flags shared by `run`, `score` and `evaluate labelled`, passed on as `input_flags`."""
    for option in reversed([
        click.option("--delimiter", default=None,
                     help="CSV field delimiter: one character, 'tab', or ' ' (runs of spaces and tabs) "
                          "(default: sniffed from the first line)."),
        click.option("--header/--no-header", default=None,
                     help="Whether the CSV's first line names the columns (default: it does unless each of its "
                          "cells is a number or a time; without one the columns are col_0, col_1, ...)."),
        click.option("--columns", default=None,
                     help="CSV feature columns, comma-separated (default: all but the time, stream and excluded "
                          "ones)."),
        click.option("--exclude-columns", default=None,
                     help="CSV columns to ignore, comma-separated (labels, ids)."),
        click.option("--time-column", default=None,
                     help="Timestamp column/field (input.ts_field; CSV default: ts, timestamp, time, datetime "
                          "or date, in any case)."),
        click.option("--stream-column", default=None,
                     help="Column/field naming each event's stream, for many series in one file (a host, a "
                          "sensor id; input.stream_field, default: stream)."),
    ]):
        command = option(command)
    return command


def _baseline_options(command):
    """Baseline priming, shared by `run` and `score`."""
    command = click.option("--baseline-rows", type=click.IntRange(min=0), default=0,
                           help="Learn the first N events of each stream as known-good history, unscored "
                                "(their outputs are 0).")(command)
    return click.option("--baseline", "baseline", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="Learn this file (same format as the input) as known-good history before the "
                             "input; nothing of it is scored or written (skipped when state is restored from "
                             "a checkpoint).")(command)


def _input_overrides(delimiter, header, columns, exclude_columns, time_column, stream_column) -> dict:
    """Dotted config keys for the input flags."""
    return {"input.delimiter": delimiter, "input.header": header, "input.columns": columns,
            "input.exclude_columns": exclude_columns, "input.ts_field": time_column,
            "input.stream_field": stream_column}


def _check_csv_flags(reads_csv: bool, delimiter, header, columns, exclude_columns, **_) -> None:
    """CSV-only flags with a JSON lines input are a usage error: they would be ignored."""
    given = [flag for flag, value in (("--delimiter", delimiter), ("--header/--no-header", header),
                                      ("--columns", columns), ("--exclude-columns", exclude_columns))
             if value is not None]
    if given and not reads_csv:
        raise click.UsageError(f"{', '.join(given)}: for CSV input only, and this input is read as JSON lines "
                               "(--format csv?)")


@main.command()
@click.option("--source", type=click.Choice(["stdin", "kafka"]), default=None, help="Where events come from.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None, help="stdin format.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Restore state from here at start; checkpoint here periodically and at exit.")
@click.option("--skip-consumed", is_flag=True,
              help="The input is replayed from its start: skip the lines the restored checkpoint covers.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write error records for rejected input here instead of stderr.")
@click.option("--only-anomalies", is_flag=True, default=None, help="Output flagged events only.")
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers, comma-separated.")
@click.option("--topic", "topics", multiple=True, help="Kafka topic to consume (repeatable).")
@click.option("--group", default=None, help="Kafka consumer group id.")
@click.option("--output-topic", default=None, help="Kafka topic for results.")
@click.option("--dead-letter-topic", default=None, help="Kafka topic for rejected messages.")
@click.option("--changelog-topic", default=None,
              help="Compacted Kafka topic for partition state (lets partitions move between instances).")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics, /healthz, /readyz (Kafka mode).")
@_input_options
@_baseline_options
@click.pass_context
def run(ctx, source, fmt, state_dir, skip_consumed, errors_path, only_anomalies, bootstrap_servers, topics, group,
        output_topic, dead_letter_topic, changelog_topic, metrics_port, baseline, baseline_rows,
        **input_flags) -> None:
    """Score events from stdin (or Kafka) and write one JSON result line per event.

    Input lines look like {"stream": "host-1/cpu", "value": 0.73} or
    {"stream": "s", "values": {"cpu": 0.7, "mem": 0.3}}, with an optional "ts".
    Runs until end of input or SIGTERM/SIGINT/SIGHUP.
    """
    overrides = {
        "source": source, "input.format": fmt, "checkpoint.state_dir": state_dir,
        "output.only_anomalies": only_anomalies,
        "kafka.bootstrap_servers": bootstrap_servers.split(",") if bootstrap_servers else None,
        "kafka.topics": list(topics) or None, "kafka.group_id": group, "kafka.output_topic": output_topic,
        "kafka.dead_letter_topic": dead_letter_topic, "kafka.changelog_topic": changelog_topic,
        "metrics.port": metrics_port,
    }
    config = _load(ctx, {**overrides, **_input_overrides(**input_flags)})
    _check_csv_flags(config.source == "stdin" and config.input.format == "csv", **input_flags)
    if skip_consumed and not config.checkpoint.state_dir:
        raise click.UsageError("--skip-consumed: needs a state directory (--state-dir, checkpoint.state_dir) whose "
                               "checkpoint says how many lines to skip")
    if config.source == "kafka":
        if baseline or baseline_rows:
            raise click.UsageError("--baseline and --baseline-rows: for the filter only (the Kafka daemon keeps "
                                   "its learnt state in checkpoints)")
        from .kafka.daemon import run_kafka, stopper

        stop, delivered = threading.Event(), threading.Event()
        signals.take_over(stopper(stop, delivered=delivered))
        sys.exit(run_kafka(config, stop, delivered=delivered))
    from .io.filter_loop import FilterRunner, reader
    from .io.sinks import JsonLinesSink

    with _fatal_errors(), ExitStack() as files:
        stdin, stdout = _standard("stdin"), _Named(_standard("stdout"), "stdout")
        errors = _open_named(files, errors_path, "a") if errors_path else _standard("stderr")
        sink = JsonLinesSink(stdout, errors, config.output.only_anomalies)
        status = FilterRunner(config, [sink], skip_consumed=skip_consumed, baseline=baseline,
                              baseline_rows=baseline_rows).run(reader(stdin))
    sys.exit(status)


def _head(read) -> bytes:
    """What `read(n)` gives up to the end of its second non-blank line (all of it when it has
    fewer): what `_file_format` and `_one_row_series` look at."""
    head = b""
    while True:
        chunk = read(1 << 16)
        head += chunk
        if not chunk or sum(1 for line in head.split(b"\n")[:-1] if line.strip()) >= 2:
            return head


# Results file names read as JSON lines without a word (no suffix: /dev/stdout, a FIFO).
_JSON_LINES_SUFFIXES = ("", ".jsonl", ".ndjson", ".json", ".txt", ".log", ".out")


def _file_format(path: Path, head: bytes) -> str:
    """The input format of the file at `path`: by its suffix, else by its first non-blank
    line (a JSON line starts with '{'; anything else is taken for CSV, headed or not)."""
    by_suffix = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
    if path.suffix.lower() in by_suffix:
        return by_suffix[path.suffix.lower()]
    first = next((line for line in head.splitlines() if line.strip()), b"")
    return "jsonl" if first.removeprefix(BOM).lstrip(b" \t").startswith(b"{") else "csv"


class _Replayed:
    """`read(n)` of a file whose `head` was read to look at (io/filter_loop.reader's): the
    head, then the rest. The file is read once, as a pipe (/dev/stdin, <(...)) can only be."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = head, rest

    def __call__(self, n: int) -> bytes:
        if not self.head:
            return self.rest(n)
        out, self.head = self.head[:n], self.head[n:]
        return out

    def ready(self, timeout: float = 0.0) -> bool:  # io/filter_loop._FdReader.ready's
        return bool(self.head) or self.rest.ready(timeout)


def _image(ctx, param, value: str | None) -> str | None:
    """A click callback: `value`, if it names an image of a format the plot can write (checked
    before anything is scored)."""
    from .io.plot import image_formats

    if value is not None and Path(value).suffix.lower()[1:] not in image_formats():
        raise click.BadParameter(f"{value!r} is not an image file name: end it with .png (or one of "
                                 f"{', '.join('.' + f for f in image_formats() if f != 'png')})")
    return value


@contextmanager
def _stopped(what: str, file: str):
    """The stop signals outside a runner's loop (before `score` scores, when its first lines
    wait on a pipe; while a plot is drawn) end the command as they do while it scores: one
    ERROR line, `what` % {"signal": its name, "file": file}, and exit 128 + the signal
    (click's default was "Aborted!" and exit 1, SIGTERM's a kill without a line)."""
    try:
        with signals.raising():
            yield
    except signals.Stopped as stopped:
        log.error(what, {"signal": stopped.signal.name, "file": file})
        sys.exit(128 + stopped.signal)


def _plot(records, path: str, results: str | None, **options) -> None:
    """plot_results (io/plot.py) of `records()` (from the file `results`, if one) to `path`,
    stopped by a signal as `_stopped` says (plot_results leaves no half image)."""
    from .io.plot import plot_results

    with _stopped("%(signal)s stopped the plot: %(file)s is not written", path):
        recs = records()
        n = plot_results(recs, path, **options)
    log.info("wrote %s (%d stream%s)", path, n, "s" * (n != 1))
    streams = len({r["stream"] for r in recs}) if options.get("stream") is None else n
    if n < streams:
        log.warning("%s shows %d of the %d streams, those with the most alerts: draw another with streamlstm plot "
                    "%s --stream ID", path, n, streams, shlex.quote(results) if results else "RESULTS")


def _one_row_series(head: bytes, input_config, name: str) -> bytes | None:
    """A CSV file whose only non-blank line is a row of several numbers (io/parsers.row_series),
    as a column of them, one event each; None for any other file (`head`: see `_head`)."""
    from .io.parsers import row_series

    first, *rest = head.splitlines(keepends=True) or [b""]
    cells = row_series(first, input_config) if not any(line.strip() for line in rest) else None
    if cells is None:
        return None
    log.info("%s holds one row of %d values: read as a series of %d events", name, len(cells), len(cells))
    return "".join(f"{c}\n" for c in cells).encode()


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Results file: CSV if its name ends in .csv, else JSON lines (default, or -: JSON lines on "
                   "stdout).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=_image,
              help="Also render a PNG (or another image format, by its suffix).")
@click.option("--stream", default=None, help="Stream id for a file without a stream column (default: file name).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Start from the state here (if any) and checkpoint the final state here.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None,
              help="Input format (default: csv for .csv and .tsv, jsonl for .jsonl, .ndjson and .json, "
                   "else jsonl if the first line starts with '{', else csv). A NumPy array (.npy) is read as "
                   "CSV rows without a header.")
@_input_options
@_baseline_options
@click.pass_context
def score(ctx, file, output, plot_path, stream, state_dir, fmt, baseline, baseline_rows, **input_flags) -> None:
    """Replay a CSV (timestamp,value[,more]; delimiter sniffed), JSONL or NumPy array (.npy) file through the
    detector."""
    from .io.filter_loop import FilterRunner, reader
    from .io.sinks import CsvSink, JsonLinesSink, RecordsSink

    output = None if output == "-" else output  # the Unix convention: stdout
    if output and plot_path and os.path.realpath(output) == os.path.realpath(plot_path):
        raise click.UsageError(f"--output and --plot name the same file ({output}): the image would replace "
                               "the results")
    if stream == "":
        raise click.UsageError("--stream: give a stream id, not an empty string")
    path = Path(file)
    npy = path.suffix.lower() == ".npy"
    with _fatal_errors(), ExitStack() as files:
        with _stopped("%(file)s was not finished: %(signal)s stopped it before the scoring began", file):
            f = files.enter_context(path.open("rb", buffering=0))
            read = reader(f)
            head = b"" if npy else _head(read)
            fmt = "csv" if npy else fmt or _file_format(path, head)
            if npy:
                input_flags["header"] = False  # an array has no column names: col_0, col_1, ... (value if one)
            config = _load(ctx, {"input.format": fmt, "checkpoint.state_dir": state_dir,
                                 "input.default_stream": stream or path.stem, **_input_overrides(**input_flags)})
            _check_csv_flags(config.input.format == "csv", **input_flags)
            only = config.output.only_anomalies
            for target in (output, plot_path):
                if target:
                    try:
                        Path(target).parent.mkdir(parents=True, exist_ok=True)
                    except FileExistsError as exc:  # mkdir's own message names the file, not why it is in the way
                        raise OSError(f"cannot write {target}: {exc.filename} is a file, not a directory") from None
            out, commit = _open_replacing(files, output) if output else (_Named(_standard("stdout"), "stdout"), None)
            for_plot = RecordsSink(only)
            to_csv = output is not None and output.lower().endswith(".csv")
            if output and not to_csv and Path(output).suffix.lower() not in _JSON_LINES_SUFFIXES:
                log.warning("%s: results written as JSON lines (a name ending in .csv writes CSV)", output)
            sinks = [CsvSink(out, only) if to_csv else JsonLinesSink(out, None, only),
                     JsonLinesSink(None, _standard("stderr"))] + ([for_plot] if plot_path else [])
            runner = FilterRunner(config, sinks, baseline=baseline, baseline_rows=baseline_rows, name=file)
            if npy:
                series = npy_as_csv(path)
            else:
                series = _one_row_series(head, config.input, path.name) if config.input.format == "csv" else None
            if series is not None:
                source, size = reader(io.BytesIO(series)), len(series)
            else:  # a pipe has no size to show progress against
                st = os.fstat(f.fileno())
                source, size = _Replayed(head, read), st.st_size if stat.S_ISREG(st.st_mode) else None
        if sys.stderr.isatty() and size is not None:
            with click.progressbar(length=size, label=f"scoring {path.name}", file=sys.stderr) as bar:
                runner.progress = bar.update
                status = runner.run(source)
        else:
            status = runner.run(source)
        if status == 0 or runner.stopped_by is not None:
            if to_csv:  # an input of no events still gets its table's header
                sinks[0].end(runner.input_features)
            if commit:
                commit()
        if runner.stopped_by is not None:  # what was read is written (and checkpointed); the rest is not
            log.error("%s was not finished: %s stopped the scoring (the results written cover the lines read "
                      "until then%s)", file, runner.stopped_by.name, "; no plot written" if plot_path else "")
            sys.exit(128 + runner.stopped_by)
        if plot_path and for_plot.records:
            _plot(lambda: for_plot.records, plot_path, output, threshold=config.model.threshold)
        elif plot_path and status == 0:
            log.warning("no results to plot%s: %s not written", " (output.only_anomalies keeps alerts only)"
                        if only else "", plot_path)
    sys.exit(status)


@main.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True, callback=_image,
              help="PNG to write (or another image format, by its suffix).")
@click.option("--stream", default=None, help="Only this stream (default: one panel per stream).")
@click.pass_context
def plot(ctx, results, output, stream) -> None:
    """Render a results file (JSONL or CSV) as an image (PNG, SVG, PDF, ... by the suffix):
    series, forecast band, flags, score."""
    from .io.plot import read_results

    config = _load(ctx, {})
    with _fatal_errors():
        _plot(lambda: read_results(results), output, results, stream=stream, threshold=config.model.threshold)


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.pass_context
def check_config(ctx, file) -> None:
    """Validate a configuration file (default: --config, $STREAMLSTM_CONFIG, as a command
    started so would load it) and print the effective configuration."""
    ctx.obj["config_path"] = file or ctx.obj["config_path"]
    click.echo(dump_yaml(_load(ctx, {})), nl=False)


@main.group()
def evaluate() -> None:
    """Measure detection quality on labelled data."""


@evaluate.command("nab")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="NAB labels (labels/combined_windows.json).")
@click.option("--output", "results_dir", type=click.Path(file_okay=False), required=True,
              help="Results directory (NAB layout).")
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True,
              help="Series alternate within each category by name: the first, third, ... are dev, the others "
                   "held-out; a half is scored on its own series.")
@click.option("--detector", default="streamlstm", show_default=True, help="Detector name in the results layout.")
@click.option("--workers", type=int, default=None, help="Processes (default: one per CPU).")
@click.pass_context
def evaluate_nab(ctx, data_dir, labels_path, results_dir, split, detector, workers) -> None:
    """Run every NAB series (or one half) online, write NAB results, print the three profiles' scores."""
    from .evaluate.nab import format_report, run_nab, series_files
    from .evaluate.nab_scoring import load_windows

    config = _load(ctx, {})
    n = len(series_files(Path(data_dir), load_windows(labels_path), split))
    with click.progressbar(length=n, label="NAB series", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:
        run = run_nab(config, data_dir, labels_path, results_dir, split, detector, workers,
                      progress=lambda _: bar.update(1))
    click.echo(format_report(run))


@evaluate.command("skab")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "results_dir", type=click.Path(file_okay=False), default=None,
              help="Write one results CSV per file here (<folder>/<file>.csv).")
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True,
              help="Files alternate within each folder by number: the first, third, ... are dev, the others held-out.")
@click.option("--workers", type=int, default=None, help="Processes (default: one per CPU).")
@click.option("--seed", type=int, default=None, help="Model seed (default: the configuration's).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run seeds SEED, SEED+1, ... and print the means (--output holds the first seed's results).")
@click.pass_context
def evaluate_skab(ctx, data_dir, results_dir, split, workers, seed, seeds) -> None:
    """Run every SKAB file online (rows 400+ scored), print SKAB's metrics beside its leaderboard."""
    from .evaluate.skab import format_report, run_skab, skab_files

    config = _load(ctx, {"model.seed": seed})
    first = config.model.seed
    with click.progressbar(length=seeds * len(skab_files(data_dir, split)), label="SKAB files", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:
        run = run_skab(config, data_dir, results_dir, split, workers, seeds=list(range(first, first + seeds)),
                       progress=lambda _: bar.update(1))
    click.echo(format_report(run))


@evaluate.command("labelled")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--label-column", default="label", show_default=True, help="The 0/1 label column.")
@click.option("--value-column", default=None,
              help="The one value column (the same as --columns VALUE; default: as --columns).")
@_input_options
@click.pass_context
def evaluate_labelled(ctx, files, label_column, value_column, **input_flags) -> None:
    """Run CSVs with a 0/1 label column through the detector (read as `score` reads them) and
    print, per file and over all files: F1, FAR and MAR of `abnormal`, event recall and delay
    of the alerts, AUC-PR and ROC-AUC of `score` and of `regime`."""
    from .evaluate.labelled import detection_metrics, score_labelled

    if value_column is not None:
        if input_flags["columns"] is not None:
            raise click.UsageError("give --value-column or --columns, not both")
        input_flags["columns"] = value_column
    if input_flags["columns"] is not None:  # the label is read as one more column
        input_flags["columns"] += f",{label_column}"
    config = _load(ctx, _input_overrides(**input_flags))
    parts = []
    with _fatal_errors():
        for path in files:
            parts.append(score_labelled(config, path, label_column))
            if len(parts) == 1:  # after the first file, so that a file that cannot be read leaves no header
                click.echo(f"{'file':32s} {'rows':>7s} {'F1':>5s} {'FAR, %':>7s} {'MAR, %':>7s} {'events':>6s} "
                           f"{'ev.recall':>9s} {'delay':>6s} {'AUC-PR':>7s} {'ROC-AUC':>7s} "
                           f"{'regime AUC-PR':>13s} {'ROC-AUC':>7s}")
            _echo_labelled(Path(path).stem, detection_metrics(parts[-1:]))
    if len(parts) > 1:
        _echo_labelled(f"all {len(parts)} files", detection_metrics(parts))


def _echo_labelled(name: str, m: dict) -> None:
    click.echo(f"{name:32s} {m['rows']:7d} {m['f1']:5.2f} {m['far']:7.2f} {m['mar']:7.2f} {m['n_events']:6d} "
               f"{m['event_recall']:9.2f} {m['mean_delay']:6.1f} {m['ap_score']:7.3f} {m['roc_score']:7.3f} "
               f"{m['ap_regime']:13.3f} {m['roc_regime']:7.3f}")


if __name__ == "__main__":
    main()

"""The filter's pipeline (kernel in a worker thread, parse and output in the main thread):
same results as processing one batch after the other, in input order, with checkpoints
that only cover written results and prompt answers on a slow pipe."""

import csv
import io
import json
import math
import os
import select
import sys
import threading
from collections import Counter

import pytest

from streamlstm.config import load_config
from streamlstm.event import Event, error_record
from streamlstm.io.checkpoint import CheckpointError, DirectoryStore
from streamlstm.io.diagnosis import SAMPLE, no_line_accepted
from streamlstm.io.filter_loop import FilterRunner, line_batches, reader
from streamlstm.io.parsers import InputFormatError, JsonlParser
from streamlstm.io.records import Source, dumps, result_line, result_lines, result_record
from streamlstm.io.sinks import CsvSink, JsonLinesSink
from streamlstm.pool import DetectorPool, Scored, advance, scored


def small_config(tmp_path, **overrides):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_size: 4\n  k2: 2\n  warmup: 5\n"
                    "groups:\n  - name: fast\n    match: ['f-*']\n    model: {hidden_size: 3}\n")
    return load_config(path, env={}, overrides={"batch_size": 7, **overrides})


def mixed_input(n=120):
    """Univariate and multivariate streams, two model groups, bad lines and blank lines."""
    lines = []
    for t in range(n):
        lines.append({"stream": f"s{t % 3}", "ts": 1000 + t, "value": math.sin(t)})
        lines.append({"stream": f"f-{t % 2}", "ts": f"2024-01-01T00:{t // 60:02d}:{t % 60:02d}Z", "value": t % 5})
        if t % 4 == 0:
            lines.append({"stream": "m", "values": {"cpu": t / 10, "mem": None if t % 8 else 0.5}})
        if t % 17 == 0:
            lines.append({"stream": "s0", "value": "high"})
    text = [json.dumps(x) for x in lines]
    text[10:10] = ["", "{not json"]
    return ("\n".join(text) + "\n").encode()


def reference(config, data):
    """What the filter writes, computed one batch after the other without threads."""
    parser, pool = JsonlParser(config.input, max_streams=config.max_streams), DetectorPool(config)
    out, errors, seq = [], [], 0
    for lines in line_batches(io.BytesIO(data).read1, config.input.max_line_bytes, config.batch_size):
        parsed = [parser.parse(seq + k + 1, line) for k, line in enumerate(lines)]
        seq += len(lines)
        out += [result_line(s) for s in pool.process([p for p in parsed if isinstance(p, Event)])]
        errors += [dumps(error_record(p)) for p in parsed if not isinstance(p, Event) and p.reason != "empty_line"]
    return out, errors


def text_sink(config, out=None, errors=None):
    return JsonLinesSink(out or io.StringIO(), errors or io.StringIO(), config.output.only_anomalies)


def run_filter(config, data, runner_class=FilterRunner):
    out, errors = io.StringIO(), io.StringIO()
    runner = runner_class(config, [text_sink(config, out, errors)])
    assert runner.run(io.BytesIO(data).read1) == 0
    return runner, out.getvalue().splitlines(), errors.getvalue().splitlines()


def test_pipelined_filter_writes_exactly_what_one_batch_after_another_does(tmp_path):
    config = small_config(tmp_path)
    data = mixed_input()
    _, out, errors = run_filter(config, data)
    assert (out, errors) == reference(config, data)
    seqs = [json.loads(line)["seq"] for line in out]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert {json.loads(line)["seq"] for line in errors} == {
        k + 1 for k, line in enumerate(data.splitlines()) if line.startswith(b"{not") or b'"high"' in line}


def test_only_anomalies(tmp_path):
    config = small_config(tmp_path, **{"output.only_anomalies": True, "model.threshold": 0.05})
    data = mixed_input()
    _, out, _ = run_filter(config, data)
    everything, _ = reference(small_config(tmp_path, **{"model.threshold": 0.05}), data)
    assert out and out == [line for line in everything if json.loads(line)["is_anomaly"]]


def test_result_lines_equal_result_line_of_each_event(tmp_path):
    config = small_config(tmp_path)
    nan = float("nan")
    events = [Event(1, "a", ("value",), (1e-7,), None, None, {}),
              Event(2, 'q"\u00e9', ("value",), (-2.5e-05,), 5.0, "2024-01-01T00:00:00Z", {}),
              Event(3, "m", ("cpu", "mem"), (0.5, nan), None, None, {}),
              Event(4, "a", ("value",), (3e16,), 7.0, 7, {}),
              Event(5, "b", ("value",), (0.1,), 7.5, 7.5, {})]
    pool = DetectorPool(config)
    routed = pool.route(events)
    results = advance(routed)
    expected = [(s.event, result_line(s)) for s in scored(routed, results)]
    assert result_lines(routed, results) == expected
    flagged = [s.is_anomaly for s in scored(routed, results)]
    assert result_lines(routed, results, only_anomalies=True) == [x for x, f in zip(expected, flagged) if f]
    # From Kafka each record also names its source, the offset being the event's seq.
    source = Source('in"t', 3)
    assert result_lines(routed, results, source=source) == [
        (s.event, dumps(result_record(s, source))) for s in scored(routed, results)]
    assert json.loads(result_lines(routed, results, source=source)[1][1])["offset"] == 2
    # Numbers orjson spells differently from repr (small magnitudes) come out as repr has them.
    res = results[[p.X.shape[1] for p in routed.parts].index(1)]
    res.scores[:] = [3e-05, 1.5e-10, 0.0001, 0.25][: len(res.scores)]
    res.predictions[:, 0] = [nan, -1e-5, 1e16, 2.0][: len(res.predictions)]
    assert result_lines(routed, results) == [(s.event, result_line(s)) for s in scored(routed, results)]
    assert result_line(Scored(events[0], (0.00001,), nan, 0.0, False, 0.0, 1e-5, False)) == dumps(
        {"seq": 1, "stream": "a", "value": 1e-7, "prediction": 1e-05, "error": None, "score": 0.0, "is_anomaly": False,
         "alert_score": 0.0, "regime": 1e-05, "abnormal": False})


def test_checkpoints_cover_exactly_the_written_results(tmp_path):
    config = small_config(tmp_path, **{"checkpoint.state_dir": str(tmp_path / "state"),
                                       "checkpoint.every_events": 10})
    seen = []

    class Watched(FilterRunner):
        def _snapshot(self):  # step 3 of the checkpoint recipe: what it covers must be written
            written = [json.loads(line)["seq"] for line in self.sinks[0].out.getvalue().splitlines()]
            seen.append((self.seq, written[-1] if written else 0, sum(self.counts.values())))
            super()._snapshot()

    data = mixed_input()
    _, out, _ = run_filter(config, data, Watched)
    assert len(seen) > 5
    for consumed, last_written, handled in seen:
        assert handled == consumed  # every line up to `consumed` has its result or error record ...
        assert last_written <= consumed  # ... and no later line has one yet
    assert seen[-1][0] == len(data.splitlines())


def test_stop_finishes_the_batches_read_and_checkpoints_them(tmp_path):
    config = small_config(tmp_path, **{"checkpoint.state_dir": str(tmp_path / "state")})
    data = mixed_input()
    chunks = [data[i:i + 200] for i in range(0, len(data), 200)]
    out, errors = io.StringIO(), io.StringIO()
    runner = FilterRunner(config, [text_sink(config, out, errors)])

    def read(n):
        if len(chunks) < 20:
            runner.stopping = True  # as the signal handler does
        return chunks.pop(0) if chunks else b""

    assert runner.run(read) == 0
    written = out.getvalue().splitlines()
    full, _ = reference(config, data)
    assert written == full[: len(written)] and 0 < len(written) < len(full)
    restarted = FilterRunner(config, [text_sink(config)], skip_consumed=True)
    restarted.restore()
    consumed = restarted.resume_after
    assert json.loads(written[-1])["seq"] <= consumed
    assert all(json.loads(line)["seq"] > consumed for line in full[len(written):])


def test_csv_without_a_header_line_is_scored_from_its_first_line_and_resumes_after_a_stop(tmp_path):
    data = "".join(f"{math.sin(t / 3):.6f},{t % 7}\n" for t in range(150)).encode()
    _, full, errors = run_filter(small_config(tmp_path, **{"input.format": "csv"}), data)
    assert [json.loads(line)["seq"] for line in full] == list(range(1, 151)) and errors == []
    assert set(json.loads(full[0])["values"]) == {"col_0", "col_1"}
    config = small_config(tmp_path, **{"input.format": "csv", "checkpoint.state_dir": str(tmp_path / "state")})
    chunks = [data[i:i + 500] for i in range(0, len(data), 500)]
    out = io.StringIO()
    runner = FilterRunner(config, [text_sink(config, out)])

    def read(n):
        runner.stopping = len(chunks) < 4  # as the signal handler does
        return chunks.pop(0) if chunks else b""

    assert runner.run(read) == 0
    first = out.getvalue().splitlines()
    assert 0 < len(first) < len(full)
    rest = io.StringIO()  # the same input replayed: the restored parser's first line is no header either
    assert FilterRunner(config, [text_sink(config, rest)], skip_consumed=True).run(io.BytesIO(data).read1) == 0
    assert first + rest.getvalue().splitlines() == full


def test_restore_falls_back_past_checkpoints_it_cannot_use(tmp_path, caplog):
    """Checksums intact but not the filter's state: this used to stop the restart (SnapshotError)."""
    config = small_config(tmp_path, **{"checkpoint.state_dir": str(tmp_path / "state")})
    data = mixed_input()
    runner, _, _ = run_filter(config, data)
    store = DirectoryStore(tmp_path / "state", keep=5)
    store.save(b"not a snapshot", {})
    store.save(DetectorPool(config).to_bytes({}), {})  # a detector snapshot without the filter's fields
    store.close()
    restarted = FilterRunner(config, [text_sink(config)], skip_consumed=True)
    restarted.restore()
    assert restarted.resume_after == runner.seq == len(data.splitlines())
    assert restarted.pool.n_streams == runner.pool.n_streams > 0
    assert caplog.text.count("cannot restore it") == 2


def test_kernel_errors_reach_the_caller(tmp_path, monkeypatch):
    import streamlstm.io.pipeline as pipeline

    def broken(routed):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(pipeline, "advance", broken)
    config = small_config(tmp_path)
    with pytest.raises(RuntimeError, match="kernel failed"):
        FilterRunner(config, [text_sink(config)]).run(io.BytesIO(mixed_input()).read1)


def test_switch_interval_is_restored(tmp_path):
    before = sys.getswitchinterval()
    run_filter(small_config(tmp_path), mixed_input(10))
    assert sys.getswitchinterval() == before


def test_slow_pipe_gets_each_line_answered_before_the_next_arrives(tmp_path):
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    answered = []

    def client():  # writes a line, waits (at most 10 s) for its answer, then writes the next
        with open(out_r, "rb") as answers:
            for t in range(30):
                os.write(w, json.dumps({"stream": "a", "value": t}).encode() + b"\n")
                if not select.select([answers], [], [], 10)[0]:
                    break
                answered.append(json.loads(answers.readline())["seq"])
        os.close(w)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    with open(r, "rb", buffering=0) as inp, open(out_w, "w") as out:
        config = small_config(tmp_path)
        assert FilterRunner(config, [text_sink(config, out)]).run(reader(inp)) == 0
    thread.join(timeout=30)
    assert answered == list(range(1, 31))


def test_timestamps_reach_the_detectors(tmp_path):
    """Event times (epoch seconds or ISO 8601; none given = NaN) go to the kernel's
    time-of-day channel with their events."""
    config = small_config(tmp_path)
    parser = JsonlParser(config.input, max_streams=config.max_streams)
    lines = [b'{"stream": "s", "ts": 60, "value": 1}', b'{"stream": "s", "value": 2}',
             b'{"stream": "s", "ts": "1970-01-01T00:02:00Z", "value": 3}']
    routed = DetectorPool(config).route([parser.parse(n + 1, line) for n, line in enumerate(lines)])
    (part,) = routed.parts
    assert part.T[0] == 60.0 and math.isnan(part.T[1]) and part.T[2] == 120.0


def test_no_line_accepted_is_status_2_and_every_line_keeps_its_error_record(tmp_path, caplog):
    config = small_config(tmp_path)
    out, errors = io.StringIO(), io.StringIO()
    runner = FilterRunner(config, [text_sink(config, out, errors)])
    data = b'{"stream": "a", "value": "high"}\n\n' * 60 + b"not json\n"
    with caplog.at_level("ERROR", logger="streamlstm"):
        assert runner.run(io.BytesIO(data).read1) == 2
    assert not out.getvalue()
    assert [json.loads(x)["seq"] for x in errors.getvalue().splitlines()] == list(range(1, 121, 2)) + [121]
    assert runner.first_rejected[0].seq == 1 and len(runner.first_rejected) == SAMPLE  # blank lines left out
    [message] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert message == ("stdin: no input line was accepted (61 rejected): most often as not_numeric (60 lines), "
                       "e.g. line 1: 'value' must be a number, got string 'high'")


def test_status_2_only_when_no_non_empty_line_is_accepted(tmp_path):
    cases = [
        (b"not json\n" * 30 + b'{"stream": "a", "value": 1}\n', "jsonl", 0),  # one accepted line is enough
        (b"", "jsonl", 0),  # no line at all
        (b"\n\n  \n", "jsonl", 0),  # blank lines only
        (b"\xef\xbb\xbf\n\n", "csv", 0),  # a byte order mark before blank lines: blank lines only (was 2)
        (b"timestamp,value\n", "csv", 0),  # a header only
        (b"timestamp,value\n\n1,x\n", "csv", 2),
        (b"\n{}\n", "jsonl", 2),
    ]
    for data, fmt, status in cases:
        config = small_config(tmp_path, **{"input.format": fmt})
        assert FilterRunner(config, [text_sink(config)]).run(io.BytesIO(data).read1) == status, data


def test_diagnosis_without_samples_after_a_restore():
    assert no_line_accepted(None, [], Counter(malformed_json=3, empty_line=9)) == \
        "no input line was accepted (3 rejected): all as malformed_json"


def _csv(header, rows):
    return (",".join(header) + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)).encode()


def test_a_restored_csv_run_reads_its_own_inputs_header(tmp_path):
    """The new input's header used to be rejected as data (not_numeric 'mem'), and columns in
    another order were read by the first input's positions: swapped values. Now columns are
    matched by name, seq is the line number in this input, and the results are those of
    one run over both inputs."""
    day1 = [(1000 + t, round(math.sin(t / 4), 4), 900 + t % 7) for t in range(40)]
    day2 = [(2000 + t, round(math.cos(t / 4), 4), 950 + t % 5) for t in range(30)]
    csv_config = lambda **kw: small_config(tmp_path, **{"input.format": "csv", **kw})
    _, once, _ = run_filter(csv_config(), _csv(("timestamp", "cpu", "mem"), day1 + day2))
    config = csv_config(**{"checkpoint.state_dir": str(tmp_path / "state")})
    run_filter(config, _csv(("timestamp", "cpu", "mem"), day1))
    _, second, errors = run_filter(config, _csv(("timestamp", "mem", "cpu"), [(t, m, c) for t, c, m in day2]))
    assert errors == []
    assert [json.loads(line)["seq"] for line in second] == list(range(2, 2 + len(day2)))
    assert [{**json.loads(line), "seq": 0} for line in second] == [{**json.loads(line), "seq": 0}
                                                                   for line in once[len(day1):]]


def test_a_restored_csv_run_with_other_value_columns_rejects_each_row(tmp_path):
    config = small_config(tmp_path, **{"input.format": "csv", "checkpoint.state_dir": str(tmp_path / "state")})
    run_filter(config, _csv(("ts", "cpu", "mem"), [(t, t % 3, t % 5) for t in range(20)]))
    out, errors = io.StringIO(), io.StringIO()
    runner = FilterRunner(config, [text_sink(config, out, errors)])
    assert runner.run(io.BytesIO(_csv(("ts", "cpu", "disk"), [(100, 1, 2), (101, 2, 3)])).read1) == 2
    assert out.getvalue() == ""
    assert [json.loads(line)["error"] for line in errors.getvalue().splitlines()] == ["feature_set_changed"] * 2


@pytest.mark.parametrize("first_input", [b"", b"\n\n"])
def test_a_csv_state_dir_whose_first_run_read_no_header_restores(tmp_path, first_input):
    """The checkpoint held no header and could never be restored ('NoneType' object has no
    attribute 'decode')."""
    data = _csv(("ts", "value"), [(1000 + t, round(math.sin(t / 3), 4)) for t in range(30)])
    _, fresh, _ = run_filter(small_config(tmp_path, **{"input.format": "csv"}), data)
    config = small_config(tmp_path, **{"input.format": "csv", "checkpoint.state_dir": str(tmp_path / "state")})
    run_filter(config, first_input)
    _, out, errors = run_filter(config, data)
    assert out == fresh and errors == []

def test_a_checkpoint_of_another_input_format_is_one_clear_error(tmp_path):
    state = str(tmp_path / "state")
    run_filter(small_config(tmp_path, **{"checkpoint.state_dir": state}), mixed_input(10))
    config = small_config(tmp_path, **{"input.format": "csv", "checkpoint.state_dir": state})
    with pytest.raises(CheckpointError, match=f"the checkpoints in {state} were written for JSON lines input; "
                                              r"this run reads CSV \(--format jsonl, or another --state-dir\)"):
        FilterRunner(config, [text_sink(config)]).run(io.BytesIO(b"ts,value\n1,2\n").read1)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_blank_lines_before_a_csv_header_are_empty_lines(tmp_path, bom):
    """The first line, blank, was taken for the header: 'CSV header has no value columns: []'
    (and with a byte order mark before it, until 2026-12-05)."""
    config = small_config(tmp_path, **{"input.format": "csv"})
    data = _csv(("ts", "value"), [(1000 + t, t % 5) for t in range(20)])
    _, plain, _ = run_filter(config, data)
    runner, out, errors = run_filter(config, bom + b"\n \r\n" + data)
    assert [{**json.loads(line), "seq": 0} for line in out] == [{**json.loads(line), "seq": 0} for line in plain]
    assert json.loads(out[0])["seq"] == 4 and errors == [] and runner.counts["empty_line"] == 2


@pytest.mark.parametrize("ending", [b"\r", b"\r\n"])
def test_cr_and_cr_lf_line_ends_are_line_ends(tmp_path, ending):
    """A CSV of CR-only line ends was one line, its header: nothing scored, exit 0. Read in
    chunks that cut between a CR and its LF too."""
    config = small_config(tmp_path, **{"input.format": "csv"})
    data = _csv(("ts", "value"), [(1000 + t, t % 5) for t in range(30)])
    _, plain, _ = run_filter(config, data)
    crlf = data.replace(b"\n", ending)
    chunks = [crlf[i:i + 5] for i in range(0, len(crlf), 5)]
    out = io.StringIO()
    assert FilterRunner(config, [text_sink(config, out)]).run(lambda n: chunks.pop(0) if chunks else b"") == 0
    assert out.getvalue().splitlines() == plain


def test_baseline_rows_go_on_across_a_restart(tmp_path):
    """Each restart used to learn the next `baseline_rows` events of every stream unscored
    again: the results after a stop and a --skip-consumed replay differed from one run's."""
    config = small_config(tmp_path, **{"checkpoint.state_dir": str(tmp_path / "state")})
    data = mixed_input()
    whole = io.StringIO()
    assert FilterRunner(small_config(tmp_path), [text_sink(config, whole)], baseline_rows=8).run(
        io.BytesIO(data).read1) == 0
    chunks = [data[i:i + 2000] for i in range(0, len(data), 2000)]
    first, rest = io.StringIO(), io.StringIO()
    runner = FilterRunner(config, [text_sink(config, first)], baseline_rows=8)

    def read(n):
        runner.stopping = len(chunks) < 5  # as the signal handler does
        return chunks.pop(0) if chunks else b""

    assert runner.run(read) == 0
    replay = FilterRunner(config, [text_sink(config, rest)], skip_consumed=True, baseline_rows=8)
    assert replay.run(io.BytesIO(data).read1) == 0
    assert first.getvalue() and first.getvalue() + rest.getvalue() == whole.getvalue()


def test_a_skip_consumed_replay_shorter_than_the_checkpoint_is_warned_of(tmp_path, caplog):
    """It used to be skipped whole in silence, exit 0, and the checkpoint then said only its
    lines were consumed."""
    config = small_config(tmp_path, **{"checkpoint.state_dir": str(tmp_path / "state")})
    data = mixed_input()
    run_filter(config, data)
    out = io.StringIO()
    short = data[: data.index(b"\n", len(data) // 3) + 1]
    with caplog.at_level("WARNING", logger="streamlstm"):
        assert FilterRunner(config, [text_sink(config, out)], skip_consumed=True).run(io.BytesIO(short).read1) == 0
    assert out.getvalue() == ""
    lines, covered = short.count(b"\n"), data.count(b"\n")
    assert f"the input ended after {lines} lines, before the {covered} the checkpoint covers" in caplog.text
    assert DirectoryStore(tmp_path / "state").load_latest()[1]["lines_consumed"] == covered


def test_csv_output_refuses_results_of_another_shape_after_writing_those_before(tmp_path):
    """The header came from the first record and later rows had more cells: a corrupt CSV
    that `plot` could not read. Now the file holds whole rows up to the misfit, no
    checkpoint covers more, and the error says what to do."""
    config = small_config(tmp_path, **{"checkpoint.state_dir": str(tmp_path / "state")})
    out = io.StringIO()
    out.name = "r.csv"
    runner = FilterRunner(config, [CsvSink(out)])
    with pytest.raises(InputFormatError, match=r"r.csv: the result of line 3 \(stream 'm', features cpu, mem\) does "
                                               r"not fit the CSV's columns \(one value\); .* write JSON lines"):
        runner.run(io.BytesIO(mixed_input()).read1)
    header, *rows = list(csv.reader(out.getvalue().splitlines()))
    assert header[3] == "value" and [int(r[0]) for r in rows] == [1, 2]
    assert not list((tmp_path / "state").glob("ckpt-*"))

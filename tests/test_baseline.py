"""Baseline priming from the command line: `--baseline FILE` and `--baseline-rows N`."""

import json
import math

import numpy as np
from click.testing import CliRunner

from streamlstm import MultiStreamDetector
from streamlstm.cli import main

CONFIG = "model:\n  hidden_size: 8\n  k2: 4\n  warmup: 100\n"


def lines(ts, stream="a", spike_at=None):
    """JSON lines of a sine, one per timestamp, a spike of +5 at `spike_at`."""
    return [json.dumps({"stream": stream, "ts": 1_700_000_000 + 60 * t,
                        "value": math.sin(t / 8) + (5.0 if t == spike_at else 0.0)}) for t in ts]


def invoke(tmp_path, args, stdin=""):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    return CliRunner().invoke(main, ["--config", str(cfg), *args], input=stdin, catch_exceptions=False)


def results(res):
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_baseline_file_and_baseline_rows_equal_the_api(tmp_path):
    """`run --baseline FILE` learns FILE unscored, then scores the input; `--baseline-rows
    400` on the whole series scores its rows 400+ as 0 and the rest exactly so; both are
    MultiStreamDetector.process(score=False) followed by process()."""
    history, live = lines(range(400)), lines(range(400, 700), spike_at=450)
    base = tmp_path / "base.jsonl"
    base.write_text("\n".join(history) + "\n")
    primed = results(invoke(tmp_path, ["run", "--baseline", str(base)], "\n".join(live) + "\n"))
    rows = results(invoke(tmp_path, ["run", "--baseline-rows", "400"], "\n".join(history + live) + "\n"))

    det = MultiStreamDetector(1, hidden_size=8, k2=4, warmup=100)
    x = np.array([json.loads(line)["value"] for line in history + live])[:, None]
    ts = 1_700_000_000 + 60 * np.arange(700.0)
    det.process(["a"] * 400, x[:400], ts[:400], score=False)
    expected = det.process(["a"] * 300, x[400:], ts[400:])

    assert [r["seq"] for r in primed] == list(range(1, 301))  # the input's lines only
    assert [r["score"] for r in primed] == expected.scores.tolist()
    assert [r["score"] for r in rows[400:]] == expected.scores.tolist()
    assert not any(r["score"] or r["is_anomaly"] or r["regime"] for r in rows[:400])
    assert [r["seq"] for r in primed if r["is_anomaly"]] == [51]  # the spike, row 450


def test_bad_baseline_lines_get_error_records_naming_the_file(tmp_path):
    base = tmp_path / "base.jsonl"
    history = lines(range(300))
    history[10] = '{"stream": "a", "value": NaN}'
    base.write_text("\n".join(history) + "\n")
    res = invoke(tmp_path, ["run", "--baseline", str(base)], "\n".join(lines(range(300, 320))) + "\n")
    assert res.exit_code == 0 and len(results(res)) == 20
    errors = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert [(e["seq"], e["error"], e["input"]) for e in errors] == [(11, "non_finite", str(base))]


def test_a_baseline_of_which_no_line_is_read_is_an_error_naming_the_likely_cause(tmp_path):
    """A CSV baseline for a JSON-lines run was learnt as nothing ("learnt 0 baseline
    events"), exit 0: as an input of which no line is accepted, it is now one line naming
    the baseline and the likely cause, exit 2, and nothing is scored."""
    base = tmp_path / "base.csv"
    base.write_text("ts,value\n" + "".join(f"{1_700_000_000 + 60 * t},{t}\n" for t in range(10)))
    res = invoke(tmp_path, ["run", "--baseline", str(base)], "\n".join(lines(range(20))) + "\n")
    errors = [line for line in res.stderr.splitlines() if " ERROR " in line]
    assert res.exit_code == 2 and res.stdout == "" and len(errors) == 1, res.stderr
    assert f"--baseline {base}: no input line was accepted (11 rejected): " in errors[0]


def test_the_input_must_go_on_in_time_from_the_baseline(tmp_path):
    """The input's parser continues from the baseline's per-stream memory: an input line
    older than the baseline's last one is out of order."""
    base = tmp_path / "base.jsonl"
    base.write_text("\n".join(lines(range(300))) + "\n")
    res = invoke(tmp_path, ["run", "--baseline", str(base)], "\n".join(lines([5, 300, 301])) + "\n")
    errors = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert [(e["seq"], e["error"]) for e in errors] == [(1, "ts_backwards")] and len(results(res)) == 2


def test_baseline_rows_beyond_a_stream_is_an_error_naming_both_numbers(tmp_path):
    data = tmp_path / "series.csv"
    data.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + t},{math.sin(t)}\n" for t in range(300)))
    res = invoke(tmp_path, ["score", str(data), "--baseline-rows", "500"])
    assert res.exit_code == 2
    assert "--baseline-rows 500, but stream 'series' has only 300 rows: none of them was scored" in res.stderr


def test_baseline_rows_beyond_one_stream_of_several_is_a_warning(tmp_path):
    """A short stream beside scored ones (a host that came late) is the input's, not a
    mistake in the setting: a warning, exit 0 (exit 2 stopped a `set -e` pipeline whose
    other streams were all scored; found by a fuzz, 2026-12-07)."""
    text = "\n".join([*lines(range(100), "big"), *lines(range(5), "small")]) + "\n"
    res = invoke(tmp_path, ["run", "--baseline-rows", "10"], text)
    assert res.exit_code == 0 and len(results(res)) == 105
    assert "WARNING" in res.stderr and "stream 'small' has only 5 rows: none of them was scored" in res.stderr


def test_baseline_rows_beyond_every_stream_is_an_error(tmp_path):
    text = "\n".join([*lines(range(8), "a"), *lines(range(5), "b")]) + "\n"
    res = invoke(tmp_path, ["run", "--baseline-rows", "10"], text)
    assert res.exit_code == 2
    assert "stream 'a' has only 8 rows (and 1 more streams): none of them was scored" in res.stderr


def test_a_restored_state_does_not_learn_the_baseline_twice(tmp_path):
    base = tmp_path / "base.jsonl"
    base.write_text("\n".join(lines(range(300))) + "\n")
    state = tmp_path / "state"
    first = invoke(tmp_path, ["run", "--baseline", str(base), "--state-dir", str(state)],
                   "\n".join(lines(range(300, 320))) + "\n")
    again = invoke(tmp_path, ["run", "--baseline", str(base), "--state-dir", str(state)],
                   "\n".join(lines(range(320, 340))) + "\n")
    straight = invoke(tmp_path, ["run", "--baseline", str(base)], "\n".join(lines(range(300, 340))) + "\n")
    assert results(first) + results(again) != [] and "is in it already" in again.stderr
    assert [r["score"] for r in results(first) + results(again)] == [r["score"] for r in results(straight)]


def test_baseline_with_kafka_is_a_usage_error(tmp_path):
    base = tmp_path / "base.jsonl"
    base.write_text("\n")
    res = invoke(tmp_path, ["run", "--source", "kafka", "--topic", "t", "--baseline", str(base)])
    assert res.exit_code == 2 and "for the filter only" in res.output


def test_a_csv_baseline_skips_blank_lines_before_its_header_as_the_input_does(tmp_path):
    """The baseline's parser was made from its first line even when blank: 'CSV header has
    no value columns: []', exit 2."""
    rows = "".join(f"{1_700_000_000 + 60 * t},{math.sin(t / 8)}\n" for t in range(300))
    data, plain, blank = tmp_path / "series.csv", tmp_path / "plain.csv", tmp_path / "blank.csv"
    data.write_text("\n\ntimestamp,value\n" + "".join(f"{1_700_018_000 + 60 * t},{math.sin(t / 8)}\n"
                                                      for t in range(300, 320)))
    plain.write_text("timestamp,value\n" + rows)
    blank.write_text("\n \r\ntimestamp,value\n" + rows)
    expected = invoke(tmp_path, ["score", str(data), "--baseline", str(plain)])
    res = invoke(tmp_path, ["score", str(data), "--baseline", str(blank)])
    assert res.exit_code == 0, res.stderr
    assert [r["score"] for r in results(res)] == [r["score"] for r in results(expected)] and len(results(res)) == 20

"""The `streamlstm` command end to end: click's runner and real subprocesses with pipes."""

import csv
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faults import full_disk_for_checkpoints, sigterm_during_start_up

from streamlstm import __version__, signals
from streamlstm.cli import _JsonFormatter, main
from streamlstm.io.checkpoint import DirectoryStore


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("model:\n  hidden_size: 8\n  k2: 4\n  warmup: 20\ncheckpoint:\n  every_events: 50\n")
    return str(path)


def events(n=300, streams=("a", "b")):
    lines = []
    for t in range(n):
        for s in streams:
            lines.append(json.dumps({"stream": s, "ts": 1_700_000_000 + t, "value": math.sin(t / 5) + (s == "b")}))
    return "\n".join(lines) + "\n"


def invoke(args, stdin=""):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def test_blank_lines_are_skipped_not_rejected_in_the_summary(small_config):
    """Blank lines get no error record, so the exit summary does not count them as
    rejected (it said "rejected 2, empty_line=2" of an input with nothing wrong)."""
    res = invoke(["--config", small_config, "run"], '{"value": 1}\n\n\n{"value": 2}\nxx\n')
    assert res.exit_code == 0
    assert "processed 2 events, rejected 1, malformed_json=1; skipped 2 empty lines" in res.stderr, res.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_stream_id_of_100_kb_is_one_short_error_record_and_the_input_goes_on(small_config, fmt):
    """As the Kafka daemon's dead letter (one parser): the id would be in every result."""
    long_id = "s" * 100_000
    if fmt == "jsonl":
        data = "".join(json.dumps({"stream": s, "value": v}) + "\n" for s, v in (("a", 1), (long_id, 2), ("a", 3)))
    else:
        data = f"stream,value\na,1\n{long_id},2\na,3\n"
    res = invoke(["--config", small_config, "run", "--format", fmt], data)
    assert res.exit_code == 0 and [json.loads(x)["value"] for x in res.stdout.splitlines()] == [1, 3]
    [error] = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    what = "'stream'" if fmt == "jsonl" else "column 'stream'"
    assert (error["seq"], error["error"]) == (2 + (fmt == "csv"), "stream_id_too_long")
    assert error["detail"] == f"{what} is 100000 characters long, more than 1024" and len(error["raw"]) <= 200


def test_version_and_help():
    assert __version__ in invoke(["--version"]).output
    for cmd in ([], ["run"], ["score"], ["plot"], ["check-config"]):
        assert invoke(cmd + ["--help"]).exit_code == 0


def test_run_happy_path_one_output_per_event(small_config):
    res = invoke(["--config", small_config, "run"], events(100))
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.exit_code == 0 and len(out) == 200
    assert [o["seq"] for o in out] == list(range(1, 201))
    first = out[0]
    assert set(first) == {"seq", "stream", "ts", "value", "prediction", "error", "score", "is_anomaly", "alert_score",
                          "regime", "abnormal"}
    assert first["prediction"] is None and out[-1]["prediction"] is not None
    assert all(0.0 <= o["score"] < 1.0 for o in out)


def test_multivariate_and_feature_set_change(small_config):
    lines = [json.dumps({"stream": "m", "values": {"cpu": 0.1 * t, "mem": None if t == 3 else 0.5}}) for t in range(10)]
    lines.append(json.dumps({"stream": "m", "values": {"cpu": 1.0}}))
    res = invoke(["--config", small_config, "run"], "\n".join(lines) + "\n")
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(out) == 10 and out[3]["values"]["mem"] is None
    assert set(out[-1]["prediction"]) == {"cpu", "mem"}
    errors = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    assert [e["error"] for e in errors] == ["feature_set_changed"] and errors[0]["seq"] == 11


BAD_LINES = {
    "malformed_json": b'{"stream": "a", "value": ',
    "not_numeric": b'{"stream": "a", "value": "high"}',
    "non_finite": b'{"stream": "a", "value": NaN}',
    "out_of_range": b'{"stream": "a", "value": 1e38}',
    "missing_field": b'{"stream": "a"}',
    "wrong_type": b'["stream", 1]',
    "oversized_line": b'{"stream": "a", "value": 1, "pad": "' + b"x" * 300 + b'"}',
    "invalid_utf8": b'{"stream": "a\xff", "value": 1}',
    "ts_backwards": b'{"stream": "a", "ts": 1, "value": 1}',
    "bad_timestamp": b'{"stream": "a", "ts": "yesterday", "value": 1}',
}


@pytest.mark.slow  # the CLI in subprocesses
def test_every_bad_input_kind_is_reported_and_processing_continues(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  hidden_size: 4\n  k2: 2\ninput:\n  max_line_bytes: 200\n")
    good = lambda t: json.dumps({"stream": "a", "ts": 100 + t, "value": t}).encode()  # noqa: E731
    lines = [good(0)]
    for k, bad in enumerate(BAD_LINES.values()):
        lines += [bad, good(k + 1)]
    errors_path = tmp_path / "errors.jsonl"
    proc = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", str(cfg), "run", "--errors",
                           str(errors_path)], input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [o["value"] for o in out] == list(range(len(BAD_LINES) + 1))  # every good line answered
    errors = [json.loads(x) for x in errors_path.read_text().splitlines()]
    assert [e["error"] for e in errors] == list(BAD_LINES)
    assert [e["seq"] for e in errors] == list(range(2, 2 * len(BAD_LINES) + 1, 2))
    assert all(len(e["raw"]) <= 200 and e["detail"] for e in errors)
    assert f"rejected {len(BAD_LINES)}" in proc.stderr.decode()  # the summary at exit


@pytest.mark.parametrize("poison, kind", [
    (b'{"stream":"a","value":' + b"1" * 4301 + b"}", "non_finite"),  # beyond int()'s digit limit
    (b'{"stream":"\\ud800","value":1}', "invalid_unicode"),  # a lone surrogate as stream id
])
def test_poison_pills_get_an_error_record_and_the_input_goes_on(small_config, poison, kind):
    lines = b'{"stream":"a","value":1}\n' + poison + b'\n{"stream":"a","value":2}\n'
    res = CliRunner().invoke(main, ["--config", small_config, "run"], input=lines)
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["value"] for x in res.stdout.splitlines()] == [1, 2]
    errors = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    assert [(e["seq"], e["error"]) for e in errors] == [(2, kind)]


@pytest.mark.slow  # the CLI in subprocesses
def test_unreadable_csv_header_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "streamlstm.cli", "run", "--format", "csv"],
                          input=b"a,a\n1,2\n", capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "repeated column names" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not proc.stdout


def test_config_errors_exit_2_and_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden_size: 8\n  hiden: 3\n")
    res = CliRunner().invoke(main, ["check-config", str(bad)])
    assert res.exit_code == 2 and "bad.yaml:3" in res.output and "model.hiden" in res.output
    res = CliRunner().invoke(main, ["run"], env={"STREAMLSTM_MODEL__K1": "zero"})
    assert res.exit_code == 2 and "STREAMLSTM_MODEL__K1" in res.output


def test_empty_state_dir_is_a_usage_error_not_no_state_dir():
    res = CliRunner().invoke(main, ["run", "--state-dir", ""], input=events(10))
    assert res.exit_code == 2 and "checkpoint.state_dir: expected non-empty string or null, got ''" in res.output


def test_hostile_config_file_is_a_usage_error(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("model: " + "[" * 20_000 + "]" * 20_000 + "\n")
    res = CliRunner().invoke(main, ["check-config", str(deep)])
    assert res.exit_code == 2 and "deep.yaml:1: nested deeper than 64 levels" in res.output


def test_check_config_prints_effective_config(small_config, monkeypatch):
    """Of the file named, else of --config or $STREAMLSTM_CONFIG, as a command started so
    loads it (it asked for FILE); with none, the defaults'."""
    for args in (["check-config", small_config], ["--config", small_config, "check-config"]):
        res = invoke(args)
        assert res.exit_code == 0 and "hidden_size: 8" in res.output and "k2: 4" in res.output
    monkeypatch.setenv("STREAMLSTM_CONFIG", small_config)
    assert "hidden_size: 8" in CliRunner().invoke(main, ["check-config"]).output
    monkeypatch.delenv("STREAMLSTM_CONFIG")
    res = invoke(["check-config"])
    assert res.exit_code == 0 and "hidden_size: 32" in res.output


def _spawn(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "streamlstm.cli", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.slow  # the CLI in subprocesses
def test_sigterm_then_restart_matches_uninterrupted_run(tmp_path, small_config):
    data = events(300).encode()
    whole = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run"], input=data,
                           capture_output=True, timeout=120).stdout.decode().splitlines()
    lines = data.splitlines(keepends=True)
    state = tmp_path / "state"
    first = _spawn(["--config", small_config, "run", "--state-dir", str(state)])
    first.stdin.write(b"".join(lines[:250]))
    first.stdin.flush()
    got = []
    while len(got) < 250:  # wait for the answers, then stop it while it waits for input
        got.append(first.stdout.readline().decode())
    # A second filter on the same state directory meanwhile: refused at once, in one line.
    rival = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run", "--state-dir",
                            str(state)], input=data, capture_output=True, timeout=120)
    assert rival.returncode == 1 and rival.stdout == b""
    [line] = rival.stderr.decode().splitlines()
    assert " ERROR " in line and line.endswith(
        f"the state directory {state} is in use (locked by pid {first.pid} on {socket.gethostname()}): one "
        "process at a time writes it; stop the other or choose another state directory")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    got += first.stdout.read().decode().splitlines(keepends=True)
    # Restart with the same input replayed from the start: the consumed lines are skipped.
    second = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run", "--state-dir",
                             str(state), "--skip-consumed"], input=data, capture_output=True, timeout=120)
    assert second.returncode == 0
    assert [x.rstrip("\n") for x in got] + second.stdout.decode().splitlines() == whole
    # The summary covers the whole input, and says how much of it the checkpoint had.
    assert "processed 600 events (250 of them before the checkpoint this run resumed from), rejected 0" in \
        second.stderr.decode()


@pytest.mark.slow  # the CLI in subprocesses
def test_an_idle_filter_checkpoints_after_every_seconds(tmp_path):
    """The clock was looked at only when input arrived: events before a quiet hour were not
    durable until the next line (or the end)."""
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  hidden_size: 8\n  warmup: 20\ncheckpoint:\n  every_events: 100000\n"
                      "  every_seconds: 1\n")
    state = tmp_path / "state"
    proc = _spawn(["--config", str(config), "run", "--state-dir", str(state)])
    try:
        proc.stdin.write(events(5).encode())  # 10 events, far below every_events
        proc.stdin.flush()
        for _ in range(10):
            proc.stdout.readline()
        deadline = time.monotonic() + 30
        while not list(state.glob("ckpt-*.slc")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None  # still waiting for input
        assert len(list(state.glob("ckpt-*.slc"))) == 1
        time.sleep(1.5)  # one checkpoint per quiet spell, not one a second
        assert len(list(state.glob("ckpt-*.slc"))) == 1
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert DirectoryStore(state).load_latest()[1] == {"lines_consumed": 10}
    assert len(list(state.glob("ckpt-*.slc"))) == 2  # and the last at the end


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("nohup", [False, True])
def test_sighup_stops_run_with_a_checkpoint_unless_ignored_as_under_nohup(tmp_path, small_config, nohup):
    """SIGHUP (a closed terminal or SSH session) had its default action: `run` died, status -1,
    without a checkpoint. Now it stops `run` as SIGTERM does; ignored when the command started
    (`nohup`), it stays ignored."""
    lines = events(15).encode().splitlines(keepends=True)  # 30 lines
    state = tmp_path / "state"
    ignore = (lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if nohup else None
    proc = _spawn(["--config", small_config, "run", "--state-dir", str(state)], preexec_fn=ignore)
    proc.stdin.write(b"".join(lines[:20]))
    proc.stdin.flush()
    answered = [proc.stdout.readline() for _ in range(20)]
    proc.send_signal(signal.SIGHUP)
    if nohup:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0 and all(answered)
    assert ("received SIGHUP" in proc.stderr.read().decode()) is not nohup
    replay = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run", "--state-dir",
                             str(state), "--skip-consumed"], input=b"".join(lines), capture_output=True, timeout=120)
    assert replay.returncode == 0 and len(replay.stdout.splitlines()) == 10  # the checkpoint covers the first 20


@pytest.mark.parametrize("module", [False, True])
def test_sigterm_during_start_up_exits_0_after_checkpointing(tmp_path, small_config, module):
    """A supervisor's SIGTERM while the detector's imports still load (~0.6 s) used to kill the
    filter (status -15); started as `python -m streamlstm.cli`, until its runner took the
    signals over (SIGINT: click's "Aborted!", exit 1)."""
    state = tmp_path / "state"
    res = sigterm_during_start_up(["--config", small_config, "run", "--state-dir", str(state)], events(50).encode(),
                                  module=module)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout == b"" and "Traceback" not in res.stderr.decode()  # no input consumed
    assert DirectoryStore(state).load_latest()[1] == {"lines_consumed": 0}


def test_sigterm_during_start_up_of_score_is_one_line_and_exit_143(tmp_path, small_config):
    """It used to be re-delivered when the command started, killing `score` (status -15)."""
    series = tmp_path / "series.jsonl"
    series.write_text(events(5))
    res = sigterm_during_start_up(["--config", small_config, "score", str(series)])
    assert res.returncode == 143 and res.stdout == b""
    assert res.stderr.decode() == f"{series} was not finished: SIGTERM stopped it before the scoring began\n"


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("args", [["run"], ["score", "IN"]])
def test_a_closed_stderr_is_a_fatal_error_not_error_records_discarded(tmp_path, args):
    """Started with stderr closed (`2>&-`), `run` scored the good lines, dropped the
    rejected lines' error records and exited 0 (`score` too). Now it stops before
    scoring, exit 1 (the line saying why has nowhere to go)."""
    path = tmp_path / "in.jsonl"
    path.write_text(events(5) + "not json\n")
    with path.open("rb") as stdin:
        res = subprocess.run([sys.executable, "-m", "streamlstm.cli", *[str(path) if a == "IN" else a for a in args]],
                             stdin=stdin, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2), timeout=60)
    assert res.returncode == 1 and res.stdout == b""


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_score_has_read_its_first_lines_is_one_line_and_128_plus_it(tmp_path, small_config,
                                                                                    signum):
    """Until its runner took the signals over (reading the first lines waits on a pipe such as
    this FIFO), SIGINT printed click's "Aborted!" and exited 1, and SIGTERM killed `score`
    without a line."""
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    proc = _spawn(["--config", small_config, "score", str(fifo)])
    with open(fifo, "wb"):  # opened once `score` opens it to read, before it can read a line
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum and out == b""
    assert err.decode() == f"{fifo} was not finished: {signum.name} stopped it before the scoring began\n"


def test_sigterm_during_start_up_of_other_commands_keeps_its_default_action(small_config):
    """Only `run` stops cleanly: for the others the recorded signal is re-delivered (rather than
    ignored, which would make e.g. `evaluate` impossible to stop)."""
    assert sigterm_during_start_up(["check-config", small_config]).returncode == -signal.SIGTERM


@pytest.mark.slow  # the CLI in subprocesses
def test_kill_9_loses_only_what_followed_the_last_checkpoint(tmp_path, small_config):
    data = events(300).encode()
    whole = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run"], input=data,
                           capture_output=True, timeout=120).stdout.decode().splitlines()
    state = tmp_path / "state"
    proc = _spawn(["--config", small_config, "run", "--state-dir", str(state)])
    proc.stdin.write(data[: len(data) * 2 // 3])
    proc.stdin.flush()
    deadline = time.time() + 60
    while not list(state.glob("ckpt-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    replay = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run", "--state-dir",
                             str(state), "--skip-consumed"], input=data, capture_output=True, timeout=120)
    tail = replay.stdout.decode().splitlines()
    assert tail and tail == whole[len(whole) - len(tail):]  # the replay reproduces the rest bit for bit


def test_model_settings_changed_after_a_restore_are_named_in_a_warning(tmp_path, small_config):
    state = str(tmp_path / "state")
    assert invoke(["--config", small_config, "run", "--state-dir", state], events(30)).exit_code == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(Path(small_config).read_text().replace("hidden_size: 8", "hidden_size: 16\n  threshold: 0.9"))
    # The replay goes on past what the checkpoint covers: new input must come after it in time.
    res = invoke(["--config", str(changed), "run", "--state-dir", state, "--skip-consumed"], events(35))
    assert res.exit_code == 0
    warning = next(line for line in res.stderr.splitlines() if " WARNING " in line)
    assert "model.hidden_size 8 (configured 16)" in warning and "model.threshold 0.5 (configured 0.9)" in warning
    assert "warmup" not in warning  # unchanged settings are not named
    same = invoke(["--config", small_config, "run", "--state-dir", state, "--skip-consumed"], events(40))
    assert same.exit_code == 0 and " WARNING " not in same.stderr


def test_a_state_dir_says_at_info_what_it_starts_from_and_what_it_leaves(tmp_path, small_config):
    """An empty state directory (a typo, with --skip-consumed) and the last checkpoint are
    named at INFO: nothing was (a skip of nothing passed in silence)."""
    state = str(tmp_path / "state")
    res = invoke(["--config", small_config, "run", "--state-dir", state, "--skip-consumed"], events(5))
    assert f"no checkpoint in {state}: starting with no state (--skip-consumed has nothing to skip)" in res.stderr
    assert f"checkpoint {state}/ckpt-000000000001.slc at line 10" in res.stderr
    again = invoke(["--config", small_config, "run", "--state-dir", state, "--skip-consumed"], events(6))
    assert "no checkpoint" not in again.stderr and "restored checkpoint" in again.stderr


def test_score_with_a_state_dir_goes_on_from_the_last_files_state(tmp_path):
    """`score FILE --state-dir DIR` crashed with a traceback (TypeError from the file's
    reader where it asked whether input was ready, with events not yet checkpointed) on
    every CSV or JSON lines file. Scoring two files one after the other through a state
    directory gives the second the results that scoring both as one input gives its rows."""
    small_config = tmp_path / "small.yaml"  # the default checkpoint cadence: the input's end checkpoints
    small_config.write_text("model:\n  hidden_size: 8\n  k2: 4\n  warmup: 20\n")
    rows = [f"{1_700_000_000 + 60 * t},{math.sin(t / 7) + 0.01 * (t % 5):.4f}\n" for t in range(6000)]
    first, second, both = tmp_path / "first.csv", tmp_path / "second.csv", tmp_path / "both.csv"
    first.write_text("timestamp,value\n" + "".join(rows[:3000]))
    second.write_text("timestamp,value\n" + "".join(rows[3000:]))
    both.write_text("timestamp,value\n" + "".join(rows))
    state = str(tmp_path / "state")
    runs = [invoke(["--config", str(small_config), "score", str(f), "--state-dir", state, "--stream", "s", "--output",
                    str(tmp_path / f"{f.stem}.out.csv")]) for f in (first, second)]
    assert [r.exit_code for r in runs] == [0, 0] and "restored checkpoint: 1 streams" in runs[1].stderr
    assert invoke(["--config", str(small_config), "score", str(both), "--stream", "s", "--output",
                   str(tmp_path / "both.out.csv")]).exit_code == 0
    read = lambda name: list(csv.DictReader((tmp_path / name).open()))  # noqa: E731
    tail, alone = read("both.out.csv")[3000:], read("second.out.csv")
    assert [r["ts"] for r in tail] == [r["ts"] for r in alone]
    columns = ("prediction", "score", "is_anomaly", "regime")
    assert [[r[c] for c in columns] for r in tail] == [[r[c] for c in columns] for r in alone]


def test_score_output_mistakes(tmp_path):
    """`-o -` wrote a file named '-' (the Unix convention: stdout), `-o r.png --plot r.png`
    replaced the results with the image, `--stream ''` was taken for no --stream, and
    `-o r.tsv` got JSON lines without a word."""
    src = tmp_path / "a.csv"
    src.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{t % 7}\n" for t in range(20)))
    res = CliRunner().invoke(main, ["score", str(src), "-o", "-"], catch_exceptions=False)
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 20 and not Path("-").exists()
    same = invoke(["score", str(src), "-o", str(tmp_path / "r.png"), "--plot", str(tmp_path / "r.png")])
    assert same.exit_code == 2 and "--output and --plot name the same file" in same.stderr
    empty = invoke(["score", str(src), "--stream", ""])
    assert empty.exit_code == 2 and "--stream: give a stream id, not an empty string" in empty.stderr
    for name, warned in (("r.tsv", True), ("r.csv.gz", True), ("r.jsonl", False), ("r", False)):
        res = invoke(["score", str(src), "-o", str(tmp_path / name)])
        assert res.exit_code == 0
        assert (f"{tmp_path / name}: results written as JSON lines (a name ending in .csv writes CSV)"
                in res.stderr) == warned


def test_score_writes_through_a_symbolic_link(tmp_path):
    """`--output` and `--plot` naming a symbolic link replaced the link with a file of the
    results and left its file as it was (as root, `-o /dev/stdout > file` replaced
    /dev/stdout); now the link's file is replaced and the link stays."""
    src, real = tmp_path / "a.csv", tmp_path / "real"
    src.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{t % 7}\n" for t in range(40)))
    real.mkdir()
    (real / "r.csv").write_text("older results\n")
    for name in ("r.csv", "r.png"):
        (tmp_path / name).symlink_to(real / name)
    res = invoke(["score", str(src), "--output", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "r.png")])
    assert res.exit_code == 0
    assert (tmp_path / "r.csv").is_symlink() and (tmp_path / "r.png").is_symlink()
    assert len((real / "r.csv").read_text().splitlines()) == 41
    assert (real / "r.png").read_bytes().startswith(b"\x89PNG")


def test_the_file_a_whole_write_replaces(tmp_path):
    """io/files.replaced_file: a path, or its links' file; None (written in place) for what
    is no regular file, for links through /proc, and for links that loop."""
    from streamlstm.io.files import replaced_file

    (tmp_path / "real.csv").write_text("x")
    (tmp_path / "one").symlink_to("real.csv")
    (tmp_path / "two").symlink_to(tmp_path / "one")
    (tmp_path / "dangling").symlink_to("sub/new.csv")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo").symlink_to("fifo")
    (tmp_path / "to_stdout").symlink_to("/dev/stdout")
    (tmp_path / "loop_a").symlink_to("loop_b")
    (tmp_path / "loop_b").symlink_to("loop_a")
    base = Path(os.path.realpath(tmp_path))  # what the answers name
    assert replaced_file(tmp_path / "new.csv") == base / "new.csv"
    assert replaced_file(tmp_path / "two") == replaced_file(tmp_path / "real.csv") == base / "real.csv"
    assert replaced_file(tmp_path / "dangling") == base / "sub" / "new.csv"
    assert [replaced_file(tmp_path / n) for n in ("fifo", "to_fifo", "to_stdout", "loop_a")] == [None] * 4
    assert replaced_file("/dev/fd/1") is None and replaced_file("/proc/self/fd/1") is None
    # A directory's link and `..` as the system takes them, in order: d/.. is real/, not tmp_path.
    (tmp_path / "real" / "deep").mkdir(parents=True)
    (tmp_path / "d").symlink_to("real/deep")
    (tmp_path / "real" / "deep" / "up.csv").symlink_to("../out.csv")
    assert replaced_file(tmp_path / "d" / "up.csv") == base / "real" / "out.csv"
    assert replaced_file(tmp_path / "d" / ".." / "x.csv") == base / "real" / "x.csv"
    # 40 links are what the system follows; one more is its ELOOP, not an append to the file.
    for k in range(41):
        (tmp_path / f"chain{k + 1}").symlink_to(f"chain{k}" if k else "real.csv")
    assert replaced_file(tmp_path / "chain40") == base / "real.csv" and replaced_file(tmp_path / "chain41") is None
    with pytest.raises(NotADirectoryError):
        replaced_file(f"{tmp_path}/real.csv/")


def test_a_replaced_results_file_keeps_its_permissions(tmp_path):
    src, out = tmp_path / "a.csv", tmp_path / "private.csv"
    src.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{t % 7}\n" for t in range(20)))
    out.write_text("older results\n")
    out.chmod(0o600)
    assert invoke(["score", str(src), "--output", str(out)]).exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o600 and len(out.read_text().splitlines()) == 21


def test_a_plot_of_many_streams_says_which_it_shows(tmp_path):
    src, out, png = tmp_path / "hosts.csv", tmp_path / "r.csv", tmp_path / "r.png"
    src.write_text("ts,host,value\n" + "".join(f"{1_700_000_000 + 60 * t},h{h},{(t * h) % 7}\n"
                                               for t in range(5) for h in range(12)))
    res = invoke(["score", str(src), "--stream-column", "host", "--output", str(out), "--plot", str(png)])
    assert res.exit_code == 0 and png.exists()
    assert f"{png} shows 10 of the 12 streams, those with the most alerts: draw another with streamlstm plot " \
           f"{out} --stream ID" in res.stderr


def test_a_resumed_replay_names_the_rejections_example_from_before_its_checkpoint(tmp_path, small_config):
    """A --skip-consumed replay counts the whole input's rejections in its summary and its
    warning of an input mostly rejected, but the warning's example line (the diagnosis'
    samples) was not in the checkpoint: "all as not_numeric" and no line named."""
    state = str(tmp_path / "state")
    bad = "".join(json.dumps({"stream": "a", "value": f"x{n}"}) + "\n" for n in range(20))
    assert invoke(["--config", small_config, "run", "--state-dir", state], events(5, ("a",)) + bad).exit_code == 0
    more = "".join(json.dumps({"stream": "a", "ts": 1_700_000_010 + t, "value": 0.5}) + "\n" for t in range(3))
    res = invoke(["--config", small_config, "run", "--state-dir", state, "--skip-consumed"],
                 events(5, ("a",)) + bad + more)
    assert res.exit_code == 0
    assert ("20 of 28 input lines were rejected: all as not_numeric, e.g. line 6: 'value' must be a number, got "
            "string 'x0'") in res.stderr


def test_a_run_of_which_no_line_is_accepted_leaves_the_checkpoint_as_it_was(tmp_path, small_config):
    """A replay without --skip-consumed (every line ts_backwards) exits 2 and writes no
    checkpoint: it wrote one covering its 40 lines, so the corrected replay skipped 40 of
    the 60 the state had learnt, and learnt 20 twice."""
    state = tmp_path / "state"
    assert invoke(["--config", small_config, "run", "--state-dir", str(state)], events(30)).exit_code == 0
    before = sorted(p.name for p in state.iterdir())
    res = invoke(["--config", small_config, "run", "--state-dir", str(state)], events(20))
    assert res.exit_code == 2 and "no input line was accepted" in res.stderr
    assert sorted(p.name for p in state.iterdir()) == before
    again = invoke(["--config", small_config, "run", "--state-dir", str(state), "--skip-consumed"], events(35))
    assert again.exit_code == 0 and len(again.stdout.splitlines()) == 10


@pytest.mark.slow  # the CLI in subprocesses
def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, small_config):
    data = events(200).encode()
    state = tmp_path / "state"
    run = lambda inp, *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "streamlstm.cli", "--config", small_config, "run", "--state-dir", str(state), *extra],
        input=inp, capture_output=True, timeout=120)
    assert run(data).returncode == 0
    ckpts = sorted(state.glob("ckpt-*"))
    assert len(ckpts) >= 2  # a periodic one and the final one
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[:100])  # truncate the newest
    res = run(b"")
    assert res.returncode == 0
    assert "ckpt-" in res.stderr.decode() and "restored checkpoint" in res.stderr.decode()


def _cli(*args, stdin=b""):
    return subprocess.run([sys.executable, "-m", "streamlstm.cli", *args], input=stdin, capture_output=True,
                          timeout=120)


def _one_error_line(stderr: bytes) -> str:
    """The fatal error's line, checking it is the only ERROR line and no traceback was printed."""
    text = stderr.decode()
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1, text
    return errors[0]


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("where", ["under a file", "sysfs"])
def test_unwritable_state_dir_fails_at_start_in_one_line(tmp_path, small_config, where):
    """Even root cannot create files in sysfs (the tests run as root, so chmod would not do)."""
    if where == "sysfs":
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no /sys")
        state = "/sys/kernel"
    else:
        (tmp_path / "file").write_text("a regular file")
        state = str(tmp_path / "file" / "state")
    res = _cli("--config", small_config, "run", "--state-dir", state, stdin=events(100).encode())
    assert res.returncode == 1
    assert res.stdout == b""  # it failed before consuming any input, not at its first checkpoint
    line = _one_error_line(res.stderr)
    assert f"cannot write checkpoints to {state}: " in line and "make the directory writable" in line
    debug = _cli("--config", small_config, "--log-level", "DEBUG", "run", "--state-dir", state)
    assert debug.returncode == 1 and "Traceback" in debug.stderr.decode()


@pytest.mark.slow  # the CLI in subprocesses
def test_all_checkpoints_corrupt_is_one_line(tmp_path, small_config):
    state = tmp_path / "state"
    assert _cli("--config", small_config, "run", "--state-dir", str(state), stdin=events(100).encode()).returncode == 0
    for ckpt in state.glob("ckpt-*"):
        ckpt.write_bytes(b"junk")
    res = _cli("--config", small_config, "run", "--state-dir", str(state), stdin=events(10).encode())
    assert res.returncode == 1 and res.stdout == b""
    assert "is usable (see warnings); move them away to start fresh" in _one_error_line(res.stderr)


@pytest.mark.parametrize("command", ["run", "score"])
def test_disk_full_exits_1_saying_how_much_room_is_needed(tmp_path, small_config, monkeypatch, command):
    series = tmp_path / "series.jsonl"
    series.write_text(events(100))
    args = ["run"] if command == "run" else ["score", str(series), "-o", str(tmp_path / "out.jsonl")]
    full_disk_for_checkpoints(monkeypatch)
    res = CliRunner().invoke(main, ["--config", small_config, *args, "--state-dir", str(tmp_path / "state")],
                             input=events(100))
    assert res.exit_code == 1
    assert "No space left on device (errno 28); free space: keep + 1 = 4 checkpoints of" in res.stderr
    assert isinstance(res.exception, SystemExit)  # the error was handled, not raised out of the command


def test_score_csv_writes_results_and_plot(tmp_path, small_config):
    csv_in = tmp_path / "series.csv"
    csv_in.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{math.sin(t / 4)}\n" for t in range(200)))
    out, png = tmp_path / "r.csv", tmp_path / "r.png"
    res = invoke(["--config", small_config, "score", str(csv_in), "--output", str(out), "--plot", str(png)])
    assert res.exit_code == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "seq,stream,ts,value,prediction,error,score,is_anomaly,alert_score,regime,abnormal"
    assert len(rows) == 201
    assert rows[1].startswith("2,series,")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    res = invoke(["plot", str(out), "--output", str(tmp_path / "again.png"), "--stream", "series"])
    assert res.exit_code == 0 and (tmp_path / "again.png").exists()
    assert CliRunner().invoke(main, ["plot", str(out), "-o", str(tmp_path / "x.png"), "--stream", "nope"]).exit_code == 2


def test_score_csv_of_only_anomalies_without_one_has_its_header(tmp_path):
    """With output.only_anomalies and no alert, `score -o FILE.csv` wrote a file of 0 bytes,
    which a CSV reader takes for no table at all (pandas: EmptyDataError); now the header."""
    config = tmp_path / "only.yaml"
    config.write_text("output:\n  only_anomalies: true\n")
    csv_in = tmp_path / "calm.csv"
    csv_in.write_text("timestamp,a,b\n" + "".join(f"{1_700_000_000 + 60 * t},{t % 3},{t % 2}\n" for t in range(30)))
    out = tmp_path / "alerts.csv"
    res = invoke(["--config", str(config), "score", str(csv_in), "--output", str(out)])
    assert res.exit_code == 0 and "processed 30 events" in res.stderr
    assert out.read_text() == ("seq,stream,ts,value_a,value_b,prediction_a,prediction_b,error,score,is_anomaly,"
                               "alert_score,regime,abnormal,contributors\n")


UNIVARIATE_CSV = "seq,stream,ts,value,prediction,error,score,is_anomaly,alert_score,regime,abnormal\n"


@pytest.mark.parametrize(("name", "content", "header"), [
    ("header.csv", "timestamp,a,b\n", "seq,stream,ts,value_a,value_b,prediction_a,prediction_b,error,score,"
                                      "is_anomaly,alert_score,regime,abnormal,contributors\n"),
    ("header.csv", "timestamp,value\n", UNIVARIATE_CSV),
    ("blank.csv", "\n\n", UNIVARIATE_CSV),
    ("none.jsonl", "", UNIVARIATE_CSV),
])
def test_score_csv_of_an_input_without_events_is_an_empty_table(tmp_path, name, content, header):
    """An input of no event (a CSV's header alone, blank lines, nothing) gave a results CSV
    of 0 bytes, no table to a reader; now the header of the columns the input named (one
    value where it named none). The plot asked for, and not drawn, went unsaid."""
    src, out, png = tmp_path / name, tmp_path / "out.csv", tmp_path / "out.png"
    src.write_text(content)
    res = invoke(["score", str(src), "--output", str(out), "--plot", str(png)])
    assert res.exit_code == 0 and "processed 0 events, rejected 0" in res.stderr
    assert out.read_text() == header
    assert f"WARNING streamlstm: no results to plot: {png} not written" in res.stderr and not png.exists()


def test_a_short_files_counters_are_warned_about_at_its_end(tmp_path):
    """A file shorter than COUNTER_ROWS rows never got the counters' warning; now at the
    input's end, over the rows it had (and a file of one column still says nothing)."""
    rows = "".join(f"{n},{1_700_000_000 + 60 * n},{20 + math.sin(n):.3f}\n" for n in range(1, 301))
    short, alone = tmp_path / "short.csv", tmp_path / "alone.csv"
    short.write_text("id,ts,temp\n" + rows)
    alone.write_text("ts,id\n" + "".join(f"{1_700_000_000 + 60 * n},{n}\n" for n in range(300)))
    res = invoke(["score", str(short), "--output", str(tmp_path / "out.csv")])
    assert res.exit_code == 0
    assert ("'id' only count up (integers that never went down in the 300 rows read): ids or counters? Scored as "
            "measurements, each step can alert; leave them out with --exclude-columns id") in res.stderr
    res = invoke(["score", str(alone), "--output", str(tmp_path / "out.csv")])
    assert res.exit_code == 0 and "count up" not in res.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["score", "plot"])
def test_a_signal_while_the_plot_is_written_is_one_line_and_leaves_no_half_image(tmp_path, small_config,
                                                                                  monkeypatch, signum, command):
    """It printed click's "Aborted!" and exited 1 (SIGTERM: killed), leaving the image half
    written. Now one line, exit 128 + the signal, the results of `score` whole, and the
    image as it was before (written to a .part file, renamed when whole). A '%' in the
    name is no format to the log line."""
    import matplotlib.figure

    series, out, png = tmp_path / "series.jsonl", tmp_path / "r.csv", tmp_path / "r%s.png"
    series.write_text(events(50, streams=("a",)))
    assert invoke(["--config", small_config, "score", str(series), "--output", str(out)]).exit_code == 0
    png.write_bytes(b"an older image")

    def stopped_halfway(fig, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        os.kill(os.getpid(), signum)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", stopped_halfway)
    args = ["score", str(series), "--output", str(out), "--plot", str(png)] if command == "score" else \
        ["plot", str(out), "--output", str(png)]
    res = invoke(["--config", small_config, *args])
    assert res.exit_code == 128 + signum
    errors = [line for line in res.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(f"{signum.name} stopped the plot: {png} is not written")
    assert "Traceback" not in res.stderr and "Aborted" not in res.stderr
    assert png.read_bytes() == b"an older image" and not list(tmp_path.glob("*.part"))
    assert len(out.read_text().splitlines()) == 51


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_between_the_scoring_and_the_plot_stops_the_plot(tmp_path, small_config, monkeypatch, signum):
    """A signal in the instant after `score`'s runner finished and before its plot began got
    the default action (SIGINT: click's "Aborted!", exit 1; SIGTERM: killed). Between its
    steps `score` now records signals, as the console script does from its first instant,
    and the plot's step stops at once: one line, exit 128 + the signal, the results whole,
    no image. (The handlers the console script would find are a harmless recorder here.)"""
    from streamlstm.io.filter_loop import FilterRunner

    series, out, png = tmp_path / "series.jsonl", tmp_path / "r.csv", tmp_path / "r.png"
    series.write_text(events(50, streams=("a",)))
    run = FilterRunner.run

    def run_then_signal(self, read):
        status = run(self, read)
        os.kill(os.getpid(), signum)
        return status

    monkeypatch.setattr(FilterRunner, "run", run_then_signal)
    outside = []  # signals that reached the handlers from before the command: none should
    saved = {s: signal.signal(s, lambda signum, frame: outside.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signals.catch_early()  # as the console script, before it imports the CLI
        res = invoke(["--config", small_config, "score", str(series), "--output", str(out), "--plot", str(png)])
        signals.release()
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert outside == [] and res.exit_code == 128 + signum, res.stderr
    errors = [line for line in res.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(f"{signum.name} stopped the plot: {png} is not written")
    assert "Aborted" not in res.stderr and not png.exists() and len(out.read_text().splitlines()) == 51


def test_bundled_example_flags_each_anomaly_and_nothing_else(tmp_path):
    """The README's quickstart claim: the four injected anomalies of the example are
    flagged, each within its labelled rows, and no other row is."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    out = tmp_path / "example.csv"
    res = invoke(["score", str(examples / "server_temperature.csv"), "--output", str(out)])
    assert res.exit_code == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    flagged = [i for i, row in enumerate(rows) if row["is_anomaly"] == "true"]
    labels = [line.split(",") for line in (examples / "server_temperature.labels.csv").read_text().splitlines()[1:]]
    spans = {kind: (int(first), int(last)) for kind, first, last in labels}
    for kind, (first, last) in spans.items():
        assert any(first <= i <= last for i in flagged), f"{kind} not flagged"
    assert all(any(first <= i <= last for first, last in spans.values()) for i in flagged), flagged


# --------------------------------------------------------------------- input ergonomics

SKAB_LIKE = ["datetime", "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
             "Thermocouple", "Voltage", "Volume Flow RateRMS", "anomaly", "changepoint"]


def skab_like(path, n=60, sep=";"):
    """A synthetic file in the layout of SKAB's: ';'-separated, a datetime column, 8 sensors,
    then the anomaly and changepoint labels."""
    rows = [sep.join(SKAB_LIKE)]
    for t in range(n):
        sensors = [f"{math.sin(t / 5 + k) + k:.5f}" for k in range(8)]
        rows.append(sep.join([f"2020-03-09 10:{t // 60:02d}:{t % 60:02d}", *sensors, f"{float(t > 40)}", "0.0"]))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_score_skab_like_file_as_is(tmp_path, small_config):
    out = tmp_path / "r.csv"
    res = invoke(["--config", small_config, "score", skab_like(tmp_path / "0.csv"),
                  "--exclude-columns", "anomaly,changepoint", "--output", str(out)])
    assert res.exit_code == 0, res.stderr
    header, *rows = [line.split(",") for line in out.read_text().splitlines()]
    assert [h[len("value_"):] for h in header if h.startswith("value_")] == sorted(SKAB_LIKE[1:9])
    assert len(rows) == 60 and {r[1] for r in rows} == {"0"}  # one multivariate stream
    assert rows[0][2] == "2020-03-09 10:00:00"  # datetime taken as the time column
    assert "rejected 0" in res.stderr


def test_score_csv_flags_select_delimiter_columns_and_time_column(tmp_path, small_config):
    path = tmp_path / "t.csv"
    path.write_text("when|a|b|label\n" + "".join(f"{1_700_000_000 + t}|{t % 7}|{t % 3}|x\n" for t in range(30)))
    out = tmp_path / "r.jsonl"
    res = invoke(["--config", small_config, "score", str(path), "--delimiter", "|", "--columns", "a,b",
                  "--time-column", "when", "--output", str(out)])
    assert res.exit_code == 0, res.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == 30 and set(results[0]["values"]) == {"a", "b"} and results[0]["ts"] == "1700000000"


def test_score_reads_a_file_of_bare_numbers_as_csv_without_a_header(tmp_path, small_config):
    """A benchmark's .txt of one value per line, or of rows of values: every line is an event."""
    one, rows = tmp_path / "series.txt", tmp_path / "rows.txt"
    one.write_text("".join(f"{math.sin(t / 4):.5f}\n" for t in range(50)))
    rows.write_text("".join(f"{math.sin(t / 4):.5f} {t % 3} {t % 5}\n".replace(" ", "\t") for t in range(50)))
    out = tmp_path / "r.csv"
    res = invoke(["--config", small_config, "score", str(one), "--output", str(out)])
    assert res.exit_code == 0, res.stderr
    header, *lines = out.read_text().splitlines()
    assert header.startswith("seq,stream,ts,value,prediction,") and len(lines) == 50 and lines[0].startswith("1,")
    res = invoke(["--config", small_config, "score", str(rows), "--output", str(out), "--columns", "col_0,col_2"])
    assert res.exit_code == 0, res.stderr
    header, *lines = out.read_text().splitlines()
    assert header.startswith("seq,stream,ts,value_col_0,value_col_2,prediction_col_0,") and len(lines) == 50
    res = invoke(["--config", small_config, "score", str(one), "--header", "--output", str(out)])
    assert res.exit_code == 0 and len(out.read_text().splitlines()) == 50  # the first line named the column


def test_score_reads_whitespace_separated_values_and_a_series_laid_out_in_one_row(tmp_path, small_config):
    """numpy.savetxt's columns (space-separated, %.18e), aligned columns of several spaces
    and tabs, and a file whose only line is a row of values (some of UCR's anomaly archive):
    the first two row by row, the last one event per value, with a line that says so."""
    x = np.column_stack([np.sin(np.arange(40) / 4), np.arange(40) % 3])
    saved, aligned, row = tmp_path / "saved.txt", tmp_path / "aligned.txt", tmp_path / "row.txt"
    np.savetxt(saved, x)
    aligned.write_text("".join(f"  {a:9.4f} \t  {b:3.0f}\n" for a, b in x))
    row.write_text("  ".join(f"{a:.6e}" for a in x[:, 0]) + " \n\n")
    out = tmp_path / "r.csv"
    for path in (saved, aligned):
        res = invoke(["--config", small_config, "score", str(path), "--output", str(out)])
        assert res.exit_code == 0 and "rejected 0" in res.stderr, res.stderr
        header, *lines = [line.split(",") for line in out.read_text().splitlines()]
        assert header[3:5] == ["value_col_0", "value_col_1"] and len(lines) == 40
        np.testing.assert_allclose([[float(r[3]), float(r[4])] for r in lines], x, atol=1e-4)
    res = invoke(["--config", small_config, "score", str(row), "--output", str(out)])
    assert res.exit_code == 0 and "row.txt holds one row of 40 values: read as a series of 40 events" in res.stderr
    header, *lines = [line.split(",") for line in out.read_text().splitlines()]
    assert header[3] == "value" and [float(r[3]) for r in lines] == pytest.approx(x[:, 0], abs=1e-6)
    res = invoke(["--config", small_config, "score", str(row), "--header", "--output", str(out)])
    assert res.exit_code == 0 and "processed 0 events" in res.stderr  # the row names 40 columns


def test_score_reads_a_numpy_array_file(tmp_path, small_config):
    """A .npy array (telemanom's channels come so): (T, D) a row of D features per event,
    named col_0 ..., NaN missing; (T,) one value per event; another shape, an array of
    Python objects, an empty file, a .npz archive under the name and a header claiming
    more than the file holds (it was allocated: 73 TiB) are one error line, exit 2 (the
    last three were a traceback or click's "Aborted!")."""
    x = np.column_stack([np.sin(np.arange(60) / 4), np.arange(60) % 2, np.zeros(60)])
    x[7, 0] = np.nan
    np.save(tmp_path / "chan.npy", x)
    np.save(tmp_path / "one.npy", x[:, 0])
    out = tmp_path / "r.csv"
    res = invoke(["--config", small_config, "score", str(tmp_path / "chan.npy"), "--output", str(out)])
    assert res.exit_code == 0 and "processed 60 events, rejected 0" in res.stderr, res.stderr
    header, *lines = [line.split(",") for line in out.read_text().splitlines()]
    assert header[3:6] == ["value_col_0", "value_col_1", "value_col_2"] and len(lines) == 60
    assert lines[7][3] == "" and float(lines[8][3]) == x[8, 0] and {r[1] for r in lines} == {"chan"}
    res = invoke(["--config", small_config, "score", str(tmp_path / "one.npy"), "--output", str(out)])
    assert res.exit_code == 0 and "processed 59 events, rejected 1, non_finite=1" in res.stderr, res.stderr
    assert out.read_text().splitlines()[0].startswith("seq,stream,ts,value,prediction,")
    np.save(tmp_path / "cube.npy", np.zeros((4, 2, 2)))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}]), allow_pickle=True)
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "archive.npz", a=np.zeros(3))
    (tmp_path / "archive.npy").write_bytes((tmp_path / "archive.npz").read_bytes())
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (10**13,)})
        f.write(bytes(32))
    for name, message in (("cube", "cube.npy: an array of shape (4, 2, 2) and type float64 — score reads a 1-D"),
                          ("objects", "objects.npy: not a NumPy array file of numbers"),
                          ("empty", "empty.npy: not a NumPy array file of numbers"),
                          ("archive", "archive.npy: a NumPy .npz archive of arrays"),
                          ("huge", "huge.npy: not a NumPy array file of numbers (or shorter than its header says)")):
        res = invoke(["--config", small_config, "score", str(tmp_path / f"{name}.npy")])
        assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_a_numpy_array_file_is_a_baseline(tmp_path, small_config):
    """`score test.npy --baseline train.npy` (telemanom's channels come as a train and a
    test array) exited 2, the baseline read as a CSV whose header is not UTF-8; it is read
    as `score` reads an array, learnt as its rows written as a CSV would be, and an array
    of another shape is one error line."""
    t = np.arange(400)
    x = np.column_stack([np.sin(t / 6), np.cos(t / 9)]) + 0.01 * (t % 3)[:, None]
    np.save(tmp_path / "train.npy", x[:300])
    np.save(tmp_path / "test.npy", x[300:])
    (tmp_path / "train.csv").write_text("".join(f"{a!r},{b!r}\n" for a, b in x[:300].tolist()))
    outs = []
    for baseline in ("train.npy", "train.csv"):
        out = tmp_path / f"after_{baseline}.csv"
        res = invoke(["--config", small_config, "score", str(tmp_path / "test.npy"), "--baseline",
                      str(tmp_path / baseline), "--output", str(out)])
        assert res.exit_code == 0 and f"learnt 300 baseline events from {tmp_path / baseline}" in res.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 101
    np.save(tmp_path / "cube.npy", np.zeros((4, 2, 2)))
    res = invoke(["--config", small_config, "score", str(tmp_path / "test.npy"), "--baseline",
                  str(tmp_path / "cube.npy")])
    assert res.exit_code == 2 and "cube.npy: an array of shape (4, 2, 2)" in res.stderr
    assert "Traceback" not in res.stderr


def test_score_reads_json_lines_whatever_the_files_suffix(tmp_path, small_config):
    path = tmp_path / "events.txt"
    path.write_text(events(20))
    res = invoke(["--config", small_config, "score", str(path)])
    assert res.exit_code == 0 and [json.loads(line)["stream"] for line in res.stdout.splitlines()] == ["a", "b"] * 20


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_score_of_a_pipe_reads_every_line_of_it(small_config, kind):
    # /dev/stdin is a pipe here: what is read to tell its format cannot be read again.
    if kind == "jsonl":
        data, seqs = events(300), range(1, 601)
    else:  # line 1 is the header
        data = "timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{math.sin(t / 5):.4f}\n" for t in range(600))
        seqs = range(2, 602)
    res = _cli("--config", small_config, "score", "/dev/stdin", stdin=data.encode())
    assert res.returncode == 0, res.stderr.decode()
    assert [json.loads(line)["seq"] for line in res.stdout.splitlines()] == list(seqs)
    assert b'"error"' not in res.stderr


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("closed, args", [(1, ["run"]), (1, ["score", "IN"]), (0, ["run"])])
def test_a_closed_stdin_or_stdout_is_a_fatal_error_not_results_discarded(tmp_path, closed, args):
    path = tmp_path / "in.jsonl"
    path.write_text(events(5))
    with path.open("rb") as stdin:
        res = subprocess.run([sys.executable, "-m", "streamlstm.cli", *[str(path) if a == "IN" else a for a in args]],
                             stdin=stdin, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(closed), timeout=60)
    assert res.returncode == 1
    assert f"{['stdin', 'stdout'][closed]} is closed" in _one_error_line(res.stderr)


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_an_interrupted_score_writes_what_it_read_and_exits_128_plus_the_signal(small_config, signum):
    proc = _spawn(["--config", small_config, "score", "/dev/stdin"])
    proc.stdin.write(events(15).encode())
    proc.stdin.flush()
    results = [proc.stdout.readline() for _ in range(30)]  # answered while the pipe stays open
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum and out == b""
    assert [json.loads(line)["seq"] for line in results] == list(range(1, 31))
    assert f"/dev/stdin was not finished: {signum.name} stopped the scoring" in _one_error_line(err)


def test_plot_errors_are_one_line_and_the_plot_suffix_is_checked_before_scoring(tmp_path, small_config):
    inp = tmp_path / "in.csv"
    inp.write_text("timestamp,value\n2024-05-01T00:00:00,0.1\n2024-05-01T00:01:00,0.2\n")
    res = invoke(["score", str(inp), "-o", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "r.csv")])
    assert res.exit_code == 2 and "'--plot'" in res.stderr and "not an image file name" in res.stderr
    assert not (tmp_path / "r.csv").exists()  # refused before scoring
    res = invoke(["plot", str(inp), "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "in.csv line 2: not a results line" in res.stderr and "Traceback" not in res.stderr
    results = tmp_path / "r.jsonl"
    assert invoke(["--config", small_config, "score", str(inp), "-o", str(results)]).exit_code == 0
    res = invoke(["plot", str(results), "-o", str(tmp_path / "no" / "such" / "dir" / "x.png")])
    assert res.exit_code == 1 and "x.png" in res.stderr and "Traceback" not in res.stderr
    res = invoke(["plot", str(results), "-o", str(tmp_path / "x.png"), "--stream", "nope"])
    assert res.exit_code == 2 and "no results for stream 'nope'" in res.stderr


def test_skip_consumed_without_a_state_dir_is_a_usage_error():
    res = invoke(["run", "--skip-consumed"], events(2))
    assert res.exit_code == 2 and "--skip-consumed: needs a state directory" in res.stderr


def test_a_column_name_with_a_comma_in_the_hint_and_the_flags(tmp_path):
    """A name holding a comma is quoted in the hint's --exclude-columns, and the command the
    hint gives works (it split the name in two: "no column 'Status', 'text'")."""
    inp = tmp_path / "c.csv"
    inp.write_text('timestamp,"Pressure, bar","Status, text"\n' + "".join(
        f"2024-05-01T00:00:{i:02d},{1 + i % 3},{'OK' if i % 2 else 'FAIL'}\n" for i in range(30)))
    res = invoke(["score", str(inp)])
    assert res.exit_code == 2 and res.stderr.rstrip().endswith("""else --exclude-columns '"Status, text"'""")
    res = invoke(["score", str(inp), "--exclude-columns", '"Status, text"', "-o", str(tmp_path / "o.csv")])
    assert res.exit_code == 0 and "value_Pressure, bar" in (tmp_path / "o.csv").read_text().splitlines()[0]


def test_score_stream_column_names_each_rows_series(tmp_path):
    """--stream-column: a long format's series (time, host, cpu) each their own stream."""
    inp, out = tmp_path / "long.csv", tmp_path / "out.csv"
    inp.write_text("time,host,cpu\n" + "".join(f"{i},{h},{i % 7 / 10}\n" for i in range(40) for h in ("db", "web")))
    assert invoke(["score", str(inp), "--stream-column", "host", "-o", str(out)]).exit_code == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("seq,stream,") and {r.split(",")[1] for r in rows[1:]} == {"db", "web"}
    assert len(rows) == 81


def test_a_failed_score_leaves_the_results_file_as_it_was(tmp_path):
    """A run that fails (no line accepted, a bad header) leaves an existing results file as
    it was (it was emptied) and no temporary file; one that succeeds replaces it whole."""
    good, bad, out = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "out.csv"
    good.write_text("timestamp,value\n" + "".join(f"2024-05-01T00:00:{i:02d},0.{i}\n" for i in range(20)))
    out.write_text("earlier results\n")
    for text in ("timestamp,value\n2024-05-01T00:00:00,high\n", "a,a\n1,2\n"):
        bad.write_text(text)
        res = invoke(["score", str(bad), "-o", str(out)])
        assert res.exit_code == 2 and out.read_text() == "earlier results\n"
    assert invoke(["score", str(good), "-o", str(out)]).exit_code == 0
    assert out.read_text().startswith("seq,") and len(out.read_text().splitlines()) == 21
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv", "out.csv"]


def test_score_output_under_a_file_says_the_file_is_in_the_way(tmp_path):
    inp, blocker = tmp_path / "in.csv", tmp_path / "good.jsonl"
    inp.write_text("timestamp,value\n2024-05-01T00:00:00,0.1\n")
    blocker.write_text("")
    res = invoke(["score", str(inp), "-o", str(blocker / "x.csv")])
    assert res.exit_code == 1 and f"cannot write {blocker / 'x.csv'}: {blocker} is a file, not a directory" in res.stderr


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args, named", [(["score", "IN"], "'stdout'"), (["score", "IN", "-o", "/dev/full"], "'/dev/full'"),
                                         (["run", "--errors", "/dev/full"], "'/dev/full'")])
def test_a_failed_write_names_the_file_or_stdout(tmp_path, args, named):
    path = tmp_path / "in.jsonl"
    path.write_text(events(5) + "not json\n")
    with path.open("rb") as stdin, open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "streamlstm.cli", *[str(path) if a == "IN" else a for a in args]],
                             stdin=stdin, stdout=full if named == "'stdout'" else subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=60)
    assert res.returncode == 1 and f"No space left on device: {named}" in _one_error_line(res.stderr)


def test_csv_flags_with_json_lines_input_are_a_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["run", "--exclude-columns", "label"], input="")
    assert res.exit_code == 2 and "--exclude-columns: for CSV input only" in res.output


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def _wide_with_text() -> str:
    """60 sensors, then two text columns beyond the 200 characters a rejection keeps (the
    hint named one text column a run)."""
    sensors = [f"sensor_{i:02d}" for i in range(60)]
    rows = [",".join(["2024-03-01T00:00:0" + str(n)] + [f"{n + i / 7:.4f}" for i in range(60)] + [f"B100{n}", s])
            for n, s in ((0, "OK"), (1, "FAIL"))]
    return "\n".join([",".join(["time", *sensors, "batch_id", "status"]), *rows]) + "\n"


NO_LINE_ACCEPTED = {
    "wrong delimiter": (lambda d: ["score", skab_like(d / "s.csv"), "--delimiter", ","], "",
                        "the header contains ';' — try --delimiter ';'"),
    "tab file read with ';'": (lambda d: ["score", skab_like(d / "s.csv", sep="\t"), "--delimiter", ";"], "",
                               r"the header contains '\t' — try --delimiter '\t'"),
    "a text column": (lambda d: ["score", _write(d, "l.csv", "time,value,label\n1,2,ok\n2,3,bad\n")], "",
                      ("column 'label' is not numeric (line 2: 'label' is not a number: 'ok') "
                       "— try --exclude-columns label")),
    "text columns": (lambda d: ["score", _write(d, "l.csv", "host,value,label\nh1,2,ok\nh2,3,bad\n")], "",
                     ("columns 'host', 'label' are not numeric (line 2: 'host' is not a number: 'h1') "
                      "— try --exclude-columns host,label")),
    "a time column without dates": (lambda d: ["score", _write(d, "t.csv", "time;v\n10:00:01;2\n10:00:02;3\n")], "",
                                    ("the time column 'time' holds no timestamps (line 2: unparseable timestamp "
                                     "'10:00:01') — name another with --time-column, or ignore it with "
                                     "--exclude-columns time")),
    "text columns past a long line's start": (lambda d: ["score", _write(d, "w.csv", _wide_with_text())], "",
                                               ("columns 'batch_id', 'status' are not numeric (line 2: 'batch_id' "
                                                "is not a number: 'B1000') — try --exclude-columns batch_id,status")),
    "integers grouped by commas": (
        lambda d: ["score", _write(d, "g.csv", 'ts,value\n1700000000,"1,500"\n1700000060,"1,600"\n')], "",
        ("column 'value' holds numbers like 1,500 (line 2), whose comma may group thousands or be a decimal comma "
         "— write them without it (1500), with a decimal point (1,500.0), or delimit the file with ';' if the "
         "comma is decimal")),
    "a long format's series column": (
        lambda d: ["score", _write(d, "h.csv", "time,host,cpu\n1,db,0.5\n2,web,0.6\n3,db,0.7\n")], "",
        ("column 'host' is not numeric (line 2: 'host' is not a number: 'db') — try --stream-column host "
         "if it names each row's series, else --exclude-columns host")),
    "times in a column of another name": (
        lambda d: ["score", _write(d, "z.csv", "Zeitstempel;a;b\n01.03.2024 00:00:00;1,5;2,5\n01.03.2024 00:01:00;1,6;2\n")],
        "", ("column 'Zeitstempel' holds times, not numbers (line 2: 'Zeitstempel' is not a number: "
             "'01.03.2024 00:00:00') — try --time-column Zeitstempel")),
    "a measurement named as the time, the times beside it": (
        lambda d: ["score", _write(d, "m.csv", "time,cpu\n2024-01-01T00:00:00,52.5\n2024-01-01T00:01:00,17\n"),
                   "--time-column", "cpu"], "",
        ("column 'time' holds times, not numbers, and the time column 'cpu' numbers (line 2: 'time' is not a "
         "number: '2024-01-01T00:00:00') — try --time-column time")),
    "a measurement named as the time, a value not available": (
        lambda d: ["score", _write(d, "m.csv", "time,cpu\n2024-01-01T00:00:00,52.5\n2024-01-01T00:01:00,NA\n"),
                   "--time-column", "cpu"], "", "— try --time-column time"),
    "a date column beside epoch seconds": (
        lambda d: ["score", _write(d, "e.csv", "timestamp,date,value\n1700000000,2023-11-14T22:13:20,1\n")], "",
        ("column 'date' is not numeric (line 2: 'date' is not a number: '2023-11-14T22:13:20') — "
         "try --exclude-columns date")),
    "CSV read as JSON lines": (lambda d: ["run"], "timestamp,value\n1,2\n2,3\n",
                               ("the input looks like CSV, not JSON lines (line 1: 'timestamp,value') "
                                "— try --format csv")),
    "one column CSV read as JSON lines": (lambda d: ["run"], "1.5\n2.5\n", "try --format csv"),
    "a pretty-printed JSON array": (lambda d: ["run"], json.dumps([{"value": 1}, {"value": 2}], indent=2),
                                    ("the input looks like one JSON document (line 1: '['), not one object per "
                                     "line — write each event as an object on a line of its own (jq -c '.[]' "
                                     "does it for an array)")),
    "a JSON array on one line": (lambda d: ["run"], '[{"value": 1}, {"value": 2}]\n', "(jq -c '.[]' does it for an array)"),
    "names separated by spaces": (lambda d: ["score", _write(d, "w.txt", "cpu  mem\n1 2\n3 4\n")], "",
                                  "the header's names are separated by spaces — try --delimiter ' '"),
    "a comment line first": (lambda d: ["score", _write(d, "c.csv", "# exported 2024\ncpu,mem\n1,2\n3,4\n")], "",
                             "the first line is a comment ('# exported 2024'), read as the header — remove comment "
                             "lines (grep -v '^#')"),
    "a row of data first, with a time": (
        lambda d: ["score", _write(d, "t.csv", "2024-01-01T00:00:00,5,a\n2024-01-01T00:01:00,6,b\n")], "",
        "the header holds a time ('2024-01-01T00:00:00'): the first line looks like data — try --no-header"),
    "a column named with '#'": (lambda d: ["score", _write(d, "n.csv", "#,cpu\n1,high\n2,low\n")], "",
                                "column 'cpu' is not numeric (line 2: 'cpu' is not a number: 'high') — try "
                                "--exclude-columns cpu"),
    "a wide file's dates as names": (
        lambda d: ["score", _write(d, "wd.csv", "series,2024-01-01,2024-01-02\ncpu,1,2\nmem,3,4\n")], "",
        "column 'series' is not numeric (line 2: 'series' is not a number: 'cpu') — try --exclude-columns series"),
    "notes above the header": (lambda d: ["score", _write(d, "n.csv", "Device: Logger X\nSerial: 123\nTime,Temp,Hum\n"
                                                     "2024-01-01T00:00:00Z,20.1,40\n2024-01-01T00:01:00Z,20.2,41\n")],
                               "", "line 3 ('Time,Temp,Hum') looks like the header, below 2 lines of notes, the first "
                                   "read as the header — remove them (tail -n +3 FILE)"),
    "decimal commas in a column": (lambda d: ["score", _write(d, "c.csv", "value\n4,89\n1,07\n-3,5\n")], "",
                                   "the rows hold numbers with a decimal comma (line 2: '4,89'), split at it — "
                                   "try --delimiter ';'"),
    "a field name that is not configured": (lambda d: ["run"], '{"val": 1}\n\n{"val": 2}\n',
                                            ("no input line was accepted (2 rejected): all as missing_field, "
                                             "e.g. line 1: neither 'value' nor 'values' present")),
}


@pytest.mark.parametrize("case", list(NO_LINE_ACCEPTED))
def test_no_line_accepted_exits_2_with_one_line_naming_the_cause(tmp_path, case):
    args, stdin, hint = NO_LINE_ACCEPTED[case]
    res = CliRunner().invoke(main, args(tmp_path), input=stdin)
    assert res.exit_code == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(hint) and "no input line was accepted" in errors[0], errors
    assert not res.stdout and "Traceback" not in res.stderr
    records = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert records and all(r["error"] for r in records)  # the per-line error records are still written


def test_an_input_sorted_newest_first_is_named_so(tmp_path):
    """A file sorted newest first (as exports often are) had all but its first line
    rejected as ts_backwards with no cause named; the warning now says to reverse it, in
    CSV and in JSON lines of two streams. Older lines arriving in order after newer ones
    are no such input."""
    newest = tmp_path / "newest.csv"
    newest.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{t % 7}\n" for t in range(300, 0, -1)))
    two = tmp_path / "two.jsonl"
    two.write_text("".join(json.dumps({"stream": s, "ts": 1_700_000_000 + 60 * t, "value": t % 5}) + "\n"
                           for t in range(200, 0, -1) for s in "ab"))
    twice = tmp_path / "twice.csv"  # two lines a time, newest first
    twice.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * (t // 2)},{t % 7}\n"
                                                   for t in range(300, 0, -1)))
    older = tmp_path / "older.csv"
    older.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * t},{t % 7}\n" for t in (*range(500, 600),
                                                                                              *range(300))))
    for path, rejected, whose in ((newest, "299 of 300", "stream 'newest'"), (two, "398 of 400", "streams 'a', 'b'"),
                                  (twice, "299 of 300", "stream 'twice'")):
        res = invoke(["score", str(path), "--output", str(tmp_path / "out.jsonl")])
        assert res.exit_code == 0
        assert (f"{rejected} input lines were rejected: the times of {whose} go back line after line (line "
                in res.stderr)
        assert "sorted newest first? — " + ("tac FILE puts JSON lines oldest first" if path == two else
                                           "(head -n 1 FILE; tail -n +2 FILE | tac) puts a CSV's rows oldest first")\
            in res.stderr
    res = invoke(["score", str(older), "--output", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0 and "300 of 400 input lines were rejected" in res.stderr
    assert "sorted newest first" not in res.stderr


def test_a_baseline_of_other_streams_than_the_inputs_is_named(tmp_path):
    """A baseline whose stream ids the input does not use (web-1 against WEB-1) was learnt
    and never used, unsaid; a WARNING names its streams. One of them coming is enough."""
    line = lambda s, t: json.dumps({"stream": s, "ts": 1_700_000_000 + 60 * t, "value": t % 5}) + "\n"  # noqa: E731
    base = tmp_path / "base.jsonl"
    base.write_text("".join(line(s, t) for t in range(40) for s in ("web-1", "web-2")))
    live = "".join(line("WEB-1", t) for t in range(40, 60))
    res = invoke(["run", "--baseline", str(base)], live)
    assert res.exit_code == 0
    assert (f"--baseline {base}: the input had none of its streams ('web-1', 'web-2'), so what it taught was not "
            "used; a stream is known by its exact id") in res.stderr
    res = invoke(["run", "--baseline", str(base)], live + "".join(line("web-2", t) for t in range(40, 45)))
    assert res.exit_code == 0 and "the input had none of its streams" not in res.stderr


def test_most_lines_rejected_is_a_warning_naming_the_cause(tmp_path):
    """A measurement named as the time column (`--time-column cpu`) is read as epoch seconds
    in 1970 that go back and forth: most rows were ts_backwards, the few that went forward
    were scored, and the run ended 'processed 8 events, rejected 492' with exit 0, unexplained."""
    rng = np.random.default_rng(0)
    rows = "".join(f"{i},{c:.1f},{m:.2f}\n" for i, (c, m) in enumerate(rng.uniform([10, 1], [90, 2], (200, 2))))
    path = _write(tmp_path, "cpu.csv", "n,cpu,mem\n" + rows)
    res = CliRunner().invoke(main, ["score", path, "--time-column", "cpu"])
    assert res.exit_code == 0, res.stderr
    warning = res.stderr.splitlines()[-1]
    assert " WARNING " in warning and f"{path}: " in warning and " of 200 input lines were rejected: the time " \
        "column 'cpu' holds numbers read as epoch seconds in 1970, which go back (line " in warning \
        and warning.endswith("— if it is a measurement, name the time column with --time-column, or leave the "
                             "option out where the file has none"), warning
    accepted = len(res.stdout.splitlines())  # a JSON line each
    assert 0 < accepted < 100 and f" {200 - accepted} of 200 " in warning
    # Rejected lines short of half are the input's own, unremarked.
    path = _write(tmp_path, "dirty.csv", "v\n" + "".join(f"{'x' if i % 3 == 0 else i % 7}\n" for i in range(60)))
    res = CliRunner().invoke(main, ["score", path])
    assert res.exit_code == 0 and " WARNING " not in res.stderr and "rejected 20, not_numeric=20" in res.stderr
    # A baseline's rejections are its own: they neither make the input mostly rejected nor
    # one of which no line was accepted (both were, before).
    clean = _write(tmp_path, "clean.csv", "v\n" + "".join(f"{i % 7}\n" for i in range(10)))
    res = CliRunner().invoke(main, ["score", clean, "--baseline", path])
    assert res.exit_code == 0 and " WARNING " not in res.stderr, res.stderr
    assert f"learnt 40 baseline events from {path}, rejected 20, not_numeric=20" in res.stderr
    assert "processed 10 events, rejected 0" in res.stderr
    res = CliRunner().invoke(main, ["score", _write(tmp_path, "none.csv", "v\n"), "--baseline", path])
    assert res.exit_code == 0 and "processed 0 events, rejected 0" in res.stderr, res.stderr
    # A measurement taken for the time by its name: read it as one.
    path = _write(tmp_path, "latency.csv", "time,value\n" + "".join(f"{r:.3f},{i}\n" for i, r in
                                                                     enumerate(rng.uniform(0.1, 0.9, 60))))
    res = CliRunner().invoke(main, ["score", path])
    warning = res.stderr.splitlines()[-1]
    assert res.exit_code == 0 and warning.endswith("— if it is a measurement, read it as one with --columns "
                                                   "time,value"), warning
    assert "rejected 0" in CliRunner().invoke(main, ["score", path, "--columns", "time,value"]).stderr
    # A baseline mostly rejected says so, as the input would.
    res = CliRunner().invoke(main, ["score", clean, "--baseline", _write(tmp_path, "b.csv", "v\n1\nx\ny\n")])
    assert res.exit_code == 0 and "--baseline " in res.stderr and "b.csv: 2 of 3 input lines were rejected: column " \
        "'v' is not numeric" in res.stderr, res.stderr
    # Lines were read as the settings say: no hint about the input's format as a whole.
    lines = "".join('{"value": %d}\n' % i for i in range(3)) + "".join(f"GET /a,{i}, 200\n" for i in range(4))
    res = CliRunner().invoke(main, ["run"], input=lines)
    warning = res.stderr.splitlines()[-1]
    assert res.exit_code == 0 and "stdin: 4 of 7 input lines were rejected: all as malformed_json, e.g. line 4" \
        in warning and "--format csv" not in warning, warning
    # ...but JSON objects spread over lines are still named.
    res = CliRunner().invoke(main, ["run"], input='{"value": 1}\n' + json.dumps({"value": 2}, indent=2) + "\n")
    assert res.exit_code == 0 and "3 of 4 input lines were rejected: the input looks like objects spread over " \
        "several lines (line 2: '{'), not one object per line" in res.stderr.splitlines()[-1], res.stderr


def test_no_line_accepted_in_a_real_process_is_one_error_line(tmp_path):
    path = skab_like(tmp_path / "s.csv")
    proc = subprocess.run([sys.executable, "-m", "streamlstm.cli", "score", path, "--delimiter", ","],
                          capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err and not proc.stdout
    assert [line.split(" ERROR streamlstm: ")[1] for line in err.splitlines() if " ERROR " in line] == [
        f"{path}: no input line was accepted (60 rejected): the header contains ';' — try --delimiter ';'"]


def test_a_fatal_line_about_the_input_names_the_file_or_stdin(tmp_path):
    """An input that cannot be read as a whole was not named ('CSV header is not UTF-8 ...'):
    with --baseline, or several files to `evaluate labelled`, which one?"""
    utf16 = tmp_path / "u16.csv"
    utf16.write_bytes("timestamp,value\n1,2\n".encode("utf-16"))
    res = CliRunner().invoke(main, ["score", str(utf16)])
    assert res.exit_code == 2 and f"{utf16}: CSV header is not UTF-8: invalid start byte — it is UTF-16" in res.stderr
    res = CliRunner().invoke(main, ["run", "--format", "csv"], input="a,a\n1,2\n")
    assert res.exit_code == 2 and "stdin: CSV header has empty or repeated column names" in res.stderr
    res = CliRunner().invoke(main, ["run", "--format", "csv", "--baseline", str(utf16)], input="ts,v\n1,2\n")
    assert res.exit_code == 2 and f"{utf16}: CSV header is not UTF-8" in res.stderr
    semicolons = _write(tmp_path, "s.csv", "ts;v\n1;2,5\n")
    res = CliRunner().invoke(main, ["score", semicolons, "--delimiter", ","])
    assert res.exit_code == 2 and f"{semicolons}: no input line was accepted (1 rejected): the header" in res.stderr
    res = CliRunner().invoke(main, ["evaluate", "labelled", semicolons, "--columns", "w"])
    assert res.exit_code == 2 and f"{semicolons}: CSV header has no column 'w'" in res.stderr


def test_json_lines_scored_as_csv_is_refused_at_the_header(tmp_path):
    path = _write(tmp_path, "e.jsonl", '{"value": 1}\n{"value": 2}\n')
    res = CliRunner().invoke(main, ["score", path, "--format", "csv"])
    assert res.exit_code == 2
    assert "the CSV header looks like JSON ('{\"value\": 1}') — try --format jsonl" in res.stderr


def test_json_log_lines_have_millisecond_timestamps():
    record = logging.LogRecord("streamlstm.daemon", logging.WARNING, __file__, 1, "revoked %s", ("t-0",), None)
    record.created, record.msecs = 1764900000.25, 250.0
    assert json.loads(_JsonFormatter().format(record)) == {
        "ts": "2025-12-05T02:00:00.250Z", "level": "WARNING", "logger": "streamlstm.daemon", "msg": "revoked t-0"}

"""A hostile corpus through the filter and the Kafka daemon's parse/score/produce path:
every line answered exactly once, no crash, every score finite (bench/hostile.py prints
the same figures for larger corpora, a real broker and memory floods)."""

import json
import subprocess
import sys

import pytest
from hostile import MAX_LINE_BYTES, answers, corpus


@pytest.mark.slow  # 2,000 lines through the CLI in a subprocess
def test_filter_answers_every_hostile_line_exactly_once(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"max_models: 50\nbatch_size: 64\ninput:\n  max_line_bytes: {MAX_LINE_BYTES}\n"
                   "model:\n  hidden_size: 4\n  k2: 4\n  warmup: 10\n")
    lines = corpus(2000, seed=1)
    errors_path = tmp_path / "errors.jsonl"
    proc = subprocess.run([sys.executable, "-m", "streamlstm.cli", "--config", str(cfg), "run",
                           "--errors", str(errors_path)], input=b"\n".join(line for _, line in lines) + b"\n",
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    outputs = [json.loads(x) for x in proc.stdout.splitlines()]
    errors = [json.loads(x) for x in errors_path.read_text().splitlines()]
    figures = answers(lines, outputs, errors)
    assert figures["answered_once"] == len(lines), figures
    assert figures["wrong_answer"] == figures["non_finite_scores"] == 0, figures
    assert {e["error"] for e in errors} == {
        "non_finite", "bad_timestamp", "invalid_unicode", "out_of_range", "malformed_json", "invalid_utf8",
        "wrong_type", "missing_field", "not_numeric", "ts_backwards", "feature_set_changed", "oversized_line",
        "too_many_models"}
    assert "Traceback" not in proc.stderr.decode()

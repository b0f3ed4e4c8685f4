"""`streamlstm evaluate`: NAB results layout and scores, labelled-file metrics."""

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streamlstm.cli import main
from streamlstm.evaluate.nab import series_files
from streamlstm.evaluate.nab_scoring import load_windows
from streamlstm.evaluate.splits import SPLITS

NAB_DIR = Path(os.environ.get("NAB_DIR", "/work/shared/nab"))
# A small model. range_novelty off: a noiseless sine sampled at i/6 keeps creeping closer
# to its peak, and every such new record would be a (tiny) range novelty.
SMALL = "model:\n  hidden_size: 8\n  k2: 4\n  warmup: 100\n  range_novelty: 0.0\n"


def make_corpus(root, series=(("artificialWithAnomaly", "a.csv", 700), ("realThing", "b.csv", 800))):
    """NAB-style series (category, file, spike row) with one labelled window around an
    injected spike each."""
    labels = {}
    for cat, name, spike in series:
        (root / "data" / cat).mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(1000):
            v = math.sin(i / 6) + (4.0 if i == spike else 0.0)
            rows.append((f"2014-01-01 {i // 60:02d}:{i % 60:02d}:00", f"{v:.4f}"))
        with open(root / "data" / cat / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["timestamp", "value"])
            w.writerows(rows)
        labels[f"{cat}/{name}"] = [[rows[spike - 20][0] + ".000000", rows[spike + 20][0] + ".000000"]]
    (root / "labels").mkdir()
    (root / "labels" / "windows.json").write_text(json.dumps(labels))
    return root


def test_evaluate_nab_writes_nab_layout_and_scores(tmp_path):
    corpus = make_corpus(tmp_path / "nab")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL)
    res = CliRunner().invoke(main, ["--config", str(cfg), "evaluate", "nab", str(corpus / "data"), "--labels",
                                    str(corpus / "labels" / "windows.json"), "--output", str(tmp_path / "results"),
                                    "--workers", "2"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = tmp_path / "results" / "streamlstm" / "realThing" / "streamlstm_b.csv"
    with open(out) as f:
        rows = list(csv.DictReader(f))
    with open(corpus / "data" / "realThing" / "b.csv") as f:
        data = list(csv.DictReader(f))
    assert [r["timestamp"] for r in rows] == [d["timestamp"] for d in data]
    assert [float(r["value"]) for r in rows] == [float(d["value"]) for d in data]
    assert sum(int(r["label"]) for r in rows) == 41
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert scores.argmax() == 800 and scores[800] > 0.5  # the spike; its cooldown hides the echo
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        line = next(x for x in res.output.splitlines() if x.startswith(profile))
        assert float(line.split()[1]) > 90  # both spikes caught at once, no false alarms
    assert "realThing" in res.output


def test_nab_series_alternate_by_name_within_each_category(tmp_path):
    names = [f"realTweets/{c}.csv" for c in "edcba"] + ["artificialNoAnomaly/x.csv", "artificialNoAnomaly/y.csv"]
    for name in [*names, "realTweets/unlabelled.csv"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("timestamp,value\n")
    labels = {name: [] for name in names}

    def split(s):
        return [name for name, _ in series_files(tmp_path, labels, s)]

    assert split("dev") == ["artificialNoAnomaly/x.csv", "realTweets/a.csv", "realTweets/c.csv", "realTweets/e.csv"]
    assert split("held-out") == ["artificialNoAnomaly/y.csv", "realTweets/b.csv", "realTweets/d.csv"]
    assert not set(split("dev")) & set(split("held-out"))
    assert sorted(split("dev") + split("held-out")) == split("all") == sorted(names)


@pytest.mark.skipif(not (NAB_DIR / "labels" / "combined_windows.json").exists(), reason="NAB corpus not available")
def test_real_nab_halves():
    labels = load_windows(NAB_DIR / "labels" / "combined_windows.json")
    halves = {s: [name for name, _ in series_files(NAB_DIR / "data", labels, s)] for s in SPLITS}
    assert [len(halves[s]) for s in SPLITS] == [31, 27, 58]  # the counts docs/detection.md gives
    assert sorted(halves["dev"] + halves["held-out"]) == halves["all"]


def test_evaluate_nab_split_scores_the_half_on_its_own(tmp_path):
    corpus = make_corpus(tmp_path / "nab", [("realThing", "b.csv", 800), ("realThing", "c.csv", 600),
                                            ("artificialWithAnomaly", "a.csv", 700)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL)
    res = CliRunner().invoke(main, ["--config", str(cfg), "evaluate", "nab", str(corpus / "data"), "--labels",
                                    str(corpus / "labels" / "windows.json"), "--output", str(tmp_path / "results"),
                                    "--split", "held-out", "--workers", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("NAB scores over 1 series of the held-out half, 1,000 rows")
    written = sorted(p.name for p in (tmp_path / "results" / "streamlstm").rglob("*.csv"))
    assert written == ["streamlstm_c.csv"]
    # Normalised on c's one window: its spike caught scores near 100; over all three
    # series' windows the same detection would be worth (1 + 3) / 6, 67.
    line = next(x for x in res.output.splitlines() if x.startswith("standard "))
    assert float(line.split()[1]) > 90


def labelled_csv(path, spike: int, header: str = "timestamp,value,label", row=None):
    """800 rows of a sine with a spike labelled for 3 rows; `row(i, v, label)` writes a row."""
    row = row or (lambda i, v, label: f"{i},{v},{label}")
    lines = [header] + [row(i, math.sin(i / 5) + (5 if i == spike else 0), int(spike <= i <= spike + 2))
                        for i in range(800)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_labelled(tmp_path, *args):
    cfg = tmp_path / "c.yaml"
    # range_novelty off: a noiseless sine keeps creeping closer to its peak, and every
    # such new record would be a (tiny) range novelty.
    cfg.write_text(SMALL)
    res = CliRunner().invoke(main, ["--config", str(cfg), "evaluate", "labelled", *map(str, args)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return {line.split()[0]: line.split()[1:] for line in res.output.splitlines()[1:]}


def test_evaluate_labelled_prints_metrics(tmp_path):
    lines = run_labelled(tmp_path, labelled_csv(tmp_path / "labelled.csv", 600))
    rows, f1, far, mar, events, recall, delay, ap, roc, ap_regime, roc_regime = lines["labelled"]
    assert (rows, events, recall, delay) == ("800", "1", "1.00", "0.0")  # the spike is alerted at once
    assert float(ap) > 0.3 and float(roc) > 0.9  # its 3 rows are among the highest scores
    assert 0 <= float(f1) <= 1 and 0 <= float(far) <= 100 and 0 <= float(mar) <= 100
    assert "all" not in lines  # one file: no total


def test_evaluate_labelled_multivariate_files_and_the_total(tmp_path):
    # two features (the sine and a constant), an id column and a rejected row
    header = "timestamp,id,a,b,label"
    row = lambda i, v, label: f"{i},x{i},{'oops' if i == 50 else v},1.0,{label}"  # noqa: E731
    one = labelled_csv(tmp_path / "one.csv", 600, header, row)
    two = labelled_csv(tmp_path / "two.csv", 700, header, row)
    lines = run_labelled(tmp_path, one, two, "--exclude-columns", "id")
    assert lines["one"][0] == lines["two"][0] == "799"  # line 52 rejected
    total = lines["all"][2:]  # "all 2 files ..."
    assert total[0] == "1598" and total[4:6] == ["2", "1.00"]
    alone = run_labelled(tmp_path, one, "--value-column", "a")
    assert alone["one"][0] == "799" and alone["one"][5] == "1.00"


def test_evaluate_labelled_reads_a_file_without_a_header_line(tmp_path):
    headed = run_labelled(tmp_path, labelled_csv(tmp_path / "headed.csv", 600))["headed"]
    bare = tmp_path / "bare.csv"
    bare.write_text((tmp_path / "headed.csv").read_text().split("\n", 1)[1])
    assert run_labelled(tmp_path, bare, "--label-column", "col_2", "--time-column", "col_0")["bare"] == headed


def test_evaluate_labelled_needs_its_label_column(tmp_path):
    path = labelled_csv(tmp_path / "x.csv", 600)
    res = CliRunner().invoke(main, ["evaluate", "labelled", str(path), "--label-column", "anomaly"])
    assert res.exit_code == 2 and "'anomaly'" in res.output

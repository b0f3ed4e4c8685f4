"""Run the detector over the NAB corpus and score it with NAB's rules.

Each series is its own stream, fed strictly online in file order (nothing about the
future, the file's length or its range is known to the detector). Results are written in
NAB's layout, `RESULTS/<detector>/<category>/<detector>_<file>.csv` with the columns
`timestamp,value,anomaly_score,label`, one row per data row.

Splits (:mod:`.splits`): within each category the labelled series present, sorted by
name, alternate, the first going to ``dev`` (as SKAB's files do). A split is scored as a
corpus of its own: one threshold per profile swept over its series, normalised between
the null and perfect detectors on its windows.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import Config, ModelConfig
from ..pool import detector_for
from .nab_scoring import (
    PROFILES,
    CorpusResult,
    SeriesScores,
    load_windows,
    parse_timestamp,
    read_nab_csv,
    score_corpus,
    window_rows,
)
from .splits import split_names


@dataclass
class NabRun:
    results: dict[str, CorpusResult]  # profile -> result
    split: str
    n_series: int
    n_rows: int


def epoch_seconds(timestamp: str) -> float:
    """Epoch seconds of a NAB timestamp; naive times (all of NAB's) are read as UTC."""
    t = parse_timestamp(timestamp)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _score_file(args: tuple[ModelConfig, str, str]) -> tuple[str, np.ndarray]:
    model, path, name = args
    timestamps, values = read_nab_csv(path)
    det = detector_for(model, 1, max_streams=1)
    T = np.array([epoch_seconds(t) for t in timestamps])
    # NAB rewards the first detection in a window and charges every false one: the score it
    # needs is the de-duplicated alert's strength, not the continuous score.
    return name, det.process([name] * len(values), np.asarray(values, dtype=np.float64)[:, None], T).alert_scores


def series_files(data_dir: Path, labels: dict, split: str = "all") -> list[tuple[str, Path]]:
    """(name, path) of the labelled series present under data_dir in ``split`` (module
    docstring), in name order, name = 'category/file.csv'."""
    present = [name for name in labels if (data_dir / name).exists()]
    return [(name, data_dir / name) for name in split_names(present, split)]


def run_nab(config: Config, data_dir: str | Path, labels_path: str | Path, results_dir: str | Path,
            split: str = "all", detector: str = "streamlstm", workers: int | None = None,
            progress: Callable[[str], None] | None = None) -> NabRun:
    data_dir, results_dir = Path(data_dir), Path(results_dir)
    labels = load_windows(labels_path)
    files = series_files(data_dir, labels, split)
    if not files:
        raise FileNotFoundError(f"no labelled NAB series under {data_dir}")
    jobs = [(config.model_for(name)[1], str(path), name) for name, path in files]
    # Longest files first, so the pool's last jobs are short.
    jobs.sort(key=lambda j: -os.path.getsize(j[1]))
    series: list[SeriesScores] = []
    n_rows = 0
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for name, scores in pool.map(_score_file, jobs):
            timestamps, values = read_nab_csv(data_dir / name)
            windows = window_rows(timestamps, labels[name])
            _write_nab_csv(results_dir, detector, name, timestamps, values, scores, windows)
            series.append(SeriesScores(name, scores, windows))
            n_rows += len(scores)
            if progress:
                progress(name)
    series.sort(key=lambda s: s.name)
    return NabRun({p: score_corpus(series, p) for p in PROFILES}, split, len(series), n_rows)


def _write_nab_csv(results_dir: Path, detector: str, name: str, timestamps, values, scores, windows) -> None:
    category, file = name.split("/", 1)
    out = results_dir / detector / category / f"{detector}_{file}"
    out.parent.mkdir(parents=True, exist_ok=True)
    label = np.zeros(len(scores), dtype=int)
    for a, b in windows:
        label[a:b + 1] = 1
    with out.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for row in zip(timestamps, values, scores, label):
            w.writerow([row[0], repr(float(row[1])), repr(float(row[2])), row[3]])


def format_report(run: NabRun) -> str:
    # The whole corpus's report reads as it always has; a half says which it is.
    of = "" if run.split == "all" else f" of the {run.split} half"
    lines = [f"NAB scores over {run.n_series} series{of}, {run.n_rows:,} rows", "",
             f"{'profile':22s} {'score':>7s} {'threshold':>10s} {'TP':>4s} {'FN':>4s} {'FP':>5s}"]
    for name, r in run.results.items():
        lines.append(f"{name:22s} {r.normalized_score:7.1f} {r.threshold:10.4f} {r.tp:4d} {r.fn:4d} {r.fp:5d}")
    std = run.results["standard"]
    lines += ["", "standard profile by category:", f"{'category':28s} {'score':>7s} {'TP':>4s} {'FN':>4s} {'FP':>5s}"]
    for cat, c in sorted(std.per_category.items()):
        score = f"{c.normalized_score:7.1f}" if c.n_windows else f"{'-':>7s}"  # no windows: no normalised score
        lines.append(f"{cat:28s} {score} {c.tp:4d} {c.fn:4d} {c.fp:5d}")
    return "\n".join(lines)

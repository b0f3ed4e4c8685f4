"""Run the detector over SKAB and score it as SKAB's leaderboard does.

SKAB (Skoltech Anomaly Benchmark, waico/SKAB; its data is GPL-3.0 and is only read
here, never shipped) has 34 files under ``valve1/``, ``valve2/`` and ``other/``
(``anomaly-free/`` is not an evaluation file), ``;``-separated, with the columns
``datetime`` (about 1 s apart), 8 sensors, ``anomaly`` and ``changepoint`` (0/1 per
row).

Protocol (SKAB's leaderboard): each file is its own stream of 8 features, fed in
file order with its timestamps. Its first 400 rows are the baseline: the detector
learns from them and their outputs are not scored. Rows 400 onwards are scored, then
learnt. The metrics (:mod:`.skab_scoring`) are computed on those rows of all files:
outlier F1 / FAR / MAR from the per-row predictions against ``anomaly``, the NAB
variant of the changepoint score from the predicted changepoints against
``changepoint``, and ROC AUC and AUC-PR of the scores against ``anomaly``
(all files' rows pooled). :func:`predictions` turns the detector's outputs into the
two kinds of prediction.

Beside our row the report prints two data-free references on the same rows,
flag-every-row and as many alerts as ours evenly spaced
(:func:`.skab_scoring.evenly_spaced`, over all files' scored rows in name order),
and the leaderboard's published figures.

Splits (:mod:`.splits`): within each folder the files are sorted by number and
alternate, the first (lowest number) going to ``dev``: ``valve1/0, 2, 4, ...``,
``valve2/0, 2`` and ``other/1, 3, ..., 13`` are the development half,
``valve1/1, 3, ...``, ``valve2/1, 3`` and ``other/2, 4, ..., 14`` the held-out half
(17 files each). The leaderboard's figures are over all 34 files.

Seeds: the model's seed draws its initial weights; ``seeds`` runs every file once per
seed and reports each figure's mean (the regime does not depend on the seed).

Results: one CSV per file under ``OUTPUT/<folder>/<file>.csv`` with the columns
``datetime``, the 8 sensors (as read), ``score``, ``is_anomaly`` (the alerts),
``regime``, ``abnormal`` (the outlier prediction), ``label`` (``anomaly``) and
``changepoint``, one row per data row; the outputs are empty on baseline rows.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..config import Config, ModelConfig
from ..multistream import BatchResult
from ..pool import detector_for
from .labelled import average_precision, roc_auc
from .nab import epoch_seconds
from .skab_scoring import (
    ChangepointResult,
    changepoint_score,
    evenly_spaced,
    match_changepoints,
    outlier_metrics,
)
from .splits import split_names

BASELINE_ROWS = 400
_LABEL_COLUMNS = ("datetime", "anomaly", "changepoint")

# SKAB's "Proposed Leaderboard" as published in waico/SKAB's README.md (test rows of
# all 34 files, 60 s window right of each changepoint); figures only.
LEADERBOARD_OUTLIER = [  # algorithm, F1, FAR %, MAR %
    ("Perfect detector", 1.0, 0.0, 0.0),
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA-based)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.6),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("MSCRED", 0.36, 49.94, 69.88),
    ("Vanilla AE", 0.39, 2.59, 75.15),
    ("Isolation forest", 0.29, 2.56, 82.89),
    ("Null detector", 0.0, 0.0, 100.0),
]
LEADERBOARD_CHANGEPOINT = [  # algorithm, NAB standard, low FP, low FN, missed CPs, FPs (None: not given)
    ("Perfect detector", 100.0, 100.0, 100.0, 0, 0),
    ("MSCRED", 32.42, 16.53, 40.28, 55, 342),
    ("Isolation forest", 26.16, 19.5, 30.82, 76, 135),
    ("T-squared+Q (PCA-based)", 25.35, 14.51, 31.33, 72, 232),
    ("Conv-AE", 23.61, 21.54, 27.55, 82, 23),
    ("LSTM-AE", 23.51, 20.11, 25.91, 88, 69),
    ("T-squared", 19.54, 10.2, 24.31, 70, 106),
    ("MSET", 13.84, 10.22, 17.37, 96, 66),
    ("Vanilla AE", 11.41, 6.53, 13.91, 103, 106),
    ("Vanilla LSTM", 11.31, -3.8, 17.25, 90, 342),
    ("ArimaFD", -0.09, -0.17, -0.06, 127, 2),
    ("Null detector", 0.0, 0.0, 0.0, None, None),
]


@dataclass
class SkabFile:
    """One SKAB file as read: the text of its datetimes and sensor values (written
    back unchanged), and the parsed arrays."""

    name: str  # "valve1/0.csv"
    header: list[str]  # datetime, the sensors, anomaly, changepoint
    rows: list[list[str]]
    T: np.ndarray  # (N,) epoch seconds (naive datetimes read as UTC)
    X: np.ndarray  # (N, D) sensor values
    anomaly: np.ndarray  # (N,) bool
    changepoint: np.ndarray  # (N,) bool

    @property
    def sensors(self) -> list[str]:
        return [c for c in self.header if c not in _LABEL_COLUMNS]


def read_skab_csv(path: str | Path, name: str) -> SkabFile:
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader)
        rows = [r for r in reader if r]
    missing = [c for c in _LABEL_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} in the header")
    col = {c: header.index(c) for c in header}
    sensors = [c for c in header if c not in _LABEL_COLUMNS]
    X = np.array([[float(r[col[c]]) for c in sensors] for r in rows], dtype=np.float64).reshape(len(rows), len(sensors))
    if np.isnan(X).any():
        raise ValueError(f"{path}: missing sensor values")  # SKAB has none; the protocol assumes so
    return SkabFile(
        name, header, rows,
        T=np.array([epoch_seconds(r[col["datetime"]]) for r in rows]),
        X=X,
        anomaly=np.array([float(r[col["anomaly"]]) != 0 for r in rows], dtype=bool),
        changepoint=np.array([float(r[col["changepoint"]]) != 0 for r in rows], dtype=bool),
    )


def skab_files(data_dir: str | Path, split: str = "all") -> list[tuple[str, Path]]:
    """(name, path) of the evaluation files under data_dir (``<folder>/<n>.csv``, all
    folders but ``anomaly-free``), in name order, restricted to ``split`` (module
    docstring)."""
    paths = {f"{folder.name}/{p.name}": p for folder in Path(data_dir).iterdir()
             if folder.is_dir() and folder.name != "anomaly-free" for p in folder.glob("*.csv")}
    return [(name, paths[name]) for name in split_names(paths, split, key=_by_number)]


def _by_number(name: str) -> tuple[float, str]:
    """SKAB's files are numbered: valve1/10 follows valve1/9."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else float("inf"), name


def predictions(flags: np.ndarray, abnormal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outlier prediction per row, predicted changepoint rows) from the detector's
    outputs: the outliers are the rows the regime calls abnormal; the changepoints are the
    rows where `abnormal` changes (SKAB's |diff|, the first row counting as a change when
    abnormal) plus the alerts. The data-free references go through here too (their 0/1
    prediction as both)."""
    flags, abnormal = np.asarray(flags, dtype=bool), np.asarray(abnormal, dtype=bool)
    changes = abnormal != np.r_[False, abnormal[:-1]]
    return abnormal, changes | flags


def _run_file(args: tuple[ModelConfig, str, str, int]) -> tuple[int, str, BatchResult]:
    """(seed, name, results) of the scored rows (baseline onwards) of one file; the
    baseline rows are learnt as known-good history (`score=False`)."""
    model, path, name, baseline = args
    f = read_skab_csv(path, name)
    det = detector_for(model, f.X.shape[1], max_streams=1)
    ids = [name] * len(f.rows)
    det.process(ids[:baseline], f.X[:baseline], f.T[:baseline], score=False)
    return model.seed, name, det.process(ids[baseline:], f.X[baseline:], f.T[baseline:])


class Row(NamedTuple):
    """One line of the report: the outlier and changepoint figures of one detector, and
    how well its score and its regime rank the anomalous rows."""

    name: str
    outlier: dict  # outlier_metrics
    changepoint: ChangepointResult
    auc_pr: float  # of the score
    roc_auc: float
    auc_pr_regime: float  # of the regime's P(abnormal)
    roc_auc_regime: float


def mean_row(rows: list[Row], name: str) -> Row:
    """One detector's figures averaged over seeds (its counts too)."""
    def mean(values) -> float:
        return float(np.mean(list(values)))

    cps = [r.changepoint for r in rows]
    changepoint = ChangepointResult({p: mean(c.scores[p] for c in cps) for p in cps[0].scores},
                                    {p: mean(c.raw[p] for c in cps) for p in cps[0].raw},
                                    mean(c.missed for c in cps), mean(c.false_positives for c in cps),
                                    cps[0].n_changepoints)
    outlier = {k: mean(r.outlier[k] for r in rows) for k in rows[0].outlier}
    return Row(name, outlier, changepoint, *(mean(r[i] for r in rows) for i in range(3, len(Row._fields))))


@dataclass
class SkabRun:
    rows: list[Row]  # ours, flag every row, evenly spaced alerts: means over the seeds
    split: str
    n_files: int
    n_rows: int  # scored rows
    seeds: list[int]
    standard: list[float]  # our changepoint score (standard profile), seed by seed


@dataclass
class _Scored:
    """The scored rows of one file and its detector's outputs on them."""

    T: np.ndarray
    anomaly: np.ndarray
    changepoint: np.ndarray
    res: BatchResult


def figures(name: str, files: list[_Scored], flags: list[np.ndarray], abnormal: list[np.ndarray],
            scores: list[np.ndarray], regime: list[np.ndarray]) -> Row:
    """The figures of one detector, given its outputs on each file's scored rows."""
    preds = [predictions(f, a) for f, a in zip(flags, abnormal)]
    matched = [match_changepoints(s.T, s.changepoint, cp) for s, (_, cp) in zip(files, preds)]
    labels = np.concatenate([s.anomaly for s in files])
    all_scores, all_regime = np.concatenate(scores), np.concatenate(regime)
    return Row(name, outlier_metrics(labels, np.concatenate([o for o, _ in preds])), changepoint_score(matched),
               average_precision(labels, all_scores), roc_auc(labels, all_scores),
               average_precision(labels, all_regime), roc_auc(labels, all_regime))


def run_skab(config: Config, data_dir: str | Path, results_dir: str | Path | None = None, split: str = "all",
             workers: int | None = None, baseline: int = BASELINE_ROWS, seeds: list[int] | None = None,
             progress: Callable[[str], None] | None = None) -> SkabRun:
    """Every file of `split`, once per seed (default: the configuration's); the results
    CSVs are the first seed's."""
    files = skab_files(data_dir, split)
    if not files:
        raise FileNotFoundError(f"no SKAB files under {data_dir}")
    jobs = [(dataclasses.replace(config.model_for(name)[1], **({} if seed is None else {"seed": seed})),
             str(path), name, baseline) for seed in (seeds or [None]) for name, path in files]
    seeds = list(dict.fromkeys(model.seed for model, *_ in jobs))
    jobs.sort(key=lambda j: -os.path.getsize(j[1]))  # longest first, so the pool's last jobs are short
    outputs: dict[tuple[int, str], BatchResult] = {}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for seed, name, res in pool.map(_run_file, jobs):
            outputs[seed, name] = res
            if progress:
                progress(name)
    skab = {name: read_skab_csv(path, name) for name, path in files}
    if results_dir is not None:
        for name, f in skab.items():
            _write_csv(Path(results_dir), f, baseline, outputs[seeds[0], name])
    runs = [_figures([_Scored(f.T[baseline:], f.anomaly[baseline:], f.changepoint[baseline:],
                                    outputs[seed, name]) for name, f in skab.items()]) for seed in seeds]
    n_alerts = float(np.mean([n for _, n in runs]))
    labels = ("streamlstm", "flag every row", f"{n_alerts:g} alerts evenly spaced")
    rows = [mean_row([rows[i] for rows, _ in runs], label) for i, label in enumerate(labels)]
    return SkabRun(rows, split, len(files), sum(len(f.T) - baseline for f in skab.values()), seeds,
                   [rows[0].changepoint.scores["standard"] for rows, _ in runs])


def _figures(scored: list[_Scored]) -> tuple[list[Row], int]:
    """Our rows and the two references' for one seed, and how many changepoints ours predicted."""
    ours = figures("streamlstm", scored, [s.res.flags for s in scored], [s.res.abnormal for s in scored],
                   [s.res.scores for s in scored], [s.res.regime for s in scored])
    sizes = [len(s.T) for s in scored]
    cuts = np.cumsum(sizes)[:-1]
    n_alerts = sum(int(predictions(s.res.flags, s.res.abnormal)[1].sum()) for s in scored)
    # A reference's 0/1 prediction is its flags, its regime and its score: flag-every-row
    # then ranks like chance.
    rows = [ours]
    for label, refs in (("flag every row", [np.ones(n, dtype=bool) for n in sizes]),
                        (f"{n_alerts} alerts evenly spaced", np.split(evenly_spaced(n_alerts, sum(sizes)), cuts))):
        as_float = [r.astype(float) for r in refs]
        rows.append(figures(label, scored, refs, refs, as_float, as_float))
    return rows, n_alerts


def _write_csv(results_dir: Path, f: SkabFile, baseline: int, res: BatchResult) -> None:
    out = results_dir / f.name
    out.parent.mkdir(parents=True, exist_ok=True)
    col = {c: f.header.index(c) for c in f.header}
    with out.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=";", lineterminator="\n")
        w.writerow(["datetime", *f.sensors, "score", "is_anomaly", "regime", "abnormal", "label", "changepoint"])
        for i, r in enumerate(f.rows):
            k = i - baseline
            outputs = ([repr(float(res.scores[k])), int(res.flags[k]), repr(float(res.regime[k])),
                        int(res.abnormal[k])] if k >= 0 else ["", "", "", ""])
            w.writerow([r[col["datetime"]], *(r[col[c]] for c in f.sensors), *outputs,
                        int(f.anomaly[i]), int(f.changepoint[i])])


def _num(x, fmt: str) -> str:
    """`x` formatted, or a dash of the same width where it is missing (None or nan)."""
    if x is None or x != x:
        return format("-", ">" + fmt.split(".")[0].rstrip("df"))
    return format(x, fmt)


def format_report(run: SkabRun) -> str:
    n_cp = run.rows[0].changepoint.n_changepoints
    seeds = (f"seed {run.seeds[0]}" if len(run.seeds) == 1 else
             f"means over {len(run.seeds)} seeds ({', '.join(map(str, run.seeds))})")
    lines = [f"SKAB, split {run.split}: {run.n_files} files, {run.n_rows:,} scored rows (each file's rows "
             f"{BASELINE_ROWS}+), {n_cp} changepoints; {seeds}", "",
             "Outlier detection (point-wise over the scored rows of all files; ours from `abnormal`;",
             "AUC-PR and ROC-AUC of the score, and of the regime's P(abnormal))",
             f"{'algorithm':28s} {'F1':>5s} {'FAR, %':>7s} {'MAR, %':>7s} {'AUC-PR':>7s} {'ROC-AUC':>7s} "
             f"{'regime AUC-PR':>13s} {'ROC-AUC':>7s}"]
    for r in run.rows:
        o = r.outlier
        lines.append(f"{r.name:28s} {_num(o['f1'], '5.2f')} {_num(o['far'], '7.2f')} {_num(o['mar'], '7.2f')} "
                     f"{_num(r.auc_pr, '7.3f')} {_num(r.roc_auc, '7.3f')} {_num(r.auc_pr_regime, '13.3f')} "
                     f"{_num(r.roc_auc_regime, '7.3f')}")
    lines.append("  leaderboard (waico/SKAB README, all 34 files):")
    for name, f1, far, mar in LEADERBOARD_OUTLIER:
        lines.append(f"{name:28s} {f1:5.2f} {far:7.2f} {mar:7.2f}")
    lines += ["", "Changepoint detection (SKAB's NAB variant: 60 s window right of each changepoint; ours: the",
              "rows where `abnormal` changes, and the alerts)",
              f"{'algorithm':28s} {'standard':>8s} {'low FP':>8s} {'low FN':>8s} {'missed CPs':>10s} {'FPs':>6s}"]
    for r in run.rows:
        c = r.changepoint
        s = [_num(c.scores[p], "8.2f") for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")]
        lines.append(f"{r.name:28s} {s[0]} {s[1]} {s[2]} {c.missed:10g} {c.false_positives:6g}")
    if len(run.seeds) > 1:
        lines.append(f"  ours, standard, seed by seed: {' '.join(f'{v:.2f}' for v in run.standard)}")
    lines.append("  leaderboard (waico/SKAB README, all 34 files):")
    for name, std, low_fp, low_fn, missed, fps in LEADERBOARD_CHANGEPOINT:
        lines.append(f"{name:28s} {std:8.2f} {low_fp:8.2f} {low_fn:8.2f} {_num(missed, '10d')} {_num(fps, '6d')}")
    return "\n".join(lines)

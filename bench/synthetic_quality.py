"""Detection quality on generated streams with known anomaly types (a check against
over-fitting NAB), beside river's HalfSpaceTrees on the same streams.

    python bench/synthetic_quality.py [--config FILE] [--seeds 10] [--daily]

Every stream is 6,000 events of a noisy cycle (period 100). Two tables:

1. One anomaly type injected three times (at events 2,500, 3,800 and 5,000), labelled from
   its start to 20 events after its end: spikes, level shifts, frequency changes, noise
   bursts and contextual anomalies (the cycle stalls at a normal value), each into a
   single feature; spikes, level shifts and noise bursts also into one of four features
   (the cycle at other phases and amplitudes; which one is broken changes with the seed),
   and into that broken feature alone, and into one of 32 features (amplitudes and phases
   drawn with the seed), where any of 31 healthy features may set a new record by chance;
   the four features' streams again as sensors read at their own times send them, one
   reading a message (each row's four values as four events, each with the other three
   missing), their results folded back onto the rows (a row alerts or is abnormal where
   one of its four events is, its score and regime the largest);
   and each type into the single feature beside ten
   0/1 command flags (three never change, seven toggle 2-30 times at random), as a
   telemetry channel sits beside its commands. Columns: event recall and mean delay (events) of
   the alerts, alerts per 1,000 normal events, F1 / FAR / MAR of `abnormal`, AUC-PR
   (average precision) of `score`, of `regime` and of HalfSpaceTrees' score; then the
   AUC-PR of `score` and of HalfSpaceTrees' against the anomalous events only (without
   the 20 after, which a detector without memory of the past events cannot score high).
2. No anomaly at all: a slow drift (the cycle's amplitude doubles over the 6,000 events),
   on one feature and on four; a 0/1 command flag that is constant until event 3,000 and
   then toggles (every 50-500 events), beside a normal cycle, and that cycle alone; 32
   features of Laplace noise (heavier tails than a Gaussian's); a Gaussian random walk; four
   features of an AR(1) process of coefficient 0.98 (a level that wanders and returns); a
   steady trend (3 amplitudes over the 6,000 events) under the cycle and alone (with the
   cycle's noise), as a disk fills; white noise, whose new records come at the n-th value
   with probability 1 / n. Columns: alerts and abnormal rows per stream.
3. Attribution, on the streams with one of four or 32 features broken: how often the broken
   feature is the first of a record's `contributors` (the largest of an alert's
   `contributions`, of an abnormal event's `blame`) in the alerts and abnormal events
   within the labels, and in all alerts.

Figures are pooled over the seeds (streamlstm.evaluate.labelled.detection_metrics: rows
pooled, events counted per stream); a seed draws both the data and the model's initial
weights. Events
carry no timestamps (the time-of-day channel stays off) unless `--daily`, which spaces
them 864 s apart so that the cycle is one day, as the seasonal channel assumes.
HalfSpaceTrees runs as river's documentation runs it, `MinMaxScaler() |
HalfSpaceTrees(seed=seed)`, score_one then learn_one per event, on the same values.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
from streamlstm.config import load_config
from streamlstm.evaluate.labelled import average_precision, detection_metrics, half_space_trees
from streamlstm.pool import detector_for

N, PERIOD, STARTS, TAIL = 6000, 100, (2500, 3800, 5000), 20
KINDS = ("spike", "level_shift", "frequency_change", "noise_burst", "contextual")
BROKEN_KINDS = ("spike", "level_shift", "noise_burst")
FEATURES = ((1.0, 0.0), (0.5, 0.25), (2.0, 0.5), (4.0, 0.75))  # (amplitude, phase in periods) of the four
FLAG_FROM = 3000
MANY = 32  # features of the widest streams
INTERLEAVED = "one of four, one sensor a row"


def cycle(rng: np.random.Generator, phase: float = 0.0) -> np.ndarray:
    """The unit cycle from `phase` (in periods), with Gaussian noise of sd 0.1."""
    t = np.arange(N)
    return np.sin(2 * np.pi * (t / PERIOD + phase)) + 0.1 * rng.normal(size=N)


def inject(x: np.ndarray, kind: str, rng: np.random.Generator, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Inject three anomalies of `kind` into the unit cycle `x` (in place); their labels (to
    TAIL events after each) and the anomalous events alone."""
    labels, anomalous = np.zeros(N, dtype=bool), np.zeros(N, dtype=bool)
    for s in STARTS:
        if kind == "spike":
            x[s] += rng.choice([-1, 1]) * 3.0
            span = 1
        elif kind == "level_shift":
            x[s:] += 1.5
            span = 1
        elif kind == "frequency_change":
            span = 200
            seg = np.arange(span)
            x[s:s + span] = np.sin(2 * np.pi * ((s + 2.5 * seg) / PERIOD + phase)) + 0.1 * rng.normal(size=span)
        elif kind == "noise_burst":
            span = 50
            x[s:s + span] += rng.normal(0, 0.8, span)
        elif kind == "contextual":  # the cycle stalls: values stay normal in range, wrong in time
            span = 40
            x[s:s + span] = x[s] + 0.1 * rng.normal(size=span)
        labels[s:s + span + TAIL] = True
        anomalous[s:s + span] = True
    return labels, anomalous


def broken_feature(kind: str, seed: int, n_features: int = 4) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """n_features features (FEATURES if four, else amplitudes and phases drawn with the
    seed), one of them (which: the seed's) broken by `kind`: X (N, n_features), the broken
    column, the labels and the anomalous events."""
    rng = np.random.default_rng(seed)
    features = FEATURES if n_features == 4 else tuple(zip(rng.uniform(0.5, 4.0, n_features),
                                                          rng.uniform(0.0, 1.0, n_features)))
    broken = seed % n_features
    units = [cycle(rng, phase) for _, phase in features]
    labels, anomalous = inject(units[broken], kind, rng, features[broken][1])  # in units of its amplitude
    return np.column_stack([amplitude * u for (amplitude, _), u in zip(features, units)]), broken, labels, anomalous


def one_sensor_a_row(X: np.ndarray) -> np.ndarray:
    """X (N, D) as D sensors read at their own times send it, one reading a message: each
    row's D values as D events (N D, D) in column order, each with the others missing."""
    N, D = X.shape
    Y = np.full((N * D, D), np.nan)
    Y[np.arange(N * D), np.tile(np.arange(D), N)] = X.ravel()
    return Y


def rows_of(res, D: int) -> SimpleNamespace:
    """one_sensor_a_row's results folded back onto the rows: a row alerts or is abnormal
    where one of its D events is, its score and regime are their largest."""
    def fold(a, how):
        return getattr(a.reshape(-1, D), how)(axis=1)
    return SimpleNamespace(flags=fold(res.flags, "any"), abnormal=fold(res.abnormal, "any"),
                           scores=fold(res.scores, "max"), regime=fold(res.regime, "max"))


def command_flags(rng: np.random.Generator, k: int = 10) -> np.ndarray:
    """k 0/1 command flags (N, k): every third constant, the others toggling 2-30 times."""
    flags = np.zeros((N, k))
    for j in range(k):
        if j % 3:
            changes = np.sort(rng.choice(N, size=rng.integers(2, 31), replace=False))
            flags[:, j] = np.searchsorted(changes, np.arange(N), side="right") % 2
    return flags


def anomaly_streams(seed: int):
    """(section, kind, X (N, D), labels, anomalous events, the broken feature of several or
    None) of table 1's streams for one seed."""
    for kind in KINDS:
        rng = np.random.default_rng(seed)
        x = cycle(rng)
        yield ("one feature", kind, x[:, None], *inject(x, kind, rng), None)
    for kind in BROKEN_KINDS:
        X, broken, labels, anomalous = broken_feature(kind, seed)
        yield "one of four features broken", kind, X, labels, anomalous, broken
    for kind in BROKEN_KINDS:
        X, broken, labels, anomalous = broken_feature(kind, seed)
        yield "the broken feature alone", kind, X[:, [broken]], labels, anomalous, None
    for kind in BROKEN_KINDS:
        X, _, labels, anomalous = broken_feature(kind, seed)
        yield INTERLEAVED, kind, X, labels, anomalous, None
    for kind in BROKEN_KINDS:
        X, broken, labels, anomalous = broken_feature(kind, seed, MANY)
        yield f"one of {MANY} features broken", kind, X, labels, anomalous, broken
    for kind in KINDS:
        rng = np.random.default_rng(seed)
        x = cycle(rng)
        labels, anomalous = inject(x, kind, rng)
        flags = command_flags(np.random.default_rng(1000 + seed))
        yield "one feature beside ten command flags", kind, np.column_stack([x, flags]), labels, anomalous, None


def quiet_streams(seed: int):
    """(name, X (N, D)) of table 2's streams (no anomaly) for one seed."""
    rng = np.random.default_rng(seed)
    gain = 1.0 + np.arange(N) / N  # the amplitude doubles over the stream
    yield "slow drift, 1 feature", (gain * cycle(rng))[:, None]
    yield "slow drift, 4 features", np.column_stack([gain * amplitude * cycle(rng, phase)
                                                     for amplitude, phase in FEATURES])
    changes = FLAG_FROM + np.cumsum(np.r_[0, rng.integers(50, 500, size=N // 50)])
    flag = np.searchsorted(changes, np.arange(N), side="right") % 2  # 0 until FLAG_FROM, then toggling
    X = np.column_stack([cycle(rng), flag.astype(float)])
    yield "command flag starts toggling", X
    yield "  the same cycle, no flag", X[:, :1]
    yield f"Laplace noise, {MANY} features", rng.laplace(size=(N, MANY))
    yield "a random walk, 1 feature", np.cumsum(rng.normal(size=(N, 1)), axis=0)
    X = rng.normal(size=(N, 4))
    for t in range(1, N):
        X[t] += 0.98 * X[t - 1]
    yield "AR(1) of 0.98, 4 features", X
    trend = 3.0 * np.arange(N) / N  # the rows below draw last from rng: the streams above stay as they were
    yield "a trend under the cycle", (trend + cycle(rng))[:, None]
    yield "a trend alone", (trend + 0.1 * rng.normal(size=N))[:, None]
    yield "white noise, 1 feature", rng.normal(size=(N, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--daily", action="store_true", help="timestamp events so the cycle is one day")
    args = ap.parse_args()
    model = load_config(args.config).model
    T = np.arange(N) * (86400.0 / PERIOD) if args.daily else None

    def run(X: np.ndarray, seed: int, per_row: int = 1):
        """One stream of X, per_row events a row (one_sensor_a_row's share its time)."""
        det = detector_for(dataclasses.replace(model, seed=seed), X.shape[1], max_streams=1)
        return det.process(["s"] * len(X), X, None if T is None else np.repeat(T, per_row))

    rows = defaultdict(list)  # (section, kind) -> per seed (labels, anomalous events, our results, HST's scores)
    quiet = defaultdict(list)  # name -> per seed (alerts, abnormal rows)
    named = defaultdict(lambda: np.zeros((3, 2), dtype=int))  # (kind, features) -> (rows, named first) per row kind
    for seed in range(args.seeds):
        for section, kind, X, labels, events, broken in anomaly_streams(seed):
            D = X.shape[1]
            res = rows_of(run(one_sensor_a_row(X), seed, D), D) if section == INTERLEAVED else run(X, seed)
            rows[section, kind].append((labels, events, res, half_space_trees(X, seed)))
            if broken is not None:
                first = np.where(res.flags[:, None], res.contributions, res.blame).argmax(axis=1) == broken
                for k, which in enumerate((res.flags & labels, res.abnormal & labels, res.flags)):
                    named[kind, X.shape[1]][k] += which.sum(), (first & which).sum()
        for name, X in quiet_streams(seed):
            res = run(X, seed)
            quiet[name].append((int(res.flags.sum()), int(res.abnormal.sum())))

    print(f"{'':22s} {'alerts':^22s} {'abnormal':^20s} {'AUC-PR, labels':^21s} {'anomaly only':^13s}".rstrip())
    print(f"{'anomaly type':22s} {'ev.recall':>9s} {'delay':>5s} {'FA/1k':>6s} {'F1':>5s} {'FAR,%':>6s} "
          f"{'MAR,%':>7s} {'score':>6s} {'regime':>7s} {'HST':>6s} {'score':>6s} {'HST':>6s}")
    section = None
    for (sec, kind), streams in rows.items():
        if sec != section:
            print(sec)
            section = sec
        labels, events, results, hst = zip(*streams)
        m = detection_metrics(list(zip(labels, results)))
        labels, events, hst = map(np.concatenate, (labels, events, hst))
        alerts, scores = (np.concatenate([getattr(r, f) for r in results]) for f in ("flags", "scores"))
        fa = 1000 * alerts[~labels].sum() / (~labels).sum()
        print(f"  {kind:20s} {m['event_recall']:9.2f} {m['mean_delay']:5.1f} {fa:6.2f} {m['f1']:5.2f} "
              f"{m['far']:6.2f} {m['mar']:7.2f} {m['ap_score']:6.3f} {m['ap_regime']:7.3f} "
              f"{average_precision(labels, hst):6.3f} {average_precision(events, scores):6.3f} "
              f"{average_precision(events, hst):6.3f}")
    print()
    print(f"{'no anomaly (per stream)':30s} {'alerts':>6s} {'(range)':>9s} {'abnormal rows':>13s} {'(range)':>11s}")
    for name, counts in quiet.items():
        alerts, abnormal = np.array(counts).T
        print(f"{name:30s} {alerts.mean():6.1f} {f'({alerts.min()}-{alerts.max()})':>9s} {abnormal.mean():13.1f} "
              f"{f'({abnormal.min()}-{abnormal.max()})':>11s}")
    print()
    print(f"{'broken feature named first':30s} {'alerts in labels':>16s} {'abnormal in labels':>18s} "
          f"{'all alerts':>12s}")
    for (kind, n_features), counts in named.items():
        cells = [f"{k / n:.2f} of {n}" if n else "-" for n, k in counts]
        print(f"  {f'{kind}, 1 of {n_features}':28s} {cells[0]:>16s} {cells[1]:>18s} {cells[2]:>12s}")
    print(f"\n{args.seeds} seeds{', daily timestamps' if args.daily else ', no timestamps'}; "
          "the second table's figures are means over them (and their range)")


if __name__ == "__main__":
    main()

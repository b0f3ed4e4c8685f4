"""Detection in shared weight mode: many streams, one model, events interleaved.

    python bench/shared_quality.py [--seeds 3] [--data-seeds 10]

The one-feature streams of bench/synthetic_quality.py (spikes, level shifts, frequency
changes, noise bursts, stalled cycles; three anomalies each) for data seeds 0 .. N-1, 50
streams at the default 10, are fed to one shared-mode detector, one event of each stream
in turn, in micro-batches of 100 events per stream, as a daemon sees them. Per anomaly type
and per window mode (the re-run window, shared mode's default, and `record_window`):
event recall of the alerts, alerts per 1,000 normal events, and the AUC-PR (average
precision) of `score` against the labels, each pooled over the streams and the model
seeds (`--seeds`), which draw the initial weights. In a stream's own detector (the
synthetic suite) the two modes are per_stream mode's recorded window and the same with
other streams' updates in between.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

import numpy as np

from streamlstm import MultiStreamDetector
from streamlstm.evaluate.labelled import detection_metrics
from streamlstm.multistream import BatchResult

sys.path.insert(0, os.path.dirname(__file__))
import synthetic_quality  # noqa: E402  (the suite's stream construction)

BLOCK = 100  # events per stream per micro-batch
MODES = {"re-run window": {}, "record_window": {"record_window": True}}


def streams(data_seeds: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(anomaly type, values (N,), labels (N,)) of the suite's one-feature streams."""
    out = []
    for seed in range(data_seeds):
        for section, kind, X, labels, _, _ in synthetic_quality.anomaly_streams(seed):
            if section == "one feature":
                out.append((kind, X[:, 0], labels))
    return out


def run(data, seed: int, settings: dict) -> list[BatchResult]:
    """Each stream's results, its events interleaved with the others' in one shared model."""
    S, N = len(data), len(data[0][1])
    ids = [f"s{k}" for k in range(S)]
    values = np.stack([x for _, x, _ in data], axis=1)  # (N, S)
    det = MultiStreamDetector(1, weight_mode="shared", max_streams=S, seed=seed, **settings)
    parts = [det.process(ids * len(block), block.reshape(-1, 1)) for block in np.split(values, range(BLOCK, N, BLOCK))]
    return [BatchResult(*(np.concatenate([getattr(p, f)[k::S] for p in parts]) for f in BatchResult._fields))
            for k in range(S)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="model seeds")
    ap.add_argument("--data-seeds", type=int, default=10, help="data seeds (five streams each)")
    args = ap.parse_args()
    data = streams(args.data_seeds)
    pooled = defaultdict(list)  # (mode, kind) -> (labels, results) per stream and model seed
    for mode, settings in MODES.items():
        for seed in range(args.seeds):
            for (kind, _, labels), res in zip(data, run(data, seed, settings)):
                pooled[mode, kind].append((labels, res))
    print(f"{len(data)} streams interleaved in one shared-mode model; {args.seeds} model seeds\n")
    print("| anomaly type | " + " | ".join(f"{m}: recall, FA/1k, AUC-PR" for m in MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for kind in synthetic_quality.KINDS:
        cells = []
        for mode in MODES:
            parts = pooled[mode, kind]
            m = detection_metrics(parts)
            labels = np.concatenate([lab for lab, _ in parts])
            flags = np.concatenate([r.flags for _, r in parts])
            fa = 1000 * flags[~labels].sum() / (~labels).sum()
            cells.append(f"{m['event_recall']:.2f}, {fa:.2f}, {m['ap_score']:.3f}")
        print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

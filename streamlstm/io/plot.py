"""PNG of results: per stream, the series with its forecast band, the alerts and the
stretches the regime calls abnormal (shaded), and below it the continuous score, the
alert score against the threshold and the regime's probability."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

BAND_WINDOW = 50  # events in the trailing window that sets the band's width


def read_results(path: str | Path) -> list[dict]:
    """Result records from a JSONL or CSV results file (by extension)."""
    path = Path(path)
    with path.open() as f:
        if path.suffix.lower() == ".csv":
            return [_from_csv_row(r) for r in csv.DictReader(f)]
        records = (json.loads(line) for line in f if line.strip())
        return [r for r in records if "score" in r]  # error records have no score


def _from_csv_row(row: dict) -> dict:
    num = lambda v: float(v) if v not in ("", None) else None  # noqa: E731
    rec = {"seq": int(row["seq"]), "stream": row["stream"], "ts": row.get("ts") or None,
           "score": float(row["score"]), "is_anomaly": row["is_anomaly"] == "true",
           "alert_score": float(row["alert_score"]), "regime": float(row["regime"]),
           "abnormal": row["abnormal"] == "true"}
    if "value" in row:
        rec["value"], rec["prediction"] = num(row["value"]), num(row["prediction"])
    else:
        feats = [k[len("value_"):] for k in row if k.startswith("value_")]
        rec["values"] = {f: num(row[f"value_{f}"]) for f in feats}
        rec["prediction"] = {f: num(row[f"prediction_{f}"]) for f in feats}
    return rec


def _series(records: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """feature -> (values, predictions) with NaN for nulls."""
    f = lambda v: np.nan if v is None else float(v)  # noqa: E731
    if "value" in records[0]:
        return {"value": (np.array([f(r["value"]) for r in records]),
                          np.array([f(r["prediction"]) for r in records]))}
    feats = sorted(records[0]["values"])
    return {k: (np.array([f(r["values"].get(k)) for r in records]),
                np.array([f((r["prediction"] or {}).get(k)) for r in records])) for k in feats}


def _band(values: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Two trailing RMS residuals of the last BAND_WINDOW events (causal, NaN-tolerant)."""
    resid2 = (values - preds) ** 2
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        w = resid2[max(0, i - BAND_WINDOW):i]
        w = w[~np.isnan(w)]
        if len(w):
            out[i] = 2.0 * np.sqrt(w.mean())
    return out


def plot_results(records: list[dict], out_png: str | Path, stream: str | None = None,
                 threshold: float | None = None) -> int:
    """Render `records` to `out_png`; returns the number of stream panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_stream: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if stream is None or r["stream"] == stream:
            by_stream[r["stream"]].append(r)
    if not by_stream:
        raise ValueError(f"no results for stream {stream!r}" if stream else "no results to plot")
    n = len(by_stream)
    fig, axes = plt.subplots(2 * n, 1, figsize=(12, 4.2 * n), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * n})
    for k, (sid, recs) in enumerate(by_stream.items()):
        ax, ax_score = axes[2 * k, 0], axes[2 * k + 1, 0]
        x = np.arange(len(recs))
        flags = np.array([r["is_anomaly"] for r in recs])
        abnormal = np.array([r["abnormal"] for r in recs])
        if abnormal.any():
            ax.fill_between(x, 0, 1, where=abnormal, transform=ax.get_xaxis_transform(), color="orange",
                            alpha=0.2, lw=0, label="abnormal")
        for feature, (values, preds) in _series(recs).items():
            label = "" if feature == "value" else f" {feature}"
            ax.plot(x, values, lw=0.8, label=f"value{label}")
            band = _band(values, preds)
            ax.fill_between(x, preds - band, preds + band, alpha=0.25, lw=0, label=f"forecast ±2 RMS{label}")
            ax.scatter(x[flags], values[flags], color="red", s=28, zorder=3,
                       label="flagged" if feature == next(iter(_series(recs))) else None)
        ax.set_title(f"{sid}  ({int(flags.sum())} alerts, {int(abnormal.sum())} abnormal of {len(recs)})",
                     loc="left", fontsize=10)
        ax.legend(loc="upper left", fontsize=8, ncol=5)
        for key, color, label in (("score", "grey", "score"), ("alert_score", "purple", "alert score"),
                                  ("regime", "orange", "P(abnormal)")):
            ax_score.plot(x, [r[key] for r in recs], lw=0.8, color=color, label=label)
        if threshold is not None:
            ax_score.axhline(threshold, color="red", ls="--", lw=0.8)
        ax_score.set_ylim(0, 1.02)
        ax_score.legend(loc="upper left", fontsize=8, ncol=3)
        ax_score.set_xlabel("event")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return n

"""PNG of results: per stream, each feature in its own panel (its own scale) with its
forecast band, the alerts and the stretches the regime calls abnormal (shaded), and below
them the continuous score, the alert score against the threshold and the regime's
probability. The x axis is the events' time when every event of the stream has a
timestamp, in order, else the event's index. Of more than MAX_STREAMS streams, those with
the most alerts are drawn."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..event import TS_MAX, TS_MIN
from .files import replace, replaced_file
from .parsers import InputFormatError, parse_ts

BAND_WINDOW = 50  # events in the trailing window that sets the band's width
MAX_FEATURE_PANELS = 8  # a stream's features drawn; beyond, those most often named in alerts
MAX_STREAMS = 10  # streams drawn; beyond, those with the most alerts (then abnormal events)


# What a result record holds beside "value" (univariate) or "values" (multivariate).
_SINGLE_TIME_PAD = 2 * 86400.0  # seconds: matplotlib's date axis around a single time (DateLocator.nonsingular)
_RESULT_KEYS = ("seq", "stream", "score", "is_anomaly", "alert_score", "regime", "abnormal", "prediction")


def read_results(path: str | Path) -> list[dict]:
    """Result records from a JSONL or CSV results file (by extension), as `run` and `score`
    write them; error records are skipped. Anything else (an input file, a cut line) raises
    InputFormatError naming the file and the line."""
    path = Path(path)
    records, line = [], 1
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".csv":
                rows = csv.DictReader(f)
                for row in rows:
                    line = rows.line_num
                    records.append(_from_csv_row(row))
                return records
            for line, text in enumerate(f, 1):
                if not text.strip():
                    continue
                record = json.loads(text)
                if type(record) is not dict:
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
                if "score" in record or "error" not in record:  # an error record has no score to draw
                    for key in (*_RESULT_KEYS, "value" if "value" in record else "values"):
                        if key not in record:
                            raise KeyError(key)
                    records.append(record)
    except (KeyError, ValueError) as exc:  # UnicodeDecodeError and json's errors are ValueErrors
        why = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise InputFormatError(f"{path} line {line}: not a results line of streamlstm run or score ({why})") from None
    return records


def image_formats() -> list[str]:
    """The file name suffixes (without the dot) that `plot_results` can write."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return sorted(FigureCanvasAgg.get_supported_filetypes())


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
        if row.get("contributors"):  # feature: share, largest first (records.csv_row)
            rec["contributors"] = [{"feature": f, "share": s} for f, s in json.loads(row["contributors"]).items()]
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


def _times(records: list[dict], margin: float = 0.05) -> np.ndarray | None:
    """The records' timestamps (datetime64, UTC) when every one has a valid one, they
    never go back, and the axis, padded by `margin` of their span (matplotlib's
    axes.xmargin) or by the two days matplotlib puts around a single time, stays within
    the years 1 to 9999 that a date axis draws; None otherwise (the plot then counts
    events)."""
    try:
        ts = np.array([parse_ts(r["ts"]) for r in records])
    except (KeyError, ValueError):  # no timestamp (None, or no key), or one that does not parse
        return None
    if np.any(np.diff(ts) < 0.0):
        return None
    pad = max(margin * (ts[-1] - ts[0]), _SINGLE_TIME_PAD)
    if ts[0] - pad < TS_MIN or ts[-1] + pad > TS_MAX:
        return None
    return (ts * 1e3).astype("datetime64[ms]")


def _top_contributors(records: list[dict]) -> list[str | None]:
    """Per record, the feature named first in its `contributors` (None if none)."""
    return [(r.get("contributors") or [{}])[0].get("feature") for r in records]


def _shown_features(series: dict[str, tuple[np.ndarray, np.ndarray]], top: list[str | None]) -> list[str]:
    """The features to draw: all of them, in order, up to MAX_FEATURE_PANELS; beyond that
    those most often named first in the alerts and abnormal events (`top`), then the
    measurements (more than two values: a constant or a flag is context, never judged),
    each in order."""
    features = list(series)
    if len(features) <= MAX_FEATURE_PANELS:
        return features
    named = Counter(f for f in top if f is not None)

    def context(f: str) -> bool:
        values = series[f][0]
        return len(np.unique(values[~np.isnan(values)])) <= 2
    return sorted(features, key=lambda f: (-named[f], context(f), features.index(f)))[:MAX_FEATURE_PANELS]


def plot_results(records: list[dict], out_png: str | Path, stream: str | None = None,
                 threshold: float | None = None) -> int:
    """Render `records` (of `stream` only, if given) to `out_png`, whole or not at all (a
    stopped render leaves no half image); returns the number of streams drawn (at most
    MAX_STREAMS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_png)
    target = replaced_file(out)  # a symbolic link is written through, a FIFO or a device in place
    part = None if target is None else target.with_name(f".{target.name}.{os.getpid()}.part")
    fig = draw_results(records, stream, threshold)
    try:
        if part is None:  # rendered whole first: a FIFO cannot seek, as some formats' writers do
            image = io.BytesIO()
            fig.savefig(image, dpi=110, format=out.suffix[1:].lower())
            with out.open("ab") as f:  # a FIFO, a device, a file the shell opened (maybe with >>)
                f.write(image.getvalue())
        else:
            fig.savefig(part, dpi=110, format=out.suffix[1:].lower())
            replace(part, target)
    except OSError as exc:  # about the image asked for, not its .part
        raise OSError(exc.errno, exc.strerror, str(out)) from None
    finally:
        plt.close(fig)
        if part is not None:
            part.unlink(missing_ok=True)
    return min(len({r["stream"] for r in records if stream is None or r["stream"] == stream}), MAX_STREAMS)


def draw_results(records: list[dict], stream: str | None = None, threshold: float | None = None):
    """The matplotlib Figure of `records` (of `stream` only, if given): per stream a panel
    per feature and one of the three outputs (see the module docstring), of MAX_STREAMS
    streams at most, in their order."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    by_stream: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if stream is None or r["stream"] == stream:
            by_stream[r["stream"]].append(r)
    if not by_stream:
        raise InputFormatError(f"no results for stream {stream!r}" if stream else "no results to plot")
    # A panel of each of hundreds of streams made an image 100,000 pixels tall in minutes.
    drawn = sorted(by_stream, key=lambda sid: (-sum(r["is_anomaly"] for r in by_stream[sid]),
                                               -sum(r["abnormal"] for r in by_stream[sid])))[:MAX_STREAMS]
    layout = []  # per stream: (id, records, series, features shown, top contributors)
    for sid, recs in by_stream.items():
        if sid not in drawn:
            continue
        series, top = _series(recs), _top_contributors(recs)
        layout.append((sid, recs, series, _shown_features(series, top), top))
    heights = []
    for _, _, series, shown, _ in layout:
        heights += ([3.0] if len(series) == 1 else [1.2] * len(shown)) + [1.1]
    fig = plt.figure(figsize=(12, sum(heights) + 0.4 * len(layout)))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    row = 0
    for sid, recs, series, shown, top in layout:
        times = _times(recs, plt.rcParams["axes.xmargin"])
        x = np.arange(len(recs)) if times is None else times
        flags = np.array([r["is_anomaly"] for r in recs])
        abnormal = np.array([r["abnormal"] for r in recs])
        multivariate = len(series) > 1
        first = fig.add_subplot(grid[row])
        panels = [first] + [fig.add_subplot(grid[row + k], sharex=first) for k in range(1, len(shown) + 1)]
        row += len(shown) + 1
        for ax, feature in zip(panels, shown):
            values, preds = series[feature]
            if abnormal.any():
                ax.fill_between(x, 0, 1, where=abnormal, transform=ax.get_xaxis_transform(), color="orange",
                                alpha=0.2, lw=0)
            ax.plot(x, values, lw=0.8, color="C0")
            if not np.isnan(preds).all():  # a context feature has no forecast
                band = _band(values, preds)
                ax.fill_between(x, preds - band, preds + band, color="C0", alpha=0.2, lw=0)
            if multivariate:  # every alert as a line; a dot where this feature was named first
                ax.vlines(x[flags], 0, 1, transform=ax.get_xaxis_transform(), color="red", lw=0.6, alpha=0.5)
                mine = flags & np.array([t == feature for t in top])
                ax.text(0.005, 0.92, feature, transform=ax.transAxes, va="top", fontsize=8,
                        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})
            else:
                mine = flags
            ax.scatter(x[mine], values[mine], color="red", s=24, zorder=3)
            ax.tick_params(labelbottom=False, labelsize=8)
        hidden = f"; {len(shown)} of {len(series)} features shown" if len(shown) < len(series) else ""
        first.set_title(f"{sid}  ({int(flags.sum())} alerts, {int(abnormal.sum())} abnormal of {len(recs)}{hidden})",
                        loc="left", fontsize=10)
        first.legend([Line2D([], [], color="C0", lw=0.8), Patch(color="C0", alpha=0.2),
                      Line2D([], [], color="red", marker="o", ls="", ms=5), Patch(color="orange", alpha=0.2)],
                     ["value", "forecast ±2 RMS", "alert" + (" (dot: feature named first)" if multivariate else ""),
                      "abnormal"], loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, fontsize=8, frameon=False)
        ax_score = panels[-1]
        for key, color, label in (("score", "grey", "score"), ("alert_score", "purple", "alert score"),
                                  ("regime", "orange", "P(abnormal)")):
            ax_score.plot(x, [r[key] for r in recs], lw=0.8, color=color, label=label)
        if threshold is not None:
            ax_score.axhline(threshold, color="red", ls="--", lw=0.8)
        ax_score.set_ylim(0, 1.02)
        ax_score.legend(loc="upper left", fontsize=8, ncol=3)
        ax_score.tick_params(labelsize=8)
        if times is None:
            ax_score.set_xlabel("event", fontsize=8)
        else:
            ax_score.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax_score.xaxis.get_major_locator()))
            ax_score.set_xlabel("time (UTC)", fontsize=8)
    fig.tight_layout()
    return fig

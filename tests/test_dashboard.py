"""The Grafana dashboard (deploy/grafana/streamlstm.json) only queries metrics the daemon
exports, and has a panel for each thing the operations issue asked for."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamlstm.kafka.metrics import DaemonMetrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "streamlstm.json"
METRIC = re.compile(r"(?<![\w:])streamlstm_\w+")

# The sample names each metric type exposes (prometheus_client: a counter `x` is `x_total`).
SAMPLE_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
                   "histogram": ("_bucket", "_sum", "_count", "_created"),
                   "summary": ("", "_sum", "_count", "_created")}

# One panel per bullet of the issue: (metric it queries, text its queries must contain).
REQUIRED = {
    "events/s": ("streamlstm_events_total", ["rate("]),
    "anomalies/s by model group": ("streamlstm_anomalies_total", ["rate(", "by (group)"]),
    "consumer lag per partition": ("streamlstm_consumer_lag", ["partition)"]),
    "checkpoint age": ("streamlstm_checkpoint_age_seconds", []),
    "errors by kind": ("streamlstm_errors_total", ["rate(", "by (kind)"]),
    "batch latency quantiles": ("streamlstm_batch_seconds_bucket",
                                ["histogram_quantile(0.5,", "histogram_quantile(0.9,", "histogram_quantile(0.99,"]),
    "streams held": ("streamlstm_streams", []),
    "evictions": ("streamlstm_evictions_total", ["rate(", "by (reason)"]),
}


def exported_names() -> set[str]:
    """Every sample name the daemon's registry exposes, labelled metrics included (they
    have no samples until a label value is set, so names come from family name and type)."""
    return {f.name + suffix for f in DaemonMetrics().registry.collect() for suffix in SAMPLE_SUFFIXES[f.type]}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    return [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]


def queries(dashboard: dict) -> list[str]:
    """Every PromQL query: panel targets and the template variables' queries."""
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return exprs


def unknown_metrics(dashboard: dict) -> dict[str, list[str]]:
    exported = exported_names()
    return {e: bad for e in queries(dashboard) if (bad := [m for m in METRIC.findall(e) if m not in exported])}


def test_every_query_names_an_exported_metric():
    dashboard = load()
    exprs = queries(dashboard)
    assert len(exprs) >= len(REQUIRED)
    assert [e for e in exprs if not METRIC.search(e)] == []
    assert unknown_metrics(dashboard) == {}
    assert all(e.count("(") == e.count(")") and e.count("{") == e.count("}") for e in exprs)


def test_a_misspelt_metric_is_caught():
    dashboard = load()
    target = next(t for p in panels(dashboard) for t in p.get("targets", []))
    target["expr"] = target["expr"].replace("streamlstm_events_total", "streamlstm_event_total")
    assert list(unknown_metrics(dashboard).values()) == [["streamlstm_event_total"]]


def test_required_panels_exist():
    found = {}
    for p in panels(load()):
        text = " ".join(t["expr"] for t in p.get("targets", []))
        for need, (metric, parts) in REQUIRED.items():
            if metric in METRIC.findall(text) and all(part in text for part in parts):
                found.setdefault(need, p["title"])
    assert set(found) == set(REQUIRED), set(REQUIRED) - set(found)


def test_imports_cleanly():
    dashboard = load()
    assert dashboard["uid"] == "streamlstm" and dashboard.get("id") is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and {"job", "instance"} <= set(variables)
    ps = panels(dashboard)
    assert len({p["id"] for p in ps}) == len(ps)
    for p in ps:
        assert p["title"]
        for t in p.get("targets", []):
            assert p["datasource"]["uid"] == t["datasource"]["uid"] == "${DS_PROMETHEUS}"
            if "rate(" in t["expr"]:
                assert "[$__rate_interval]" in t["expr"]

"""Deployment files: YAML parses, the systemd unit verifies, the config in the ConfigMap loads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streamlstm.config import load_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_k8s_yaml_parses():
    docs = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Deployment"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_configmap_config_is_valid(tmp_path):
    cm = next(d for d in yaml.safe_load_all((DEPLOY / "k8s" / "configmap.yaml").read_text()) if d)
    path = tmp_path / "kafka.yaml"
    path.write_text(cm["data"]["kafka.yaml"])
    config = load_config(path, env={})
    assert config.source == "kafka" and config.kafka.changelog_topic


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    # verify also checks that ExecStart exists; point it at a binary this machine has.
    text = (DEPLOY / "streamlstm.service").read_text()
    assert "ExecStart=/usr/local/bin/streamlstm " in text
    unit = tmp_path / "streamlstm.service"
    unit.write_text(text.replace("ExecStart=/usr/local/bin/streamlstm ", "ExecStart=/bin/true "))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_containerfile_runs_as_non_root():
    text = (DEPLOY / "Containerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "\nUSER 10001" in text

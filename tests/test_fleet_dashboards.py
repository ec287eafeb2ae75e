"""deploy/ ships a Grafana dashboard and Prometheus alert rules for the connections fleet:
both parse, and every metric they query is in /metrics (the names operators' dashboards use:
whatsapp_sessions_total, whatsapp_active_connections, ... for each channel, and each host's
capacity and load)."""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

DEPLOY = Path(settings.BASE_DIR) / "deploy"
PROMQL_WORDS = {"rate", "sum", "and", "or", "by", "without", "increase", "max", "min", "avg"}
REQUIRED = {
    f"{channel}_{name}"
    for channel in ("whatsapp", "telegram", "email")
    for name in (
        "sessions_total",
        "active_connections",
        "messages_sent_total",
        "messages_received_total",
        "errors_total",
        "reconnect_attempts",
        "waiting_for_capacity",
    )
} | {"connection_host_capacity", "connection_host_load", "connections_waiting_for_capacity"}


def _names(expression: str) -> set[str]:
    expression = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expression)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expression))
    return {word for word in words if word not in PROMQL_WORDS and "_" in word}


def _exposed(client) -> set[str]:
    """Names of samples, and of families declared with no sample yet (no host running)."""
    text = client.get("/metrics", headers={"Authorization": "Bearer fleet-test"}).content.decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}
    return names | {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


@pytest.mark.django_db
def test_dashboard_and_alerts_query_only_metrics_that_exist(client, settings):
    settings.METRICS_TOKEN = "fleet-test"  # required with DEBUG off
    exposed = _exposed(client)
    assert REQUIRED <= exposed, REQUIRED - exposed

    dashboard = json.loads((DEPLOY / "grafana" / "connections.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in _names(target["expr"])
    }
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerted = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in _names(rule["expr"])
    }
    assert all(
        rule.get("alert") and rule.get("expr") for g in rules["groups"] for rule in g["rules"]
    )
    assert queried and alerted
    assert queried - exposed == set()
    assert alerted - exposed == set()
    assert {"whatsapp_active_connections", "connection_host_load"} <= queried

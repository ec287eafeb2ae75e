"""WhatsApp metrics: the company's JSON at /api/v1/whatsapp/metrics/ and every company's at
/metrics in Prometheus' text format, counted in Redis so other processes' counts show."""

import os
import re
import subprocess
import sys

import pytest

from channels_integrations.models import WhatsAppSession
from channels_integrations.whatsapp import metrics

from .factories import WhatsAppNumberFactory, WhatsAppSessionFactory
from .processes import database_url

pytestmark = pytest.mark.django_db


def _prometheus_value(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} missing from:\n{text}"
    return float(match.group(1))


def test_company_metrics_count_only_that_company(api_for, agent_user, other_company):
    mine = WhatsAppNumberFactory(company=agent_user.company, provider="web")
    WhatsAppSessionFactory(number=mine, status=WhatsAppSession.Status.CONNECTED)
    WhatsAppSessionFactory(
        number=WhatsAppNumberFactory(company=agent_user.company, provider="web"),
        status=WhatsAppSession.Status.LOGGED_OUT,
    )
    metrics.increment("messages_received", agent_user.company_id, by=3)
    metrics.increment("messages_sent", agent_user.company_id)
    metrics.record_error("The access token is invalid", agent_user.company_id)
    metrics.increment("messages_sent", other_company.pk, by=50)

    body = api_for(agent_user).get("/api/v1/whatsapp/metrics/").json()
    assert body["total_sessions"] == 2 and body["connected"] == 1
    assert body["messages_received"] == 3 and body["messages_sent"] == 1
    assert body["errors"] == 1 and body["qr_generated"] == 0 and body["failed_reconnects"] == 0
    assert body["last_error"]["error"] == "The access token is invalid"


def test_prometheus_text_includes_counts_made_by_another_process(client, company, settings):
    settings.METRICS_TOKEN = "scrape-me"  # required: tests run with DEBUG off
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer scrape-me"
    before = _prometheus_value(
        client.get("/metrics").content.decode(), "switchboard_whatsapp_messages_sent_total"
    )
    WhatsAppSessionFactory(
        number=WhatsAppNumberFactory(company=company, provider="web"),
        status=WhatsAppSession.Status.QR,
    )
    # A worker process counts a send (same code path as the provider's).
    code = (
        "import django; django.setup(); "
        "from channels_integrations.whatsapp import metrics; "
        "metrics.increment('messages_sent', 1, by=2)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url()}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=settings.BASE_DIR)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert _prometheus_value(text, "switchboard_whatsapp_messages_sent_total") == before + 2
    assert _prometheus_value(text, "switchboard_whatsapp_sessions", '{status="qr"}') >= 1
    for name in metrics.COUNTERS:
        assert f"switchboard_whatsapp_{name}_total" in text


def test_metrics_token_when_configured(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ü").status_code == 401  # not a 500
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_metrics_api_needs_a_login(client):
    assert client.get("/api/v1/whatsapp/metrics/").status_code in (401, 403)

"""/metrics in Prometheus' text format (prometheus-client). Counters come from Redis, where
every process (web and workers) counts, so one scrape of any web process sees them all."""

import hmac

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class WhatsAppCollector:
    def collect(self):
        from channels_integrations.models import WhatsAppSession
        from channels_integrations.whatsapp import metrics

        counters = metrics.counters()
        for name in metrics.COUNTERS:
            yield CounterMetricFamily(
                f"switchboard_whatsapp_{name}",
                f"WhatsApp {name.replace('_', ' ')}, every process since Redis started",
                value=counters[name],
            )
        by_status = GaugeMetricFamily(
            "switchboard_whatsapp_sessions",
            "WhatsApp sessions by status",
            labels=["status"],
        )
        rows = WhatsAppSession.objects.values("status").annotate(count=Count("id"))
        seen = {row["status"]: row["count"] for row in rows}
        for status in WhatsAppSession.Status.values:
            by_status.add_metric([status], seen.get(status, 0))
        yield by_status


class WebhookInboxCollector:
    def collect(self):
        from webhook_inbox.services import backlog

        figures = backlog()
        yield GaugeMetricFamily(
            "switchboard_webhook_inbox_waiting",
            "Webhook deliveries stored and not ingested yet",
            value=figures["waiting"],
        )
        yield GaugeMetricFamily(
            "switchboard_webhook_inbox_parked",
            "Webhook deliveries given up on after repeated failures (see the admin)",
            value=figures["parked"],
        )
        yield GaugeMetricFamily(
            "switchboard_webhook_inbox_oldest_age_seconds",
            "Age of the oldest waiting webhook delivery",
            value=figures["oldest_age_seconds"],
        )


def prometheus_metrics(request):
    """With DEBUG off the token is required: without METRICS_TOKEN set, nothing is served."""
    token = settings.METRICS_TOKEN
    if token or not settings.DEBUG:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        # bytes: any header; an empty token never matches
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse(
                "Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n",
                status=401,
                content_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
    registry = CollectorRegistry()
    registry.register(WhatsAppCollector())
    registry.register(WebhookInboxCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

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


def prometheus_metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):  # bytes: any header
            return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(WhatsAppCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
